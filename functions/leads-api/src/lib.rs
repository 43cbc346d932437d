//! The lead API under `/api/v1/lead/douyin`: leads (list, detail, status work), sync tasks and
//! the tenant's connections. Every route needs the JWT authorizer's identity and a scope; every
//! read is scoped to the caller's tenant, and another tenant's lead is simply not found.

pub mod export;
pub mod params;
pub mod register;
pub mod view;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use shared::clock::Clock;
use shared::domain::TenantId;
use shared::domain::{Connection, ConnectionId, ConnectionStatus, Provider};
use shared::http::{ApiError, Identity, QueryParams, ok, route_not_found};
use shared::lead::{HistoryEntry, LeadId, StoredLead};
use shared::store::{ConnectionStore, LeadStore, LeadUpdateError, OperatorChange, SyncLedger, TaskStore, TokenVault};
use shared::sync::SyncRequest;
use shared::sync::requests::SyncRequests;
use shared::task::{Strategy, SyncTask, TaskStatus, Trigger, new_task_id};
use std::sync::Arc;

pub const BASE: &str = "/api/v1/lead/douyin";
pub const SCOPE_VIEW: &str = "lead:douyin:leads:view";
pub const SCOPE_PHONE: &str = "lead:douyin:leads:phone";
pub const SCOPE_EDIT: &str = "lead:douyin:leads:edit";
pub const SCOPE_EXPORT: &str = "lead:douyin:leads:export";
pub const SCOPE_SYNC: &str = "lead:douyin:fans:sync";
/// Connecting and disconnecting accounts share one scope.
pub const SCOPE_CONNECT: &str = "lead:douyin:auth:get_url";
pub const MAX_NOTES_CHARS: usize = 2000;
/// PATCH bodies are a status, notes and a version: anything bigger is not one.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub struct LeadsApi {
    pub leads: Arc<dyn LeadStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub ledger: Arc<dyn SyncLedger>,
    pub vault: Arc<dyn TokenVault>,
    pub requests: Arc<dyn SyncRequests>,
    /// The lead sources, to verify accounts registered without OAuth with one real pull.
    pub catalog: Arc<shared::sync::catalog::SourceCatalog>,
    pub secret_prefix: String,
    pub task_ttl: chrono::Duration,
    pub clock: Arc<dyn Clock>,
}

pub(crate) type Api = State<Arc<LeadsApi>>;

/// The routes without a fallback, for merging into a larger router (the local run).
pub fn routes(api: Arc<LeadsApi>) -> Router {
    Router::new()
        .route(&format!("{BASE}/leads"), get(list_leads))
        .route(&format!("{BASE}/leads/export"), get(export_leads))
        .route(&format!("{BASE}/leads/{{leadId}}"), get(get_lead).patch(patch_lead))
        .route(&format!("{BASE}/sync/tasks/{{taskId}}"), get(get_task))
        .route(&format!("{BASE}/fans/sync"), post(start_sync))
        .route(&format!("{BASE}/accounts"), get(list_accounts))
        .route(&format!("{BASE}/accounts/feiyu"), post(register::register_feiyu))
        .route(&format!("{BASE}/accounts/laike"), post(register::register_laike))
        .route(
            &format!("{BASE}/accounts/{{connectionId}}"),
            axum::routing::delete(disconnect),
        )
        .with_state(api)
}

pub fn router(api: Arc<LeadsApi>) -> Router {
    routes(api).fallback(route_not_found)
}

pub(crate) fn internal(context: &str, e: &dyn std::error::Error) -> ApiError {
    ApiError::internal(context, e)
}

fn lead_not_found() -> ApiError {
    ApiError::not_found("LEAD_NOT_FOUND", "no such lead")
}

async fn list_leads(State(api): Api, identity: Identity, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    identity.require(SCOPE_VIEW)?;
    let query = params::ListQuery::parse(&QueryParams::parse(raw.as_deref())?)?;
    let page = api
        .leads
        .query(&identity.tenant, &query.filter, &query.start, query.size)
        .await
        .map_err(|e| internal("list leads", &e))?;
    let pages = page.total.div_ceil(u64::from(query.size));
    let records: Vec<_> = page.records.iter().map(|l| view::lead(l, false)).collect();
    Ok(ok(json!({
        "records": records, "total": page.total, "size": query.size, "current": query.current,
        "pages": pages, "nextCursor": page.next.map(|c| c.encode()),
    })))
}

/// `GET /leads/export`: the list's filters (paging parameters are checked and ignored), as CSV.
async fn export_leads(State(api): Api, identity: Identity, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    identity.require(SCOPE_EXPORT)?;
    let query = params::ListQuery::parse(&QueryParams::parse(raw.as_deref())?)?;
    let reveal = identity.scopes.contains(SCOPE_PHONE);
    let body = export::body(api.leads.clone(), identity.tenant.clone(), query.filter, reveal);
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (
            axum::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"leads.csv\"",
        ),
    ];
    Ok((headers, body).into_response())
}

/// Whether `id` could be one of our ids (`l_…`, `c_…`, `t_…`). Anything else cannot exist, and
/// must not reach DynamoDB, whose key size limit would turn a silly id into a server error.
fn plausible_id(id: &str, prefix: &str) -> bool {
    id.starts_with(prefix) && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

async fn find(api: &LeadsApi, tenant: &TenantId, id: &str) -> Result<StoredLead, ApiError> {
    if !plausible_id(id, "l_") {
        return Err(lead_not_found());
    }
    api.leads
        .get(tenant, &LeadId::from_stored(id))
        .await
        .map_err(|e| internal("get lead", &e))?
        .ok_or_else(lead_not_found)
}

fn actor(identity: &Identity) -> String {
    identity.subject.clone().unwrap_or_else(|| identity.tenant.to_string())
}

async fn get_lead(State(api): Api, identity: Identity, Path(id): Path<String>) -> Result<Response, ApiError> {
    identity.require(SCOPE_VIEW)?;
    let mut lead = find(&api, &identity.tenant, &id).await?;
    let reveal = identity.scopes.contains(SCOPE_PHONE) && lead.fields.phone.is_some();
    if reveal {
        // Every reveal is on the record, without bumping the version an editor may hold.
        let entry = HistoryEntry {
            at: api.clock.now(),
            actor: actor(&identity),
            action: "PHONE_REVEALED".into(),
            from: None,
            to: None,
        };
        match api
            .leads
            .append_history(&identity.tenant, &lead.lead_id, std::slice::from_ref(&entry))
            .await
        {
            Ok(()) => lead.history.push(entry),
            Err(LeadUpdateError::NotFound) => return Err(lead_not_found()),
            Err(e) => return Err(internal("record phone reveal", &e)),
        }
    }
    Ok(ok(view::lead_detail(&lead, reveal)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    status: Option<String>,
    notes: Option<String>,
    version: Option<u64>,
}

async fn patch_lead(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_EDIT)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "BODY_TOO_LARGE",
            "body",
            format!("the body may be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let patch: PatchBody = json_body(&body)?;
    let version = patch.version.ok_or_else(|| {
        ApiError::bad_request(
            "VERSION_REQUIRED",
            "version",
            "version (from the lead you read) is required",
        )
    })?;
    let status = patch.status.as_deref().map(params::parse_status).transpose()?;
    if patch
        .notes
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS)
    {
        return Err(ApiError::bad_request(
            "INVALID_NOTES",
            "notes",
            format!("notes may be at most {MAX_NOTES_CHARS} characters"),
        ));
    }
    if status.is_none() && patch.notes.is_none() {
        return Err(ApiError::bad_request(
            "NOTHING_TO_CHANGE",
            "body",
            "give status and/or notes",
        ));
    }
    let current = find(&api, &identity.tenant, &id).await?;
    if current.version != version {
        return Err(version_conflict(current.version));
    }
    let now = api.clock.now();
    let mut history = Vec::new();
    if let Some(to) = status.filter(|s| *s != current.status) {
        if !current.status.can_move_to(to) {
            return Err(ApiError::conflict(
                "ILLEGAL_STATUS_MOVE",
                format!("a lead cannot move from {} to {}", current.status.as_str(), to.as_str()),
            ));
        }
        history.push(HistoryEntry {
            at: now,
            actor: actor(&identity),
            action: "STATUS".into(),
            from: Some(current.status.as_str().into()),
            to: Some(to.as_str().into()),
        });
    }
    if patch.notes.as_ref().is_some_and(|n| *n != current.notes) {
        history.push(HistoryEntry {
            at: now,
            actor: actor(&identity),
            action: "NOTES".into(),
            from: None,
            to: None,
        });
    }
    if history.is_empty() {
        return Ok(ok(view::lead_detail(&current, false)));
    }
    let change = OperatorChange {
        status: status.filter(|s| *s != current.status),
        notes: patch.notes,
        expected_version: version,
        history,
        at: now,
    };
    match api
        .leads
        .update_operator_fields(&identity.tenant, &current.lead_id, &change)
        .await
    {
        Ok(updated) => Ok(ok(view::lead_detail(&updated, false))),
        Err(LeadUpdateError::NotFound) => Err(lead_not_found()),
        Err(LeadUpdateError::VersionConflict { current }) => Err(version_conflict(current)),
        Err(LeadUpdateError::Store(e)) => Err(internal("update lead", &e)),
    }
}

fn version_conflict(current: u64) -> ApiError {
    ApiError::conflict(
        "VERSION_CONFLICT",
        format!("the lead changed meanwhile (now version {current}); read it again"),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyncBody {
    douyin_user_id: Option<String>,
    connection_id: Option<String>,
    sync_strategy: Option<String>,
}

/// Reads a small JSON body; every problem is a 400 on `body`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "BODY_TOO_LARGE",
            "body",
            format!("the body may be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", "body", format!("the body does not fit this route: {e}")))
}

fn connection_not_found() -> ApiError {
    ApiError::not_found("CONNECTION_NOT_FOUND", "no such connection")
}

/// The caller's connection named by id, or by the Douyin user (open_id) it authorises.
async fn resolve_connection(api: &LeadsApi, tenant: &TenantId, body: &SyncBody) -> Result<Connection, ApiError> {
    match (&body.connection_id, &body.douyin_user_id) {
        (Some(id), _) if !plausible_id(id, "c_") => Err(connection_not_found()),
        (Some(id), _) => api
            .connections
            .get(tenant, &ConnectionId::from_stored(id.as_str()))
            .await
            .map_err(|e| internal("get connection", &e))?
            .ok_or_else(connection_not_found),
        (None, Some(user)) => api
            .connections
            .list(tenant)
            .await
            .map_err(|e| internal("list connections", &e))?
            .into_iter()
            .find(|c| c.provider == Provider::Douyin && c.external_account_id == *user)
            .ok_or_else(connection_not_found),
        (None, None) => Err(ApiError::bad_request(
            "CONNECTION_REQUIRED",
            "connectionId",
            "give connectionId or douyinUserId",
        )),
    }
}

/// `POST /fans/sync`: records a task and asks lead-sync to run it; 202 either way, with the
/// running task when one already holds the connection.
async fn start_sync(State(api): Api, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
    identity.require(SCOPE_SYNC)?;
    let body: SyncBody = json_body(&body)?;
    let strategy = match body.sync_strategy.as_deref() {
        None | Some("INCREMENTAL") => Strategy::Incremental,
        Some("FULL") => Strategy::Full,
        Some(_) => {
            return Err(ApiError::bad_request(
                "INVALID_STRATEGY",
                "syncStrategy",
                "syncStrategy must be INCREMENTAL or FULL",
            ));
        }
    };
    let connection = resolve_connection(&api, &identity.tenant, &body).await?;
    if connection.status != ConnectionStatus::Active {
        return Err(ApiError::conflict(
            "CONNECTION_NOT_ACTIVE",
            format!(
                "the connection is {}; authorise it again first",
                connection.status.as_str()
            ),
        ));
    }
    let now = api.clock.now();
    let info = api
        .ledger
        .sync_info(&connection.tenant, &connection.id)
        .await
        .map_err(|e| internal("read sync info", &e))?;
    if let Some(lease) = info.lease.filter(|l| l.until > now) {
        let accepted = json!({"taskId": lease.holder, "status": TaskStatus::Processing, "message": "a sync of this connection is already running"});
        return Ok((StatusCode::ACCEPTED, ok(accepted)).into_response());
    }
    let task = SyncTask::new(
        new_task_id(),
        identity.tenant.clone(),
        connection.id.clone(),
        Trigger::Manual,
        strategy,
        now,
        api.task_ttl,
    );
    api.tasks.put(&task).await.map_err(|e| internal("record task", &e))?;
    let request = SyncRequest {
        tenant: task.tenant.clone(),
        connection_id: task.connection_id.clone(),
        task_id: Some(task.task_id.clone()),
        trigger: Trigger::Manual,
        strategy,
    };
    if let Err(e) = api.requests.request(&request).await {
        let failed = SyncTask {
            status: TaskStatus::Failed,
            error: Some("the sync could not be requested".into()),
            finished_at: Some(now),
            ..task
        };
        let _ = api.tasks.put(&failed).await;
        return Err(internal("request sync", &e));
    }
    let accepted = json!({"taskId": task.task_id, "status": task.status, "message": "sync requested"});
    Ok((StatusCode::ACCEPTED, ok(accepted)).into_response())
}

async fn get_task(State(api): Api, identity: Identity, Path(id): Path<String>) -> Result<Response, ApiError> {
    identity.require(SCOPE_SYNC)?;
    if !plausible_id(&id, "t_") {
        return Err(ApiError::not_found("TASK_NOT_FOUND", "no such sync task"));
    }
    let task = api
        .tasks
        .get(&identity.tenant, &id)
        .await
        .map_err(|e| internal("get task", &e))?
        .ok_or_else(|| ApiError::not_found("TASK_NOT_FOUND", "no such sync task"))?;
    Ok(ok(task))
}

async fn list_accounts(State(api): Api, identity: Identity) -> Result<Response, ApiError> {
    identity.require(SCOPE_VIEW)?;
    let connections = api
        .connections
        .list(&identity.tenant)
        .await
        .map_err(|e| internal("list connections", &e))?;
    let mut rows = Vec::with_capacity(connections.len());
    for c in connections {
        let info = api
            .ledger
            .sync_info(&c.tenant, &c.id)
            .await
            .map_err(|e| internal("read sync info", &e))?;
        rows.push(json!({
            "connectionId": c.id, "provider": c.provider, "externalAccountId": c.external_account_id,
            "advertiserIds": c.advertiser_ids, "status": c.status, "scopes": c.scopes,
            "accessExpiresAt": c.access_expires_at, "refreshExpiresAt": c.refresh_expires_at,
            "lastSyncAt": info.last_sync_at, "lastSuccessAt": info.last_success_at, "lastError": info.last_error,
            "lastTaskId": info.last_task_id, "leadCount": info.lead_count, "syncing": info.lease.is_some_and(|l| l.until > api.clock.now()),
            "createdAt": c.created_at,
        }));
    }
    Ok(ok(rows))
}

/// `DELETE /accounts/{connectionId}`: no more syncs, the token secret scheduled for deletion,
/// the leads kept. Disconnecting twice is fine.
async fn disconnect(State(api): Api, identity: Identity, Path(id): Path<String>) -> Result<Response, ApiError> {
    identity.require(SCOPE_CONNECT)?;
    if !plausible_id(&id, "c_") {
        return Err(connection_not_found());
    }
    let id = ConnectionId::from_stored(id);
    let connection = api
        .connections
        .get(&identity.tenant, &id)
        .await
        .map_err(|e| internal("get connection", &e))?
        .ok_or_else(connection_not_found)?;
    let disabled = api
        .ledger
        .disable(&identity.tenant, &id, api.clock.now())
        .await
        .map_err(|e| internal("disable connection", &e))?;
    if !disabled {
        return Err(connection_not_found());
    }
    // 来客 connections read with the app token and have no secret of their own.
    if !connection.secret_id.is_empty() {
        api.vault
            .schedule_deletion(&connection.secret_id)
            .await
            .map_err(|e| internal("delete connection secret", &e))?;
    }
    Ok(ok(
        json!({"connectionId": id, "status": ConnectionStatus::Disabled, "leadsKept": true}),
    ))
}
