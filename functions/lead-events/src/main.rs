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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let publisher = publisher.clone();
        async move {
            lead_events::handle(publisher.as_ref(), rules, &event.payload)
                .await
                .map(|(answer, _)| answer)
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
