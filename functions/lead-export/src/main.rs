use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::export::ExportDeps;
use shared::export::dynamo::DynamoExportJobs;
use shared::export::s3::S3Sink;
use shared::store::dynamo_leads::DynamoAuditLog;
use shared::sync::SyncStores;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let deps = Arc::new(ExportDeps {
        leads: SyncStores::aws(&aws, &config).leads,
        jobs: Arc::new(DynamoExportJobs::new(aws.dynamodb.clone(), &config.tables.leads)),
        sink: Arc::new(S3Sink::new(aws.s3.clone(), &config.read.export_bucket)),
        audit: Arc::new(DynamoAuditLog::new(aws.dynamodb.clone(), &config.tables.leads)),
        clock: Arc::new(SystemClock),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move { Ok::<Value, lambda_runtime::Error>(lead_export::handle(&deps, &event.payload).await) }
    }))
    .await
}
