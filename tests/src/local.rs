//! The one-command local run: the platform simulator, the embedded stores and every HTTP route
//! on one port, with locally signed tokens standing in for the JWT authorizer.

use crate::app::{self, StoreSet};
use crate::local_auth::{ALL_SCOPES, LocalJwt};
use crate::sim::{SimApp, SimHandle, SimSource};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use shared::clock::SystemClock;
use shared::domain::AppCredentials;
use shared::export::memory::MemorySink;
use shared::http::{ApiError, Identity, ok, route_not_found};
use shared::import::memory::DirectoryFiles;
use shared::lead::mask_phone;
use shared::secret::Secret;
use shared::sync::SyncEngine;
use shared::sync::fanout;
use std::collections::HashMap;
use std::sync::Arc;

pub struct LocalOptions {
    pub host: String,
    pub port: u16,
    pub jwt_secret: String,
    /// How often the scheduler syncs every active connection; `None` leaves it to `/local/sync`.
    pub sync_interval: Option<std::time::Duration>,
}

impl LocalOptions {
    /// `LOCAL_HOST` (127.0.0.1), `LOCAL_PORT` (8080), `LOCAL_JWT_SECRET` (a fixed dev secret),
    /// `LOCAL_SYNC_INTERVAL_SECS` (30; 0 turns the scheduler off).
    pub fn from_env() -> Result<Self, String> {
        let port = match std::env::var("LOCAL_PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| format!("LOCAL_PORT must be a port number, got {p:?}"))?,
            Err(_) => 8080,
        };
        let interval: u64 = match std::env::var("LOCAL_SYNC_INTERVAL_SECS") {
            Ok(v) => v
                .parse()
                .map_err(|_| format!("LOCAL_SYNC_INTERVAL_SECS must be a number of seconds, got {v:?}"))?,
            Err(_) => 30,
        };
        Ok(Self {
            host: std::env::var("LOCAL_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
            port,
            jwt_secret: std::env::var("LOCAL_JWT_SECRET").unwrap_or_else(|_| "douyin-leads-local-dev-secret".into()),
            sync_interval: (interval > 0).then(|| std::time::Duration::from_secs(interval)),
        })
    }
}

#[derive(Clone)]
struct LocalState {
    jwt: LocalJwt,
    stores: StoreSet,
    engine: Arc<SyncEngine>,
    events: Arc<shared::events::bus::MemoryEvents>,
}

/// Builds the whole local system; the caller serves it on `options.host:options.port`. The
/// scheduler, when on, is spawned here and stops with the runtime.
pub fn build(options: &LocalOptions) -> Result<Router, shared::config::ConfigError> {
    let public = format!("http://{}:{}", options.host, options.port);
    let sim_app = SimApp::default();
    // Real env wins over the local defaults, so any setting can be tried locally.
    let mut env = app::simulator_env(&format!("{public}/sim"), &public, &sim_app);
    env.extend(std::env::vars().filter(|(k, _)| shared_var(k)));
    let config = shared::Config::from_lookup(|k| env.get(k).cloned())?;
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let (mut stores, events) = StoreSet::embedded_with_events(
        AppCredentials {
            douyin_client_secret: Secret::new(sim_app.douyin_client_secret.clone()),
            oceanengine_secret: Secret::new(sim_app.oceanengine_secret.clone()),
        },
        shared::events::EventRules::from_config(&config),
        shared::events::bus::MemoryEvents::forwarding(changes),
    );
    // Export files stay in memory; their "download links" are served here, like presigned URLs.
    let files = MemorySink::new(format!("{public}/local/files"));
    stores.export_sink = Arc::new(files.clone());
    // Uploaded import files go to a directory; their "upload links" are a PUT served here.
    let upload_dir = std::env::var("LOCAL_UPLOAD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("douyin-leads-uploads-{}", std::process::id())));
    std::fs::create_dir_all(&upload_dir).map_err(|e| shared::config::ConfigError {
        problems: vec![format!("LOCAL_UPLOAD_DIR {} cannot be made: {e}", upload_dir.display())],
    })?;
    let uploads = Arc::new(DirectoryFiles::new(upload_dir, format!("{public}/local/uploads")));
    stores.import_files = uploads.clone();
    let jwt = LocalJwt::new(&options.jwt_secret, &config.tenant_claim);
    let sim = SimHandle::new(sim_app);
    seed_demo_leads(&sim);
    let engine = Arc::new(SyncEngine::new(&config, stores.sync(), Arc::new(SystemClock)));
    if let Some(every) = options.sync_interval {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = engine.sweep_pending_grants().await {
                    tracing::warn!(error = %e, "sweeping expired pending grants failed");
                }
                if let Err(e) = fanout::schedule(&engine, None, None).await {
                    tracing::error!(error = %e, "local scheduled sync failed");
                }
            }
        });
    }
    // Webhooks, bots and write-backs: every event the change feed makes is fanned out, and the
    // in-process queue is pumped, as lead-events does from the stream and SQS in AWS.
    let outbound = Arc::new(stores.outbound(&config, Arc::new(SystemClock)));
    {
        let outbound = outbound.clone();
        tokio::spawn(async move {
            while let Some(batch) = changed.recv().await {
                if let Err(e) = outbound.fan_out(&batch).await {
                    tracing::warn!(error = %e, "local webhook fan-out failed");
                }
            }
        });
    }
    if let Some(queue) = stores.memory_queue.clone() {
        tokio::spawn(crate::outbound::pump(
            queue,
            outbound,
            std::time::Duration::from_millis(200),
        ));
    }
    let local = Router::new()
        .route("/local/token", get(mint_token))
        .route("/local/connections", get(connections))
        .route("/local/leads", get(leads))
        .route("/local/events", get(outbound_events))
        .route("/local/sync", post(sync_now))
        .route("/local/done", get(done))
        .layer(axum::middleware::from_fn_with_state(
            jwt.clone(),
            crate::local_auth::layer,
        ))
        .with_state(LocalState {
            jwt: jwt.clone(),
            stores: stores.clone(),
            engine: engine.clone(),
            events,
        });
    let requests = Arc::new(crate::sync_requests::InProcessSyncRequests(engine.clone()));
    let downloads = Router::new()
        .route("/local/files/exports/{file}", get(download))
        .with_state(files);
    let upload_limit = usize::try_from(config.import.max_bytes).unwrap_or(usize::MAX);
    let uploads = Router::new()
        .route("/local/uploads/imports/{file}", axum::routing::put(upload))
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit))
        .with_state(uploads);
    // A webhook receiver of the local run's own, so a subscription can be tried without one.
    let received = LocalReceiver::default();
    let receiver = Router::new()
        .route("/local/receiver", post(receive))
        .route("/local/received", get(list_received))
        .with_state(received);
    Ok(app::routes(&config, &stores, requests, Arc::new(SystemClock), jwt)
        .merge(local)
        .merge(downloads)
        .merge(uploads)
        .merge(receiver)
        .nest("/sim", sim.router())
        .fallback(route_not_found))
}

/// Leads the simulator holds for the accounts its consent pages grant by default, so a local
/// connection has something to sync.
fn seed_demo_leads(sim: &SimHandle) {
    let month = chrono::Duration::days(20);
    sim.seed_leads(SimSource::Fans, DEMO_DOUYIN_ACCOUNT, 60, month);
    sim.seed_leads(SimSource::OceanEngineClue, DEMO_OCEANENGINE_ACCOUNT, 150, month);
    sim.seed_leads(SimSource::OceanEngineLife, DEMO_OCEANENGINE_ACCOUNT, 80, month);
}

/// The simulated users behind the consent pages when no `sim_account` is given.
pub const DEMO_DOUYIN_ACCOUNT: &str = "open-sim-user-1";
pub const DEMO_OCEANENGINE_ACCOUNT: &str = "1769665409798152";

fn shared_var(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "DOUYIN_",
        "OCEANENGINE_",
        "OAUTH_",
        "ALLOWED_",
        "HTTP_",
        "TENANT_",
        "SYNC_",
        "LAIKE_",
        "FEIYU_",
        "FANS_",
        "TOKEN_",
        "REFRESH_TOKEN_",
        "CONNECTION_QPS",
        "LEADS_",
        "EXPORT_",
        "IMPORT_",
    ];
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

/// `GET /local/leads`: the caller's leads, newest first, phones masked (until the lead API serves them).
/// `GET /local/events`: the caller's outbound events, oldest first, as lead-events would put
/// them on the bus (the embedded stores' change feed stands in for DynamoDB Streams).
async fn outbound_events(State(s): State<LocalState>, identity: Identity) -> axum::response::Response {
    let mine: Vec<serde_json::Value> = s
        .events
        .all()
        .into_iter()
        .map(|e| e.detail)
        .filter(|d| d["tenant"] == identity.tenant.as_str())
        .collect();
    ok(mine)
}

async fn leads(State(s): State<LocalState>, identity: Identity) -> Result<axum::response::Response, ApiError> {
    let list = s
        .stores
        .leads
        .list_all(&identity.tenant)
        .await
        .map_err(|e| ApiError::internal("list leads", &e))?;
    let rows: Vec<_> = list
        .into_iter()
        .map(|l| {
            serde_json::json!({
                "leadId": l.lead_id, "source": l.source, "connectionId": l.connection_id,
                "name": l.fields.name, "nickname": l.fields.nickname,
                "phone": l.fields.phone.as_deref().map(mask_phone), "clueType": l.fields.clue_type,
                "createdAt": l.fields.created_at, "status": l.status, "duplicateOf": l.duplicate_of,
            })
        })
        .collect();
    Ok(ok(serde_json::json!({"total": rows.len(), "records": rows})))
}

/// `POST /local/sync`: syncs every active connection now instead of waiting for the scheduler.
async fn sync_now(State(s): State<LocalState>, _identity: Identity) -> Result<axum::response::Response, ApiError> {
    let report = fanout::schedule(&s.engine, None, None)
        .await
        .map_err(|e| ApiError::internal("sync", &e))?;
    Ok(ok(serde_json::json!({
        "due": report.due, "completed": report.completed, "partial": report.partial,
        "failed": report.failed, "skipped": report.skipped,
    })))
}

/// `GET /local/files/exports/{file}`: an export's file, for the link `GET /leads/exports/{id}`
/// hands out (in AWS, a presigned S3 URL).
async fn download(
    State(files): State<MemorySink>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    match files.file(&format!("exports/{file}")) {
        Some(bytes) => (
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::not_found("EXPORT_NOT_FOUND", "no such export file").into_response(),
    }
}

/// `PUT /local/uploads/imports/{file}`: an import's file, to the link `POST /imports` hands out
/// (in AWS, a presigned S3 PUT). Bodies over `IMPORT_MAX_MB` are refused with 413.
async fn upload(
    State(files): State<Arc<DirectoryFiles>>,
    axum::extract::Path(file): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let Some(path) = files.path_of(&format!("imports/{file}")) else {
        return ApiError::not_found("UPLOAD_NOT_FOUND", "not an import's upload link").into_response();
    };
    match tokio::fs::write(&path, &body).await {
        Ok(()) => axum::http::StatusCode::OK.into_response(),
        Err(e) => ApiError::internal("write upload", &e).into_response(),
    }
}

/// `GET /local/done`: stands in for the frontend page the callback redirects to. A real frontend
/// would now POST the ticket to `…/auth/confirm` with its user's JWT; this page shows how.
async fn done(RawQuery(raw): RawQuery) -> Html<String> {
    let q = raw.unwrap_or_default();
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
    let ticket = url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned());
    let next = match ticket {
        Some(t) => format!(
            "<p>confirm it as the tenant that started the flow:</p><pre>curl -X POST -H \"Authorization: Bearer $TOKEN\" \\\n  -H 'content-type: application/json' -d '{{\"ticket\":\"{}\"}}' \\\n  \"$B/api/v1/lead/douyin/auth/confirm\"</pre>",
            escape(&t)
        ),
        None => String::new(),
    };
    Html(format!(
        "<h1>back in the app</h1><p>callback outcome: <code>{}</code></p>{next}",
        escape(&q)
    ))
}

/// What `/local/receiver` was sent, newest last (the last 200).
#[derive(Clone, Default)]
struct LocalReceiver(Arc<std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>>);

/// `POST /local/receiver`: answers 200 and keeps the delivery (headers that matter, raw body).
async fn receive(
    State(r): State<LocalReceiver>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut kept = r.0.lock().unwrap_or_else(|e| e.into_inner());
    kept.push_back(serde_json::json!({
        "eventId": header("x-leads-event-id"), "eventType": header("x-leads-event-type"),
        "signature": header("x-leads-signature"), "body": String::from_utf8_lossy(&body),
    }));
    while kept.len() > 200 {
        kept.pop_front();
    }
    axum::http::StatusCode::OK
}

/// `GET /local/received`: the deliveries `/local/receiver` got, oldest first.
async fn list_received(State(r): State<LocalReceiver>) -> axum::response::Response {
    let kept = r.0.lock().unwrap_or_else(|e| e.into_inner());
    ok(kept.iter().cloned().collect::<Vec<_>>())
}
