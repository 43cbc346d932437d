use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::export::dynamo::DynamoExportJobs;
use shared::export::s3::{S3Sink, SqsExportRequests};
use shared::http::deadline::with_lambda_deadline;
use shared::http::identity::with_api_gateway_identity;
use shared::import::dynamo::DynamoImportJobs;
use shared::import::s3::{S3ImportFiles, SqsImportRequests};
use shared::store::dynamo_leads::DynamoAuditLog;
use shared::sync::SyncStores;
use shared::sync::catalog::SourceCatalog;
use shared::sync::requests::EventBridgeSyncRequests;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let stores = SyncStores::aws(&aws, &config);
    let clock = Arc::new(SystemClock);
    let catalog = SourceCatalog::from_config(&config, stores.credentials.clone(), clock.clone());
    let api = leads_api::LeadsApi {
        leads: stores.leads,
        tasks: stores.tasks,
        connections: stores.connections,
        ledger: stores.ledger,
        vault: stores.vault,
        requests: Arc::new(EventBridgeSyncRequests::new(aws.events.clone(), &config.sync.event_bus)),
        audit: Arc::new(DynamoAuditLog::new(aws.dynamodb.clone(), &config.tables.leads)),
        exports: leads_api::exports::ExportPorts {
            jobs: Arc::new(DynamoExportJobs::new(aws.dynamodb.clone(), &config.tables.leads)),
            sink: Arc::new(S3Sink::new(aws.s3.clone(), &config.read.export_bucket)),
            requests: config.read.export_queue_url.clone().map(|url| {
                Arc::new(SqsExportRequests::new(aws.sqs.clone(), url)) as Arc<dyn shared::export::ExportRequests>
            }),
        },
        imports: leads_api::imports::ImportPorts {
            jobs: Arc::new(DynamoImportJobs::new(aws.dynamodb.clone(), &config.tables.leads)),
            files: Arc::new(S3ImportFiles::new(aws.s3.clone(), &config.read.export_bucket)),
            requests: config.import.queue_url.clone().map(|url| {
                Arc::new(SqsImportRequests::new(aws.sqs.clone(), url)) as Arc<dyn shared::import::ImportRequests>
            }),
            config: config.import.clone(),
        },
        catalog: Arc::new(catalog),
        secret_prefix: config.secrets.connection_prefix.clone(),
        task_ttl: chrono::Duration::from_std(config.sync.task_ttl).unwrap_or(chrono::Duration::days(30)),
        read: config.read.clone(),
        clock,
        spend: stores.spend.clone(),
        writeback: config.writeback.clone(),
        webhooks: shared::outbound::deliver::Deliverer::aws(&aws, &config).map(|deliverer| {
            leads_api::webhooks::WebhookPorts {
                deliverer: Arc::new(deliverer),
                policy: shared::outbound::target::TargetPolicy::from_config(&config.outbound),
                lookup: Arc::new(shared::outbound::target::SystemLookup),
                max_per_tenant: config.outbound.max_subscriptions,
            }
        }),
    };
    let router = with_api_gateway_identity(leads_api::router(Arc::new(api)), &config.tenant_claim);
    let router = with_lambda_deadline(router, config.function.response_reserve);
    lambda_http::run(shared::http::lambda_body::for_lambda(router)).await
}
