//! Sync tasks: asking for a sync of one connection, and reading a task's progress.

use crate::{Api, LeadsApi, SCOPE_SYNC, internal, json_body, plausible_id};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::domain::{Connection, ConnectionId, ConnectionStatus, Provider, TenantId};
use shared::http::{ApiError, Identity, ok};
use shared::sync::SyncRequest;
use shared::task::{Strategy, SyncTask, TaskStatus, Trigger, new_task_id};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyncBody {
    douyin_user_id: Option<String>,
    connection_id: Option<String>,
    sync_strategy: Option<String>,
}

pub(crate) fn connection_not_found() -> ApiError {
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
pub(crate) async fn start_sync(State(api): Api, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
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
        let mut failed = SyncTask {
            status: TaskStatus::Failed,
            finished_at: Some(now),
            ..task
        };
        failed.set_failure(Some(shared::failure::Failure::delivery()));
        let _ = api.tasks.put(&failed).await;
        return Err(internal("request sync", &e));
    }
    let accepted = json!({"taskId": task.task_id, "status": task.status, "message": "sync requested"});
    Ok((StatusCode::ACCEPTED, ok(accepted)).into_response())
}

pub(crate) async fn get_task(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
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
