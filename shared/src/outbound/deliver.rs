//! The delivery rules, run the same over either store: an event becomes one delivery per
//! subscription that wants it (once, however often the event is replayed), each delivery is
//! tried when due, retried with growing waits for the horizon, then given up on; a bot over its
//! rate gets a digest; a subscription failing for days is disabled and says so.

use super::bots::{self, Verdict};
use super::queue::{DeliveryMessage, DeliveryQueue};
use super::sender::{Answer, Transport};
use super::signing::webhook_signature;
use super::{
    Delivery, DeliveryRules, DeliveryStatus, DeliveryStore, HookKind, HookStatus, Subscription, WEBHOOK_DISABLED,
    delivery_id,
};
use crate::clock::Clock;
use crate::domain::TenantId;
use crate::events::OutboundEvent;
use crate::events::bus::EventPublisher;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Deliveries written at once while fanning a batch out.
const FAN_OUT_CONCURRENCY: usize = 16;
/// Queued bot lines one digest reads; more wait for the next minute's.
const DIGEST_BATCH: u32 = 500;

pub struct Deliverer {
    pub store: Arc<dyn DeliveryStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub transport: Arc<dyn Transport>,
    /// Where `WebhookDisabled` goes, besides the tenant's other subscriptions.
    pub publisher: Arc<dyn EventPublisher>,
    pub clock: Arc<dyn Clock>,
    pub rules: DeliveryRules,
    /// The longest a queue holds a message back (SQS: 15 min).
    pub max_hop: Duration,
}

/// What one message did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: already handled, unknown, or a duplicate message.
    Nothing,
    /// Not due yet: sent back to wait.
    Waiting,
    Delivered,
    Retrying,
    Dead,
    Superseded,
    Digested,
    DigestSent,
}

/// A number in [0, 1] for spreading retries.
pub(crate) fn jitter() -> f64 {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).map_or(0.5, |_| u16::from_le_bytes(b) as f64 / u16::MAX as f64)
}

fn wait(from: DateTime<Utc>, until: DateTime<Utc>) -> Duration {
    (until - from).to_std().unwrap_or_default()
}

/// What a subscriber receives for an event: its JSON, with the phone shown when asked for.
pub fn payload(subscription: &Subscription, event: &OutboundEvent) -> String {
    match (&event.revealed_lead, subscription.include_phone) {
        (Some(lead), true) => {
            let mut detail = event.detail.clone();
            detail["lead"] = lead.clone();
            detail.to_string()
        }
        _ => event.detail.to_string(),
    }
}

impl Deliverer {
    /// The deployed wiring: DynamoDB, the SQS delivery queue, the guarded HTTP client and the
    /// leads bus. `None` when no delivery queue is configured.
    pub fn aws(aws: &crate::aws::AwsClients, config: &crate::Config) -> Option<Self> {
        let out = &config.outbound;
        let queue_url = out.queue_url.clone()?;
        Some(Self {
            store: Arc::new(super::dynamo::DynamoDeliveryStore::new(
                aws.dynamodb.clone(),
                &out.table,
            )),
            queue: Arc::new(super::queue::SqsDeliveryQueue::new(
                aws.sqs.clone(),
                queue_url,
                out.dead_letter_url.clone(),
                out.max_queue_delay,
            )),
            transport: Arc::new(super::sender::HttpTransport::from_config(out)),
            publisher: Arc::new(crate::events::bus::EventBridgePublisher::new(
                aws.events.clone(),
                &config.sync.event_bus,
            )),
            clock: Arc::new(crate::clock::SystemClock),
            rules: DeliveryRules::from_config(out),
            max_hop: out.max_queue_delay,
        })
    }

    fn message(d: &Delivery) -> DeliveryMessage {
        DeliveryMessage {
            tenant: d.tenant.as_str().to_owned(),
            hook_id: d.hook_id.clone(),
            delivery_id: Some(d.delivery_id.clone()),
            digest_window: None,
            write_back: None,
        }
    }

    /// One delivery per (subscription, event) that wants it; returns how many were queued. A
    /// replay finds the deliveries it made and queues again only those never tried.
    pub async fn fan_out(&self, events: &[OutboundEvent]) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut subscriptions: HashMap<String, Vec<Subscription>> = HashMap::new();
        let mut wanted = Vec::new();
        for event in events {
            let Some(tenant) = event.detail["tenant"].as_str() else {
                continue;
            };
            if !subscriptions.contains_key(tenant) {
                let list = self.store.subscriptions(&TenantId::new(tenant)).await?;
                subscriptions.insert(tenant.to_owned(), list);
            }
            for sub in subscriptions[tenant].iter().filter(|s| s.wants(event.detail_type)) {
                if sub.kind.is_bot() && bots::message(&event.detail, None).is_none() {
                    continue;
                }
                wanted.push(Delivery {
                    hook_id: sub.id.clone(),
                    delivery_id: delivery_id(&sub.id, &event.id),
                    tenant: sub.tenant.clone(),
                    event_id: event.id.clone(),
                    event_type: event.detail_type.to_owned(),
                    lead_id: event.detail["leadId"].as_str().map(str::to_owned),
                    version: event.detail["version"].as_u64(),
                    payload: payload(sub, event),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    last_status_code: None,
                    last_error: None,
                    next_attempt_at: now,
                    created_at: now,
                    window_start: now,
                    delivered_at: None,
                });
            }
        }
        let due: Vec<DeliveryMessage> = futures_util::stream::iter(wanted.into_iter().map(|d| async move {
            let (stored, created) = self.store.add_delivery(&d).await?;
            let never_tried = stored.status == DeliveryStatus::Pending && stored.attempts == 0;
            Ok::<_, StoreError>((created || never_tried).then(|| Self::message(&stored)))
        }))
        .buffered(FAN_OUT_CONCURRENCY)
        .try_filter_map(|m| async move { Ok(m) })
        .try_collect()
        .await?;
        self.queue.send(&due, Duration::ZERO).await?;
        Ok(due.len())
    }

    /// Handles one queue message. An error is the store's or the queue's: the message is retried.
    pub async fn handle(&self, message: &DeliveryMessage) -> Result<Step, StoreError> {
        if let Some(window) = message.digest_window {
            return self.digest(message, window).await;
        }
        let Some(id) = &message.delivery_id else {
            return Ok(Step::Nothing);
        };
        let Some(d) = self.store.delivery(&message.hook_id, id).await? else {
            return Ok(Step::Nothing);
        };
        if d.status != DeliveryStatus::Pending {
            return Ok(Step::Nothing);
        }
        let now = self.clock.now();
        if d.next_attempt_at > now + chrono::Duration::seconds(1) {
            self.queue
                .send(
                    std::slice::from_ref(message),
                    wait(now, d.next_attempt_at).min(self.max_hop),
                )
                .await?;
            return Ok(Step::Waiting);
        }
        let tenant = TenantId::new(message.tenant.clone());
        let sub = self.store.subscription(&tenant, &message.hook_id).await?;
        let Some(sub) = sub.filter(|s| s.status == HookStatus::Active) else {
            return self
                .settle(
                    &d,
                    DeliveryStatus::Dead,
                    None,
                    Some("the subscription is disabled or deleted"),
                    now,
                )
                .await
                .map(|_| Step::Dead);
        };
        if let (Some(lead), Some(version)) = (&d.lead_id, d.version)
            && self.store.lane(&sub.id, lead).await?.is_some_and(|seen| seen > version)
        {
            return self
                .settle(&d, DeliveryStatus::Superseded, None, None, now)
                .await
                .map(|_| Step::Superseded);
        }
        if sub.kind.is_bot() {
            return self.bot_attempt(&sub, &d, message, now).await;
        }
        let body = d.payload.clone().into_bytes();
        let headers = vec![
            ("X-Leads-Event-Id".to_owned(), d.event_id.clone()),
            ("X-Leads-Event-Type".to_owned(), d.event_type.clone()),
            ("X-Leads-Delivery-Id".to_owned(), d.delivery_id.clone()),
            ("X-Leads-Attempt".to_owned(), (d.attempts + 1).to_string()),
            (
                "X-Leads-Signature".to_owned(),
                webhook_signature(sub.secret.as_ref().map_or("", |s| s.expose()), now.timestamp(), &body),
            ),
        ];
        let answer = self.transport.post(&sub.url, &headers, body).await;
        if answer.is_success() {
            self.delivered(&sub, &d, answer.status, now).await
        } else {
            self.failed(&sub, &d, message, &answer, failure_text(&answer), now)
                .await
        }
    }

    /// Writes a final state; false when another handler got there first.
    async fn settle(
        &self,
        d: &Delivery,
        status: DeliveryStatus,
        code: Option<u16>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut next = d.clone();
        next.status = status;
        if code.is_some() || error.is_some() {
            next.last_status_code = code;
            next.last_error = error.map(str::to_owned);
        }
        if matches!(status, DeliveryStatus::Delivered | DeliveryStatus::Digested) {
            next.delivered_at = Some(now);
        }
        self.store.update_delivery(&next, (d.status, d.attempts)).await
    }

    async fn delivered(
        &self,
        sub: &Subscription,
        d: &Delivery,
        code: Option<u16>,
        now: DateTime<Utc>,
    ) -> Result<Step, StoreError> {
        let mut done = d.clone();
        done.attempts += 1;
        done.status = DeliveryStatus::Delivered;
        done.last_status_code = code;
        done.last_error = None;
        done.delivered_at = Some(now);
        if self.store.update_delivery(&done, (d.status, d.attempts)).await? {
            if let (Some(lead), Some(version)) = (&d.lead_id, d.version) {
                self.store.advance_lane(&sub.id, lead, version).await?;
            }
            if sub.failing_since.is_some() {
                self.store.clear_failing(&sub.tenant, &sub.id).await?;
            }
        }
        Ok(Step::Delivered)
    }

    async fn failed(
        &self,
        sub: &Subscription,
        d: &Delivery,
        message: &DeliveryMessage,
        answer: &Answer,
        why: String,
        now: DateTime<Utc>,
    ) -> Result<Step, StoreError> {
        let mut next = d.clone();
        next.attempts += 1;
        next.last_status_code = answer.status;
        next.last_error = Some(why.clone());
        let give_up = now - d.window_start >= self.rules.retry_horizon;
        let step = if give_up {
            next.status = DeliveryStatus::Dead;
            if self.store.update_delivery(&next, (d.status, d.attempts)).await? {
                self.queue.dead_letter(message, &why).await?;
            }
            Step::Dead
        } else {
            next.next_attempt_at = self.rules.next_attempt(d.window_start, now, jitter());
            if self.store.update_delivery(&next, (d.status, d.attempts)).await? {
                let delay = wait(now, next.next_attempt_at).min(self.max_hop);
                self.queue.send(std::slice::from_ref(message), delay).await?;
            }
            Step::Retrying
        };
        self.count_failure(sub, &why, now).await?;
        Ok(step)
    }

    /// A failure extends the subscription's failure run; a run as long as `disable_after`
    /// disables it, once, and tells the bus and the tenant's other subscriptions.
    async fn count_failure(&self, sub: &Subscription, why: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let since = self.store.mark_failing(&sub.tenant, &sub.id, now).await?;
        if now - since < self.rules.disable_after {
            return Ok(());
        }
        let reason = format!("no delivery succeeded since {}: {why}", since.to_rfc3339());
        if !self.store.disable(&sub.tenant, &sub.id, now, &reason).await? {
            return Ok(());
        }
        tracing::warn!(webhook = %sub.id, "a subscription failing for too long was disabled");
        let event = disabled_event(sub, since, &reason, now);
        let refused = self.publisher.publish(std::slice::from_ref(&event)).await?;
        if !refused.is_empty() {
            tracing::warn!(webhook = %sub.id, "the bus refused WebhookDisabled");
        }
        self.fan_out(std::slice::from_ref(&event)).await?;
        Ok(())
    }

    async fn bot_attempt(
        &self,
        sub: &Subscription,
        d: &Delivery,
        message: &DeliveryMessage,
        now: DateTime<Utc>,
    ) -> Result<Step, StoreError> {
        let event: Value = serde_json::from_str(&d.payload).map_err(|e| StoreError::new("decode delivery", e))?;
        let Some(text) = bots::message(&event, self.rules.lead_link_template.as_deref()) else {
            return self
                .settle(
                    d,
                    DeliveryStatus::Superseded,
                    None,
                    Some("nothing to tell a group"),
                    now,
                )
                .await
                .map(|_| Step::Superseded);
        };
        let window = now.timestamp().div_euclid(60);
        if !self
            .store
            .take_rate_slot(&sub.id, window, self.rules.bot_per_minute)
            .await?
        {
            return self.to_digest(sub, d, &text, now).await;
        }
        let secret = sub.secret.as_ref().map(|s| s.expose());
        let (url, body) = bots::request(sub.kind, &sub.url, secret, &text, now);
        let answer = self.transport.post(&url, &[], body.to_string().into_bytes()).await;
        match bots::verdict(sub.kind, &answer) {
            Verdict::Delivered => self.delivered(sub, d, answer.status, now).await,
            Verdict::Throttled => self.to_digest(sub, d, &text, now).await,
            Verdict::Failed(why) => self.failed(sub, d, message, &answer, why, now).await,
        }
    }

    /// Folds a bot message into the next minute's digest: never dropped, only grouped.
    async fn to_digest(
        &self,
        sub: &Subscription,
        d: &Delivery,
        text: &bots::BotMessage,
        now: DateTime<Utc>,
    ) -> Result<Step, StoreError> {
        let line = if text.lines.len() == 1 && text.title == "【新线索】" {
            text.lines[0].clone()
        } else {
            format!("{} {}", text.title, text.lines.join(" "))
        };
        self.store.queue_digest_line(&sub.id, &d.delivery_id, &line).await?;
        self.settle(d, DeliveryStatus::Digested, None, None, now).await?;
        self.schedule_digest(sub, now).await?;
        Ok(Step::Digested)
    }

    async fn schedule_digest(&self, sub: &Subscription, now: DateTime<Utc>) -> Result<(), StoreError> {
        let window = now.timestamp().div_euclid(60) + 1;
        if self.store.schedule_digest(&sub.id, window).await? {
            let start = DateTime::from_timestamp(window * 60, 0).unwrap_or(now);
            let message = DeliveryMessage {
                tenant: sub.tenant.as_str().to_owned(),
                hook_id: sub.id.clone(),
                delivery_id: None,
                digest_window: Some(window),
                write_back: None,
            };
            self.queue.send(&[message], wait(now, start).min(self.max_hop)).await?;
        }
        Ok(())
    }

    async fn digest(&self, message: &DeliveryMessage, window: i64) -> Result<Step, StoreError> {
        let now = self.clock.now();
        let start = DateTime::from_timestamp(window * 60, 0).unwrap_or(now);
        if start > now {
            self.queue
                .send(std::slice::from_ref(message), wait(now, start).min(self.max_hop))
                .await?;
            return Ok(Step::Waiting);
        }
        let tenant = TenantId::new(message.tenant.clone());
        let Some(sub) = self.store.subscription(&tenant, &message.hook_id).await? else {
            return Ok(Step::Nothing);
        };
        if sub.status != HookStatus::Active {
            return Ok(Step::Nothing);
        }
        let queued = self.store.digest_lines(&sub.id, DIGEST_BATCH).await?;
        if queued.is_empty() {
            return Ok(Step::Nothing);
        }
        if !self
            .store
            .take_rate_slot(&sub.id, now.timestamp().div_euclid(60), self.rules.bot_per_minute)
            .await?
        {
            self.schedule_digest(&sub, now).await?;
            return Ok(Step::Waiting);
        }
        let lines: Vec<String> = queued.iter().map(|(_, l)| l.clone()).collect();
        let text = bots::digest(&lines, self.rules.digest_lines, 0);
        let (url, body) = bots::request(sub.kind, &sub.url, sub.secret.as_ref().map(|s| s.expose()), &text, now);
        let answer = self.transport.post(&url, &[], body.to_string().into_bytes()).await;
        match bots::verdict(sub.kind, &answer) {
            Verdict::Delivered => {
                let ids: Vec<String> = queued.into_iter().map(|(id, _)| id).collect();
                self.store.drop_digest_lines(&sub.id, &ids).await?;
                if sub.failing_since.is_some() {
                    self.store.clear_failing(&sub.tenant, &sub.id).await?;
                }
                if ids.len() as u32 == DIGEST_BATCH {
                    self.schedule_digest(&sub, now).await?;
                }
                Ok(Step::DigestSent)
            }
            Verdict::Throttled => {
                self.schedule_digest(&sub, now).await?;
                Ok(Step::Waiting)
            }
            Verdict::Failed(why) => {
                self.count_failure(&sub, &why, now).await?;
                self.schedule_digest(&sub, now).await?;
                Ok(Step::Retrying)
            }
        }
    }

    /// A subscriber's "send it again": a finished delivery goes back to pending with a new
    /// retry window; a pending one is nudged to go now.
    pub async fn retry(&self, d: &Delivery) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut again = d.clone();
        again.status = DeliveryStatus::Pending;
        again.next_attempt_at = now;
        again.window_start = now;
        if !self.store.update_delivery(&again, (d.status, d.attempts)).await? {
            return Ok(false);
        }
        self.queue.send(&[Self::message(&again)], Duration::ZERO).await?;
        Ok(true)
    }
}

fn failure_text(answer: &Answer) -> String {
    match (&answer.error, answer.status) {
        (Some(e), _) => e.clone(),
        (None, Some(code)) => {
            let snippet: String = answer.body.chars().take(200).collect();
            if snippet.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {snippet}")
            }
        }
        (None, None) => "no answer".into(),
    }
}

/// A URL as it may be shown: bot URLs carry their token (in the query, or Feishu's last path
/// segment), integrators' may carry one in the query; those are masked.
pub fn redacted_url(kind: HookKind, raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "***".into();
    };
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, _)| (k.into_owned(), "***".to_owned()))
        .collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if kind == HookKind::Feishu {
        let mut segments: Vec<String> = url
            .path_segments()
            .map(|s| s.map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(last) = segments.last_mut() {
            *last = "***".into();
        }
        url.set_path(&segments.join("/"));
    }
    url.to_string()
}

pub fn disabled_event(sub: &Subscription, since: DateTime<Utc>, reason: &str, at: DateTime<Utc>) -> OutboundEvent {
    let id = crate::domain::derived_id("ev_", &[WEBHOOK_DISABLED, &sub.id]);
    OutboundEvent {
        detail: json!({
            "eventId": id, "type": WEBHOOK_DISABLED, "schemaVersion": crate::events::SCHEMA_VERSION,
            "tenant": sub.tenant.as_str(), "occurredAt": at, "webhookId": sub.id, "kind": sub.kind.as_str(),
            "url": redacted_url(sub.kind, &sub.url), "failingSince": since, "reason": reason,
        }),
        id,
        detail_type: WEBHOOK_DISABLED,
        revealed_lead: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_urls_are_masked_for_display() {
        assert_eq!(
            redacted_url(
                HookKind::Wecom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123"
            ),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
        assert_eq!(
            redacted_url(
                HookKind::Feishu,
                "https://open.feishu.cn/open-apis/bot/v2/hook/5f0c-token"
            ),
            "https://open.feishu.cn/open-apis/bot/v2/hook/***"
        );
        assert_eq!(
            redacted_url(HookKind::Webhook, "https://crm.example.com/hooks/leads"),
            "https://crm.example.com/hooks/leads"
        );
    }
}
