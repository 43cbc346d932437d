//! Secrets Manager adapters: one secret per connection (each write a new version, so the previous
//! stays readable as AWSPREVIOUS), and the app credentials read once per container.

use super::{AppCredentialsSource, StoreError, TokenVault, VaultEntry, token_codec};
use crate::domain::{AppCredentials, TokenSet};
use crate::secret::Secret;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::OnceCell;

pub struct SecretsManagerVault {
    client: Client,
}

impl SecretsManagerVault {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl TokenVault for SecretsManagerVault {
    async fn put_tokens(&self, secret_id: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        let value = token_codec::encode(tokens);
        // A new version of an existing secret first: refreshes (the common write) then need only
        // PutSecretValue. A new connection has no secret yet and gets one created.
        let put = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(&value)
            .send()
            .await;
        match put {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            // Scheduled for deletion by a disconnect: reconnecting brings it back.
            Err(e) if e.as_service_error().is_some_and(|se| se.is_invalid_request_exception()) => {
                self.client
                    .restore_secret()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .map_err(|e| StoreError::new("restore connection secret", DisplayErrorContext(e)))?;
                self.client
                    .put_secret_value()
                    .secret_id(secret_id)
                    .secret_string(&value)
                    .send()
                    .await
                    .map_err(|e| StoreError::new("put connection secret", DisplayErrorContext(e)))?;
                return Ok(());
            }
            Err(e) => return Err(StoreError::new("put connection secret", DisplayErrorContext(e))),
        }
        let created = self
            .client
            .create_secret()
            .name(secret_id)
            .description("douyin-leads connection tokens")
            .secret_string(&value)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created meanwhile by a concurrent callback: write the new version after all.
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_exists_exception()) => {
                self.client
                    .put_secret_value()
                    .secret_id(secret_id)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| StoreError::new("put connection secret", DisplayErrorContext(e)))?;
                Ok(())
            }
            Err(e) => Err(StoreError::new("create connection secret", DisplayErrorContext(e))),
        }
    }

    async fn schedule_deletion(&self, secret_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_secret()
            .secret_id(secret_id)
            .recovery_window_in_days(7)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already gone or going (a repeated disconnect, or a connection that never had tokens).
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception() || se.is_invalid_request_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::new("delete connection secret", DisplayErrorContext(e))),
        }
    }

    async fn delete_now(&self, secret_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_secret()
            .secret_id(secret_id)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::new("delete pending secret", DisplayErrorContext(e))),
        }
    }

    async fn list_prefixed(&self, prefix: &str, limit: usize) -> Result<Vec<VaultEntry>, StoreError> {
        let filter = aws_sdk_secretsmanager::types::Filter::builder()
            .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
            .values(prefix)
            .build();
        let mut entries = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secrets()
                .filters(filter.clone())
                // Oldest first: the ones the sweep is after come before any limit cuts.
                .sort_order(aws_sdk_secretsmanager::types::SortOrderType::Asc)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| StoreError::new("list secrets", DisplayErrorContext(e)))?;
            for secret in out.secret_list() {
                // The name filter matches prefixes case-insensitively; ours are exact.
                let (Some(name), Some(created)) = (secret.name(), secret.created_date()) else {
                    continue;
                };
                if !name.starts_with(prefix) {
                    continue;
                }
                let created_at =
                    chrono::DateTime::from_timestamp(created.secs(), created.subsec_nanos()).unwrap_or_default();
                entries.push(VaultEntry {
                    secret_id: name.to_owned(),
                    created_at,
                });
                if entries.len() >= limit {
                    return Ok(entries);
                }
            }
            match out.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(entries),
            }
        }
    }

    async fn get_tokens(&self, secret_id: &str) -> Result<Option<TokenSet>, StoreError> {
        let out = match self.client.get_secret_value().secret_id(secret_id).send().await {
            Ok(out) => out,
            // Missing, or scheduled for deletion by a disconnect: no tokens either way.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception() || se.is_invalid_request_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(StoreError::new("get connection secret", DisplayErrorContext(e)));
            }
        };
        let text = out
            .secret_string()
            .ok_or_else(|| StoreError::new("get connection secret", "secret has no string value"))?;
        token_codec::decode(text).map(Some)
    }
}

/// The app-credentials secret: `{"douyinClientSecret": "...", "oceanengineSecret": "..."}`.
/// Read on first use and kept for the container's life; a failed read is retried next time.
pub struct SecretsManagerAppCredentials {
    client: Client,
    secret_id: String,
    cached: OnceCell<Arc<AppCredentials>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsWire {
    douyin_client_secret: String,
    oceanengine_secret: String,
}

impl SecretsManagerAppCredentials {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            cached: OnceCell::new(),
        }
    }
}

pub fn parse_app_credentials(text: &str) -> Result<AppCredentials, StoreError> {
    let wire: CredentialsWire = serde_json::from_str(text).map_err(|e| StoreError::new("decode app credentials", e))?;
    Ok(AppCredentials {
        douyin_client_secret: Secret::new(wire.douyin_client_secret),
        oceanengine_secret: Secret::new(wire.oceanengine_secret),
    })
}

#[async_trait]
impl AppCredentialsSource for SecretsManagerAppCredentials {
    async fn app_credentials(&self) -> Result<Arc<AppCredentials>, StoreError> {
        self.cached
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_secret_value()
                    .secret_id(&self.secret_id)
                    .send()
                    .await
                    .map_err(|e| StoreError::new("read app credentials", DisplayErrorContext(e)))?;
                let text = out
                    .secret_string()
                    .ok_or_else(|| StoreError::new("read app credentials", "secret has no string value"))?;
                parse_app_credentials(text).map(Arc::new)
            })
            .await
            .cloned()
    }
}
