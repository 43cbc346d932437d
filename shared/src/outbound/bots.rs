//! Group-bot messages for 企业微信, 飞书 and 钉钉: what a person in the sales group reads for an
//! event, each platform's request shape and signature, and how to read its answer. The facts and
//! their sources are in docs/chat-bots.md.

use super::HookKind;
use super::sender::Answer;
use super::signing::{dingtalk_sign, feishu_sign};
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};

/// What the platforms accept in one message, kept well below (WeCom markdown: 4096 bytes).
pub const MAX_MESSAGE_BYTES: usize = 3800;

/// A message as people read it; each platform gets it in its own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotMessage {
    pub title: String,
    pub lines: Vec<String>,
}

impl BotMessage {
    pub fn text(&self) -> String {
        let mut out = self.title.clone();
        for line in &self.lines {
            out.push('\n');
            out.push_str(line);
        }
        truncate(out, MAX_MESSAGE_BYTES)
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn beijing(raw: &Value) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    raw.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&offset).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

fn field<'a>(lead: &'a Value, name: &str) -> Option<&'a str> {
    lead.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn source_name(source: &str) -> &str {
    match source {
        "douyin_fans" => "抖音粉丝",
        "laike" => "抖音来客",
        "oceanengine_clue" => "巨量引擎",
        "oceanengine_life" => "巨量本地推",
        "feiyu" => "飞鱼CRM",
        other => other,
    }
}

/// One line about a new lead, for its own message or a digest.
pub fn lead_line(event: &Value, link_template: Option<&str>) -> String {
    let lead = &event["lead"];
    let who = field(lead, "name").or(field(lead, "nickname")).unwrap_or("(未留姓名)");
    let phone = field(lead, "phone").unwrap_or("-");
    let source = source_name(field(lead, "source").unwrap_or("-"));
    let ad = field(lead, "promotionId")
        .map(|p| format!("推广 {p}"))
        .or_else(|| field(lead, "adId").map(|a| format!("广告 {a}")))
        .unwrap_or_else(|| "自然流量".into());
    let mut line = format!("- {who} {phone} · {source} · {ad} · {}", beijing(&lead["createdAt"]));
    if let (Some(template), Some(id)) = (link_template, event["leadId"].as_str()) {
        line.push_str(&format!(" · [查看]({})", template.replace("{leadId}", id)));
    }
    line
}

/// The message for one event; `None` for events a group is not told of.
pub fn message(event: &Value, link_template: Option<&str>) -> Option<BotMessage> {
    let kind = event["type"].as_str()?;
    let account = || {
        format!(
            "{} 账户 {}",
            event["provider"].as_str().unwrap_or("-"),
            event["externalAccountId"].as_str().unwrap_or("-")
        )
    };
    let reason = || event["reason"].as_str().unwrap_or("").to_owned();
    match kind {
        crate::events::LEAD_CREATED => Some(BotMessage {
            title: "【新线索】".into(),
            lines: vec![lead_line(event, link_template)],
        }),
        crate::events::CONNECTION_STATUS_CHANGED => {
            let to = event["to"].as_str()?;
            let title = match to {
                "REAUTH_REQUIRED" => "【需要重新授权】",
                "DISABLED" => "【账户已停用】",
                _ => return None,
            };
            Some(BotMessage {
                title: title.into(),
                lines: vec![format!("- {} {}", account(), reason())],
            })
        }
        crate::events::SYNC_FAILING => Some(BotMessage {
            title: "【线索同步连续失败】".into(),
            lines: vec![format!(
                "- {} 已连续失败 {} 次: {}",
                account(),
                event["failedRuns"],
                reason()
            )],
        }),
        super::WEBHOOK_DISABLED => Some(BotMessage {
            title: "【推送地址已停用】".into(),
            lines: vec![format!(
                "- {} 连续失败超过期限: {}",
                event["webhookId"].as_str().unwrap_or("-"),
                reason()
            )],
        }),
        _ => None,
    }
}

/// Several lines in one message: the first `shown`, and a count of the rest.
pub fn digest(lines: &[String], shown: usize, more: usize) -> BotMessage {
    let total = lines.len() + more;
    let mut body: Vec<String> = lines.iter().take(shown).cloned().collect();
    let hidden = total - body.len();
    if hidden > 0 {
        body.push(format!("……以及另外 {hidden} 条"));
    }
    BotMessage {
        title: format!("【线索汇总】{total} 条通知"),
        lines: body,
    }
}

/// The URL and body to POST for `message`.
pub fn request(
    kind: HookKind,
    url: &str,
    secret: Option<&str>,
    message: &BotMessage,
    now: DateTime<Utc>,
) -> (String, Value) {
    let text = message.text();
    match kind {
        HookKind::Wecom => (
            url.to_owned(),
            json!({"msgtype": "markdown", "markdown": {"content": text}}),
        ),
        HookKind::Feishu => {
            let mut body = json!({"msg_type": "text", "content": {"text": text}});
            if let Some(secret) = secret {
                let ts = now.timestamp();
                body["timestamp"] = json!(ts.to_string());
                body["sign"] = json!(feishu_sign(secret, ts));
            }
            (url.to_owned(), body)
        }
        HookKind::Dingtalk => {
            let mut target = url.to_owned();
            if let Some(secret) = secret
                && let Ok(mut parsed) = url::Url::parse(url)
            {
                let ts = now.timestamp_millis();
                parsed
                    .query_pairs_mut()
                    .append_pair("timestamp", &ts.to_string())
                    .append_pair("sign", &dingtalk_sign(secret, ts));
                target = parsed.to_string();
            }
            let body = json!({"msgtype": "markdown", "markdown": {"title": message.title, "text": text}});
            (target, body)
        }
        HookKind::Webhook => (url.to_owned(), json!({"text": text})),
    }
}

/// How a bot platform answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Over the bot's rate: the message goes into the next minute's digest.
    Throttled,
    Failed(String),
}

/// Throttling answers, by platform (docs/chat-bots.md). Feishu's 9499 also means a bad request:
/// only its message tells "too many request" apart.
const WECOM_THROTTLED: &[i64] = &[45009, 45033];
const FEISHU_THROTTLED: &[i64] = &[11232];
const DINGTALK_THROTTLED: &[i64] = &[130101, 410100, 90030];

pub fn verdict(kind: HookKind, answer: &Answer) -> Verdict {
    if answer.status == Some(429) {
        return Verdict::Throttled;
    }
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let (code, throttled) = match kind {
        HookKind::Wecom => (body["errcode"].as_i64(), WECOM_THROTTLED),
        HookKind::Dingtalk => (body["errcode"].as_i64(), DINGTALK_THROTTLED),
        // Newer answers carry `code`, older ones `StatusCode`.
        HookKind::Feishu => (body["code"].as_i64().or(body["StatusCode"].as_i64()), FEISHU_THROTTLED),
        HookKind::Webhook => (Some(0), &[][..]),
    };
    let msg = body["errmsg"].as_str().or(body["msg"].as_str()).unwrap_or("");
    // Feishu answers its throttle with HTTP 400, so the body is read whatever the status.
    let feishu_busy = kind == HookKind::Feishu && code == Some(9499) && msg.contains("too many");
    if code.is_some_and(|c| throttled.contains(&c)) || feishu_busy {
        return Verdict::Throttled;
    }
    if !answer.is_success() {
        return Verdict::Failed(
            answer
                .error
                .clone()
                .unwrap_or_else(|| format!("HTTP {}", answer.status.unwrap_or(0))),
        );
    }
    match code {
        Some(0) => Verdict::Delivered,
        Some(c) => Verdict::Failed(format!("bot answered {c}: {msg}")),
        None => Verdict::Failed("the bot's answer was not understood".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> Value {
        json!({
            "type": "LeadCreated", "leadId": "l_1",
            "lead": {"name": "王先生", "phone": "138****8000", "source": "oceanengine_life",
                     "promotionId": "7301", "createdAt": "2026-12-01T02:30:00Z"}
        })
    }

    #[test]
    fn a_new_lead_reads_as_one_line_with_its_link() {
        let m = message(&created(), Some("https://app.example.com/leads/{leadId}")).unwrap();
        assert_eq!(m.title, "【新线索】");
        assert_eq!(
            m.lines[0],
            "- 王先生 138****8000 · 巨量本地推 · 推广 7301 · 2026-12-01 10:30 · [查看](https://app.example.com/leads/l_1)"
        );
        assert!(message(&json!({"type": "LeadUpdated"}), None).is_none());
        let back = json!({"type": "ConnectionStatusChanged", "to": "ACTIVE"});
        assert!(message(&back, None).is_none(), "only moves that need someone are told");
    }

    #[test]
    fn each_platform_gets_its_shape_and_signature() {
        let m = message(&created(), None).unwrap();
        let now = DateTime::from_timestamp(1_599_360_473, 0).unwrap();
        let (_, wecom) = request(
            HookKind::Wecom,
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            None,
            &m,
            now,
        );
        assert_eq!(wecom["msgtype"], "markdown");
        let (_, feishu) = request(
            HookKind::Feishu,
            "https://open.feishu.cn/open-apis/bot/v2/hook/x",
            Some("demo"),
            &m,
            now,
        );
        assert_eq!(
            (feishu["timestamp"].as_str(), feishu["sign"].as_str()),
            (Some("1599360473"), Some(feishu_sign("demo", 1_599_360_473).as_str()))
        );
        let (url, ding) = request(
            HookKind::Dingtalk,
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            Some("SEC1"),
            &m,
            now,
        );
        assert!(url.starts_with("https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1599360473000&sign="));
        assert_eq!(ding["markdown"]["title"], "【新线索】");
    }

    #[test]
    fn answers_are_read_per_platform() {
        let ok = |body: &str| Answer {
            status: Some(200),
            body: body.into(),
            error: None,
        };
        assert_eq!(
            verdict(HookKind::Wecom, &ok(r#"{"errcode":0,"errmsg":"ok"}"#)),
            Verdict::Delivered
        );
        assert_eq!(
            verdict(HookKind::Wecom, &ok(r#"{"errcode":45009}"#)),
            Verdict::Throttled
        );
        let busy = Answer {
            status: Some(400),
            body: r#"{"code":9499,"msg":"too many request"}"#.into(),
            error: None,
        };
        assert_eq!(verdict(HookKind::Feishu, &busy), Verdict::Throttled);
        let bad = Answer {
            status: Some(400),
            body: r#"{"code":9499,"msg":"Bad Request"}"#.into(),
            error: None,
        };
        assert!(
            matches!(verdict(HookKind::Feishu, &bad), Verdict::Failed(_)),
            "a bad request is not retried as a digest"
        );
        assert_eq!(
            verdict(HookKind::Feishu, &ok(r#"{"code":11232,"msg":"frequency limited"}"#)),
            Verdict::Throttled
        );
        assert_eq!(
            verdict(HookKind::Feishu, &ok(r#"{"StatusCode":0}"#)),
            Verdict::Delivered
        );
        assert_eq!(
            verdict(HookKind::Dingtalk, &ok(r#"{"errcode":130101}"#)),
            Verdict::Throttled
        );
        assert!(matches!(
            verdict(
                HookKind::Dingtalk,
                &ok(r#"{"errcode":310000,"errmsg":"sign not match"}"#)
            ),
            Verdict::Failed(_)
        ));
        let throttled = Answer {
            status: Some(429),
            body: String::new(),
            error: None,
        };
        assert_eq!(verdict(HookKind::Feishu, &throttled), Verdict::Throttled);
    }

    #[test]
    fn a_digest_counts_what_it_does_not_show() {
        let lines: Vec<String> = (0..30).map(|i| format!("- lead {i}")).collect();
        let d = digest(&lines, 20, 5);
        assert_eq!(d.title, "【线索汇总】35 条通知");
        assert_eq!(d.lines.len(), 21);
        assert_eq!(d.lines[20], "……以及另外 15 条");
        let long = digest(&vec!["x".repeat(500); 20], 20, 0);
        assert!(long.text().len() <= MAX_MESSAGE_BYTES);
    }
}
