//! Storage ports as small traits, each with an AWS adapter (DynamoDB, Secrets Manager) and an
//! embedded one (in-process, for the local run and fast tests). A contract suite in the devkit
//! crate runs against both.

pub mod attr;
pub mod dynamo;
pub mod dynamo_leads;
pub mod dynamo_sync;
pub mod memory;
pub mod memory_leads;
pub mod secrets;
pub mod token_codec;

use crate::domain::{AppCredentials, Connection, ConnectionId, OAuthState, PendingGrant, Provider, TenantId, TokenSet};
use crate::lead::{HistoryEntry, LeadId, LeadRecord, LeadSource, LeadStatus, StoredLead};
use crate::read_model::Partition;
use crate::task::SyncTask;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A storage backend failed; the message is for logs and never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(operation: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            operation,
            message: message.to_string(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// Never issued, or already consumed: the two look the same on purpose.
    #[error("the state is unknown or was already used")]
    Unknown,
    #[error("the state has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClaimError {
    #[error("the {provider} account {external_account_id} is connected to another tenant")]
    OwnedByAnotherTenant {
        provider: Provider,
        external_account_id: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pending OAuth consents.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn create(&self, state: &OAuthState) -> Result<(), StoreError>;
    /// Removes and returns the state; a second call with the same value is [`StateError::Unknown`].
    /// An expired state is consumed too, so it cannot be retried.
    async fn consume(&self, state: &str, now: DateTime<Utc>) -> Result<OAuthState, StateError>;
}

/// Consents waiting for their confirmation, kept beside the OAuth states (and expired by the
/// same TTL; the reader checks `expires_at` itself, as TTL deletes late).
#[async_trait]
pub trait PendingGrantStore: Send + Sync {
    /// Records a new pending grant; a ticket is never reused.
    async fn put_pending(&self, grant: &PendingGrant) -> Result<(), StoreError>;
    async fn get_pending(&self, ticket_hash: &str) -> Result<Option<PendingGrant>, StoreError>;
    /// It became `connection`; the record stays until it expires so a replay finds it.
    async fn mark_confirmed(&self, ticket_hash: &str, connection: &ConnectionId) -> Result<(), StoreError>;
    async fn delete_pending(&self, ticket_hash: &str) -> Result<(), StoreError>;
}

/// A secret's name and when it was created, as a listing shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultEntry {
    pub secret_id: String,
    pub created_at: DateTime<Utc>,
}

/// Connection tokens, one secret per connection, each write a new version.
#[async_trait]
pub trait TokenVault: Send + Sync {
    async fn put_tokens(&self, secret_id: &str, tokens: &TokenSet) -> Result<(), StoreError>;
    async fn get_tokens(&self, secret_id: &str) -> Result<Option<TokenSet>, StoreError>;

    /// The connection is gone: its secret is deleted after the recovery window (Secrets
    /// Manager's 7 days at the shortest), so a mistaken disconnect can still be undone.
    async fn schedule_deletion(&self, secret_id: &str) -> Result<(), StoreError>;

    /// Deletes the secret at once, without a recovery window: a pending grant nobody confirmed.
    /// Deleting a missing secret is fine.
    async fn delete_now(&self, secret_id: &str) -> Result<(), StoreError>;

    /// Up to `limit` secrets whose name starts with `prefix` (the sweep of expired pending grants).
    async fn list_prefixed(&self, prefix: &str, limit: usize) -> Result<Vec<VaultEntry>, StoreError>;
}

/// The deployment's app credentials, read once per container.
#[async_trait]
pub trait AppCredentialsSource: Send + Sync {
    async fn app_credentials(&self) -> Result<Arc<AppCredentials>, StoreError>;
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Creates or updates the connection, keeping its creation time, and claims (provider,
    /// external account) for its tenant in the same write: an account belongs to one tenant, the
    /// claim never exists without its connection row, and an upsert can never attach another
    /// tenant's account. Claiming an account the tenant already holds succeeds.
    async fn upsert(&self, connection: &Connection) -> Result<(), ClaimError>;

    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> Result<Option<Connection>, StoreError>;

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError>;

    /// Gives the account of a DISABLED connection up (a disconnect): another tenant may claim it
    /// from now on. Only the connection's tenant's claim is removed, and only while the row is
    /// still DISABLED (checked in the same write, so a reconnect racing the disconnect keeps its
    /// claim); releasing twice, or what is not ours, changes nothing.
    async fn release(&self, connection: &Connection) -> Result<(), StoreError>;
}

/// What one batch upsert did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertReport {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Created leads linked to an earlier lead with the same phone.
    pub duplicates: u64,
    /// Leads the store refused one by one (an item over its size limit): the rest of the batch
    /// is written; these are retried by the next run, which pulls their window again.
    pub failed: Vec<LeadId>,
    /// Leads now waiting for a phone retry (a decrypt failed).
    pub phones_missing: u64,
}

impl UpsertReport {
    pub fn add(&mut self, other: UpsertReport) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.duplicates += other.duplicates;
        self.failed.extend(other.failed);
        self.phones_missing += other.phones_missing;
    }
}

/// A lead stored without its phone because the decrypt failed, remembered so that later runs
/// retry the decrypt whatever the lead's age (not only while it is in the overlap window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPhone {
    pub lead_id: LeadId,
    pub connection_id: ConnectionId,
    pub source: LeadSource,
    pub source_lead_id: String,
    pub cipher: String,
    /// Retries so far.
    pub attempts: u32,
    pub since: DateTime<Utc>,
}

/// Most leads one [`LeadStore::upsert`] call takes (one BatchGetItem).
pub const UPSERT_BATCH: usize = 100;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LeadUpdateError {
    #[error("the lead does not exist")]
    NotFound,
    #[error("the lead was changed by someone else (version {current})")]
    VersionConflict { current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key range of one index partition, newest first. `lo` and `hi` bound the sort keys
/// (inclusive; "" and "~" are open ends); `before` continues below an earlier page's last key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRange {
    pub partition: Partition,
    pub lo: String,
    pub hi: String,
    pub before: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub key: String,
    /// `None` when not asked for, or when the index still lists a lead the table no longer has.
    pub lead: Option<StoredLead>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexPage {
    pub entries: Vec<IndexEntry>,
    /// Whether the partition holds more within the range.
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Where the next (older) page starts.
    pub next: Option<String>,
}

/// Most history entries one page shows.
pub const HISTORY_PAGE: u32 = 20;

/// An operator's change to a lead: new status and/or notes, recorded in the history.
#[derive(Debug, Clone)]
pub struct OperatorChange {
    pub status: Option<LeadStatus>,
    pub notes: Option<String>,
    /// Set with a move to INVALID (its reason), cleared with a move out of it.
    pub invalid_reason: Option<String>,
    pub expected_version: u64,
    pub history: Vec<HistoryEntry>,
    pub at: DateTime<Utc>,
}

/// What a status move does to a lead's invalid reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonChange {
    Keep,
    Set(String),
    Clear,
}

impl OperatorChange {
    /// A move to INVALID sets the reason it came with; a move out of INVALID clears it. Both
    /// stores apply this one rule.
    pub fn reason_change(&self, before: LeadStatus) -> ReasonChange {
        match self.status {
            Some(LeadStatus::Invalid) if before != LeadStatus::Invalid => self
                .invalid_reason
                .clone()
                .map_or(ReasonChange::Keep, ReasonChange::Set),
            Some(to) if to != LeadStatus::Invalid && before == LeadStatus::Invalid => ReasonChange::Clear,
            _ => ReasonChange::Keep,
        }
    }

    /// Who made the change, as its history records it.
    pub fn actor(&self) -> Option<&str> {
        self.history.first().map(|h| h.actor.as_str())
    }
}

#[async_trait]
pub trait LeadStore: Send + Sync {
    /// Writes leads of one tenant idempotently: a new lead is created (status NEW, linked to the
    /// lead its phone was first stored with), a changed one gets its platform fields replaced, an
    /// unchanged one costs no write. Operator fields are never touched. At most
    /// [`UPSERT_BATCH`] leads with distinct ids.
    async fn upsert(
        &self,
        tenant: &TenantId,
        leads: &[LeadRecord],
        now: DateTime<Utc>,
    ) -> Result<UpsertReport, StoreError>;

    async fn get(&self, tenant: &TenantId, lead_id: &LeadId) -> Result<Option<StoredLead>, StoreError>;

    /// Up to `limit` leads of the connection waiting for a phone retry, oldest wait first is not
    /// promised; one Query.
    async fn pending_phones(
        &self,
        tenant: &TenantId,
        connection_id: &ConnectionId,
        limit: u32,
    ) -> Result<Vec<PendingPhone>, StoreError>;

    /// Records (or re-records, with new attempt counts) leads waiting for a phone retry.
    async fn put_pending_phones(&self, tenant: &TenantId, entries: &[PendingPhone]) -> Result<(), StoreError>;

    /// Forgets the retries of these leads (the phone is known, or the failure is permanent).
    async fn drop_pending_phones(&self, tenant: &TenantId, entries: &[PendingPhone]) -> Result<(), StoreError>;

    /// Every lead of the tenant, newest first (by platform creation time). For tests and tools:
    /// it reads the whole tenant.
    async fn list_all(&self, tenant: &TenantId) -> Result<Vec<StoredLead>, StoreError> {
        let range = IndexRange {
            partition: Partition::All,
            lo: String::new(),
            hi: "~".into(),
            before: None,
        };
        let page = self.index_page(tenant, &range, u32::MAX, true).await?;
        Ok(page.entries.into_iter().filter_map(|e| e.lead).collect())
    }

    /// Up to `limit` positions of an index partition, newest first, within the range (and
    /// below `before`), with their leads when `with_leads`. The read model's one read port:
    /// the plan in [`crate::lead_query`] decides what to ask.
    async fn index_page(
        &self,
        tenant: &TenantId,
        range: &IndexRange,
        limit: u32,
        with_leads: bool,
    ) -> Result<IndexPage, StoreError>;

    /// Exactly how many positions of the partition sort within `lo..=hi` (keys only read).
    async fn count_range(
        &self,
        tenant: &TenantId,
        partition: &Partition,
        lo: &str,
        hi: &str,
    ) -> Result<u64, StoreError>;

    /// The sum of the partition's day counters from `first` to `last` (Beijing days).
    async fn count_days(
        &self,
        tenant: &TenantId,
        partition: &Partition,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<u64, StoreError>;

    /// The lead's history, newest first, from below `before` (a key from an earlier page).
    async fn history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, StoreError>;

    /// Records events that change nothing else (a phone reveal); the version stays.
    async fn append_history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        entries: &[HistoryEntry],
    ) -> Result<(), LeadUpdateError>;

    /// Applies an operator change if `expected_version` is current; returns the updated lead.
    async fn update_operator_fields(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        change: &OperatorChange,
    ) -> Result<StoredLead, LeadUpdateError>;

    /// The cost-per-lead counters of `[first, last]`: (analytics key, leads), one Query range.
    async fn analytics_counters(
        &self,
        tenant: &TenantId,
        first: chrono::NaiveDate,
        last: chrono::NaiveDate,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// Keeps the outcome of a status write-back on the lead. The lead's version, status and
    /// content stay as they are, so the change emits no event.
    async fn record_write_back(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        record: &crate::writeback::WriteBack,
    ) -> Result<(), StoreError>;
}

/// Something a caller did that must stay on the record: an export that revealed phones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub tenant: TenantId,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// EXPORT_WITH_PHONES, …
    pub action: String,
    /// What was asked for (the filter, as query text).
    pub target: String,
    /// How many leads it concerned.
    pub rows: u64,
}

impl AuditRecord {
    /// An export (small or a job) that showed phones: who, when, which query, how many rows.
    pub fn export_with_phones(tenant: TenantId, at: DateTime<Utc>, actor: String, query: String, rows: u64) -> Self {
        Self {
            tenant,
            at,
            actor,
            action: "EXPORT_WITH_PHONES".into(),
            target: query,
            rows,
        }
    }
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// The tenant's records, newest first (for operators and tests).
    async fn list(&self, tenant: &TenantId, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Who holds a connection's sync lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub until: DateTime<Utc>,
}

/// A connection's sync bookkeeping, kept beside the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncInfo {
    /// Per source: everything created before this is stored.
    pub watermarks: BTreeMap<LeadSource, DateTime<Utc>>,
    pub lease: Option<Lease>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The stable code of `last_error`.
    pub last_error_code: Option<String>,
    pub last_task_id: Option<String>,
    /// Leads this connection's syncs created (a count kept by addition, never by reading leads).
    pub lead_count: u64,
    /// Runs that failed in a row (a completed run resets it; a partial one leaves it).
    pub failed_runs: u64,
    /// Lead status moves are written back to the platform (`PATCH /accounts/{id}`).
    pub write_back: bool,
}

/// How a run ended, for the connection's health.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub task_id: String,
    pub at: DateTime<Utc>,
    pub succeeded: bool,
    /// It failed outright (status FAILED): one more failure in a row.
    pub failed: bool,
    /// Why it did not fully succeed, as the connection will show it.
    pub failure: Option<crate::failure::Failure>,
    /// Leads the run created, added to the connection's lead count.
    pub created: u64,
}

/// Sync bookkeeping on connections: leases, watermarks, health, and the scheduler's listing.
#[async_trait]
pub trait SyncLedger: Send + Sync {
    /// Takes the connection's lease for `holder` unless another holder's lease is still live.
    /// Returns the live lease of someone else instead.
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Lease>, StoreError>;

    async fn release_lease(&self, tenant: &TenantId, id: &ConnectionId, holder: &str) -> Result<(), StoreError>;

    async fn sync_info(&self, tenant: &TenantId, id: &ConnectionId) -> Result<SyncInfo, StoreError>;

    /// Moves a source's watermark forward (never back).
    async fn advance_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Moves a source's watermark back to `to` (never forward): a window below it turned out
    /// not to be complete any more (leads appeared in it and did not reconcile), so later runs
    /// must pull it again.
    async fn rewind_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn record_run(&self, tenant: &TenantId, id: &ConnectionId, run: &RunRecord) -> Result<(), StoreError>;

    /// Turns status write-back on or off; `false` when the connection does not exist.
    async fn set_write_back(&self, tenant: &TenantId, id: &ConnectionId, on: bool) -> Result<bool, StoreError>;

    /// The tenant disconnected it: no more syncs; its leads stay. `false` when it does not exist.
    async fn disable(&self, tenant: &TenantId, id: &ConnectionId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The grant is gone: the connection stops syncing until the merchant authorises again.
    async fn mark_reauth_required(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Keeps the connection's copy of the token expiry times current after a refresh.
    async fn update_token_expiry(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        access_expires_at: DateTime<Utc>,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every ACTIVE connection of every tenant, for the scheduler.
    async fn list_active(&self) -> Result<Vec<Connection>, StoreError>;
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Creates or replaces the task.
    async fn put(&self, task: &SyncTask) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, task_id: &str) -> Result<Option<SyncTask>, StoreError>;
}
