use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::AwsClients;
use shared::events::bus::EventBridgePublisher;
use shared::writeback::runner::WriteBackRunner;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let publisher = Arc::new(EventBridgePublisher::new(aws.events.clone(), &config.sync.event_bus));
    let rules = shared::events::EventRules::from_config(&config);
    let outbound = shared::outbound::deliver::Deliverer::aws(&aws, &config).map(|deliverer| {
        let stores = shared::sync::SyncStores::aws(&aws, &config);
        let clock = Arc::new(shared::clock::SystemClock);
        let writeback = WriteBackRunner::new(&stores, &config, deliverer.queue.clone(), clock);
        Arc::new(lead_events::Outbound {
            deliverer,
            writeback: Some(writeback),
        })
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (publisher, outbound) = (publisher.clone(), outbound.clone());
        async move {
            if lead_events::is_queue_batch(&event.payload) {
                let outbound = outbound.ok_or("WEBHOOK_QUEUE_URL is not set, yet a delivery batch arrived")?;
                return Ok(lead_events::handle_deliveries(&outbound, &event.payload).await);
            }
            lead_events::handle(publisher.as_ref(), outbound.as_deref(), rules, &event.payload)
                .await
                .map(|(answer, _)| answer)
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
