//! The HTTP routes of every function on one router, over a chosen set of stores: the local run
//! uses the embedded stores, the integration tests DynamoDB and Secrets Manager on moto.

use crate::local_auth::{self, LocalJwt};
use axum::Router;
use shared::aws::AwsClients;
use shared::clock::Clock;
use shared::domain::AppCredentials;
use shared::store::dynamo::{DynamoConnectionStore, DynamoStateStore};
use shared::store::memory::{MemoryConnectionStore, MemoryStateStore, MemoryTokenVault};
use shared::store::secrets::{SecretsManagerAppCredentials, SecretsManagerVault};
use shared::store::{AppCredentialsSource, ConnectionStore, StateStore, TokenVault};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct StoreSet {
    pub states: Arc<dyn StateStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub connections: Arc<dyn ConnectionStore>,
}

impl StoreSet {
    pub fn embedded(credentials: AppCredentials) -> Self {
        let vault = Arc::new(MemoryTokenVault::new(credentials));
        Self {
            states: Arc::new(MemoryStateStore::default()),
            vault: vault.clone(),
            credentials: vault,
            connections: Arc::new(MemoryConnectionStore::default()),
        }
    }

    pub fn aws(aws: &AwsClients, config: &shared::Config) -> Self {
        Self {
            states: Arc::new(DynamoStateStore::new(aws.dynamodb.clone(), &config.tables.oauth_states)),
            vault: Arc::new(SecretsManagerVault::new(aws.secrets.clone())),
            credentials: Arc::new(SecretsManagerAppCredentials::new(
                aws.secrets.clone(),
                &config.secrets.app_credentials,
            )),
            connections: Arc::new(DynamoConnectionStore::new(
                aws.dynamodb.clone(),
                &config.tables.connections,
            )),
        }
    }
}

/// Every function's routes, behind the local token layer that stands in for API Gateway.
pub fn routes(config: &shared::Config, stores: &StoreSet, clock: Arc<dyn Clock>, jwt: LocalJwt) -> Router {
    let start = auth_url::service(config, stores.states.clone(), clock.clone());
    let finish = auth_callback::service(
        config,
        auth_callback::Stores {
            states: stores.states.clone(),
            vault: stores.vault.clone(),
            credentials: stores.credentials.clone(),
            connections: stores.connections.clone(),
        },
        clock,
    );
    auth_url::routes(Arc::new(start))
        .merge(auth_callback::routes(Arc::new(finish)))
        .layer(axum::middleware::from_fn_with_state(jwt, local_auth::layer))
}

/// Configuration that points both platforms at a simulator and the callback at `public_base`.
pub fn simulator_env(sim_base: &str, public_base: &str, sim: &crate::sim::SimApp) -> HashMap<String, String> {
    HashMap::from([
        ("DOUYIN_BASE_URL".into(), sim_base.into()),
        ("OCEANENGINE_API_BASE_URL".into(), sim_base.into()),
        ("OCEANENGINE_AUTH_BASE_URL".into(), sim_base.into()),
        ("DOUYIN_CLIENT_KEY".into(), sim.douyin_client_key.clone()),
        ("OCEANENGINE_APP_ID".into(), sim.oceanengine_app_id.clone()),
        (
            "OAUTH_CALLBACK_URL".into(),
            format!("{public_base}{}", auth_callback::ROUTE),
        ),
        (
            "ALLOWED_REDIRECT_ORIGINS".into(),
            format!("{public_base},http://localhost:3000,https://app.example.com"),
        ),
        ("HTTP_TIMEOUT_MS".into(), "2000".into()),
        ("HTTP_RETRY_BASE_MS".into(), "10".into()),
        ("HTTP_RETRY_MAX_MS".into(), "50".into()),
    ])
}
