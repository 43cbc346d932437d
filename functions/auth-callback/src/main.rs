use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::http::deadline::with_lambda_deadline;
use shared::http::identity::with_api_gateway_identity;
use shared::store::dynamo::{DynamoConnectionStore, DynamoStateStore};
use shared::store::secrets::{SecretsManagerAppCredentials, SecretsManagerVault};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = shared::Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let states = Arc::new(DynamoStateStore::new(aws.dynamodb.clone(), &config.tables.oauth_states));
    let stores = auth_callback::Stores {
        states: states.clone(),
        pending: states,
        vault: Arc::new(SecretsManagerVault::new(aws.secrets.clone())),
        credentials: Arc::new(SecretsManagerAppCredentials::new(
            aws.secrets,
            &config.secrets.app_credentials,
        )),
        connections: Arc::new(DynamoConnectionStore::new(aws.dynamodb, &config.tables.connections)),
    };
    let service = auth_callback::service(&config, stores, Arc::new(SystemClock));
    // The callback is public (the platforms redirect the browser there) and reads no identity;
    // the confirmation takes the tenant from the JWT authorizer.
    let router = with_api_gateway_identity(auth_callback::router(Arc::new(service)), &config.tenant_claim);
    lambda_http::run(with_lambda_deadline(router, config.function.response_reserve)).await
}
