//! File imports, for merchants without API access: `POST /imports` records an import and hands
//! out a link to upload the back office's export with one PUT; `POST /imports/{id}/start` checks
//! the upload and asks for the import to run off the request path; `GET /imports/{id}` shows its
//! counts and the first rejected rows with their reasons. Admin scope.

use crate::register::SCOPE_ADMIN;
use crate::{Api, internal, json_body, plausible_id};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::config::ImportConfig;
use shared::http::{ApiError, Identity, ok};
use shared::import::headers::Field;
use shared::import::job::{FileStat, ImportCounts, ImportOrder, new_import_id, save};
use shared::import::reader::Format;
use shared::import::{ImportFiles, ImportJob, ImportJobs, ImportRequests, ImportStatus};
use shared::lead::LeadSource;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where imports are kept, uploaded and asked for.
pub struct ImportPorts {
    pub jobs: Arc<dyn ImportJobs>,
    pub files: Arc<dyn ImportFiles>,
    /// `None` where the deployment has no import queue: imports are then refused, not lost.
    pub requests: Option<Arc<dyn ImportRequests>>,
    pub config: ImportConfig,
}

const MAX_FILE_NAME: usize = 200;
const MAX_HEADER: usize = 100;
/// The sources an export can be imported as (fans have no back-office export).
const IMPORTABLE: [LeadSource; 4] = [
    LeadSource::Laike,
    LeadSource::OceanEngineClue,
    LeadSource::OceanEngineLife,
    LeadSource::Feiyu,
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    file_name: String,
    source: String,
    #[serde(default, deserialize_with = "non_null")]
    connection_id: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    mapping: Option<BTreeMap<String, String>>,
}

fn non_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn import_not_found() -> ApiError {
    ApiError::not_found("IMPORT_NOT_FOUND", "no such import (imports are kept 7 days)")
}

fn ports(api: &crate::LeadsApi) -> Result<(&ImportPorts, &Arc<dyn ImportRequests>), ApiError> {
    let ports = &api.imports;
    let requests = ports.requests.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "IMPORTS_NOT_CONFIGURED",
            "this deployment has no import queue (IMPORT_QUEUE_URL)",
        )
    })?;
    Ok((ports, requests))
}

fn checked_mapping(raw: Option<BTreeMap<String, String>>) -> Result<BTreeMap<String, String>, ApiError> {
    let mapping = raw.unwrap_or_default();
    for (field, header) in &mapping {
        if Field::parse(field).is_none() {
            let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
            return Err(ApiError::bad_request(
                "INVALID_MAPPING",
                "mapping",
                format!("mapping names fields: {}", known.join(", ")),
            ));
        }
        if header.trim().is_empty() || header.chars().count() > MAX_HEADER {
            return Err(ApiError::bad_request(
                "INVALID_MAPPING",
                "mapping",
                format!("each header is 1 to {MAX_HEADER} characters"),
            ));
        }
    }
    let headers: std::collections::BTreeSet<String> = mapping
        .values()
        .map(|h| shared::import::headers::canonical(h))
        .collect();
    if headers.len() < mapping.len() {
        return Err(ApiError::bad_request(
            "INVALID_MAPPING",
            "mapping",
            "two fields are mapped to the same header",
        ));
    }
    Ok(mapping)
}

pub(crate) async fn create(State(api): Api, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let (ports, _) = ports(&api)?;
    let body: CreateBody = json_body(&body)?;
    let file_name = body.file_name.trim().to_owned();
    if file_name.is_empty() || file_name.chars().count() > MAX_FILE_NAME || file_name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "INVALID_FILE_NAME",
            "fileName",
            format!("fileName is 1 to {MAX_FILE_NAME} printable characters"),
        ));
    }
    let format = Format::of(&file_name).map_err(|why| ApiError::bad_request("UNSUPPORTED_FORMAT", "fileName", why))?;
    let source = LeadSource::parse(&body.source)
        .filter(|s| IMPORTABLE.contains(s))
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_SOURCE",
                "source",
                "source must be laike, oceanengine_clue, oceanengine_life or feiyu",
            )
        })?;
    let mapping = checked_mapping(body.mapping)?;
    let connection_id = match body.connection_id {
        None => None,
        Some(id) => {
            let connection = crate::accounts::owned(&api, &identity, id).await?;
            if connection.provider != source.provider() {
                return Err(ApiError::bad_request(
                    "SOURCE_MISMATCH",
                    "connectionId",
                    format!(
                        "the account is a {} account; {} leads come from {} accounts",
                        connection.provider.as_str(),
                        source.as_str(),
                        source.provider().as_str()
                    ),
                ));
            }
            Some(connection.id)
        }
    };
    let now = api.clock.now();
    let ttl = chrono::Duration::from_std(ports.config.ttl).unwrap_or(chrono::Duration::days(7));
    let order = ImportOrder {
        tenant: identity.tenant.clone(),
        actor: crate::actor(&identity),
        file_name,
        format,
        source,
        connection_id,
        mapping,
    };
    let job = ImportJob::awaiting(new_import_id(), order, now, ttl);
    ports.jobs.put(&job).await.map_err(|e| internal("record import", &e))?;
    let upload_url = ports
        .files
        .upload_url(&job.object_key(), ports.config.upload_url_ttl)
        .await
        .map_err(|e| internal("sign upload link", &e))?;
    let expires = now + chrono::Duration::from_std(ports.config.upload_url_ttl).unwrap_or_default();
    let mut view = view(&job);
    view["uploadUrl"] = json!(upload_url);
    view["uploadMethod"] = json!("PUT");
    view["uploadUrlExpiresAt"] = json!(expires);
    view["maxBytes"] = json!(ports.config.max_bytes);
    Ok((StatusCode::CREATED, ok(view)).into_response())
}

async fn owned(api: &crate::LeadsApi, identity: &Identity, id: &str) -> Result<ImportJob, ApiError> {
    if !plausible_id(id, "i_") {
        return Err(import_not_found());
    }
    api.imports
        .jobs
        .get(&identity.tenant, id)
        .await
        .map_err(|e| internal("get import", &e))?
        .filter(|j| j.expires_at > api.clock.now())
        .ok_or_else(import_not_found)
}

/// Starts the import once its file is uploaded. Starting one already started (or finished)
/// changes nothing and answers how it stands; a FAILED one may be started again (the file is
/// read from the start), and so may one QUEUED or RUNNING whose record has not moved for longer
/// than a run can take (its run died): it continues from its checkpoint.
pub(crate) async fn start(State(api): Api, identity: Identity, Path(id): Path<String>) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let (ports, requests) = ports(&api)?;
    let mut job = owned(&api, &identity, &id).await?;
    let now = api.clock.now();
    let abandoned = matches!(job.status, ImportStatus::Queued | ImportStatus::Running)
        && job
            .updated_at
            .is_none_or(|at| now - at > abandoned_after(&ports.config));
    if matches!(job.status, ImportStatus::AwaitingUpload | ImportStatus::Failed) || abandoned {
        if !abandoned {
            let stat = checked_upload(ports, &job).await?;
            job.file_etag = stat.etag;
        }
        if job.status == ImportStatus::Failed {
            // The file may have been uploaded again: it is read from the start (rows already
            // written count as unchanged).
            job.next_row = 0;
            job.counts = ImportCounts::default();
            job.rejections.clear();
        }
        job.status = ImportStatus::Queued;
        job.error = None;
        job.finished_at = None;
        let moved = save(ports.jobs.as_ref(), &mut job, now)
            .await
            .map_err(|e| internal("queue import", &e))?;
        if moved && let Err(e) = requests.request(&job.tenant, &job.import_id).await {
            let mut failed = ImportJob {
                status: ImportStatus::Failed,
                error: Some("the import could not be requested; start it again".into()),
                finished_at: Some(api.clock.now()),
                ..job.clone()
            };
            let _ = save(ports.jobs.as_ref(), &mut failed, api.clock.now()).await;
            return Err(internal("request import", &e));
        }
        if !moved {
            // Another start (or the run) moved it first: answer how it stands now.
            job = owned(&api, &identity, &id).await?;
        }
    }
    Ok((StatusCode::ACCEPTED, ok(view(&job))).into_response())
}

/// How long a QUEUED or RUNNING import may go without a write before it counts as abandoned:
/// longer than the function's 15 minutes and the queue's redeliveries take.
fn abandoned_after(config: &ImportConfig) -> chrono::Duration {
    chrono::Duration::from_std(config.abandoned_after).unwrap_or(chrono::Duration::minutes(20))
}

/// The uploaded file, if it is there and within the limit.
async fn checked_upload(ports: &ImportPorts, job: &ImportJob) -> Result<FileStat, ApiError> {
    let stat = ports
        .files
        .stat(&job.object_key())
        .await
        .map_err(|e| internal("check upload", &e))?;
    match stat {
        None => Err(ApiError::conflict(
            "FILE_NOT_UPLOADED",
            "the file is not uploaded yet: PUT it to the uploadUrl first",
        )),
        Some(stat) if stat.bytes > ports.config.max_bytes => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "FILE_TOO_LARGE",
            format!(
                "the file is {} bytes; imports take at most {} bytes",
                stat.bytes, ports.config.max_bytes
            ),
        )),
        Some(stat) => Ok(stat),
    }
}

pub(crate) async fn get(State(api): Api, identity: Identity, Path(id): Path<String>) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let job = owned(&api, &identity, &id).await?;
    Ok(ok(view(&job)))
}

fn view(job: &ImportJob) -> Value {
    json!({
        "importId": job.import_id, "status": job.status, "fileName": job.file_name,
        "format": job.format, "source": job.source, "connectionId": job.connection_id,
        "mapping": job.mapping, "counts": job.counts, "rejectedRows": job.rejections,
        "encoding": job.encoding, "createdAt": job.created_at, "startedAt": job.started_at,
        "finishedAt": job.finished_at, "expiresAt": job.expires_at, "error": job.error,
    })
}
