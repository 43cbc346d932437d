//! Runs write-backs from the delivery queue: a lead's status change queues one; handling it reads
//! the lead as it is now (so the latest status wins), sends its platform state unless that was
//! already sent, and records the outcome on the lead. Transient failures wait and come back;
//! refusals stay visible on the lead.

use super::platforms::{Target, WriteBackClient};
use super::{PlatformState, WriteBack, WriteBackConfig, WriteBackState};
use crate::clock::Clock;
use crate::domain::TenantId;
use crate::events::{LEAD_STATUS_CHANGED, OutboundEvent};
use crate::lead::{LeadId, LeadSource, StoredLead};
use crate::outbound::DeliveryRules;
use crate::outbound::deliver::jitter;
use crate::outbound::queue::{DeliveryMessage, DeliveryQueue};
use crate::platform::ErrorKind;
use crate::store::{ConnectionStore, LeadStore, StoreError, SyncLedger, TokenVault};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

pub struct WriteBackRunner {
    pub leads: Arc<dyn LeadStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub ledger: Arc<dyn SyncLedger>,
    pub vault: Arc<dyn TokenVault>,
    pub client: WriteBackClient,
    pub config: WriteBackConfig,
    pub queue: Arc<dyn DeliveryQueue>,
    pub clock: Arc<dyn Clock>,
    /// The waits and horizon of webhook retries serve here too.
    pub rules: DeliveryRules,
    pub max_hop: Duration,
}

/// What one write-back message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBackStep {
    /// Nothing to send: no write-back for this connection, status or source, or already sent.
    Nothing,
    Waiting,
    Sent,
    Retrying,
    Refused,
}

/// The write-back messages a batch of events asks for: one per status change of a lead whose
/// source has a write-back API. Whether its connection has write-back on is checked when handled.
pub fn requests(config: &WriteBackConfig, events: &[OutboundEvent]) -> Vec<DeliveryMessage> {
    events
        .iter()
        .filter(|e| e.detail_type == LEAD_STATUS_CHANGED && e.detail["from"] != e.detail["to"])
        .filter(|e| {
            serde_json::from_value::<LeadSource>(e.detail["lead"]["source"].clone()).is_ok_and(|s| config.supports(s))
        })
        .filter_map(|e| {
            Some(DeliveryMessage {
                tenant: e.detail["tenant"].as_str()?.to_owned(),
                hook_id: String::new(),
                delivery_id: None,
                digest_window: None,
                write_back: Some(e.detail["leadId"].as_str()?.to_owned()),
            })
        })
        .collect()
}

impl WriteBackRunner {
    /// Over the given stores, sending through the configured platform hosts.
    pub fn new(
        stores: &crate::sync::SyncStores,
        config: &crate::Config,
        queue: Arc<dyn DeliveryQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            leads: stores.leads.clone(),
            connections: stores.connections.clone(),
            ledger: stores.ledger.clone(),
            vault: stores.vault.clone(),
            client: WriteBackClient {
                http: crate::platform::http::PlatformHttp::new(&config.http),
                oceanengine_base: config.oceanengine.api_base_url.clone(),
                feiyu_base: config.feiyu.base_url.clone(),
                codes: config.oceanengine.codes.clone(),
                clue_source: config.writeback.clue_source,
                clock: clock.clone(),
            },
            config: config.writeback.clone(),
            queue,
            clock,
            rules: DeliveryRules::from_config(&config.outbound),
            max_hop: config.outbound.max_queue_delay,
        }
    }

    /// Queues the write-backs a batch of events asks for.
    pub async fn request(&self, events: &[OutboundEvent]) -> Result<usize, StoreError> {
        let messages = requests(&self.config, events);
        self.queue.send(&messages, Duration::ZERO).await?;
        Ok(messages.len())
    }

    pub async fn handle(&self, message: &DeliveryMessage) -> Result<WriteBackStep, StoreError> {
        let Some(lead_id) = &message.write_back else {
            return Ok(WriteBackStep::Nothing);
        };
        let tenant = TenantId::new(message.tenant.clone());
        let Some(lead) = self.leads.get(&tenant, &LeadId::from_stored(lead_id.clone())).await? else {
            return Ok(WriteBackStep::Nothing);
        };
        let Some(target) = self.config.target(lead.source, lead.status) else {
            return Ok(WriteBackStep::Nothing);
        };
        if !self.ledger.sync_info(&tenant, &lead.connection_id).await?.write_back {
            return Ok(WriteBackStep::Nothing);
        }
        let now = self.clock.now();
        let previous = lead
            .write_back
            .clone()
            .filter(|wb| wb.status == lead.status && wb.platform_state == target.as_text());
        match &previous {
            // Sent, or refused for good: never sent twice.
            Some(wb) if wb.state != WriteBackState::Retrying => return Ok(WriteBackStep::Nothing),
            Some(wb)
                if wb
                    .next_attempt_at
                    .is_some_and(|at| at > now + chrono::Duration::seconds(1)) =>
            {
                let wait = (wb.next_attempt_at.unwrap_or(now) - now).to_std().unwrap_or_default();
                self.queue
                    .send(std::slice::from_ref(message), wait.min(self.max_hop))
                    .await?;
                return Ok(WriteBackStep::Waiting);
            }
            _ => {}
        }
        let attempt = Attempt {
            lead: &lead,
            target: &target,
            first: previous.as_ref().map_or(now, |p| p.first_attempt_at),
            attempts: previous.as_ref().map_or(0, |p| p.attempts) + 1,
            now,
        };
        let reason = lead.invalid_reason.as_deref();
        if self.config.needs_reason(lead.source, lead.status) && reason.is_none() {
            return self
                .refuse(&attempt, "an INVALID 本地推 lead needs an invalidReason".into())
                .await;
        }
        let Some(connection) = self.connections.get(&tenant, &lead.connection_id).await? else {
            return Ok(WriteBackStep::Nothing);
        };
        let Some(tokens) = self.vault.get_tokens(&connection.secret_id).await? else {
            return self.refuse(&attempt, "the connection has no token".into()).await;
        };
        if connection.access_expires_at <= now {
            let why = "the access token expired; tried again once a sync renews it".to_owned();
            return self.retry(&attempt, message, why).await;
        }
        let account = lead
            .fields
            .advertiser_id
            .clone()
            .unwrap_or_else(|| connection.external_account_id.clone());
        let sent = self
            .client
            .send(
                &Target {
                    clue_id: &lead.source_lead_id,
                    account_id: &account,
                    state: &target,
                    reason,
                },
                &tokens.access_token,
                tokens.signature_key.as_ref(),
            )
            .await;
        match sent {
            Ok(()) => {
                self.record(&attempt, WriteBackState::Sent, None, None).await?;
                Ok(WriteBackStep::Sent)
            }
            Err(e) => {
                tracing::warn!(lead = %lead.lead_id, error = %e, "a write-back failed");
                let transient = matches!(
                    e.kind(),
                    ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::AccessTokenInvalid
                );
                if transient {
                    self.retry(&attempt, message, e.public_message()).await
                } else {
                    self.refuse(&attempt, e.public_message()).await
                }
            }
        }
    }

    async fn record(
        &self,
        a: &Attempt<'_>,
        state: WriteBackState,
        error: Option<String>,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let record = WriteBack {
            state,
            status: a.lead.status,
            platform_state: a.target.as_text(),
            at: a.now,
            error,
            attempts: a.attempts,
            first_attempt_at: a.first,
            next_attempt_at: next,
        };
        self.leads
            .record_write_back(&a.lead.tenant, &a.lead.lead_id, &record)
            .await
    }

    async fn refuse(&self, a: &Attempt<'_>, why: String) -> Result<WriteBackStep, StoreError> {
        self.record(a, WriteBackState::Refused, Some(why), None).await?;
        Ok(WriteBackStep::Refused)
    }

    async fn retry(
        &self,
        a: &Attempt<'_>,
        message: &DeliveryMessage,
        why: String,
    ) -> Result<WriteBackStep, StoreError> {
        if a.now - a.first >= self.rules.retry_horizon {
            return self
                .refuse(a, format!("gave up after {} attempts: {why}", a.attempts))
                .await;
        }
        let next = self.rules.next_attempt(a.first, a.now, jitter());
        self.record(a, WriteBackState::Retrying, Some(why), Some(next)).await?;
        let wait = (next - a.now).to_std().unwrap_or_default();
        self.queue
            .send(std::slice::from_ref(message), wait.min(self.max_hop))
            .await?;
        Ok(WriteBackStep::Retrying)
    }
}

struct Attempt<'a> {
    lead: &'a StoredLead,
    target: &'a PlatformState,
    first: DateTime<Utc>,
    attempts: u32,
    now: DateTime<Utc>,
}
