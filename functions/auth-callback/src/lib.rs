//! The end of the connect flow: `GET /api/v1/lead/douyin/auth/callback`, the public route both
//! platforms redirect back to, which leaves the grant pending behind a one-time ticket; and
//! `POST /api/v1/lead/douyin/auth/confirm` (JWT), where the frontend of the tenant that started
//! the flow turns the ticket into an ACTIVE connection.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use shared::clock::Clock;
use shared::connect::{CallbackOutcome, CallbackParams, ConnectConfirm, ConnectFinish};
use shared::http::{ApiError, Identity, QueryParams, json_body, ok, route_not_found};
use shared::platform::douyin::DouyinClient;
use shared::platform::http::PlatformHttp;
use shared::platform::oceanengine::OceanEngineClient;
use shared::store::{AppCredentialsSource, ConnectionStore, PendingGrantStore, StateStore, TokenVault};
use std::sync::Arc;
use url::Url;

pub const ROUTE: &str = "/api/v1/lead/douyin/auth/callback";
pub const CONFIRM_ROUTE: &str = "/api/v1/lead/douyin/auth/confirm";
/// Whoever may start a connection may finish it.
pub const SCOPE: &str = "lead:douyin:auth:get_url";

/// The stores the callback and the confirmation write to.
pub struct Stores {
    pub states: Arc<dyn StateStore>,
    pub pending: Arc<dyn PendingGrantStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub connections: Arc<dyn ConnectionStore>,
}

/// Both steps, as the function serves them.
pub struct Service {
    pub finish: ConnectFinish,
    pub confirm: ConnectConfirm,
}

pub fn service(config: &shared::Config, stores: Stores, clock: Arc<dyn Clock>) -> Service {
    let http = PlatformHttp::new(&config.http);
    let pending_ttl = chrono::Duration::from_std(config.oauth.pending_ttl).unwrap_or(chrono::Duration::minutes(10));
    Service {
        finish: ConnectFinish {
            states: stores.states,
            pending: stores.pending.clone(),
            vault: stores.vault.clone(),
            credentials: stores.credentials,
            douyin: DouyinClient::new(http.clone(), &config.douyin),
            oceanengine: OceanEngineClient::new(http, &config.oceanengine),
            secret_prefix: config.secrets.connection_prefix.clone(),
            pending_ttl,
            clock: clock.clone(),
        },
        confirm: ConnectConfirm {
            pending: stores.pending,
            vault: stores.vault,
            connections: stores.connections,
            secret_prefix: config.secrets.connection_prefix.clone(),
            clock,
        },
    }
}

/// The routes without a fallback, for merging into a larger router (the local run).
pub fn routes(service: Arc<Service>) -> Router {
    Router::new()
        .route(ROUTE, get(callback))
        .route(CONFIRM_ROUTE, post(confirm))
        .with_state(service)
}

pub fn router(service: Arc<Service>) -> Router {
    routes(service).fallback(route_not_found)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pending {
    message: &'static str,
    status: &'static str,
    ticket: String,
    provider: &'static str,
    expires_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    ticket: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Confirmed {
    connection_id: String,
    provider: &'static str,
    external_account_id: String,
    status: &'static str,
}

/// What the pending status is called on the wire (redirect and JSON).
pub const PENDING_CONFIRMATION: &str = "PENDING_CONFIRMATION";

async fn confirm(State(service): State<Arc<Service>>, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
    identity.require(SCOPE)?;
    let body: ConfirmBody = json_body(&body)?;
    let c = service.confirm.confirm(&identity.tenant, &body.ticket).await?;
    Ok(ok(Confirmed {
        connection_id: c.id.to_string(),
        provider: c.provider.as_str(),
        external_account_id: c.external_account_id,
        status: c.status.as_str(),
    }))
}

async fn callback(State(service): State<Arc<Service>>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref())?;
    let params = CallbackParams {
        state: query.get("state").map(str::to_owned),
        // An empty code is no code (the consent was refused), never one to exchange.
        code: query.get("code").filter(|c| !c.is_empty()).map(str::to_owned),
        auth_code: query.get("auth_code").filter(|c| !c.is_empty()).map(str::to_owned),
    };
    Ok(render(service.finish.finish(params).await))
}

/// With a redirect target every outcome goes back to the frontend; without one, JSON.
fn render(outcome: CallbackOutcome) -> Response {
    match (outcome.redirect_url, outcome.result) {
        (Some(target), Ok(p)) => redirect(
            &target,
            &[
                ("status", "pending_confirmation"),
                ("ticket", p.ticket.as_str()),
                ("provider", p.provider.as_str()),
            ],
        ),
        (Some(target), Err(e)) => redirect(&target, &[("status", "error"), ("reason", e.reason())]),
        // The ticket is a credential until confirmed: no cache may keep the answer.
        (None, Ok(p)) => (
            [(header::CACHE_CONTROL, "no-store")],
            ok(Pending {
                message: "授权成功，等待确认",
                status: PENDING_CONFIRMATION,
                ticket: p.ticket,
                provider: p.provider.as_str(),
                expires_at: p.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }),
        )
            .into_response(),
        (None, Err(e)) => ApiError::from(e).into_response(),
    }
}

fn redirect(target: &str, params: &[(&str, &str)]) -> Response {
    // The target passed the allow-list when the state was issued, so it parses.
    let Ok(mut url) = Url::parse(target) else {
        return ApiError::bad_request("REDIRECT_NOT_ALLOWED", "redirectUrl", "stored redirect is not a URL")
            .into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}
