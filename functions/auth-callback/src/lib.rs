//! `GET /api/v1/lead/douyin/auth/callback`: the public route both platforms redirect back to.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use shared::clock::Clock;
use shared::connect::{CallbackOutcome, CallbackParams, ConnectFinish};
use shared::http::{ApiError, QueryParams, ok, route_not_found};
use shared::platform::douyin::DouyinClient;
use shared::platform::http::PlatformHttp;
use shared::platform::oceanengine::OceanEngineClient;
use shared::store::{AppCredentialsSource, ConnectionStore, StateStore, TokenVault};
use std::sync::Arc;
use url::Url;

pub const ROUTE: &str = "/api/v1/lead/douyin/auth/callback";

/// The stores the callback writes to.
pub struct Stores {
    pub states: Arc<dyn StateStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub connections: Arc<dyn ConnectionStore>,
}

pub fn service(config: &shared::Config, stores: Stores, clock: Arc<dyn Clock>) -> ConnectFinish {
    let http = PlatformHttp::new(&config.http);
    ConnectFinish {
        states: stores.states,
        vault: stores.vault,
        credentials: stores.credentials,
        connections: stores.connections,
        douyin: DouyinClient::new(http.clone(), &config.douyin),
        oceanengine: OceanEngineClient::new(http, &config.oceanengine),
        secret_prefix: config.secrets.connection_prefix.clone(),
        clock,
    }
}

/// The route without a fallback, for merging into a larger router (the local run).
pub fn routes(service: Arc<ConnectFinish>) -> Router {
    Router::new().route(ROUTE, get(callback)).with_state(service)
}

pub fn router(service: Arc<ConnectFinish>) -> Router {
    routes(service).fallback(route_not_found)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connected {
    message: &'static str,
    user_id: String,
    douyin_user_id: String,
    connection_id: String,
    provider: &'static str,
}

async fn callback(State(service): State<Arc<ConnectFinish>>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref())?;
    let params = CallbackParams {
        state: query.get("state").map(str::to_owned),
        // An empty code is no code (the consent was refused), never one to exchange.
        code: query.get("code").filter(|c| !c.is_empty()).map(str::to_owned),
        auth_code: query.get("auth_code").filter(|c| !c.is_empty()).map(str::to_owned),
    };
    Ok(render(service.finish(params).await))
}

/// With a redirect target every outcome goes back to the frontend; without one, JSON.
fn render(outcome: CallbackOutcome) -> Response {
    match (outcome.redirect_url, outcome.result) {
        (Some(target), Ok(c)) => redirect(
            &target,
            &[
                ("status", "success"),
                ("connectionId", c.id.as_str()),
                ("provider", c.provider.as_str()),
            ],
        ),
        (Some(target), Err(e)) => redirect(&target, &[("status", "error"), ("reason", e.reason())]),
        (None, Ok(c)) => ok(Connected {
            message: "授权成功",
            user_id: c.tenant.to_string(),
            douyin_user_id: c.external_account_id,
            connection_id: c.id.to_string(),
            provider: c.provider.as_str(),
        }),
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
