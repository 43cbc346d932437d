use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::http::deadline::with_lambda_deadline;
use shared::http::identity::with_api_gateway_identity;
use shared::store::dynamo::DynamoStateStore;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let states = Arc::new(DynamoStateStore::new(aws.dynamodb, &config.tables.oauth_states));
    let service = auth_url::service(&config, states, Arc::new(SystemClock));
    let app = with_api_gateway_identity(auth_url::router(Arc::new(service)), &config.tenant_claim);
    lambda_http::run(with_lambda_deadline(app, config.function.response_reserve)).await
}
