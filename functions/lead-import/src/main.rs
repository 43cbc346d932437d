use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::import::ImportDeps;
use shared::import::dynamo::DynamoImportJobs;
use shared::import::s3::{S3ImportFiles, SqsImportRequests};
use shared::sync::SyncStores;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let queue = config
        .import
        .queue_url
        .clone()
        .ok_or("IMPORT_QUEUE_URL is required: a long import continues through it")?;
    let aws = AwsClients::from_env().await;
    let deps = Arc::new(ImportDeps {
        leads: SyncStores::aws(&aws, &config).leads,
        jobs: Arc::new(DynamoImportJobs::new(aws.dynamodb.clone(), &config.tables.leads)),
        files: Arc::new(S3ImportFiles::new(aws.s3.clone(), &config.read.export_bucket)),
        requests: Arc::new(SqsImportRequests::new(aws.sqs.clone(), queue)),
        clock: Arc::new(SystemClock),
    });
    let reserve = config.import.reserve;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            let deadline = lead_import::stop_at(event.context.deadline, now, reserve);
            Ok::<Value, lambda_runtime::Error>(lead_import::handle(&deps, &event.payload, Some(deadline)).await)
        }
    }))
    .await
}
