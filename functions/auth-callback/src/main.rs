use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::store::dynamo::{DynamoConnectionStore, DynamoStateStore};
use shared::store::secrets::{SecretsManagerAppCredentials, SecretsManagerVault};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let stores = auth_callback::Stores {
        states: Arc::new(DynamoStateStore::new(aws.dynamodb.clone(), &config.tables.oauth_states)),
        vault: Arc::new(SecretsManagerVault::new(aws.secrets.clone())),
        credentials: Arc::new(SecretsManagerAppCredentials::new(
            aws.secrets,
            &config.secrets.app_credentials,
        )),
        connections: Arc::new(DynamoConnectionStore::new(aws.dynamodb, &config.tables.connections)),
    };
    let service = auth_callback::service(&config, stores, Arc::new(SystemClock));
    // Public route: the platforms redirect the browser here, so there is no identity layer.
    lambda_http::run(auth_callback::router(Arc::new(service))).await
}
