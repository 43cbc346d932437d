//! An export job's record, the ports it runs through, and the run itself.

use super::csv;
use crate::clock::Clock;
use crate::domain::TenantId;
use crate::lead::StoredLead;
use crate::lead_query::{BatchReader, LeadFilter};
use crate::store::{AuditLog, AuditRecord, LeadStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportStatus {
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportJob {
    pub export_id: String,
    pub tenant: TenantId,
    /// Who asked (the JWT subject), for the audit record.
    pub actor: String,
    pub filter: LeadFilter,
    /// The query as given, for the audit record.
    pub query: String,
    pub reveal_phone: bool,
    pub status: ExportStatus,
    pub rows: u64,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the job and its file are gone (the bucket's lifecycle rule, the item's TTL).
    pub expires_at: DateTime<Utc>,
}

/// Who asked for an export, and what for.
#[derive(Debug, Clone)]
pub struct ExportOrder {
    pub tenant: TenantId,
    pub actor: String,
    pub filter: LeadFilter,
    pub query: String,
    pub reveal_phone: bool,
}

impl ExportJob {
    /// A new job for `order`, queued at `now`, kept for `ttl`.
    pub fn queued(export_id: String, order: ExportOrder, now: DateTime<Utc>, ttl: chrono::Duration) -> Self {
        Self {
            export_id,
            tenant: order.tenant,
            actor: order.actor,
            filter: order.filter,
            query: order.query,
            reveal_phone: order.reveal_phone,
            status: ExportStatus::Queued,
            rows: 0,
            created_at: now,
            finished_at: None,
            error: None,
            expires_at: now + ttl,
        }
    }

    /// Where the file goes: one object per job, named by its random id.
    pub fn object_key(&self) -> String {
        format!("exports/{}.csv", self.export_id)
    }
}

pub fn new_export_id() -> String {
    crate::domain::random_id("x_")
}

#[async_trait]
pub trait ExportJobs: Send + Sync {
    async fn put(&self, job: &ExportJob) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, export_id: &str) -> Result<Option<ExportJob>, StoreError>;
}

/// Where export files go.
#[async_trait]
pub trait ExportSink: Send + Sync {
    async fn open(&self, key: &str) -> Result<Box<dyn ExportUpload>, StoreError>;
    /// A link that downloads the file for `ttl`, without credentials.
    async fn download_url(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError>;
}

/// One file being written, part by part (every part but the last at least [`PART_BYTES`]).
#[async_trait]
pub trait ExportUpload: Send {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), StoreError>;
    async fn finish(self: Box<Self>) -> Result<(), StoreError>;
    async fn abort(self: Box<Self>);
}

/// Asks for a job to be run off the request path.
#[async_trait]
pub trait ExportRequests: Send + Sync {
    async fn request(&self, tenant: &TenantId, export_id: &str) -> Result<(), StoreError>;
}

/// What a part holds before it is sent: above S3's 5 MB minimum, small enough to keep memory flat.
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Leads read per request.
pub const READ_BATCH: u32 = 1000;

pub struct ExportDeps {
    pub leads: Arc<dyn LeadStore>,
    pub jobs: Arc<dyn ExportJobs>,
    pub sink: Arc<dyn ExportSink>,
    pub audit: Arc<dyn AuditLog>,
    pub clock: Arc<dyn Clock>,
}

/// Runs the job: every matching lead into its file, then the job DONE with its row count (and
/// an audit record when it shows phones). A job already DONE is left alone, so a redelivered
/// request writes nothing twice; one that died RUNNING is written again from the start.
pub async fn run(deps: &ExportDeps, tenant: &TenantId, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
    let Some(mut job) = deps.jobs.get(tenant, export_id).await? else {
        return Ok(None);
    };
    if matches!(job.status, ExportStatus::Done | ExportStatus::Failed) {
        return Ok(Some(job));
    }
    job.status = ExportStatus::Running;
    deps.jobs.put(&job).await?;
    match write(deps, &job).await {
        Ok(rows) => {
            job.rows = rows;
            job.status = ExportStatus::Done;
            if job.reveal_phone && rows > 0 {
                let record = AuditRecord::export_with_phones(
                    job.tenant.clone(),
                    deps.clock.now(),
                    job.actor.clone(),
                    job.query.clone(),
                    rows,
                );
                deps.audit.record(&record).await?;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, export_id, "export failed");
            job.status = ExportStatus::Failed;
            job.error = Some("the export could not be written; start it again".into());
        }
    }
    job.finished_at = Some(deps.clock.now());
    deps.jobs.put(&job).await?;
    Ok(Some(job))
}

async fn write(deps: &ExportDeps, job: &ExportJob) -> Result<u64, StoreError> {
    let mut upload = deps.sink.open(&job.object_key()).await?;
    match fill(deps, job, upload.as_mut()).await {
        Ok(rows) => {
            upload.finish().await?;
            Ok(rows)
        }
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

async fn fill(deps: &ExportDeps, job: &ExportJob, upload: &mut dyn ExportUpload) -> Result<u64, StoreError> {
    let mut buffer = csv::header_line().into_bytes();
    let mut rows = 0u64;
    // Beijing days, newest first, read READ_WINDOWS at a time and written in order: reads overlap,
    // the file stays newest first, and memory holds at most that many days of leads.
    let mut windows = DayWindows::new(&job.filter, deps.clock.now());
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    let mut more = true;
    loop {
        while more && in_flight.len() < READ_WINDOWS {
            match windows.next(deps.leads.as_ref(), &job.tenant).await? {
                Some(filter) => {
                    let read = read_all(deps.leads.clone(), job.tenant.clone(), filter, job.reveal_phone);
                    in_flight.push_back(Box::pin(read));
                }
                None => more = false,
            }
        }
        let Some(leads) = futures_util::StreamExt::next(&mut in_flight).await else {
            break;
        };
        let leads = leads?;
        rows += leads.len() as u64;
        for lead in &leads {
            buffer.extend_from_slice(csv::row(lead, job.reveal_phone).as_bytes());
            if buffer.len() >= PART_BYTES {
                upload.part(std::mem::take(&mut buffer)).await?;
            }
        }
    }
    upload.part(buffer).await?;
    Ok(rows)
}

/// Days read at once by an export.
const READ_WINDOWS: usize = 4;

/// Every match of `filter` (one day of the export's), newest first.
async fn read_all(
    store: Arc<dyn LeadStore>,
    tenant: TenantId,
    filter: LeadFilter,
    reveal_phone: bool,
) -> Result<Vec<StoredLead>, StoreError> {
    let mut reader = BatchReader::new(&filter, reveal_phone);
    let mut all = Vec::new();
    while let Some(leads) = reader.next_batch(store.as_ref(), &tenant, READ_BATCH).await? {
        all.extend(leads);
    }
    Ok(all)
}

/// The export's filter cut into windows of whole Beijing days, newest first: one day at a time
/// where there are leads, stretches that double across empty days (the day counters say which,
/// one read per window), never a window of more than [`WINDOW_LEADS`] leads unless it is one day.
struct DayWindows {
    filter: LeadFilter,
    /// The exclusive end of the next window (`None`: the first, open-ended above).
    upper: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    done: bool,
}

/// Leads one window holds before it is cut to fewer days.
const WINDOW_LEADS: u64 = 20_000;

impl DayWindows {
    fn new(filter: &LeadFilter, now: DateTime<Utc>) -> Self {
        Self {
            filter: filter.clone(),
            upper: None,
            now,
            done: false,
        }
    }

    async fn next(&mut self, store: &dyn LeadStore, tenant: &TenantId) -> Result<Option<LeadFilter>, StoreError> {
        use crate::read_model::{day_of, day_start};
        let ms = chrono::Duration::milliseconds(1);
        let mut days = 1i64;
        while !self.done {
            let top = match self.upper {
                None => self.filter.end.unwrap_or(self.now),
                Some(upper) => upper - ms,
            };
            if self.filter.start.is_some_and(|s| s > top) {
                self.done = true;
                break;
            }
            let first_day = day_start(day_of(top) - chrono::Duration::days(days - 1));
            let start = match self.filter.start {
                Some(s) if s >= first_day => {
                    self.done = true;
                    s
                }
                _ => first_day,
            };
            let window = LeadFilter {
                start: Some(start),
                // The first window is open above: a lead dated ahead of our clock is not left out.
                end: self.upper.map(|_| top).or(self.filter.end),
                ..self.filter.clone()
            };
            let here = crate::lead_query::readable(store, tenant, &window).await?;
            if here > WINDOW_LEADS && days > 1 {
                self.done = false;
                days /= 2;
                continue;
            }
            self.upper = Some(start);
            if here > 0 {
                return Ok(Some(window));
            }
            let older = LeadFilter {
                end: Some(start - ms),
                ..self.filter.clone()
            };
            if self.done || crate::lead_query::readable(store, tenant, &older).await? == 0 {
                self.done = true;
                break;
            }
            days = (days * 2).min(3660);
        }
        Ok(None)
    }
}
