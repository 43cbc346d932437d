//! Registering accounts that have no OAuth: a Feiyu account (its signature key and token) and a
//! 来客 account id (read with the app's client_token, so only admins may bind one). Each is
//! verified with one real pull before anything is stored; the key and token go to the vault
//! and are never returned.

use crate::{Api, LeadsApi, internal, json_body};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use shared::domain::{Connection, ConnectionId, ConnectionStatus, Provider, TenantId, TokenSet};
use shared::http::{ApiError, Identity, ok};
use shared::platform::ErrorKind;
use shared::secret::Secret;
use shared::sources::{PageRef, PullAuth, SourceError, Window};
use shared::store::ClaimError;

pub const SCOPE_ADMIN: &str = "lead:douyin:admin";
const MAX_FIELD: usize = 256;
/// Platform account ids are unsigned 64-bit numbers: at most 20 digits.
const MAX_ID_DIGITS: usize = 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FeiyuBody {
    advertiser_id: String,
    signature_key: String,
    token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LaikeBody {
    account_id: String,
}

/// A body field exactly as the OpenAPI document allows it: ids are 1 to 20 digits; keys and
/// tokens 1 to 256 printable ASCII characters (no spaces). Nothing is trimmed: what is stored is what
/// was sent.
fn text_field(value: &str, field: &'static str, digits: bool) -> Result<String, ApiError> {
    let ok_shape = if digits {
        (1..=MAX_ID_DIGITS).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
    } else {
        // Printable ASCII only: the token travels in an HTTP header.
        (1..=MAX_FIELD).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
    };
    if ok_shape {
        Ok(value.to_owned())
    } else {
        let what = if digits {
            format!("1 to {MAX_ID_DIGITS} digits")
        } else {
            format!("1 to {MAX_FIELD} printable ASCII characters without spaces")
        };
        Err(ApiError::bad_request(
            "INVALID_FIELD",
            field,
            format!("{field} must be {what}"),
        ))
    }
}

fn connection(api: &LeadsApi, tenant: &TenantId, provider: Provider, account: &str) -> Connection {
    let now = Utc::now();
    let id = ConnectionId::derive(tenant, provider, account);
    // 来客 connections use the app's client_token and keep no secret of their own.
    let secret_id = match provider {
        Provider::Laike => String::new(),
        _ => format!("{}{}", api.secret_prefix, id),
    };
    Connection {
        id,
        tenant: tenant.clone(),
        provider,
        external_account_id: account.to_owned(),
        advertiser_ids: vec![account.to_owned()],
        scopes: Vec::new(),
        status: ConnectionStatus::Active,
        secret_id,
        // Neither kind of credential expires on a schedule.
        access_expires_at: now + Duration::days(3650),
        refresh_expires_at: now + Duration::days(3650),
        created_at: now,
        updated_at: now,
    }
}

/// One pull of the last day: the platform's answer decides whether the account is usable.
async fn verify(
    api: &LeadsApi,
    connection: &Connection,
    tokens: Option<&TokenSet>,
    rejected: &'static str,
) -> Result<(), ApiError> {
    let now = api.clock.now();
    let window = Window {
        start: now - Duration::days(1),
        end: now - Duration::minutes(11),
    };
    let client = api
        .catalog
        .for_provider(connection.provider)
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("UNSUPPORTED_PROVIDER", "provider", "no lead source for this provider"))?;
    let auth = PullAuth {
        connection,
        tokens,
        part: 0,
    };
    match client.fetch(&auth, &window, PageRef::Number(1)).await {
        Ok(_) => Ok(()),
        Err(SourceError::Platform(e)) if matches!(e.kind(), ErrorKind::Transient | ErrorKind::Throttled) => {
            Err(ApiError::platform(StatusCode::BAD_GATEWAY, "PLATFORM_ERROR", &e))
        }
        Err(SourceError::Platform(e)) => Err(ApiError::platform(StatusCode::BAD_REQUEST, rejected, &e)),
        Err(SourceError::Store(e)) => Err(internal("verify account", &e)),
        Err(SourceError::Unusable(reason)) => Err(ApiError::bad_request(rejected, "body", reason)),
        // The sync engine's deadline check; a registration has no deadline of its own.
        Err(SourceError::OutOfTime) => Err(internal("verify account", &SourceError::OutOfTime)),
    }
}

/// The credentials first, then the row and the claim in one write: no failure in between can
/// leave the account claimed without a connection. A refused claim takes its credentials back.
async fn save(api: &LeadsApi, connection: &Connection, tokens: Option<&TokenSet>) -> Result<Response, ApiError> {
    if let Some(tokens) = tokens {
        api.vault
            .put_tokens(&connection.secret_id, tokens)
            .await
            .map_err(|e| internal("store credentials", &e))?;
    }
    match api.connections.upsert(connection).await {
        Ok(()) => {}
        Err(ClaimError::OwnedByAnotherTenant { .. }) => {
            if tokens.is_some()
                && let Err(e) = api.vault.schedule_deletion(&connection.secret_id).await
            {
                tracing::warn!(error = %e, "credentials of a refused claim not deleted");
            }
            return Err(ApiError::conflict(
                "ACCOUNT_CONFLICT",
                "this account is already connected to another tenant",
            ));
        }
        Err(ClaimError::Store(e)) => return Err(internal("save connection", &e)),
    }
    let body = json!({
        "connectionId": connection.id, "provider": connection.provider,
        "externalAccountId": connection.external_account_id, "status": connection.status,
    });
    Ok((StatusCode::CREATED, ok(body)).into_response())
}

/// `POST /accounts/feiyu`.
pub async fn register_feiyu(State(api): Api, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let body: FeiyuBody = json_body(&body)?;
    let advertiser = text_field(&body.advertiser_id, "advertiserId", true)?;
    let key = text_field(&body.signature_key, "signatureKey", false)?;
    let token = text_field(&body.token, "token", false)?;
    let connection = connection(&api, &identity.tenant, Provider::Feiyu, &advertiser);
    let tokens = TokenSet {
        provider: Provider::Feiyu,
        access_token: Secret::new(token),
        access_expires_at: connection.access_expires_at,
        refresh_token: Secret::new(""),
        refresh_expires_at: connection.refresh_expires_at,
        open_id: None,
        advertiser_ids: vec![advertiser],
        scopes: Vec::new(),
        renewals_used: 0,
        issued_at: api.clock.now(),
        signature_key: Some(Secret::new(key)),
    };
    verify(&api, &connection, Some(&tokens), "FEIYU_REJECTED").await?;
    save(&api, &connection, Some(&tokens)).await
}

/// `POST /accounts/laike`.
pub async fn register_laike(State(api): Api, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let body: LaikeBody = json_body(&body)?;
    let account = text_field(&body.account_id, "accountId", true)?;
    let connection = connection(&api, &identity.tenant, Provider::Laike, &account);
    verify(&api, &connection, None, "LAIKE_REJECTED").await?;
    save(&api, &connection, None).await
}
