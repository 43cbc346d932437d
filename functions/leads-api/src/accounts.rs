//! The tenant's connections: listing them with their sync health, and disconnecting one.

use crate::tasks::connection_not_found;
use crate::{Api, SCOPE_DISCONNECT, SCOPE_VIEW, internal, plausible_id};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use shared::domain::{ConnectionId, ConnectionStatus};
use shared::http::{ApiError, Identity, ok};

pub(crate) async fn list_accounts(State(api): Api, identity: Identity) -> Result<Response, ApiError> {
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
            "lastSyncAt": info.last_sync_at, "lastSuccessAt": info.last_success_at, "lastError": info.last_error, "lastErrorCode": info.last_error_code,
            "lastTaskId": info.last_task_id, "leadCount": info.lead_count, "failedRuns": info.failed_runs, "syncing": info.lease.is_some_and(|l| l.until > api.clock.now()),
            "writeBack": info.write_back,
            "createdAt": c.created_at,
        }));
    }
    Ok(ok(rows))
}

/// The caller's connection of that id; another tenant's, or a malformed id, is not found.
pub(crate) async fn owned(
    api: &crate::LeadsApi,
    identity: &Identity,
    id: String,
) -> Result<shared::domain::Connection, ApiError> {
    if !plausible_id(&id, "c_") {
        return Err(connection_not_found());
    }
    api.connections
        .get(&identity.tenant, &ConnectionId::from_stored(id))
        .await
        .map_err(|e| internal("get connection", &e))?
        .ok_or_else(connection_not_found)
}

/// `DELETE /accounts/{connectionId}`: no more syncs, the token secret scheduled for deletion,
/// the account's claim released (another tenant may connect it now), the leads kept.
/// Disconnecting twice is fine.
pub(crate) async fn disconnect(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_DISCONNECT)?;
    let connection = owned(&api, &identity, id).await?;
    let id = connection.id.clone();
    let disabled = api
        .ledger
        .disable(&identity.tenant, &id, api.clock.now())
        .await
        .map_err(|e| internal("disable connection", &e))?;
    if !disabled {
        return Err(connection_not_found());
    }
    api.connections
        .release(&connection)
        .await
        .map_err(|e| internal("release account", &e))?;
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

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchAccount {
    write_back: bool,
}

/// Which of a provider's lead sources have a write-back API (and so may turn it on).
fn write_back_sources(api: &crate::LeadsApi, provider: shared::domain::Provider) -> Vec<shared::lead::LeadSource> {
    use shared::lead::LeadSource;
    let candidates: &[LeadSource] = match provider {
        shared::domain::Provider::OceanEngine => &[LeadSource::OceanEngineClue, LeadSource::OceanEngineLife],
        shared::domain::Provider::Feiyu => &[LeadSource::Feiyu],
        _ => &[],
    };
    candidates
        .iter()
        .copied()
        .filter(|s| api.writeback.supports(*s))
        .collect()
}

/// `PATCH /accounts/{connectionId}` `{writeBack}`: lead status moves are told to the platform
/// (Ocean Engine's clue callbacks; Feiyu's behind `WRITEBACK_FEIYU_ENABLED`). 抖音来客 and fans
/// have no such API: 409 `WRITEBACK_UNSUPPORTED` says so.
pub(crate) async fn patch_account(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    identity.require(crate::register::SCOPE_ADMIN)?;
    let patch: PatchAccount = crate::json_body(&body)?;
    let connection = owned(&api, &identity, id).await?;
    let id = connection.id.clone();
    if patch.write_back && write_back_sources(&api, connection.provider).is_empty() {
        let why = match connection.provider {
            shared::domain::Provider::Feiyu => {
                "Feiyu's write-back API is legacy and off in this deployment (WRITEBACK_FEIYU_ENABLED)"
            }
            _ => "this platform has no API to write lead statuses back to",
        };
        return Err(ApiError::conflict("WRITEBACK_UNSUPPORTED", why));
    }
    api.ledger
        .set_write_back(&identity.tenant, &id, patch.write_back)
        .await
        .map_err(|e| internal("set write-back", &e))?;
    let sources: Vec<_> = write_back_sources(&api, connection.provider);
    Ok(ok(json!({
        "connectionId": connection.id, "writeBack": patch.write_back,
        "writeBackSources": if patch.write_back { sources } else { Vec::new() },
    })))
}
