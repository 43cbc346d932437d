//! Exports of any size: `POST /leads/exports` records a job with the list's filters and asks
//! for it to run off the request path; `GET /leads/exports/{exportId}` says how it went and,
//! once done, hands out a download link that works for `EXPORT_URL_TTL_SECS`.

use crate::{Api, SCOPE_EXPORT, SCOPE_PHONE, actor, internal, params, plausible_id};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::export::job::{ExportOrder, new_export_id};
use shared::export::{ExportJob, ExportJobs, ExportRequests, ExportSink, ExportStatus};
use shared::http::{ApiError, Identity, QueryParams, ok};
use std::sync::Arc;

/// Where export jobs are kept, written and asked for.
pub struct ExportPorts {
    pub jobs: Arc<dyn ExportJobs>,
    pub sink: Arc<dyn ExportSink>,
    /// `None` where the deployment has no export queue: jobs are then refused, not lost.
    pub requests: Option<Arc<dyn ExportRequests>>,
}

fn export_not_found() -> ApiError {
    ApiError::not_found("EXPORT_NOT_FOUND", "no such export (exports are kept 7 days)")
}

pub(crate) async fn start_export(
    State(api): Api,
    identity: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_EXPORT)?;
    let query = params::ListQuery::parse(&QueryParams::parse(raw.as_deref())?)?;
    let Some(requests) = &api.exports.requests else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "EXPORTS_NOT_CONFIGURED",
            "this deployment has no export queue (EXPORT_QUEUE_URL)",
        ));
    };
    let now = api.clock.now();
    let order = ExportOrder {
        tenant: identity.tenant.clone(),
        actor: actor(&identity),
        filter: query.filter,
        query: raw.unwrap_or_default(),
        reveal_phone: identity.scopes.contains(SCOPE_PHONE),
    };
    let ttl = chrono::Duration::from_std(api.read.export_ttl).unwrap_or(chrono::Duration::days(7));
    let job = ExportJob::queued(new_export_id(), order, now, ttl);
    api.exports
        .jobs
        .put(&job)
        .await
        .map_err(|e| internal("record export", &e))?;
    if let Err(e) = requests.request(&job.tenant, &job.export_id).await {
        let failed = ExportJob {
            status: ExportStatus::Failed,
            error: Some("the export could not be requested; start it again".into()),
            finished_at: Some(now),
            ..job
        };
        let _ = api.exports.jobs.put(&failed).await;
        return Err(internal("request export", &e));
    }
    let body = json!({"exportId": job.export_id, "status": job.status});
    Ok((StatusCode::ACCEPTED, ok(body)).into_response())
}

pub(crate) async fn get_export(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_EXPORT)?;
    if !plausible_id(&id, "x_") {
        return Err(export_not_found());
    }
    let job = api
        .exports
        .jobs
        .get(&identity.tenant, &id)
        .await
        .map_err(|e| internal("get export", &e))?
        .filter(|j| j.expires_at > api.clock.now())
        .ok_or_else(export_not_found)?;
    let download = match job.status {
        ExportStatus::Done => Some(
            api.exports
                .sink
                .download_url(&job.object_key(), api.read.export_url_ttl)
                .await
                .map_err(|e| internal("sign export link", &e))?,
        ),
        _ => None,
    };
    let link_expires = download
        .as_ref()
        .map(|_| api.clock.now() + chrono::Duration::from_std(api.read.export_url_ttl).unwrap_or_default());
    Ok(ok(json!({
        "exportId": job.export_id, "status": job.status, "rows": job.rows, "phonesShown": job.reveal_phone,
        "createdAt": job.created_at, "finishedAt": job.finished_at, "expiresAt": job.expires_at,
        "error": job.error, "downloadUrl": download, "downloadUrlExpiresAt": link_expires,
    })))
}
