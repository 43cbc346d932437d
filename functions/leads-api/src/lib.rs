//! The lead API under `/api/v1/lead/douyin`: leads (list, detail, status work, history,
//! export), sync tasks and the tenant's connections. Every route needs the JWT authorizer's
//! identity and a scope; every read is scoped to the caller's tenant, and another tenant's lead
//! is simply not found. This module only routes; each resource has its own.

pub mod accounts;
pub mod analytics;
pub mod export;
pub mod exports;
pub mod history;
pub mod imports;
pub mod leads;
pub mod params;
pub mod register;
pub mod tasks;
pub mod webhooks;
pub use shared::lead_view as view;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use shared::clock::Clock;
use shared::config::ReadConfig;
use shared::http::{ApiError, Identity, route_not_found};
use shared::lead_query::CursorCodec;
use shared::store::{AuditLog, ConnectionStore, LeadStore, SyncLedger, TaskStore, TokenVault};
use shared::sync::requests::SyncRequests;
use std::sync::Arc;

pub const BASE: &str = "/api/v1/lead/douyin";
pub const SCOPE_VIEW: &str = "lead:douyin:leads:view";
pub const SCOPE_PHONE: &str = "lead:douyin:leads:phone";
pub const SCOPE_EDIT: &str = "lead:douyin:leads:edit";
pub const SCOPE_EXPORT: &str = "lead:douyin:leads:export";
pub const SCOPE_SYNC: &str = "lead:douyin:fans:sync";
/// Disconnecting gives an account up (its claim released), so it has a scope of its own.
pub const SCOPE_DISCONNECT: &str = "lead:douyin:accounts:delete";
pub const MAX_NOTES_CHARS: usize = 2000;
/// PATCH bodies are a status, notes and a version: anything bigger is not one.
pub use shared::http::body::MAX_BODY_BYTES;

pub struct LeadsApi {
    pub leads: Arc<dyn LeadStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub ledger: Arc<dyn SyncLedger>,
    pub vault: Arc<dyn TokenVault>,
    pub requests: Arc<dyn SyncRequests>,
    pub audit: Arc<dyn AuditLog>,
    pub exports: exports::ExportPorts,
    pub imports: imports::ImportPorts,
    /// The lead sources, to verify accounts registered without OAuth with one real pull.
    pub catalog: Arc<shared::sync::catalog::SourceCatalog>,
    pub secret_prefix: String,
    pub task_ttl: chrono::Duration,
    pub read: ReadConfig,
    pub clock: Arc<dyn Clock>,
    /// Ocean Engine spend rows (cost per lead).
    pub spend: Arc<dyn shared::spend::store::SpendStore>,
    /// Which status moves are written back to the platforms, and how.
    pub writeback: shared::writeback::WriteBackConfig,
    /// Outbound subscriptions; `None` answers 503 on their routes.
    pub webhooks: Option<webhooks::WebhookPorts>,
}

impl LeadsApi {
    pub(crate) fn cursors(&self) -> CursorCodec {
        CursorCodec::new(&self.read.cursor_key)
    }
}

pub(crate) type Api = State<Arc<LeadsApi>>;

/// The routes without a fallback, for merging into a larger router (the local run).
pub fn routes(api: Arc<LeadsApi>) -> Router {
    Router::new()
        .route(&format!("{BASE}/leads"), get(leads::list_leads))
        .route(&format!("{BASE}/leads/export"), get(export::export_leads))
        .route(&format!("{BASE}/leads/exports"), post(exports::start_export))
        .route(&format!("{BASE}/leads/exports/{{exportId}}"), get(exports::get_export))
        .route(
            &format!("{BASE}/leads/{{leadId}}"),
            get(leads::get_lead).patch(leads::patch_lead),
        )
        .route(&format!("{BASE}/leads/{{leadId}}/history"), get(history::lead_history))
        .route(&format!("{BASE}/sync/tasks/{{taskId}}"), get(tasks::get_task))
        .route(&format!("{BASE}/fans/sync"), post(tasks::start_sync))
        .route(&format!("{BASE}/accounts"), get(accounts::list_accounts))
        .route(&format!("{BASE}/analytics/cost"), get(analytics::cost))
        .route(&format!("{BASE}/analytics/cost.csv"), get(analytics::cost_csv))
        .route(&format!("{BASE}/accounts/feiyu"), post(register::register_feiyu))
        .route(&format!("{BASE}/accounts/laike"), post(register::register_laike))
        .route(
            &format!("{BASE}/accounts/{{connectionId}}"),
            axum::routing::delete(accounts::disconnect).patch(accounts::patch_account),
        )
        .route(&format!("{BASE}/imports"), post(imports::create))
        .route(&format!("{BASE}/imports/{{importId}}"), get(imports::get))
        .route(&format!("{BASE}/imports/{{importId}}/start"), post(imports::start))
        .route(&format!("{BASE}/webhooks"), get(webhooks::list).post(webhooks::create))
        .route(
            &format!("{BASE}/webhooks/{{webhookId}}"),
            axum::routing::delete(webhooks::delete),
        )
        .route(
            &format!("{BASE}/webhooks/{{webhookId}}/deliveries"),
            get(webhooks::deliveries),
        )
        .route(
            &format!("{BASE}/webhooks/{{webhookId}}/deliveries/{{deliveryId}}/retry"),
            post(webhooks::retry),
        )
        .with_state(api)
}

pub fn router(api: Arc<LeadsApi>) -> Router {
    routes(api).fallback(route_not_found)
}

pub(crate) fn internal(context: &str, e: &dyn std::error::Error) -> ApiError {
    ApiError::internal(context, e)
}

/// Whether `id` could be one of our ids (`l_…`, `c_…`, `t_…`, `i_…`). Anything else cannot exist, and
/// must not reach DynamoDB, whose key size limit would turn a silly id into a server error.
pub(crate) fn plausible_id(id: &str, prefix: &str) -> bool {
    id.starts_with(prefix) && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn actor(identity: &Identity) -> String {
    identity.subject.clone().unwrap_or_else(|| identity.tenant.to_string())
}

pub(crate) use shared::http::json_body;
