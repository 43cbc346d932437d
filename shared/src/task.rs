//! Sync tasks: the record of one run of one connection, kept for a while (TTL) so operators and
//! the frontend can see what a sync did.

use crate::domain::{ConnectionId, TenantId};
use crate::lead::LeadSource;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Strategy {
    /// From the watermark (minus the overlap) to now.
    Incremental,
    /// The whole backfill span again, ignoring the watermark.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Pending,
    Processing,
    Completed,
    /// Some sources or windows failed, or the run stopped at its deadline; the rest is pulled next run.
    Partial,
    Failed,
    /// Another run held the connection, or it was not active: nothing was pulled.
    Skipped,
}

impl TaskStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Processing)
    }
}

/// What one source did in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCounts {
    /// Distinct leads received.
    pub fetched: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// New leads linked to an earlier lead with the same phone.
    pub duplicates: u64,
    /// Pages that still failed after retries (their windows are pulled again next run).
    pub failed: u64,
    /// Leads the store refused one by one (their windows are pulled again next run).
    #[serde(default)]
    pub failed_leads: u64,
    /// Leads still without a phone because its decrypt failed; later runs retry them.
    #[serde(default)]
    pub phones_pending: u64,
    /// Phones a retry pass recovered.
    #[serde(default)]
    pub phones_recovered: u64,
    /// Platform requests spent proving windows complete (final checks, repairs, re-pulls).
    #[serde(default)]
    pub reconcile_requests: u64,
    /// Windows that did not reconcile within their budget (the watermark stays before them).
    #[serde(default)]
    pub unreconciled_windows: u64,
}

impl SourceCounts {
    pub fn add(&mut self, other: &SourceCounts) {
        self.fetched += other.fetched;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.duplicates += other.duplicates;
        self.failed += other.failed;
        self.failed_leads += other.failed_leads;
        self.phones_pending += other.phones_pending;
        self.phones_recovered += other.phones_recovered;
        self.reconcile_requests += other.reconcile_requests;
        self.unreconciled_windows += other.unreconciled_windows;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncTask {
    pub task_id: String,
    pub tenant: TenantId,
    pub connection_id: ConnectionId,
    pub trigger: Trigger,
    pub strategy: Strategy,
    pub status: TaskStatus,
    #[serde(default)]
    pub sources: BTreeMap<LeadSource, SourceCounts>,
    /// Ocean Engine connections: what the spend pull read and wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<crate::spend::sync::SpendCounts>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it did not fully succeed, for people; never infrastructure detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The same, for code: a stable code (`PLATFORM_ERROR`, `STORAGE_FAILED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// After this the task may disappear (DynamoDB TTL).
    pub expires_at: DateTime<Utc>,
}

impl SyncTask {
    pub fn new(
        task_id: String,
        tenant: TenantId,
        connection_id: ConnectionId,
        trigger: Trigger,
        strategy: Strategy,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Self {
        Self {
            task_id,
            tenant,
            connection_id,
            trigger,
            strategy,
            status: TaskStatus::Pending,
            sources: BTreeMap::new(),
            spend: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            error: None,
            error_code: None,
            expires_at: now + ttl,
        }
    }

    /// Records why the task did not fully succeed (`None`: it did).
    pub fn set_failure(&mut self, failure: Option<crate::failure::Failure>) {
        self.error_code = failure.as_ref().map(|f| f.code.to_owned());
        self.error = failure.map(|f| f.message);
    }

    pub fn totals(&self) -> SourceCounts {
        let mut total = SourceCounts::default();
        for counts in self.sources.values() {
            total.add(counts);
        }
        total
    }
}

/// A random task id: `t_` and 128 bits of hex.
pub fn new_task_id() -> String {
    crate::domain::random_id("t_")
}
