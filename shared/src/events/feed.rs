//! The embedded stores' stand-in for DynamoDB Streams: each write of a lead or a connection row
//! hands its old and new value here, and the same rules as the stream's make the same events.
//! The local run shows them under `/local/events`.

use super::bus::MemoryEvents;
use super::{EventRules, RunHealth, connection_events, lead_events, sync_failing_events};
use crate::domain::Connection;
use crate::lead::StoredLead;
use crate::store::SyncInfo;
use std::sync::Arc;

pub struct ChangeFeed {
    rules: EventRules,
    events: Arc<MemoryEvents>,
}

impl RunHealth {
    pub fn of(info: &SyncInfo) -> Self {
        Self {
            failed_runs: info.failed_runs,
            last_error_code: info.last_error_code.clone(),
            last_error: info.last_error.clone(),
            last_task_id: info.last_task_id.clone(),
        }
    }
}

impl ChangeFeed {
    pub fn new(rules: EventRules, events: Arc<MemoryEvents>) -> Self {
        Self { rules, events }
    }

    pub fn lead(&self, old: Option<&StoredLead>, new: &StoredLead) {
        self.events.push(lead_events(old, Some(new)));
    }

    pub fn connection(&self, old: Option<(&Connection, RunHealth)>, new: (&Connection, RunHealth)) {
        let (connection, after) = new;
        let reason = after.last_error_code.as_deref().zip(after.last_error.as_deref());
        let mut events = connection_events(old.as_ref().map(|(c, _)| *c), Some(connection), reason);
        let before = old.map(|(_, h)| h).unwrap_or_default();
        events.extend(sync_failing_events(connection, &before, &after, self.rules));
        self.events.push(events);
    }
}
