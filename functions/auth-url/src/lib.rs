//! `GET /api/v1/lead/douyin/auth/url`: a consent link for Douyin or Ocean Engine.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use shared::clock::Clock;
use shared::connect::ConnectStart;
use shared::http::{ApiError, Identity, QueryParams, ok, route_not_found};
use shared::store::StateStore;
use std::sync::Arc;

pub const ROUTE: &str = "/api/v1/lead/douyin/auth/url";
pub const SCOPE: &str = "lead:douyin:auth:get_url";

pub fn service(config: &shared::Config, states: Arc<dyn StateStore>, clock: Arc<dyn Clock>) -> ConnectStart {
    ConnectStart {
        oauth: config.oauth.clone(),
        douyin: config.douyin.clone(),
        oceanengine: config.oceanengine.clone(),
        states,
        clock,
    }
}

/// The route without a fallback, for merging into a larger router (the local run).
pub fn routes(service: Arc<ConnectStart>) -> Router {
    Router::new().route(ROUTE, get(auth_url)).with_state(service)
}

pub fn router(service: Arc<ConnectStart>) -> Router {
    routes(service).fallback(route_not_found)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthUrlData {
    auth_url: String,
    state: String,
    expires_at: String,
    provider: &'static str,
}

async fn auth_url(
    State(service): State<Arc<ConnectStart>>,
    identity: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    identity.require(SCOPE)?;
    let query = QueryParams::parse(raw.as_deref())?;
    let link = service
        .start(&identity.tenant, query.get("provider"), query.get("redirectUrl"))
        .await?;
    Ok(ok(AuthUrlData {
        auth_url: link.auth_url.to_string(),
        state: link.state,
        expires_at: link.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        provider: link.provider.as_str(),
    }))
}
