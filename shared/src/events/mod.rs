//! The outbox: what the SaaS learns of its leads and connections, derived from the tables' change
//! streams (old and new image of each item). The rules live here, once: which change is which
//! event, its deterministic id (consumers dedupe on it), and the lead as the list API shows it
//! (phone masked). Counters, history items and other bookkeeping rows emit nothing.

pub mod bus;
pub mod feed;
pub mod stream;

use crate::domain::{Connection, derived_id};
use crate::lead::StoredLead;
use crate::lead_view;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Bumped when an event's shape changes in a way consumers must know of.
pub const SCHEMA_VERSION: u32 = 1;

pub const LEAD_CREATED: &str = "LeadCreated";
pub const LEAD_UPDATED: &str = "LeadUpdated";
pub const LEAD_STATUS_CHANGED: &str = "LeadStatusChanged";
pub const CONNECTION_STATUS_CHANGED: &str = "ConnectionStatusChanged";
pub const SYNC_FAILING: &str = "SyncFailing";

/// What the rules need from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRules {
    /// `SyncFailing` goes out when a connection's failed runs in a row reach this.
    pub sync_failing_after: u64,
}

impl EventRules {
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            sync_failing_after: config.sync.failing_after,
        }
    }
}

/// A connection's sync health as its row carries it, before and after a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunHealth {
    pub failed_runs: u64,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
    pub last_task_id: Option<String>,
}

impl RunHealth {
    pub fn of(info: &crate::store::SyncInfo) -> Self {
        Self {
            failed_runs: info.failed_runs,
            last_error_code: info.last_error_code.clone(),
            last_error: info.last_error.clone(),
            last_task_id: info.last_task_id.clone(),
        }
    }
}

/// One event for the leads bus: its type, and the JSON consumers receive as the detail.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundEvent {
    pub id: String,
    pub detail_type: &'static str,
    pub detail: Value,
    /// The lead as a caller with the phone scope sees it, for subscriptions that asked for
    /// phones; never put on the bus.
    pub revealed_lead: Option<Value>,
}

fn envelope(id: &str, detail_type: &str, tenant: &str, at: DateTime<Utc>) -> Value {
    json!({
        "eventId": id, "type": detail_type, "schemaVersion": SCHEMA_VERSION,
        "tenant": tenant, "occurredAt": at,
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// The platform fields that differ between two versions of a lead, by their wire names.
fn changed_fields(old: &StoredLead, new: &StoredLead) -> Vec<String> {
    let (Value::Object(a), Value::Object(b)) = (json!(old.fields), json!(new.fields)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The events one change of a lead item means.
pub fn lead_events(old: Option<&StoredLead>, new: Option<&StoredLead>) -> Vec<OutboundEvent> {
    let Some(new) = new else {
        // Leads are not deleted by the product; a removal (an operator's tidy-up) says nothing.
        return Vec::new();
    };
    let lead_id = new.lead_id.as_str();
    let base = |id: &str, kind: &'static str| {
        merge(
            envelope(id, kind, new.tenant.as_str(), new.updated_at),
            json!({"leadId": lead_id, "version": new.version, "lead": lead_view::lead(new, false)}),
        )
    };
    let revealed = Some(lead_view::lead(new, true));
    let Some(old) = old else {
        let id = derived_id("ev_", &[LEAD_CREATED, lead_id]);
        return vec![OutboundEvent {
            detail: base(&id, LEAD_CREATED),
            id,
            detail_type: LEAD_CREATED,
            revealed_lead: revealed,
        }];
    };
    let mut events = Vec::new();
    if old.status != new.status || old.notes != new.notes {
        let id = derived_id("ev_", &[LEAD_STATUS_CHANGED, lead_id, &new.version.to_string()]);
        let detail = merge(
            base(&id, LEAD_STATUS_CHANGED),
            json!({
                "from": old.status, "to": new.status, "actor": new.changed_by, "at": new.updated_at,
                "notesChanged": old.notes != new.notes,
            }),
        );
        events.push(OutboundEvent {
            id,
            detail_type: LEAD_STATUS_CHANGED,
            detail,
            revealed_lead: revealed.clone(),
        });
    }
    if old.content_hash != new.content_hash {
        let id = derived_id("ev_", &[LEAD_UPDATED, lead_id, &new.content_hash]);
        let detail = merge(
            base(&id, LEAD_UPDATED),
            json!({"changedFields": changed_fields(old, new)}),
        );
        events.push(OutboundEvent {
            id,
            detail_type: LEAD_UPDATED,
            detail,
            revealed_lead: revealed.clone(),
        });
    }
    events
}

/// Everything one change of a connection row means: its status move (with the reason the row
/// keeps) and its failure streak reaching the threshold.
pub fn connection_row_events(
    old: Option<(&Connection, &RunHealth)>,
    new: Option<(&Connection, &RunHealth)>,
    rules: EventRules,
) -> Vec<OutboundEvent> {
    let Some((connection, after)) = new else {
        return Vec::new();
    };
    let reason = after.last_error_code.as_deref().zip(after.last_error.as_deref());
    let mut events = connection_events(old.map(|(c, _)| c), Some(connection), reason);
    let fresh = RunHealth::default();
    let before = old.map_or(&fresh, |(_, health)| health);
    events.extend(sync_failing_events(connection, before, after, rules));
    events
}

/// `SyncFailing`, once per streak: when a connection's failed runs in a row reach the threshold.
fn sync_failing_events(
    connection: &Connection,
    old: &RunHealth,
    new: &RunHealth,
    rules: EventRules,
) -> Vec<OutboundEvent> {
    let after = rules.sync_failing_after;
    if !(old.failed_runs < after && new.failed_runs >= after) {
        return Vec::new();
    }
    let task = new.last_task_id.as_deref().unwrap_or("");
    let id = derived_id("ev_", &[SYNC_FAILING, connection.id.as_str(), task]);
    let detail = merge(
        envelope(&id, SYNC_FAILING, connection.tenant.as_str(), connection.updated_at),
        json!({
            "connectionId": connection.id, "provider": connection.provider,
            "externalAccountId": connection.external_account_id, "failedRuns": new.failed_runs,
            "lastTaskId": new.last_task_id, "reasonCode": new.last_error_code, "reason": new.last_error,
        }),
    );
    vec![OutboundEvent {
        id,
        detail_type: SYNC_FAILING,
        detail,
        revealed_lead: None,
    }]
}

/// A status that moved (a new connection counts as moving from nothing to ACTIVE), with the
/// reason the connection keeps.
fn connection_events(
    old: Option<&Connection>,
    new: Option<&Connection>,
    reason: Option<(&str, &str)>,
) -> Vec<OutboundEvent> {
    let Some(new) = new else {
        return Vec::new();
    };
    if old.is_some_and(|o| o.status == new.status) {
        return Vec::new();
    }
    let to = new.status.as_str();
    let at = new.updated_at.to_rfc3339();
    let id = derived_id("ev_", &[CONNECTION_STATUS_CHANGED, new.id.as_str(), to, &at]);
    let (reason_code, reason) = reason.map_or((None, None), |(code, message)| (Some(code), Some(message)));
    let detail = merge(
        envelope(&id, CONNECTION_STATUS_CHANGED, new.tenant.as_str(), new.updated_at),
        json!({
            "connectionId": new.id, "provider": new.provider, "externalAccountId": new.external_account_id,
            "from": old.map(|o| o.status.as_str()), "to": to, "reasonCode": reason_code, "reason": reason,
        }),
    );
    vec![OutboundEvent {
        id,
        detail_type: CONNECTION_STATUS_CHANGED,
        detail,
        revealed_lead: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, TenantId};
    use crate::lead::{LeadFields, LeadId, LeadSource, LeadStatus};

    fn lead() -> StoredLead {
        let at = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z").unwrap().to_utc();
        StoredLead {
            lead_id: LeadId::from_stored("l_1"),
            tenant: TenantId::new("t1"),
            connection_id: ConnectionId::from_stored("c_1"),
            source: LeadSource::Feiyu,
            source_lead_id: "7001".into(),
            fields: LeadFields {
                name: Some("王先生".into()),
                phone: Some("13800138000".into()),
                clue_type: "FORM".into(),
                ..LeadFields::default()
            },
            raw: json!({"telphone": "13800138000"}),
            content_hash: "h1".into(),
            acquired_at: at,
            updated_at: at,
            duplicate_of: None,
            status: LeadStatus::New,
            notes: String::new(),
            version: 1,
            changed_by: None,
            invalid_reason: None,
            write_back: None,
        }
    }

    #[test]
    fn each_change_is_one_event_with_a_stable_id() {
        let old = lead();
        let created = lead_events(None, Some(&old));
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].detail_type, LEAD_CREATED);
        assert_eq!(created[0].detail["lead"]["phone"], "138****8000");
        assert!(created[0].detail["lead"].get("raw").is_none());
        assert_eq!(
            lead_events(None, Some(&old))[0].id,
            created[0].id,
            "replays keep the id"
        );

        let mut repulled = old.clone();
        repulled.fields.name = Some("王总".into());
        repulled.content_hash = "h2".into();
        let updated = lead_events(Some(&old), Some(&repulled));
        assert_eq!(updated.len(), 1);
        assert_eq!(updated[0].detail_type, LEAD_UPDATED);
        assert_eq!(updated[0].detail["changedFields"], json!(["name"]));

        let mut worked = old.clone();
        worked.status = LeadStatus::Converted;
        worked.version = 2;
        worked.changed_by = Some("sales-1".into());
        let moved = lead_events(Some(&old), Some(&worked));
        assert_eq!(moved[0].detail_type, LEAD_STATUS_CHANGED);
        assert_eq!(
            (moved[0].detail["from"].clone(), moved[0].detail["to"].clone()),
            (json!("NEW"), json!("CONVERTED"))
        );
        assert_eq!(moved[0].detail["notesChanged"], false);

        let mut linked = old.clone();
        linked.duplicate_of = Some(LeadId::from_stored("l_0"));
        assert!(
            lead_events(Some(&old), Some(&linked)).is_empty(),
            "bookkeeping on the lead says nothing"
        );
        assert!(lead_events(Some(&old), None).is_empty());
    }
}
