//! Step two: the platform's callback. The state is consumed once, the code exchanged, and the
//! tokens kept as a pending grant behind a one-time ticket; nothing is claimed or synced yet.

use super::{ConnectError, pending_secret_prefix, platform_error, random_state, ticket_hash};
use crate::clock::Clock;
use crate::domain::{OAuthState, PendingGrant, Provider, TenantId, TokenSet};
use crate::platform::PlatformError;
use crate::platform::douyin::DouyinClient;
use crate::platform::oceanengine::OceanEngineClient;
use crate::store::{AppCredentialsSource, PendingGrantStore, StateError, StateStore, TokenVault};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use std::sync::Arc;

/// What the platform sent back to the callback.
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    pub state: Option<String>,
    /// Douyin sends `code`.
    pub code: Option<String>,
    /// Ocean Engine sends `auth_code`.
    pub auth_code: Option<String>,
}

/// The outcome of a callback and where to send the browser, if the consent asked for it.
/// State problems have no redirect: without a valid state we do not know, or trust, one.
#[derive(Debug)]
pub struct CallbackOutcome {
    pub tenant: Option<TenantId>,
    pub redirect_url: Option<String>,
    pub result: Result<PendingIssued, ConnectError>,
}

/// A grant waiting for its confirmation: what the browser is sent back with.
#[derive(Debug, Clone)]
pub struct PendingIssued {
    /// One-time, 256 random bits; only its hash is stored.
    pub ticket: String,
    pub provider: Provider,
    pub expires_at: DateTime<Utc>,
}

pub struct ConnectFinish {
    pub states: Arc<dyn StateStore>,
    pub pending: Arc<dyn PendingGrantStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub douyin: DouyinClient,
    pub oceanengine: OceanEngineClient,
    pub secret_prefix: String,
    pub pending_ttl: Duration,
    pub clock: Arc<dyn Clock>,
}

impl ConnectFinish {
    pub async fn finish(&self, params: CallbackParams) -> CallbackOutcome {
        // Milliseconds: what DynamoDB keeps, so the row and the secret record the same instant.
        let now = self.clock.now().trunc_subsecs(3);
        let consumed = match params.state.as_deref().filter(|s| !s.is_empty()) {
            None => Err(ConnectError::StateMissing),
            Some(state) => self.states.consume(state, now).await.map_err(|e| match e {
                StateError::Unknown => ConnectError::StateUnknown,
                StateError::Expired => ConnectError::StateExpired,
                StateError::Store(e) => ConnectError::Store(e),
            }),
        };
        let state = match consumed {
            Ok(state) => state,
            Err(err) => {
                tracing::warn!(reason = err.reason(), "callback refused");
                return CallbackOutcome {
                    tenant: None,
                    redirect_url: None,
                    result: Err(err),
                };
            }
        };
        let code = params.code.or(params.auth_code).filter(|c| !c.is_empty());
        let result = match code {
            None => Err(ConnectError::ConsentDenied),
            Some(code) => self.authorize(&state, &code, now).await,
        };
        match &result {
            Ok(p) => {
                tracing::info!(tenant = %state.tenant, provider = %p.provider, expires_at = %p.expires_at, "consent granted; waiting for its confirmation")
            }
            Err(e) => {
                tracing::warn!(tenant = %state.tenant, provider = %state.provider, reason = e.reason(), error = %e, "connect failed")
            }
        }
        CallbackOutcome {
            tenant: Some(state.tenant),
            redirect_url: state.redirect_url,
            result,
        }
    }

    async fn authorize(
        &self,
        state: &OAuthState,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<PendingIssued, ConnectError> {
        let credentials = self.credentials.app_credentials().await?;
        let (tokens, external_account_id) = match state.provider {
            Provider::Douyin => {
                let grant = self
                    .douyin
                    .exchange_code(&credentials.douyin_client_secret, code)
                    .await
                    .map_err(platform_error)?;
                let tokens = TokenSet {
                    provider: Provider::Douyin,
                    access_token: grant.access_token,
                    access_expires_at: now + grant.expires_in,
                    refresh_token: grant.refresh_token,
                    refresh_expires_at: now + grant.refresh_expires_in,
                    open_id: Some(grant.open_id.clone()),
                    advertiser_ids: Vec::new(),
                    scopes: grant.scopes,
                    renewals_used: 0,
                    signature_key: None,
                    issued_at: now,
                };
                (tokens, grant.open_id)
            }
            Provider::OceanEngine => {
                let grant = self
                    .oceanengine
                    .exchange_code(&credentials.oceanengine_secret, code)
                    .await
                    .map_err(platform_error)?;
                let external = grant
                    .advertiser_id
                    .clone()
                    .or_else(|| grant.advertiser_ids.first().cloned())
                    .ok_or_else(|| {
                        ConnectError::Platform(PlatformError::Decode {
                            platform: crate::platform::Platform::OceanEngine,
                            message: "token response names no advertiser".into(),
                        })
                    })?;
                let mut advertiser_ids = grant.advertiser_ids.clone();
                if advertiser_ids.is_empty() {
                    advertiser_ids.push(external.clone());
                }
                let tokens = TokenSet {
                    provider: Provider::OceanEngine,
                    access_token: grant.access_token,
                    access_expires_at: now + grant.expires_in,
                    refresh_token: grant.refresh_token,
                    refresh_expires_at: now + grant.refresh_expires_in,
                    open_id: None,
                    advertiser_ids,
                    scopes: Vec::new(),
                    renewals_used: 0,
                    signature_key: None,
                    issued_at: now,
                };
                (tokens, external)
            }
            // States are only issued for OAuth providers; a stored one naming another is not ours.
            other => return Err(ConnectError::InvalidProvider(other.as_str().to_owned())),
        };
        // No claim and no connection yet: the tokens wait in a secret of their own until a user
        // of the tenant that started the flow confirms them with the ticket.
        let ticket = random_state()?;
        let hash = ticket_hash(&ticket);
        let secret_id = format!("{}{}", pending_secret_prefix(&self.secret_prefix), &hash[..32]);
        self.vault.put_tokens(&secret_id, &tokens).await?;
        let grant = PendingGrant {
            ticket_hash: hash,
            tenant: state.tenant.clone(),
            provider: state.provider,
            external_account_id,
            advertiser_ids: tokens.advertiser_ids.clone(),
            scopes: tokens.scopes.clone(),
            secret_id,
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at: tokens.refresh_expires_at,
            created_at: now,
            expires_at: now + self.pending_ttl,
            confirmed: None,
        };
        if let Err(e) = self.pending.put_pending(&grant).await {
            // Nothing points at the secret: take it back now rather than leave it to the sweep.
            let _ = self.vault.delete_now(&grant.secret_id).await;
            return Err(e.into());
        }
        Ok(PendingIssued {
            ticket,
            provider: grant.provider,
            expires_at: grant.expires_at,
        })
    }
}
