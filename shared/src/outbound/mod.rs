//! Outbound deliveries: the tenant's subscriptions (signed webhooks and chat-bot groups), one
//! delivery record per (subscription, event), and the rules that decide when a delivery is
//! tried, retried, given up on, folded into a bot digest, or skipped as superseded.

pub mod bots;
pub mod deliver;
pub mod dynamo;
pub mod memory;
pub mod queue;
pub mod sender;
pub mod signing;
pub mod target;

use crate::domain::TenantId;
use crate::secret::Secret;
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The event a subscription that gave up emits (beside the stream's events).
pub const WEBHOOK_DISABLED: &str = "WebhookDisabled";

/// Every event a subscription may ask for.
pub const EVENT_TYPES: &[&str] = &[
    crate::events::LEAD_CREATED,
    crate::events::LEAD_UPDATED,
    crate::events::LEAD_STATUS_CHANGED,
    crate::events::CONNECTION_STATUS_CHANGED,
    crate::events::SYNC_FAILING,
    WEBHOOK_DISABLED,
];

/// What a bot group is told of: new leads, and connections that need someone.
pub const BOT_EVENT_TYPES: &[&str] = &[
    crate::events::LEAD_CREATED,
    crate::events::CONNECTION_STATUS_CHANGED,
    crate::events::SYNC_FAILING,
    WEBHOOK_DISABLED,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookKind {
    /// An integrator's HTTPS endpoint, sent the event JSON with our signature.
    Webhook,
    /// 企业微信 group bot.
    Wecom,
    /// 飞书 custom bot.
    Feishu,
    /// 钉钉 custom bot.
    Dingtalk,
}

impl HookKind {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "webhook" => Some(Self::Webhook),
            "wecom" => Some(Self::Wecom),
            "feishu" => Some(Self::Feishu),
            "dingtalk" => Some(Self::Dingtalk),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Wecom => "wecom",
            Self::Feishu => "feishu",
            Self::Dingtalk => "dingtalk",
        }
    }

    pub fn is_bot(self) -> bool {
        self != Self::Webhook
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    Active,
    /// Failed for [`DeliveryRules::disable_after`] without one success; nothing is sent any more.
    Disabled,
}

/// A tenant's subscription. The secret signs (webhook: ours; Feishu and DingTalk: the bot's);
/// it is shown once, when created, and never again.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub tenant: TenantId,
    pub kind: HookKind,
    pub url: String,
    pub events: Vec<String>,
    pub include_phone: bool,
    pub secret: Option<Secret>,
    pub status: HookStatus,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The first failure of the current unbroken run of failures.
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

impl Subscription {
    pub fn wants(&self, event_type: &str) -> bool {
        self.status == HookStatus::Active && self.events.iter().any(|e| e == event_type)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// A bot over its rate: told in a digest message with others.
    Digested,
    /// A newer version of the same lead was delivered first; consumers would drop this one.
    Superseded,
    /// Given up: retried for the whole horizon, or its subscription was disabled.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Digested => "DIGESTED",
            Self::Superseded => "SUPERSEDED",
            Self::Dead => "DEAD",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Delivered,
            Self::Digested,
            Self::Superseded,
            Self::Dead,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One event for one subscription. Its id is derived from both, so a replayed stream record
/// finds the delivery it already made.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub hook_id: String,
    pub delivery_id: String,
    pub tenant: TenantId,
    pub event_id: String,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub version: Option<u64>,
    /// The exact body sent (a webhook's signature covers these bytes).
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Retries run for the horizon from here (a manual retry starts a new window).
    pub window_start: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub fn delivery_id(hook_id: &str, event_id: &str) -> String {
    crate::domain::derived_id("d_", &[hook_id, event_id])
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryPage {
    pub records: Vec<Delivery>,
    /// Opaque; the store's own position.
    pub next: Option<String>,
}

/// What the delivery rules need from configuration.
#[derive(Debug, Clone)]
pub struct DeliveryRules {
    /// Retries go on this long after the first attempt (≥ 24 h), then the delivery is dead.
    pub retry_horizon: chrono::Duration,
    /// A subscription failing this long without a success is disabled.
    pub disable_after: chrono::Duration,
    pub first_retry: chrono::Duration,
    pub max_retry: chrono::Duration,
    /// Messages per minute and bot, under the platforms' ~20.
    pub bot_per_minute: u32,
    /// Leads one digest message lists; the rest of its batch is counted.
    pub digest_lines: usize,
    /// `{leadId}` is replaced; a bot message links each lead there when set.
    pub lead_link_template: Option<String>,
}

impl DeliveryRules {
    pub fn from_config(config: &crate::config::OutboundConfig) -> Self {
        let secs = |d: std::time::Duration| chrono::Duration::seconds(d.as_secs() as i64);
        Self {
            retry_horizon: secs(config.retry_horizon),
            disable_after: secs(config.disable_after),
            first_retry: secs(config.first_retry),
            max_retry: secs(config.max_retry),
            bot_per_minute: config.bot_per_minute,
            digest_lines: 20,
            lead_link_template: config.lead_link_template.clone(),
        }
    }

    /// When to try again after a failure: as long as the delivery has waited so far (so the waits
    /// double), between the first and the largest wait, give or take a fifth (jitter, so a
    /// receiver coming back is not hit by every delivery at once).
    pub fn next_attempt(&self, window_start: DateTime<Utc>, now: DateTime<Utc>, jitter: f64) -> DateTime<Utc> {
        let waited = now - window_start;
        let base = waited.clamp(self.first_retry, self.max_retry);
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        now + chrono::Duration::milliseconds((base.num_milliseconds() as f64 * factor) as i64)
    }
}

/// Subscriptions and their deliveries.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError>;
    async fn subscription(&self, tenant: &TenantId, id: &str) -> Result<Option<Subscription>, StoreError>;
    async fn subscriptions(&self, tenant: &TenantId) -> Result<Vec<Subscription>, StoreError>;
    /// True when there was one to delete.
    async fn delete_subscription(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
    /// Starts the subscription's failure run unless one runs; returns the run's start.
    async fn mark_failing(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError>;
    async fn clear_failing(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError>;
    /// ACTIVE → DISABLED; true only for the call that made the move.
    async fn disable(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>, reason: &str) -> Result<bool, StoreError>;

    /// Writes the delivery unless one with its id exists, and returns the one stored.
    async fn add_delivery(&self, delivery: &Delivery) -> Result<(Delivery, bool), StoreError>;
    async fn delivery(&self, hook_id: &str, delivery_id: &str) -> Result<Option<Delivery>, StoreError>;
    /// Writes `delivery` if nobody changed it since it had `seen` (status, attempts); false if
    /// someone did (a duplicate message handled it first).
    async fn update_delivery(&self, delivery: &Delivery, seen: (DeliveryStatus, u32)) -> Result<bool, StoreError>;
    /// Newest first.
    async fn deliveries(&self, hook_id: &str, from: Option<&str>, limit: u32) -> Result<DeliveryPage, StoreError>;

    /// The newest version of `lead_id` delivered to the subscription.
    async fn lane(&self, hook_id: &str, lead_id: &str) -> Result<Option<u64>, StoreError>;
    async fn advance_lane(&self, hook_id: &str, lead_id: &str, version: u64) -> Result<(), StoreError>;

    /// Takes one of the bot's `limit` messages of minute `window`; false when none is left.
    async fn take_rate_slot(&self, hook_id: &str, window: i64, limit: u32) -> Result<bool, StoreError>;
    /// Keeps a line for the bot's next digest.
    async fn queue_digest_line(&self, hook_id: &str, delivery_id: &str, line: &str) -> Result<(), StoreError>;
    /// The oldest queued lines, at most `limit`: (delivery id, line).
    async fn digest_lines(&self, hook_id: &str, limit: u32) -> Result<Vec<(String, String)>, StoreError>;
    async fn drop_digest_lines(&self, hook_id: &str, delivery_ids: &[String]) -> Result<(), StoreError>;
    /// True for the first call of a window: only that one schedules the digest.
    async fn schedule_digest(&self, hook_id: &str, window: i64) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_their_bounds_and_reach_past_a_day() {
        let rules = DeliveryRules {
            retry_horizon: chrono::Duration::hours(25),
            disable_after: chrono::Duration::days(3),
            first_retry: chrono::Duration::seconds(30),
            max_retry: chrono::Duration::hours(6),
            bot_per_minute: 18,
            digest_lines: 20,
            lead_link_template: None,
        };
        let start = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc();
        let mut now = start;
        let mut attempts = 1;
        while now - start < rules.retry_horizon {
            let next = rules.next_attempt(start, now, 0.5);
            let wait = next - now;
            assert!(wait >= chrono::Duration::seconds(30) && wait <= chrono::Duration::hours(6));
            now = next;
            attempts += 1;
        }
        assert!((12..=20).contains(&attempts), "{attempts} attempts over the horizon");
        let early = rules.next_attempt(start, start, 0.0) - start;
        let late = rules.next_attempt(start, start, 1.0) - start;
        assert_eq!((early.num_seconds(), late.num_seconds()), (24, 36), "jitter is ±20 %");
    }
}
