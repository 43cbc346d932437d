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
/// …and at most 256 KiB in all (an entry counts its source, detail type and detail); kept below.
const PUT_BYTES: usize = 240 * 1024;

/// An entry's size as EventBridge counts it.
fn entry_size(event: &OutboundEvent) -> usize {
    EVENT_SOURCE.len() + event.detail_type.len() + event.detail.to_string().len()
}

/// An event too large for the bus carries its lead's id but not the lead: consumers read it
/// from the API. Every other event is as it was.
pub fn fit(event: &OutboundEvent) -> OutboundEvent {
    if entry_size(event) <= PUT_BYTES {
        return event.clone();
    }
    let mut slim = event.clone();
    if let Some(detail) = slim.detail.as_object_mut() {
        detail.remove("lead");
        detail.insert("leadOmitted".into(), serde_json::Value::Bool(true));
    }
    slim
}

/// The events in PutEvents batches: at most 10 entries and [`PUT_BYTES`] each.
pub fn batches(events: &[OutboundEvent]) -> Vec<Vec<OutboundEvent>> {
    let mut out: Vec<Vec<OutboundEvent>> = Vec::new();
    let mut bytes = 0;
    for event in events.iter().map(fit) {
        let size = entry_size(&event);
        match out.last_mut() {
            Some(batch) if batch.len() < PUT_BATCH && bytes + size <= PUT_BYTES => {
                batch.push(event);
                bytes += size;
            }
            _ => {
                out.push(vec![event]);
                bytes = size;
            }
        }
    }
    out
}
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
        for chunk in batches(events) {
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

/// The local run's bus: keeps what was published, in order, for `/local/events`, and hands it
/// on (to the local run's webhook deliveries) when told where.
#[derive(Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<OutboundEvent>>,
    forward: Option<tokio::sync::mpsc::UnboundedSender<Vec<OutboundEvent>>>,
}

impl MemoryEvents {
    pub fn forwarding(to: tokio::sync::mpsc::UnboundedSender<Vec<OutboundEvent>>) -> Self {
        Self {
            events: Mutex::default(),
            forward: Some(to),
        }
    }

    pub fn all(&self) -> Vec<OutboundEvent> {
        crate::store::memory::lock(&self.events).clone()
    }

    pub fn push(&self, events: Vec<OutboundEvent>) {
        if events.is_empty() {
            return;
        }
        if let Some(to) = &self.forward {
            // A closed receiver is a local run shutting down: nothing to hand on to.
            let _ = to.send(events.clone());
        }
        crate::store::memory::lock(&self.events).extend(events);
    }
}

#[async_trait]
impl EventPublisher for MemoryEvents {
    async fn publish(&self, events: &[OutboundEvent]) -> Result<Vec<String>, StoreError> {
        self.push(events.to_vec());
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(i: usize, lead_bytes: usize) -> OutboundEvent {
        OutboundEvent {
            id: format!("ev_{i}"),
            detail_type: "LeadCreated",
            detail: json!({"eventId": format!("ev_{i}"), "leadId": "l_1", "lead": {"remark": "x".repeat(lead_bytes)}}),
            revealed_lead: None,
        }
    }

    #[test]
    fn batches_hold_ten_entries_and_stay_under_the_request_limit() {
        let small: Vec<OutboundEvent> = (0..25).map(|i| event(i, 100)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let large: Vec<OutboundEvent> = (0..10).map(|i| event(i, 60 * 1024)).collect();
        for batch in batches(&large) {
            assert!(batch.iter().map(entry_size).sum::<usize>() <= PUT_BYTES);
        }
        assert_eq!(
            batches(&large).iter().map(Vec::len).sum::<usize>(),
            10,
            "nothing dropped"
        );
    }

    #[test]
    fn an_event_too_large_for_the_bus_goes_without_its_lead() {
        let huge = fit(&event(1, 300 * 1024));
        assert!(huge.detail.get("lead").is_none());
        assert_eq!(huge.detail["leadOmitted"], true);
        assert_eq!(
            huge.detail["leadId"], "l_1",
            "the id stays, to read the lead from the API"
        );
        assert_eq!(fit(&event(2, 10)).detail["lead"]["remark"], "x".repeat(10));
    }
}
