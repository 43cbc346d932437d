//! The HTTP routes of every function on one router, over a chosen set of stores: the local run
//! uses the embedded stores, the integration tests DynamoDB and Secrets Manager on moto.

use crate::local_auth::{self, LocalJwt};
use axum::Router;
use shared::aws::AwsClients;
use shared::clock::Clock;
use shared::domain::AppCredentials;
use shared::export::dynamo::DynamoExportJobs;
use shared::export::memory::{MemoryExportJobs, MemorySink};
use shared::export::s3::S3Sink;
use shared::export::{ExportDeps, ExportJobs, ExportRequests, ExportSink};
use shared::store::dynamo::DynamoStateStore;
use shared::store::memory::{MemoryConnectionStore, MemoryStateStore, MemoryTokenVault};
use shared::store::{
    AppCredentialsSource, AuditLog, ConnectionStore, LeadStore, PendingGrantStore, StateStore, SyncLedger, TaskStore,
    TokenVault,
};
use shared::sync::SyncStores;
use shared::sync::requests::SyncRequests;
use std::collections::HashMap;

type ExportStores = (Arc<dyn ExportJobs>, Arc<dyn ExportSink>);

/// Runs a requested export job in this process, as the lead-export function does in AWS.
pub struct InProcessExportRequests(pub Arc<ExportDeps>);

#[async_trait::async_trait]
impl ExportRequests for InProcessExportRequests {
    async fn request(
        &self,
        tenant: &shared::domain::TenantId,
        export_id: &str,
    ) -> Result<(), shared::store::StoreError> {
        let (deps, tenant, id) = (self.0.clone(), tenant.clone(), export_id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = shared::export::job::run(&deps, &tenant, &id).await {
                tracing::error!(error = %e, "export job failed");
            }
        });
        Ok(())
    }
}
use std::sync::Arc;

#[derive(Clone)]
pub struct StoreSet {
    pub states: Arc<dyn StateStore>,
    pub pending: Arc<dyn PendingGrantStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub connections: Arc<dyn ConnectionStore>,
    pub ledger: Arc<dyn SyncLedger>,
    pub leads: Arc<dyn LeadStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub audit: Arc<dyn AuditLog>,
    pub export_jobs: Arc<dyn ExportJobs>,
    pub export_sink: Arc<dyn ExportSink>,
}

impl StoreSet {
    pub fn embedded(credentials: AppCredentials) -> Self {
        let vault = Arc::new(MemoryTokenVault::new(credentials));
        let sync = SyncStores::embedded(Arc::new(MemoryConnectionStore::default()), vault);
        Self::embedded_from(sync)
    }

    /// Embedded stores that tell every lead and connection write to a change feed, as
    /// DynamoDB Streams tell lead-events: the events land in the returned memory bus.
    pub fn embedded_with_events(
        credentials: AppCredentials,
        rules: shared::events::EventRules,
    ) -> (Self, Arc<shared::events::bus::MemoryEvents>) {
        let events = Arc::new(shared::events::bus::MemoryEvents::default());
        let feed = Arc::new(shared::events::feed::ChangeFeed::new(rules, events.clone()));
        let vault = Arc::new(MemoryTokenVault::new(credentials));
        let mut sync = SyncStores::embedded(Arc::new(MemoryConnectionStore::with_feed(feed.clone())), vault);
        sync.leads = Arc::new(shared::store::memory_leads::MemoryLeadStore::with_feed(feed));
        (Self::embedded_from(sync), events)
    }

    fn embedded_from(sync: SyncStores) -> Self {
        let audit = Arc::new(shared::store::memory_leads::MemoryAuditLog::default());
        let exports: ExportStores = (
            Arc::new(MemoryExportJobs::default()),
            Arc::new(MemorySink::new("/local/files")),
        );
        Self::from_sync(Arc::new(MemoryStateStore::default()), sync, audit, exports)
    }

    pub fn aws(aws: &AwsClients, config: &shared::Config) -> Self {
        let states = Arc::new(DynamoStateStore::new(aws.dynamodb.clone(), &config.tables.oauth_states));
        let audit = Arc::new(shared::store::dynamo_leads::DynamoAuditLog::new(
            aws.dynamodb.clone(),
            &config.tables.leads,
        ));
        let exports: ExportStores = (
            Arc::new(DynamoExportJobs::new(aws.dynamodb.clone(), &config.tables.leads)),
            Arc::new(S3Sink::new(aws.s3.clone(), &config.read.export_bucket)),
        );
        Self::from_sync(states, SyncStores::aws(aws, config), audit, exports)
    }

    fn from_sync<S: StateStore + PendingGrantStore + 'static>(
        states: Arc<S>,
        sync: SyncStores,
        audit: Arc<dyn AuditLog>,
        (export_jobs, export_sink): ExportStores,
    ) -> Self {
        Self {
            states: states.clone(),
            pending: states,
            vault: sync.vault,
            credentials: sync.credentials,
            connections: sync.connections,
            ledger: sync.ledger,
            leads: sync.leads,
            tasks: sync.tasks,
            audit,
            export_jobs,
            export_sink,
        }
    }

    /// What an export job runs on, over these stores.
    pub fn export_deps(&self) -> ExportDeps {
        ExportDeps {
            leads: self.leads.clone(),
            jobs: self.export_jobs.clone(),
            sink: self.export_sink.clone(),
            audit: self.audit.clone(),
            clock: Arc::new(shared::clock::SystemClock),
        }
    }

    pub fn callback(&self) -> auth_callback::Stores {
        auth_callback::Stores {
            states: self.states.clone(),
            pending: self.pending.clone(),
            vault: self.vault.clone(),
            credentials: self.credentials.clone(),
            connections: self.connections.clone(),
        }
    }

    pub fn sync(&self) -> SyncStores {
        SyncStores {
            connections: self.connections.clone(),
            ledger: self.ledger.clone(),
            leads: self.leads.clone(),
            tasks: self.tasks.clone(),
            vault: self.vault.clone(),
            credentials: self.credentials.clone(),
        }
    }
}

/// Every function's routes, behind the local token layer that stands in for API Gateway.
pub fn routes(
    config: &shared::Config,
    stores: &StoreSet,
    requests: Arc<dyn SyncRequests>,
    clock: Arc<dyn Clock>,
    jwt: LocalJwt,
) -> Router {
    let start = auth_url::service(config, stores.states.clone(), clock.clone());
    let finish = auth_callback::service(config, stores.callback(), clock.clone());
    let leads = leads_api::LeadsApi {
        leads: stores.leads.clone(),
        tasks: stores.tasks.clone(),
        connections: stores.connections.clone(),
        ledger: stores.ledger.clone(),
        vault: stores.vault.clone(),
        requests,
        audit: stores.audit.clone(),
        exports: leads_api::exports::ExportPorts {
            jobs: stores.export_jobs.clone(),
            sink: stores.export_sink.clone(),
            requests: Some(Arc::new(InProcessExportRequests(Arc::new(stores.export_deps())))),
        },
        catalog: Arc::new(shared::sync::catalog::SourceCatalog::from_config(
            config,
            stores.credentials.clone(),
            clock.clone(),
        )),
        secret_prefix: config.secrets.connection_prefix.clone(),
        task_ttl: chrono::Duration::from_std(config.sync.task_ttl).unwrap_or(chrono::Duration::days(30)),
        read: config.read.clone(),
        clock: clock.clone(),
    };
    auth_url::routes(Arc::new(start))
        .merge(auth_callback::routes(Arc::new(finish)))
        .merge(leads_api::routes(Arc::new(leads)))
        .layer(axum::middleware::from_fn_with_state(jwt, local_auth::layer))
}

/// Configuration that points both platforms at a simulator and the callback at `public_base`.
pub fn simulator_env(sim_base: &str, public_base: &str, sim: &crate::sim::SimApp) -> HashMap<String, String> {
    HashMap::from([
        ("DOUYIN_BASE_URL".into(), sim_base.into()),
        ("OCEANENGINE_API_BASE_URL".into(), sim_base.into()),
        ("OCEANENGINE_AUTH_BASE_URL".into(), sim_base.into()),
        ("DOUYIN_CLIENT_KEY".into(), sim.douyin_client_key.clone()),
        ("OCEANENGINE_APP_ID".into(), sim.oceanengine_app_id.clone()),
        (
            "OAUTH_CALLBACK_URL".into(),
            format!("{public_base}{}", auth_callback::ROUTE),
        ),
        (
            "ALLOWED_REDIRECT_ORIGINS".into(),
            format!("{public_base},http://localhost:3000,https://app.example.com"),
        ),
        ("FEIYU_BASE_URL".into(), sim_base.into()),
        ("HTTP_TIMEOUT_MS".into(), "2000".into()),
        ("HTTP_RETRY_BASE_MS".into(), "10".into()),
        ("HTTP_RETRY_MAX_MS".into(), "50".into()),
    ])
}
