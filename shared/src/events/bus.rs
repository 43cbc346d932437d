//! Where outbound events go: the leads bus (EventBridge), or memory in the local run.

use super::OutboundEvent;
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::sync::Mutex;

/// The `source` of every outbound event on the bus.
pub const EVENT_SOURCE: &str = "douyin-leads.leads";
/// PutEvents takes at most this many entries.
const PUT_BATCH: usize = 10;
/// Entries the bus refused are sent again this often before they count as failed.
const ATTEMPTS: u32 = 3;

#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes every event; returns the ids of those the bus still refused after retries.
    async fn publish(&self, events: &[OutboundEvent]) -> Result<Vec<String>, StoreError>;
}

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &OutboundEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(event.detail_type)
            .detail(event.detail.to_string())
            .build()
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[OutboundEvent]) -> Result<Vec<String>, StoreError> {
        let mut failed = Vec::new();
        for chunk in events.chunks(PUT_BATCH) {
            let mut pending: Vec<&OutboundEvent> = chunk.iter().collect();
            let mut attempt = 1;
            while !pending.is_empty() {
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(pending.iter().map(|e| self.entry(e)).collect()))
                    .send()
                    .await
                    .map_err(|e| StoreError::new("put events", aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
                // Entries come back in request order; a refused one carries an error code.
                let refused: Vec<&OutboundEvent> = pending
                    .iter()
                    .zip(out.entries())
                    .filter(|(_, r)| r.error_code().is_some())
                    .map(|(e, _)| *e)
                    .collect();
                if refused.is_empty() {
                    break;
                }
                if attempt >= ATTEMPTS {
                    tracing::warn!(refused = refused.len(), "the bus kept refusing events");
                    failed.extend(refused.iter().map(|e| e.id.clone()));
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                attempt += 1;
                pending = refused;
            }
        }
        Ok(failed)
    }
}

/// The local run's bus: keeps what was published, in order, for `/local/events`.
#[derive(Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<OutboundEvent>>,
}

impl MemoryEvents {
    pub fn all(&self) -> Vec<OutboundEvent> {
        crate::store::memory::lock(&self.events).clone()
    }

    pub fn push(&self, events: Vec<OutboundEvent>) {
        crate::store::memory::lock(&self.events).extend(events);
    }
}

#[async_trait]
impl EventPublisher for MemoryEvents {
    async fn publish(&self, events: &[OutboundEvent]) -> Result<Vec<String>, StoreError> {
        crate::store::memory::lock(&self.events).extend(events.iter().cloned());
        Ok(Vec::new())
    }
}
