use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::AwsClients;
use shared::events::bus::EventBridgePublisher;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let publisher = Arc::new(EventBridgePublisher::new(aws.events.clone(), &config.sync.event_bus));
    let rules = shared::events::EventRules::from_config(&config);
    let deliverer = shared::outbound::deliver::Deliverer::aws(&aws, &config).map(Arc::new);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (publisher, deliverer) = (publisher.clone(), deliverer.clone());
        async move {
            if lead_events::is_queue_batch(&event.payload) {
                let deliverer = deliverer.ok_or("WEBHOOK_QUEUE_URL is not set, yet a delivery batch arrived")?;
                return Ok(lead_events::handle_deliveries(&deliverer, &event.payload).await);
            }
            lead_events::handle(publisher.as_ref(), deliverer.as_deref(), rules, &event.payload)
                .await
                .map(|(answer, _)| answer)
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
