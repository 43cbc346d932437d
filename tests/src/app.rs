//! The HTTP routes of every function on one router, over a chosen set of stores: the local run
//! uses the embedded stores, the integration tests DynamoDB and Secrets Manager on moto.

use crate::local_auth::{self, LocalJwt};
use axum::Router;
use shared::aws::AwsClients;
use shared::clock::Clock;
use shared::domain::AppCredentials;
use shared::events::bus::EventPublisher;
use shared::export::dynamo::DynamoExportJobs;
use shared::export::memory::{MemoryExportJobs, MemorySink};
use shared::export::s3::S3Sink;
use shared::export::{ExportDeps, ExportJobs, ExportRequests, ExportSink};
use shared::import::dynamo::DynamoImportJobs;
use shared::import::memory::{DirectoryFiles, MemoryImportJobs};
use shared::import::s3::S3ImportFiles;
use shared::import::{ImportDeps, ImportFiles, ImportJobs, ImportRequests};
use shared::outbound::deliver::Deliverer;
use shared::outbound::dynamo::DynamoDeliveryStore;
use shared::outbound::memory::MemoryDeliveryStore;
use shared::outbound::queue::{DeliveryQueue, MemoryDeliveryQueue, SqsDeliveryQueue};
use shared::outbound::sender::HttpTransport;
use shared::outbound::{DeliveryRules, DeliveryStore};
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
type ImportStores = (Arc<dyn ImportJobs>, Arc<dyn ImportFiles>);

struct Outbound {
    deliveries: Arc<dyn DeliveryStore>,
    queue: Arc<dyn DeliveryQueue>,
    memory_queue: Option<Arc<MemoryDeliveryQueue>>,
    publisher: Arc<dyn EventPublisher>,
}

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

/// Runs a requested import in this process, as the lead-import function does in AWS (with no
/// deadline, so it never needs continuing).
#[derive(Clone)]
pub struct InProcessImportRequests {
    pub leads: Arc<dyn LeadStore>,
    pub jobs: Arc<dyn ImportJobs>,
    pub files: Arc<dyn ImportFiles>,
}

impl InProcessImportRequests {
    pub fn deps(&self) -> ImportDeps {
        ImportDeps {
            leads: self.leads.clone(),
            jobs: self.jobs.clone(),
            files: self.files.clone(),
            requests: Arc::new(self.clone()),
            clock: Arc::new(shared::clock::SystemClock),
        }
    }
}

#[async_trait::async_trait]
impl ImportRequests for InProcessImportRequests {
    async fn request(
        &self,
        tenant: &shared::domain::TenantId,
        import_id: &str,
    ) -> Result<(), shared::store::StoreError> {
        let (deps, tenant, id) = (self.deps(), tenant.clone(), import_id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = shared::import::job::run(&deps, &tenant, &id, None).await {
                tracing::error!(error = %e, "import failed");
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
    pub import_jobs: Arc<dyn ImportJobs>,
    pub import_files: Arc<dyn ImportFiles>,
    pub spend: Arc<dyn shared::spend::store::SpendStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub delivery_queue: Arc<dyn DeliveryQueue>,
    /// The in-process queue, when deliveries are not on SQS: the local run pumps it.
    pub memory_queue: Option<Arc<MemoryDeliveryQueue>>,
    /// Where a disabled subscription's `WebhookDisabled` goes.
    pub publisher: Arc<dyn EventPublisher>,
    /// How webhook hosts are resolved when a subscription is made.
    pub lookup: Arc<dyn shared::outbound::target::Lookup>,
}

impl StoreSet {
    pub fn embedded(credentials: AppCredentials) -> Self {
        let vault = Arc::new(MemoryTokenVault::new(credentials));
        let sync = SyncStores::embedded(Arc::new(MemoryConnectionStore::default()), vault);
        Self::embedded_from(sync, Arc::new(shared::events::bus::MemoryEvents::default()))
    }

    /// Embedded stores that tell every lead and connection write to a change feed, as
    /// DynamoDB Streams tell lead-events: the events land in the returned memory bus.
    pub fn embedded_with_events(
        credentials: AppCredentials,
        rules: shared::events::EventRules,
        events: shared::events::bus::MemoryEvents,
    ) -> (Self, Arc<shared::events::bus::MemoryEvents>) {
        let events = Arc::new(events);
        let feed = Arc::new(shared::events::feed::ChangeFeed::new(rules, events.clone()));
        let vault = Arc::new(MemoryTokenVault::new(credentials));
        let mut sync = SyncStores::embedded(Arc::new(MemoryConnectionStore::with_feed(feed.clone())), vault);
        sync.leads = Arc::new(shared::store::memory_leads::MemoryLeadStore::with_feed(feed));
        (Self::embedded_from(sync, events.clone()), events)
    }

    fn embedded_from(sync: SyncStores, publisher: Arc<dyn EventPublisher>) -> Self {
        let audit = Arc::new(shared::store::memory_leads::MemoryAuditLog::default());
        let exports: ExportStores = (
            Arc::new(MemoryExportJobs::default()),
            Arc::new(MemorySink::new("/local/files")),
        );
        let imports: ImportStores = (
            Arc::new(MemoryImportJobs::default()),
            Arc::new(DirectoryFiles::new(std::env::temp_dir(), "/local/uploads")),
        );
        let queue = Arc::new(MemoryDeliveryQueue::new(Arc::new(shared::clock::SystemClock)));
        let outbound = Outbound {
            deliveries: Arc::new(MemoryDeliveryStore::default()),
            queue: queue.clone(),
            memory_queue: Some(queue),
            publisher,
        };
        Self::from_sync(
            Arc::new(MemoryStateStore::default()),
            sync,
            audit,
            (exports, imports),
            outbound,
        )
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
        let imports: ImportStores = (
            Arc::new(DynamoImportJobs::new(aws.dynamodb.clone(), &config.tables.leads)),
            Arc::new(S3ImportFiles::new(aws.s3.clone(), &config.read.export_bucket)),
        );
        let (queue, memory_queue): (Arc<dyn DeliveryQueue>, _) = match &config.outbound.queue_url {
            Some(url) => (
                Arc::new(SqsDeliveryQueue::new(
                    aws.sqs.clone(),
                    url.clone(),
                    config.outbound.dead_letter_url.clone(),
                    config.outbound.max_queue_delay,
                )),
                None,
            ),
            None => {
                let q = Arc::new(MemoryDeliveryQueue::new(Arc::new(shared::clock::SystemClock)));
                (q.clone(), Some(q))
            }
        };
        let outbound = Outbound {
            deliveries: Arc::new(DynamoDeliveryStore::new(aws.dynamodb.clone(), &config.outbound.table)),
            queue,
            memory_queue,
            publisher: Arc::new(shared::events::bus::EventBridgePublisher::new(
                aws.events.clone(),
                &config.sync.event_bus,
            )),
        };
        Self::from_sync(
            states,
            SyncStores::aws(aws, config),
            audit,
            (exports, imports),
            outbound,
        )
    }

    fn from_sync<S: StateStore + PendingGrantStore + 'static>(
        states: Arc<S>,
        sync: SyncStores,
        audit: Arc<dyn AuditLog>,
        ((export_jobs, export_sink), (import_jobs, import_files)): (ExportStores, ImportStores),
        outbound: Outbound,
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
            import_jobs,
            import_files,
            spend: sync.spend,
            deliveries: outbound.deliveries,
            delivery_queue: outbound.queue,
            memory_queue: outbound.memory_queue,
            publisher: outbound.publisher,
            lookup: Arc::new(shared::outbound::target::SystemLookup),
        }
    }

    /// Deliveries and write-backs over these stores, as lead-events runs them.
    pub fn outbound(&self, config: &shared::Config, clock: Arc<dyn Clock>) -> lead_events::Outbound {
        let writeback = shared::writeback::runner::WriteBackRunner::new(
            &self.sync(),
            config,
            self.delivery_queue.clone(),
            clock.clone(),
        );
        lead_events::Outbound {
            deliverer: self.deliverer(config, clock),
            writeback: Some(writeback),
        }
    }

    /// The delivery rules over these stores, sending with the guarded HTTP client.
    pub fn deliverer(&self, config: &shared::Config, clock: Arc<dyn Clock>) -> Deliverer {
        Deliverer {
            store: self.deliveries.clone(),
            queue: self.delivery_queue.clone(),
            transport: Arc::new(HttpTransport::from_config(&config.outbound)),
            publisher: self.publisher.clone(),
            clock,
            rules: DeliveryRules::from_config(&config.outbound),
            max_hop: config.outbound.max_queue_delay,
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

    /// Imports run in this process, over these stores.
    pub fn import_requests(&self) -> InProcessImportRequests {
        InProcessImportRequests {
            leads: self.leads.clone(),
            jobs: self.import_jobs.clone(),
            files: self.import_files.clone(),
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
            spend: self.spend.clone(),
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
        imports: leads_api::imports::ImportPorts {
            jobs: stores.import_jobs.clone(),
            files: stores.import_files.clone(),
            requests: Some(Arc::new(stores.import_requests())),
            config: config.import.clone(),
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
        spend: stores.spend.clone(),
        writeback: config.writeback.clone(),
        webhooks: Some(leads_api::webhooks::WebhookPorts {
            deliverer: Arc::new(stores.deliverer(config, clock.clone())),
            policy: shared::outbound::target::TargetPolicy::from_config(&config.outbound),
            lookup: stores.lookup.clone(),
            max_per_tenant: config.outbound.max_subscriptions,
        }),
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
        // Local receivers listen on loopback over http.
        ("WEBHOOK_ALLOW_HTTP".into(), "true".into()),
        ("WEBHOOK_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
    ])
}

/// One request to `router` with a bearer token and an optional JSON body: (status, JSON answer).
pub async fn call(
    router: &Router,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map_or(axum::body::Body::empty(), |b| axum::body::Body::from(b.to_string())))
        .expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 8 << 20)
        .await
        .expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
