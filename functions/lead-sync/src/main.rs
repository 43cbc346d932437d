use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::sync::fanout::{SqsSyncQueue, SyncQueue};
use shared::sync::{SyncEngine, SyncStores};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let queue: Option<Arc<dyn SyncQueue>> = config
        .sync
        .queue_url
        .clone()
        .map(|url| Arc::new(SqsSyncQueue::new(aws.sqs.clone(), url)) as Arc<dyn SyncQueue>);
    let engine = Arc::new(SyncEngine::new(
        &config,
        SyncStores::aws(&aws, &config),
        Arc::new(SystemClock),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (engine, queue) = (engine.clone(), queue.clone());
        async move {
            let deadline = lead_sync::deadline_from_epoch_ms(event.context.deadline);
            // Every platform call of the invocation also ends by the deadline, whatever the run.
            shared::deadline::within(
                deadline,
                lead_sync::handle(&engine, queue.as_deref(), &event.payload, Some(deadline)),
            )
            .await
            .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
