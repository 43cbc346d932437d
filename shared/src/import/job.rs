//! An import's record, the ports it runs through, and the run itself: the uploaded file read row
//! by row, its leads written through the same upsert as a sync (so a lead the API already has is
//! the same lead, and events, counters and duplicate links follow), and the counts and the first
//! rejected rows kept on the record. A run stops before its deadline with a checkpoint (the rows
//! consumed) and is continued from there, so a file of any length finishes.

use super::headers::Field;
use super::reader::{self, Format};
use super::row::{self, Layout, Rejection, Target};
use crate::clock::Clock;
use crate::domain::{ConnectionId, TenantId};
use crate::lead::{LeadRecord, LeadSource};
use crate::store::{LeadStore, StoreError, UPSERT_BATCH};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImportStatus {
    /// Made; the file is not started yet (it may not be uploaded).
    AwaitingUpload,
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    /// Data rows read (blank rows and the header not counted).
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Created leads linked to an earlier lead with the same phone.
    pub duplicates: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportJob {
    pub import_id: String,
    pub tenant: TenantId,
    pub actor: String,
    pub file_name: String,
    pub format: Format,
    pub source: LeadSource,
    /// The account the leads belong to; `None`: the source's import connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<ConnectionId>,
    /// The request's own headers, field → header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mapping: BTreeMap<String, String>,
    pub status: ImportStatus,
    pub counts: ImportCounts,
    /// The first [`MAX_REJECTIONS`] rejected rows.
    #[serde(default)]
    pub rejections: Vec<Rejection>,
    /// Rows of the file consumed so far (header and blank rows included): where a continued run
    /// starts.
    #[serde(default)]
    pub next_row: u64,
    /// Moves by one at every write after the first: a write is made only over the revision its
    /// writer read, so of two runs (or two starts) of one import only one goes on.
    #[serde(default)]
    pub revision: u64,
    /// The uploaded file's ETag when the import was started: a continued run reads that file,
    /// never one uploaded over it since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_etag: Option<String>,
    /// How the file's text was read (csv: utf-8 or gb18030).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the record was last written: a QUEUED or RUNNING import untouched for longer than a
    /// run can take was abandoned (its run died), and may be started again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// Rows consumed without a write before the checkpoint moves anyway.
const CHECKPOINT_ROWS: u64 = 5 * UPSERT_BATCH as u64;

/// Rejected rows kept on the record (the counts cover all of them).
pub const MAX_REJECTIONS: usize = 100;

/// What an import is asked for with.
#[derive(Debug, Clone)]
pub struct ImportOrder {
    pub tenant: TenantId,
    pub actor: String,
    pub file_name: String,
    pub format: Format,
    pub source: LeadSource,
    pub connection_id: Option<ConnectionId>,
    pub mapping: BTreeMap<String, String>,
}

impl ImportJob {
    /// A new import for `order`, waiting for its file since `now`, kept for `ttl`.
    pub fn awaiting(import_id: String, order: ImportOrder, now: DateTime<Utc>, ttl: chrono::Duration) -> Self {
        Self {
            import_id,
            tenant: order.tenant,
            actor: order.actor,
            file_name: order.file_name,
            format: order.format,
            source: order.source,
            connection_id: order.connection_id,
            mapping: order.mapping,
            status: ImportStatus::AwaitingUpload,
            counts: ImportCounts::default(),
            rejections: Vec::new(),
            next_row: 0,
            revision: 0,
            file_etag: None,
            encoding: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            error: None,
            updated_at: Some(now),
            expires_at: now + ttl,
        }
    }

    /// Where the file is uploaded: one object per import, named by its random id.
    pub fn object_key(&self) -> String {
        format!("imports/{}.{}", self.import_id, self.format.extension())
    }

    fn overrides(&self) -> HashMap<Field, String> {
        self.mapping
            .iter()
            .filter_map(|(field, header)| Field::parse(field).map(|f| (f, header.clone())))
            .collect()
    }

    fn target(&self) -> Target {
        Target {
            tenant: self.tenant.clone(),
            source: self.source,
            connection: self
                .connection_id
                .clone()
                .unwrap_or_else(|| row::import_connection(self.source)),
        }
    }

    fn reject(&mut self, rejection: Rejection) {
        self.counts.rejected += 1;
        if self.rejections.len() < MAX_REJECTIONS {
            self.rejections.push(rejection);
        }
    }
}

pub fn new_import_id() -> String {
    crate::domain::random_id("i_")
}

#[async_trait]
pub trait ImportJobs: Send + Sync {
    async fn put(&self, job: &ImportJob) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, import_id: &str) -> Result<Option<ImportJob>, StoreError>;
    /// Writes `job` (at revision `r`) only if the stored record is at revision `r - 1`: of two
    /// runs of one import (a redelivered request), only one moves it on. `false` when the other
    /// did, or when there is no such record.
    async fn advance(&self, job: &ImportJob) -> Result<bool, StoreError>;
}

/// Writes `job` over the revision it was read at, stamped `now`; `false` (and `job` as it was)
/// when another writer moved it first.
pub async fn save(jobs: &dyn ImportJobs, job: &mut ImportJob, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let before = (job.revision, job.updated_at);
    job.revision += 1;
    job.updated_at = Some(now);
    let saved = jobs.advance(job).await?;
    if !saved {
        (job.revision, job.updated_at) = before;
    }
    Ok(saved)
}

/// What an uploaded file is, as the store tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub bytes: u64,
    pub etag: Option<String>,
}

/// Where uploaded files are.
#[async_trait]
pub trait ImportFiles: Send + Sync {
    /// A link that uploads the file with one PUT, for `ttl`, without credentials.
    async fn upload_url(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError>;
    /// The uploaded file's size and ETag, `None` before it is uploaded.
    async fn stat(&self, key: &str) -> Result<Option<FileStat>, StoreError>;
    /// The file on local disk, to read (an xlsx needs seeking); [`LocalCopy`] removes a
    /// downloaded copy when dropped. `None` when it is gone, or is no longer the file with
    /// `etag` (uploaded over since).
    async fn fetch(&self, key: &str, etag: Option<&str>) -> Result<Option<LocalCopy>, StoreError>;
}

/// A file on this machine's disk, removed when dropped if it is a temporary copy.
pub struct LocalCopy {
    pub path: PathBuf,
    pub temporary: bool,
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Asks for an import to be run (or continued) off the request path.
#[async_trait]
pub trait ImportRequests: Send + Sync {
    async fn request(&self, tenant: &TenantId, import_id: &str) -> Result<(), StoreError>;
}

pub struct ImportDeps {
    pub leads: Arc<dyn LeadStore>,
    pub jobs: Arc<dyn ImportJobs>,
    pub files: Arc<dyn ImportFiles>,
    pub requests: Arc<dyn ImportRequests>,
    pub clock: Arc<dyn Clock>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// DONE or FAILED (or already so, or not found).
    Finished,
    /// Stopped at its deadline with a checkpoint, and asked to be continued.
    Continued,
    /// Another run of the same import moved it on first; this one stepped aside.
    Superseded,
}

/// Runs the import from its checkpoint until the file ends or `deadline`. Store errors end the
/// run with an error (the request comes again and continues from the checkpoint); a file that
/// cannot be read fails the import with the reason.
pub async fn run(
    deps: &ImportDeps,
    tenant: &TenantId,
    import_id: &str,
    deadline: Option<Instant>,
) -> Result<RunEnd, StoreError> {
    let Some(mut job) = deps.jobs.get(tenant, import_id).await? else {
        return Ok(RunEnd::Finished);
    };
    if matches!(
        job.status,
        ImportStatus::Done | ImportStatus::Failed | ImportStatus::AwaitingUpload
    ) {
        return Ok(RunEnd::Finished);
    }
    job.status = ImportStatus::Running;
    job.started_at.get_or_insert(deps.clock.now());
    if !save(deps.jobs.as_ref(), &mut job, deps.clock.now()).await? {
        return Ok(RunEnd::Superseded);
    }
    let copy = match deps.files.fetch(&job.object_key(), job.file_etag.as_deref()).await {
        Ok(Some(copy)) => copy,
        Ok(None) => {
            let reason = "the uploaded file is gone or was uploaded over since the import started: make a new import";
            return finish(deps, &mut job, ImportStatus::Failed, Some(reason.into())).await;
        }
        Err(e) => {
            tracing::error!(error = %e, import_id, "import file could not be fetched");
            return Err(e);
        }
    };
    let (rows, encoding) = reader::spawn(copy.path.clone(), job.format);
    if let Ok(encoding) = encoding.await {
        job.encoding = Some(
            match encoding {
                super::text::Encoding::Utf8 => "utf-8",
                super::text::Encoding::Gb18030 => "gb18030",
            }
            .into(),
        );
    }
    let end = Importer {
        deps,
        rows,
        batch: Vec::new(),
        layout: None,
        overrides: job.overrides(),
        target: job.target(),
        deadline,
    }
    .go(&mut job)
    .await;
    drop(copy);
    end
}

struct Importer<'a> {
    deps: &'a ImportDeps,
    rows: tokio::sync::mpsc::Receiver<reader::Item>,
    /// Leads waiting for the next write, with their row numbers.
    batch: Vec<(u64, LeadRecord)>,
    layout: Option<Layout>,
    overrides: HashMap<Field, String>,
    target: Target,
    deadline: Option<Instant>,
}

impl Importer<'_> {
    async fn go(mut self, job: &mut ImportJob) -> Result<RunEnd, StoreError> {
        // `consumed` counts every row taken from the file; `job.next_row` what is stored.
        let mut consumed = 0u64;
        let mut rows_since_header = 0usize;
        loop {
            let row = match self.rows.recv().await {
                Some(reader::Item::Row(row)) => row,
                Some(reader::Item::End) => break,
                Some(reader::Item::Failed(reason)) => return self.fail(job, consumed, reason).await,
                // The reading thread died without saying why: not the end of the file.
                None => {
                    let reason = "the file could not be read to its end".to_owned();
                    return self.fail(job, consumed, reason).await;
                }
            };
            consumed += 1;
            if self.layout.is_none() {
                // The header is found again on a continued run: it is before the checkpoint.
                if let Some(layout) = Layout::of(&row, &self.overrides) {
                    self.layout = Some(layout);
                } else if !row.is_blank() {
                    rows_since_header += 1;
                    if rows_since_header >= row::HEADER_SEARCH_ROWS {
                        let reason = no_header(&self.overrides);
                        return self.fail(job, consumed, reason).await;
                    }
                }
                continue;
            }
            if consumed <= job.next_row || row.is_blank() {
                continue;
            }
            let layout = self.layout.as_ref().expect("set above");
            match row::read(layout, &row, &self.target) {
                Ok(lead) => {
                    // A lead twice in one write is written twice, in order: the later row wins.
                    // The checkpoint stops before this row, which is counted after it.
                    if self.batch.iter().any(|(_, l)| l.lead_id == lead.lead_id)
                        && !self.flush(job, consumed - 1).await?
                    {
                        return Ok(RunEnd::Superseded);
                    }
                    self.batch.push((row.number, lead));
                }
                Err(rejection) => job.reject(rejection),
            }
            job.counts.read += 1;
            // Rejected rows move the checkpoint too, so a file of bad rows still stops in time.
            if self.batch.len() >= UPSERT_BATCH || consumed - job.next_row >= CHECKPOINT_ROWS {
                if !self.flush(job, consumed).await? {
                    return Ok(RunEnd::Superseded);
                }
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    return self.pause(job).await;
                }
            }
        }
        if self.layout.is_none() {
            let reason = no_header(&self.overrides);
            return self.fail(job, consumed, reason).await;
        }
        if !self.flush(job, consumed).await? {
            return Ok(RunEnd::Superseded);
        }
        finish(self.deps, job, ImportStatus::Done, None).await
    }

    /// Writes the waiting leads and moves the checkpoint to `consumed`.
    async fn flush(&mut self, job: &mut ImportJob, consumed: u64) -> Result<bool, StoreError> {
        let from = job.next_row;
        let rejected = job.counts.rejected;
        if !self.batch.is_empty() {
            let leads: Vec<LeadRecord> = self.batch.iter().map(|(_, l)| l.clone()).collect();
            let report = self
                .deps
                .leads
                .upsert(&job.tenant, &leads, self.deps.clock.now())
                .await?;
            job.counts.created += report.created;
            job.counts.updated += report.updated;
            job.counts.unchanged += report.unchanged;
            job.counts.duplicates += report.duplicates;
            for failed in &report.failed {
                if let Some((number, _)) = self.batch.iter().find(|(_, l)| &l.lead_id == failed) {
                    job.reject(Rejection {
                        row: *number,
                        column: None,
                        reason: "the row is too large to store as a lead".into(),
                    });
                }
            }
            self.batch.clear();
        }
        job.next_row = consumed.max(job.next_row);
        if job.next_row == from && job.counts.rejected == rejected {
            return Ok(true);
        }
        save(self.deps.jobs.as_ref(), job, self.deps.clock.now()).await
    }

    async fn pause(&self, job: &mut ImportJob) -> Result<RunEnd, StoreError> {
        self.deps.requests.request(&job.tenant, &job.import_id).await?;
        tracing::info!(
            import_id = job.import_id,
            rows = job.next_row,
            "import continues in a new run"
        );
        Ok(RunEnd::Continued)
    }

    /// Fails the import after storing what the rows before `consumed` brought, so its counts
    /// are what was written.
    async fn fail(&mut self, job: &mut ImportJob, consumed: u64, reason: String) -> Result<RunEnd, StoreError> {
        if !self.flush(job, consumed).await? {
            return Ok(RunEnd::Superseded);
        }
        finish(self.deps, job, ImportStatus::Failed, Some(reason)).await
    }
}

/// The import DONE or FAILED; a writer that lost the race leaves it to the winner.
async fn finish(
    deps: &ImportDeps,
    job: &mut ImportJob,
    status: ImportStatus,
    error: Option<String>,
) -> Result<RunEnd, StoreError> {
    job.status = status;
    job.error = error;
    job.finished_at = Some(deps.clock.now());
    Ok(if save(deps.jobs.as_ref(), job, deps.clock.now()).await? {
        RunEnd::Finished
    } else {
        RunEnd::Superseded
    })
}

fn no_header(overrides: &HashMap<Field, String>) -> String {
    let mut phones: Vec<&str> = Field::Phone.default_headers().to_vec();
    let mut ids: Vec<&str> = Field::LeadId.default_headers().to_vec();
    if let Some(h) = overrides.get(&Field::Phone) {
        phones.insert(0, h);
    }
    if let Some(h) = overrides.get(&Field::LeadId) {
        ids.insert(0, h);
    }
    format!(
        "no header row with a phone column ({}) or a lead id column ({}) in the first {} rows; map the headers in the request's `mapping`",
        phones.join(" / "),
        ids.join(" / "),
        row::HEADER_SEARCH_ROWS
    )
}
