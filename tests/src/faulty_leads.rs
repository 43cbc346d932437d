//! A lead store whose upserts fail when a plan says so, as DynamoDB does when throttling outlasts
//! the retries of unprocessed items: before anything is written, or after the write landed but
//! its answer was lost. Every other call goes to the store inside.

use shared::domain::TenantId;
use shared::lead::{HistoryEntry, StoredLead};
use shared::store::OperatorChange;
use std::sync::{Arc, Mutex};

/// What the next upsert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    None,
    /// Fails before writing.
    Before,
    /// Writes, then fails.
    After,
}

type Plan = Box<dyn FnMut() -> WriteFault + Send>;

pub struct FaultyLeads {
    inner: Arc<dyn shared::store::LeadStore>,
    plan: Mutex<Plan>,
}

impl FaultyLeads {
    pub fn new(inner: Arc<dyn shared::store::LeadStore>, plan: impl FnMut() -> WriteFault + Send + 'static) -> Self {
        Self {
            inner,
            plan: Mutex::new(Box::new(plan)),
        }
    }

    /// The first `n` upserts fail before writing; the rest succeed.
    pub fn failing_first(inner: Arc<dyn shared::store::LeadStore>, n: u32) -> Self {
        let mut left = n;
        Self::new(inner, move || {
            if left > 0 {
                left -= 1;
                WriteFault::Before
            } else {
                WriteFault::None
            }
        })
    }
}

#[async_trait::async_trait]
impl shared::store::LeadStore for FaultyLeads {
    async fn upsert(
        &self,
        tenant: &TenantId,
        leads: &[shared::lead::LeadRecord],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<shared::store::UpsertReport, shared::store::StoreError> {
        // What the SDK says is what a store error carries: names of our infrastructure.
        let injected = || {
            shared::store::StoreError::new(
                "batch write leads",
                "injected: ProvisionedThroughputExceededException on arn:aws:dynamodb:ap-southeast-1:123456789012:table/prod-douyin-leads",
            )
        };
        let fault = (self.plan.lock().unwrap_or_else(|e| e.into_inner()))();
        match fault {
            WriteFault::Before => Err(injected()),
            WriteFault::After => {
                self.inner.upsert(tenant, leads, now).await?;
                Err(injected())
            }
            WriteFault::None => self.inner.upsert(tenant, leads, now).await,
        }
    }
    async fn get(
        &self,
        t: &TenantId,
        id: &shared::lead::LeadId,
    ) -> Result<Option<StoredLead>, shared::store::StoreError> {
        self.inner.get(t, id).await
    }
    async fn pending_phones(
        &self,
        t: &TenantId,
        c: &shared::domain::ConnectionId,
        limit: u32,
    ) -> Result<Vec<shared::store::PendingPhone>, shared::store::StoreError> {
        self.inner.pending_phones(t, c, limit).await
    }
    async fn put_pending_phones(
        &self,
        t: &TenantId,
        entries: &[shared::store::PendingPhone],
    ) -> Result<(), shared::store::StoreError> {
        self.inner.put_pending_phones(t, entries).await
    }
    async fn drop_pending_phones(
        &self,
        t: &TenantId,
        entries: &[shared::store::PendingPhone],
    ) -> Result<(), shared::store::StoreError> {
        self.inner.drop_pending_phones(t, entries).await
    }
    async fn index_page(
        &self,
        t: &TenantId,
        range: &shared::store::IndexRange,
        limit: u32,
        with_leads: bool,
    ) -> Result<shared::store::IndexPage, shared::store::StoreError> {
        self.inner.index_page(t, range, limit, with_leads).await
    }
    async fn count_range(
        &self,
        t: &TenantId,
        p: &shared::read_model::Partition,
        lo: &str,
        hi: &str,
    ) -> Result<u64, shared::store::StoreError> {
        self.inner.count_range(t, p, lo, hi).await
    }
    async fn count_days(
        &self,
        t: &TenantId,
        p: &shared::read_model::Partition,
        first: chrono::NaiveDate,
        last: chrono::NaiveDate,
    ) -> Result<u64, shared::store::StoreError> {
        self.inner.count_days(t, p, first, last).await
    }
    async fn history(
        &self,
        t: &TenantId,
        id: &shared::lead::LeadId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<shared::store::HistoryPage, shared::store::StoreError> {
        self.inner.history(t, id, before, limit).await
    }
    async fn append_history(
        &self,
        t: &TenantId,
        id: &shared::lead::LeadId,
        entries: &[HistoryEntry],
    ) -> Result<(), shared::store::LeadUpdateError> {
        self.inner.append_history(t, id, entries).await
    }
    async fn update_operator_fields(
        &self,
        t: &TenantId,
        id: &shared::lead::LeadId,
        change: &OperatorChange,
    ) -> Result<StoredLead, shared::store::LeadUpdateError> {
        self.inner.update_operator_fields(t, id, change).await
    }
    async fn analytics_counters(
        &self,
        t: &TenantId,
        first: chrono::NaiveDate,
        last: chrono::NaiveDate,
    ) -> Result<Vec<(String, i64)>, shared::store::StoreError> {
        self.inner.analytics_counters(t, first, last).await
    }
    async fn record_write_back(
        &self,
        t: &TenantId,
        id: &shared::lead::LeadId,
        record: &shared::writeback::WriteBack,
    ) -> Result<(), shared::store::StoreError> {
        self.inner.record_write_back(t, id, record).await
    }
}
