//! The store contract against both implementations: embedded, and AWS on moto.

use devkit::{contract, moto};
use shared::domain::AppCredentials;
use shared::secret::Secret;
use shared::store::AppCredentialsSource;
use shared::store::dynamo::{DynamoConnectionStore, DynamoStateStore};
use shared::store::dynamo_leads::DynamoLeadStore;
use shared::store::dynamo_sync::DynamoTaskStore;
use shared::store::memory::{MemoryConnectionStore, MemoryStateStore, MemoryTokenVault};
use shared::store::memory_leads::{MemoryLeadStore, MemoryTaskStore};
use shared::store::secrets::{SecretsManagerAppCredentials, SecretsManagerVault};

fn creds() -> AppCredentials {
    AppCredentials {
        douyin_client_secret: Secret::new("d"),
        oceanengine_secret: Secret::new("o"),
    }
}

#[tokio::test]
async fn embedded_state_store_meets_the_contract() {
    contract::state_store(&MemoryStateStore::default()).await;
}

#[tokio::test]
async fn embedded_pending_grants_meet_the_contract() {
    contract::pending_grants(&MemoryStateStore::default()).await;
}

#[tokio::test]
async fn dynamodb_pending_grants_meet_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::pending_grants(&DynamoStateStore::new(aws.dynamodb, tables.oauth_states)).await;
}

#[tokio::test]
async fn embedded_token_vault_meets_the_contract() {
    contract::token_vault(&MemoryTokenVault::new(creds())).await;
}

#[tokio::test]
async fn embedded_connection_store_meets_the_contract() {
    contract::connection_store(&MemoryConnectionStore::default()).await;
}

#[tokio::test]
async fn embedded_lead_store_meets_the_contract() {
    contract::lead_store(&MemoryLeadStore::default()).await;
}

#[tokio::test]
async fn embedded_lead_queries_meet_the_contract() {
    contract::lead_queries(&MemoryLeadStore::default()).await;
}

#[tokio::test]
async fn dynamodb_lead_queries_meet_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::lead_queries(&DynamoLeadStore::new(aws.dynamodb, tables.leads)).await;
}

#[tokio::test]
async fn embedded_sync_ledger_meets_the_contract() {
    let store = MemoryConnectionStore::default();
    contract::sync_ledger(&store, &store).await;
}

#[tokio::test]
async fn embedded_task_store_meets_the_contract() {
    contract::task_store(&MemoryTaskStore::default()).await;
}

#[tokio::test]
async fn dynamodb_lead_store_meets_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::lead_store(&DynamoLeadStore::new(aws.dynamodb, tables.leads)).await;
}

#[tokio::test]
async fn dynamodb_sync_ledger_meets_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    let store = DynamoConnectionStore::new(aws.dynamodb, tables.connections);
    contract::sync_ledger(&store, &store).await;
}

#[tokio::test]
async fn dynamodb_task_store_meets_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::task_store(&DynamoTaskStore::new(aws.dynamodb, tables.sync_tasks)).await;
}

#[tokio::test]
async fn dynamodb_state_store_meets_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::state_store(&DynamoStateStore::new(aws.dynamodb, tables.oauth_states)).await;
}

#[tokio::test]
async fn secrets_manager_vault_meets_the_contract() {
    let aws = moto::aws().await;
    contract::token_vault(&SecretsManagerVault::new(aws.secrets)).await;
}

#[tokio::test]
async fn dynamodb_connection_store_meets_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::connection_store(&DynamoConnectionStore::new(aws.dynamodb, tables.connections)).await;
}

#[tokio::test]
async fn app_credentials_are_read_once_and_a_failed_read_is_retried() {
    let aws = moto::aws().await;
    let id = moto::unique("douyin-leads/app-credentials");
    let source = SecretsManagerAppCredentials::new(aws.secrets.clone(), &id);
    let err = source.app_credentials().await.expect_err("no secret yet");
    assert!(err.to_string().contains("read app credentials"), "{err}");

    moto::put_app_credentials(&aws.secrets, &id, "douyin-1", "ocean-1").await;
    let first = source.app_credentials().await.expect("read after the secret exists");
    assert_eq!(first.douyin_client_secret.expose(), "douyin-1");

    let rotated = serde_json::json!({"douyinClientSecret": "douyin-2", "oceanengineSecret": "ocean-2"}).to_string();
    aws.secrets
        .put_secret_value()
        .secret_id(&id)
        .secret_string(rotated)
        .send()
        .await
        .expect("rotate");
    let cached = source.app_credentials().await.expect("cached read");
    assert_eq!(
        cached.douyin_client_secret.expose(),
        "douyin-1",
        "read once per container, then cached"
    );
    assert_eq!(format!("{:?}", cached), format!("{:?}", first));
    assert!(!format!("{cached:?}").contains("douyin-1"), "Debug hides the secrets");
}

#[tokio::test]
async fn embedded_spend_store_meets_the_contract() {
    contract::spend_store(&shared::spend::store::MemorySpendStore::default()).await;
}

#[tokio::test]
async fn dynamodb_spend_store_meets_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::spend_store(&shared::spend::store::DynamoSpendStore::new(
        aws.dynamodb.clone(),
        tables.spend,
    ))
    .await;
}

#[tokio::test]
async fn embedded_import_jobs_meet_the_contract() {
    contract::import_jobs(&shared::import::memory::MemoryImportJobs::default()).await;
}

#[tokio::test]
async fn dynamodb_import_jobs_meet_the_contract() {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    contract::import_jobs(&shared::import::dynamo::DynamoImportJobs::new(
        aws.dynamodb.clone(),
        tables.leads,
    ))
    .await;
}
