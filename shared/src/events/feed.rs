//! The embedded stores' stand-in for DynamoDB Streams: each write of a lead or a connection row
//! hands its old and new value here, and the same rules as the stream's make the same events.
//! The local run shows them under `/local/events`.

use super::bus::MemoryEvents;
use super::{EventRules, RunHealth, connection_row_events, lead_events};
use crate::domain::Connection;
use crate::lead::StoredLead;
use std::sync::Arc;

pub struct ChangeFeed {
    rules: EventRules,
    events: Arc<MemoryEvents>,
}

impl ChangeFeed {
    pub fn new(rules: EventRules, events: Arc<MemoryEvents>) -> Self {
        Self { rules, events }
    }

    pub fn lead(&self, old: Option<&StoredLead>, new: &StoredLead) {
        self.events.push(lead_events(old, Some(new)));
    }

    pub fn connection(&self, old: Option<(&Connection, RunHealth)>, new: (&Connection, RunHealth)) {
        let old = old.as_ref().map(|(c, h)| (*c, h));
        self.events
            .push(connection_row_events(old, Some((new.0, &new.1)), self.rules));
    }
}
