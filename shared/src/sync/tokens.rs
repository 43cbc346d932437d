//! Keeps connection tokens fresh before and during a sync. Douyin access tokens are refreshed
//! ahead of expiry and refresh tokens renewed while renewals remain; Ocean Engine refreshes rotate
//! the refresh token, so the new pair is written to the vault (a new secret version; the previous
//! stays as AWSPREVIOUS) before the new access token is used. A grant that is gone marks the
//! connection REAUTH_REQUIRED.

use crate::clock::Clock;
use crate::domain::{Connection, Provider, TokenSet};
use crate::platform::douyin::DouyinClient;
use crate::platform::oceanengine::OceanEngineClient;
use crate::platform::{ErrorKind, PlatformError};
use crate::store::{AppCredentialsSource, StoreError, SyncLedger, TokenVault};
use chrono::Duration;
use std::sync::Arc;

/// Douyin allows five renewals of a refresh token.
const MAX_RENEWALS: u32 = 5;
/// A vault write that holds a rotated token is retried this often before the run gives up.
const VAULT_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("re-authorisation required: {0}")]
    ReauthRequired(String),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too close to the invocation's deadline to start a refresh.
    #[error("no time left for a token refresh")]
    OutOfTime,
}

pub struct TokenKeeper {
    pub douyin: DouyinClient,
    pub oceanengine: OceanEngineClient,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub ledger: Arc<dyn SyncLedger>,
    pub clock: Arc<dyn Clock>,
    pub refresh_ahead: Duration,
    pub renew_ahead: Duration,
}

fn reauth_if_revoked(e: PlatformError) -> TokenError {
    if e.kind() == ErrorKind::GrantRevoked {
        tracing::warn!(error = %e, "the platform revoked the grant");
        TokenError::ReauthRequired(format!("the platform revoked the grant ({})", e.public_message()))
    } else {
        TokenError::Platform(e)
    }
}

impl TokenKeeper {
    /// The connection's tokens, fit for use now. `force` refreshes even an unexpired access
    /// token (the platform just rejected it). 抖音来客 connections use the app token: `None`.
    pub async fn fresh(&self, connection: &Connection, force: bool) -> Result<Option<TokenSet>, TokenError> {
        if connection.provider == Provider::Laike {
            return Ok(None);
        }
        let tokens = self
            .vault
            .get_tokens(&connection.secret_id)
            .await?
            .ok_or_else(|| TokenError::ReauthRequired("the connection's token secret is missing".into()))?;
        let tokens = match connection.provider {
            Provider::Douyin => self.fresh_douyin(connection, tokens, force).await?,
            Provider::OceanEngine => self.fresh_oceanengine(connection, tokens, force).await?,
            // Feiyu tokens come from its console and do not expire on a schedule.
            Provider::Feiyu | Provider::Laike => tokens,
        };
        Ok(Some(tokens))
    }

    async fn fresh_douyin(&self, c: &Connection, mut t: TokenSet, force: bool) -> Result<TokenSet, TokenError> {
        let now = self.clock.now();
        if t.refresh_expires_at <= now {
            return Err(TokenError::ReauthRequired("the refresh token has expired".into()));
        }
        let mut changed = false;
        if force || t.access_expires_at - self.refresh_ahead <= now {
            let grant = self
                .douyin
                .refresh_access_token(&t.refresh_token)
                .await
                .map_err(reauth_if_revoked)?;
            t.access_token = grant.access_token;
            t.access_expires_at = now + grant.expires_in;
            if grant.refresh_expires_in > Duration::zero() {
                t.refresh_expires_at = now + grant.refresh_expires_in;
            }
            changed = true;
        }
        if t.refresh_expires_at - self.renew_ahead <= now && t.renewals_used < MAX_RENEWALS {
            match self.douyin.renew_refresh_token(&t.refresh_token).await {
                Ok(renewed) => {
                    t.refresh_token = renewed.refresh_token;
                    t.refresh_expires_at = now + renewed.expires_in;
                    t.renewals_used += 1;
                    changed = true;
                }
                Err(e) if e.kind() == ErrorKind::RenewLimitReached => {
                    t.renewals_used = MAX_RENEWALS;
                    changed = true;
                }
                Err(e) if e.kind() == ErrorKind::GrantRevoked => return Err(reauth_if_revoked(e)),
                // The refresh token still works until it expires; try again next run.
                Err(e) => tracing::warn!(connection = %c.id, error = %e, "refresh token renewal failed"),
            }
        }
        if changed {
            self.store(c, &t).await?;
        }
        Ok(t)
    }

    async fn fresh_oceanengine(&self, c: &Connection, mut t: TokenSet, force: bool) -> Result<TokenSet, TokenError> {
        let now = self.clock.now();
        if t.refresh_expires_at <= now {
            return Err(TokenError::ReauthRequired("the refresh token has expired".into()));
        }
        if !force && t.access_expires_at - self.refresh_ahead > now {
            return Ok(t);
        }
        let secret = self.credentials.app_credentials().await?.oceanengine_secret.clone();
        let grant = self
            .oceanengine
            .refresh(&secret, &t.refresh_token)
            .await
            .map_err(reauth_if_revoked)?;
        t.access_token = grant.access_token;
        t.access_expires_at = now + grant.expires_in;
        t.refresh_token = grant.refresh_token;
        if grant.refresh_expires_in > Duration::zero() {
            t.refresh_expires_at = now + grant.refresh_expires_in;
        }
        // The old refresh token is dead now: nothing uses the new pair until the vault holds it.
        self.store(c, &t).await?;
        Ok(t)
    }

    /// Writes the tokens (retrying: a lost rotated token is a lost authorisation), then the
    /// connection's copy of the expiry times (best effort: the vault is the source of truth).
    async fn store(&self, c: &Connection, t: &TokenSet) -> Result<(), TokenError> {
        let mut attempt = 1;
        loop {
            match self.vault.put_tokens(&c.secret_id, t).await {
                Ok(()) => break,
                Err(e) if attempt < VAULT_ATTEMPTS => {
                    tracing::warn!(connection = %c.id, attempt, error = %e, "storing refreshed tokens failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(connection = %c.id, error = %e, "refreshed tokens could not be stored");
                    return Err(e.into());
                }
            }
        }
        if let Err(e) = self
            .ledger
            .update_token_expiry(&c.tenant, &c.id, t.access_expires_at, t.refresh_expires_at)
            .await
        {
            tracing::warn!(connection = %c.id, error = %e, "token expiry not copied to the connection");
        }
        Ok(())
    }
}
