//! Storage ports as small traits, each with an AWS adapter (DynamoDB, Secrets Manager) and an
//! embedded one (in-process, for the local run and fast tests). A contract suite in the devkit
//! crate runs against both.

pub mod dynamo;
pub mod memory;
pub mod secrets;
pub mod token_codec;

use crate::domain::{AppCredentials, Connection, ConnectionId, OAuthState, Provider, TenantId, TokenSet};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A storage backend failed; the message is for logs and never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(operation: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            operation,
            message: message.to_string(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// Never issued, or already consumed: the two look the same on purpose.
    #[error("the state is unknown or was already used")]
    Unknown,
    #[error("the state has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClaimError {
    #[error("the {provider} account {external_account_id} is connected to another tenant")]
    OwnedByAnotherTenant {
        provider: Provider,
        external_account_id: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pending OAuth consents.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn create(&self, state: &OAuthState) -> Result<(), StoreError>;
    /// Removes and returns the state; a second call with the same value is [`StateError::Unknown`].
    /// An expired state is consumed too, so it cannot be retried.
    async fn consume(&self, state: &str, now: DateTime<Utc>) -> Result<OAuthState, StateError>;
}

/// Connection tokens, one secret per connection, each write a new version.
#[async_trait]
pub trait TokenVault: Send + Sync {
    async fn put_tokens(&self, secret_id: &str, tokens: &TokenSet) -> Result<(), StoreError>;
    async fn get_tokens(&self, secret_id: &str) -> Result<Option<TokenSet>, StoreError>;
}

/// The deployment's app credentials, read once per container.
#[async_trait]
pub trait AppCredentialsSource: Send + Sync {
    async fn app_credentials(&self) -> Result<Arc<AppCredentials>, StoreError>;
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Claims (provider, external account) for `tenant` with a conditional write; claiming an
    /// account the tenant already holds succeeds, one held by another tenant fails.
    async fn claim(
        &self,
        tenant: &TenantId,
        provider: Provider,
        external_account_id: &str,
    ) -> Result<ConnectionId, ClaimError>;

    /// Creates or updates the connection, keeping its creation time. The claim is checked again
    /// in the same write, so an upsert can never attach another tenant's account.
    async fn upsert(&self, connection: &Connection) -> Result<(), ClaimError>;

    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> Result<Option<Connection>, StoreError>;

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError>;
}
