//! On-demand syncs: the API records a task and asks for it to run with a `SyncRequested` event
//! on the leads bus, which the lead-sync function consumes.

use super::SyncRequest;
use crate::store::StoreError;
use async_trait::async_trait;

/// `source` and `detail-type` of the event; the template's rule matches exactly these.
pub const EVENT_SOURCE: &str = "douyin-leads";
pub const EVENT_DETAIL_TYPE: &str = "SyncRequested";

#[async_trait]
pub trait SyncRequests: Send + Sync {
    async fn request(&self, request: &SyncRequest) -> Result<(), StoreError>;
}

pub struct EventBridgeSyncRequests {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSyncRequests {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl SyncRequests for EventBridgeSyncRequests {
    async fn request(&self, request: &SyncRequest) -> Result<(), StoreError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let detail = serde_json::to_string(request).map_err(|e| StoreError::new("request sync", e))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(EVENT_DETAIL_TYPE)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| StoreError::new("request sync", aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
        if out.failed_entry_count() > 0 {
            let reason = out
                .entries()
                .first()
                .and_then(|e| e.error_message())
                .unwrap_or("the event bus refused the event");
            return Err(StoreError::new("request sync", reason));
        }
        Ok(())
    }
}
