//! Feiyu CRM leads: `GET /crm/v2/openapi/pull-clues/` signed with HMAC-SHA256 (platform-apis.md
//! §4.1). The signature covers the path, `start_time` and `end_time` exactly as sent, a space and
//! the timestamp; the header carries base64 of the lowercase hex digest, not of the raw digest.

use super::record::{form_fields, id, int, text};
use super::{Page, PageRef, Paging, PullAuth, SourceClient, SourceError, Window, format_date, format_datetime};
use crate::clock::Clock;
use crate::config::FeiyuTimeFormat;
use crate::lead::{LeadFields, LeadSource, PlatformLead, normalize_phone};
use crate::platform::douyin::join;
use crate::platform::http::{PlatformHttp, RawResponse, Replay};
use crate::platform::{ErrorKind, Platform, PlatformError};
use async_trait::async_trait;
use base64::Engine;
use chrono::{Duration, TimeZone};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use url::Url;

const PATH: &str = "/crm/v2/openapi/pull-clues/";

pub struct FeiyuSource {
    pub http: PlatformHttp,
    pub base_url: Url,
    pub time_format: FeiyuTimeFormat,
    pub clock: Arc<dyn Clock>,
    pub page_size: u32,
    pub lag: Duration,
}

/// The `Signature` header for a pull of `[start, end]` at `timestamp`.
pub fn signature(key: &str, start: &str, end: &str, timestamp: i64) -> String {
    let data = format!("{PATH}?start_time={start}&end_time={end} {timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    base64::engine::general_purpose::STANDARD.encode(hex)
}

fn format_time(format: FeiyuTimeFormat, at: chrono::DateTime<chrono::Utc>) -> String {
    match format {
        FeiyuTimeFormat::Date => format_date(at),
        FeiyuTimeFormat::DateTime => format_datetime(at),
        FeiyuTimeFormat::Unix => at.timestamp().to_string(),
    }
}

/// `{status: "success", count, data}`; anything else is a failure with a `msg` (text or object).
pub(crate) fn decode(raw: RawResponse) -> Result<Value, PlatformError> {
    let platform = Platform::Feiyu;
    if raw.status == 429 || raw.status >= 500 {
        return Err(PlatformError::Status {
            platform,
            status: raw.status,
        });
    }
    let body: Value = serde_json::from_slice(&raw.body).map_err(|e| PlatformError::Decode {
        platform,
        message: format!("body is not JSON: {e}"),
    })?;
    let status = text(&body, "status").unwrap_or_default();
    if status == "success" {
        return Ok(body);
    }
    let message = match body.get("msg") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => format!("status {status:?}"),
    };
    let lower = message.to_lowercase();
    // No error table is published; the message is all there is to go on.
    let kind = if lower.contains("signature") || lower.contains("token") || lower.contains("auth") {
        ErrorKind::GrantRevoked
    } else if lower.contains("frequent") || lower.contains("limit") {
        ErrorKind::Throttled
    } else {
        ErrorKind::Other
    };
    Err(PlatformError::Api {
        platform,
        code: status.parse().unwrap_or(-1),
        message,
        log_id: None,
        kind,
    })
}

pub fn normalize(record: &Value) -> Option<PlatformLead> {
    let clue_id = id(record, "clue_id")?;
    let store = record.get("store").and_then(|s| text(s, "store_name"));
    let fields = LeadFields {
        name: text(record, "name"),
        phone: text(record, "telphone")
            .or_else(|| text(record, "telephone"))
            .and_then(|p| normalize_phone(&p)),
        clue_type: match int(record, "clue_type") {
            Some(0) | Some(1) => "FORM",
            Some(2) => "CONSULT",
            Some(3) => "PHONE",
            _ => "OTHER",
        }
        .to_owned(),
        channel: text(record, "appname"),
        advertiser_id: id(record, "adv_id"),
        ad_id: id(record, "ad_plan_id"),
        creative_id: id(record, "cid"),
        store: store.or_else(|| text(record, "store_name")),
        location: text(record, "location"),
        remark: text(record, "remark"),
        form_fields: form_fields(record, "remark_dict"),
        created_at: text(record, "create_time").and_then(|t| super::parse_platform_time(&t)),
        platform_status: text(record, "convert_status"),
        ..LeadFields::default()
    };
    Some(PlatformLead {
        source: LeadSource::Feiyu,
        source_lead_id: clue_id,
        fields,
        raw: record.clone(),
        phone_cipher: None,
    })
}

#[async_trait]
impl SourceClient for FeiyuSource {
    fn source(&self) -> LeadSource {
        LeadSource::Feiyu
    }

    fn platform(&self) -> Platform {
        Platform::Feiyu
    }

    fn paging(&self) -> Paging {
        Paging::Windowed {
            lag: self.lag,
            max_span: Duration::days(7),
            page_size: self.page_size,
        }
    }

    fn covered(&self, window: &Window) -> Window {
        match self.time_format {
            FeiyuTimeFormat::Date => {
                let day = |t: chrono::DateTime<chrono::Utc>| {
                    let local = t.with_timezone(&super::beijing()).date_naive();
                    let midnight = local.and_hms_opt(0, 0, 0).expect("midnight exists");
                    super::beijing()
                        .from_local_datetime(&midnight)
                        .single()
                        .map_or(t, |m| m.with_timezone(&chrono::Utc))
                };
                Window {
                    start: day(window.start),
                    end: day(window.end) + Duration::days(1),
                }
            }
            _ => *window,
        }
    }

    async fn fetch(&self, auth: &PullAuth<'_>, window: &Window, page: PageRef) -> Result<Page, SourceError> {
        let PageRef::Number(number) = page else {
            return Err(SourceError::Unusable("Feiyu leads are paged by number".into()));
        };
        let tokens = auth
            .tokens
            .ok_or_else(|| SourceError::Unusable("the Feiyu connection has no token".into()))?;
        let key = tokens
            .signature_key
            .as_ref()
            .ok_or_else(|| SourceError::Unusable("the Feiyu connection has no signature key".into()))?;
        let start = format_time(self.time_format, window.start);
        let end = format_time(self.time_format, window.end);
        let url = join(&self.base_url, PATH);
        let query = [
            ("start_time", start.clone()),
            ("end_time", end.clone()),
            ("page", number.to_string()),
            ("page_size", self.page_size.to_string()),
        ];
        let body = self
            .http
            .call(
                Platform::Feiyu,
                Replay::Safe,
                |c| {
                    // Signed per attempt: the timestamp must be fresh on a retry too.
                    let timestamp = self.clock.now().timestamp();
                    c.get(url.clone())
                        .query(&query)
                        .header("Signature", signature(key.expose(), &start, &end, timestamp))
                        .header("Timestamp", timestamp.to_string())
                        .header("Access-Token", tokens.access_token.expose())
                        .header("Content-Type", "application/json")
                },
                decode,
            )
            .await?;
        let leads: Vec<PlatformLead> = super::record::list(&body, "data")
            .iter()
            .filter_map(normalize)
            .collect();
        let total = int(&body, "count").map(|c| c.max(0) as u64);
        let pages = total.map(|t| t.div_ceil(u64::from(self.page_size)) as u32);
        Ok(Page::numbered(leads, total, pages, number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_fact_sheet_vector() {
        assert_eq!(
            signature("ABCDEFGHIJKLMNOP", "2024-06-01", "2024-06-02", 1_717_200_000),
            "MjQwZGM1YjViMDVmZjFmZWU1OTJlYmNmNDE3Y2NiY2ZkNGJhMGI2NDEwY2ExNWRjMGFhYWQ4MGMwZmI2NjAyNA=="
        );
    }

    #[test]
    fn failures_are_typed_by_message() {
        let raw = |b: &str| RawResponse {
            status: 200,
            body: bytes::Bytes::from(b.to_owned()),
        };
        let err = decode(raw(r#"{"status":"fail","msg":"signature error","count":0,"data":[]}"#)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::GrantRevoked);
        assert!(decode(raw(r#"{"status":"success","count":0,"data":[]}"#)).is_ok());
        assert_eq!(decode(raw("{")).unwrap_err().kind(), ErrorKind::Transient);
    }

    #[test]
    fn unix_string_times_and_telphone_are_read() {
        let r = serde_json::json!({"clue_id": "6831434361875726350", "telphone": "13775502308", "create_time": "1590567259",
            "adv_id": "1664750332606472", "clue_type": 1, "appname": "抖音", "remark_dict": {}});
        let lead = normalize(&r).unwrap();
        assert_eq!(lead.fields.phone.as_deref(), Some("13775502308"));
        assert_eq!(lead.fields.created_at.unwrap().timestamp(), 1_590_567_259);
        assert_eq!(lead.fields.advertiser_id.as_deref(), Some("1664750332606472"));
    }
}
