//! The one-command local run: the platform simulator, the embedded stores and every HTTP route
//! on one port, with locally signed tokens standing in for the JWT authorizer.

use crate::app::{self, StoreSet};
use crate::local_auth::{ALL_SCOPES, LocalJwt};
use crate::sim::{SimApp, SimHandle};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use shared::clock::SystemClock;
use shared::domain::AppCredentials;
use shared::http::{ApiError, Identity, ok, route_not_found};
use shared::secret::Secret;
use std::collections::HashMap;
use std::sync::Arc;

pub struct LocalOptions {
    pub host: String,
    pub port: u16,
    pub jwt_secret: String,
}

impl LocalOptions {
    /// `LOCAL_HOST` (127.0.0.1), `LOCAL_PORT` (8080), `LOCAL_JWT_SECRET` (a fixed dev secret).
    pub fn from_env() -> Result<Self, String> {
        let port = match std::env::var("LOCAL_PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| format!("LOCAL_PORT must be a port number, got {p:?}"))?,
            Err(_) => 8080,
        };
        Ok(Self {
            host: std::env::var("LOCAL_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
            port,
            jwt_secret: std::env::var("LOCAL_JWT_SECRET").unwrap_or_else(|_| "douyin-leads-local-dev-secret".into()),
        })
    }
}

#[derive(Clone)]
struct LocalState {
    jwt: LocalJwt,
    stores: StoreSet,
}

/// Builds the whole local system; the caller serves it on `options.host:options.port`.
pub fn build(options: &LocalOptions) -> Result<Router, shared::config::ConfigError> {
    let public = format!("http://{}:{}", options.host, options.port);
    let sim_app = SimApp::default();
    // Real env wins over the local defaults, so any setting can be tried locally.
    let mut env = app::simulator_env(&format!("{public}/sim"), &public, &sim_app);
    env.extend(std::env::vars().filter(|(k, _)| shared_var(k)));
    let config = shared::Config::from_lookup(|k| env.get(k).cloned())?;
    let stores = StoreSet::embedded(AppCredentials {
        douyin_client_secret: Secret::new(sim_app.douyin_client_secret.clone()),
        oceanengine_secret: Secret::new(sim_app.oceanengine_secret.clone()),
    });
    let jwt = LocalJwt::new(&options.jwt_secret, &config.tenant_claim);
    let local = Router::new()
        .route("/local/token", get(mint_token))
        .route("/local/connections", get(connections))
        .route("/local/done", get(done))
        .layer(axum::middleware::from_fn_with_state(
            jwt.clone(),
            crate::local_auth::layer,
        ))
        .with_state(LocalState {
            jwt: jwt.clone(),
            stores: stores.clone(),
        });
    Ok(app::routes(&config, &stores, Arc::new(SystemClock), jwt)
        .merge(local)
        .nest("/sim", SimHandle::new(sim_app).router())
        .fallback(route_not_found))
}

fn shared_var(name: &str) -> bool {
    const PREFIXES: &[&str] = &["DOUYIN_", "OCEANENGINE_", "OAUTH_", "ALLOWED_", "HTTP_", "TENANT_"];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// `GET /local/token?tenant=demo&scopes=a,b`: a token for curl. All scopes unless narrowed.
async fn mint_token(State(s): State<LocalState>, RawQuery(raw): RawQuery) -> impl IntoResponse {
    let q: HashMap<String, String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let tenant = q.get("tenant").map_or("demo-tenant", String::as_str);
    let scopes: Vec<&str> = match q.get("scopes") {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
        None => ALL_SCOPES.to_vec(),
    };
    s.jwt.mint(tenant, &scopes, chrono::Duration::hours(12))
}

/// `GET /local/connections`: the caller's connections (no tokens), to see the result of a connect.
async fn connections(State(s): State<LocalState>, identity: Identity) -> Result<axum::response::Response, ApiError> {
    let list = s
        .stores
        .connections
        .list(&identity.tenant)
        .await
        .map_err(|e| ApiError::internal("list", &e))?;
    let rows: Vec<_> = list
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "connectionId": c.id, "provider": c.provider, "externalAccountId": c.external_account_id,
                "advertiserIds": c.advertiser_ids, "scopes": c.scopes, "status": c.status,
                "accessExpiresAt": c.access_expires_at, "refreshExpiresAt": c.refresh_expires_at,
            })
        })
        .collect();
    Ok(ok(rows))
}

/// `GET /local/done`: stands in for the frontend page the callback redirects to.
async fn done(RawQuery(raw): RawQuery) -> Html<String> {
    let q = raw.unwrap_or_default();
    let escaped = q.replace('&', "&amp;").replace('<', "&lt;");
    Html(format!(
        "<h1>back in the app</h1><p>callback outcome: <code>{escaped}</code></p>"
    ))
}
