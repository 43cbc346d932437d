//! An export job's record, the ports it runs through, and the run itself.

use super::csv;
use crate::clock::Clock;
use crate::domain::TenantId;
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

impl ExportJob {
    /// Where the file goes: one object per job, named by its random id.
    pub fn object_key(&self) -> String {
        format!("exports/{}.csv", self.export_id)
    }
}

pub fn new_export_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("OS randomness is available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("x_{hex}")
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
                deps.audit
                    .record(&AuditRecord {
                        tenant: job.tenant.clone(),
                        at: deps.clock.now(),
                        actor: job.actor.clone(),
                        action: "EXPORT_WITH_PHONES".into(),
                        target: job.query.clone(),
                        rows,
                    })
                    .await?;
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
    let mut reader = BatchReader::new(&job.filter, job.reveal_phone);
    while let Some(leads) = reader.next_batch(deps.leads.as_ref(), &job.tenant, READ_BATCH).await? {
        rows += leads.len() as u64;
        for lead in &leads {
            buffer.extend_from_slice(csv::row(lead, job.reveal_phone).as_bytes());
        }
        if buffer.len() >= PART_BYTES {
            upload.part(std::mem::take(&mut buffer)).await?;
        }
    }
    upload.part(buffer).await?;
    Ok(rows)
}
