//! Connecting an account: issue a consent link bound to a single-use state, then finish the
//! callback by exchanging the code, storing the tokens and recording the connection.

use crate::clock::Clock;
use crate::config::{DouyinConfig, OAuthConfig, OceanEngineConfig};
use crate::domain::{Connection, ConnectionStatus, OAuthState, Provider, TenantId, TokenSet};
use crate::http::ApiError;
use crate::platform::douyin::{self, DouyinClient};
use crate::platform::oceanengine::{self, OceanEngineClient};
use crate::platform::{ErrorKind, PlatformError};
use crate::store::{AppCredentialsSource, ClaimError, ConnectionStore, StateError, StateStore, StoreError, TokenVault};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use std::sync::Arc;
use url::Url;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("provider must be one of douyin, oceanengine; got {0:?}")]
    InvalidProvider(String),
    #[error("redirectUrl is not allowed: {0}")]
    RedirectNotAllowed(String),
    #[error("the state parameter is missing")]
    StateMissing,
    #[error("the state is unknown or was already used")]
    StateUnknown,
    #[error("the state has expired; start the connection again")]
    StateExpired,
    #[error("the user did not grant access")]
    ConsentDenied,
    #[error("the platform rejected the authorization code: {0}")]
    CodeRejected(PlatformError),
    #[error("the platform failed: {0}")]
    Platform(PlatformError),
    #[error("this account is already connected to another tenant")]
    AccountOwnedByAnotherTenant,
    #[error(transparent)]
    Store(StoreError),
}

impl ConnectError {
    /// The short reason put on the error redirect (`status=error&reason=...`).
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectError::InvalidProvider(_) => "invalid_provider",
            ConnectError::RedirectNotAllowed(_) => "redirect_not_allowed",
            ConnectError::StateMissing => "state_missing",
            ConnectError::StateUnknown => "state_invalid",
            ConnectError::StateExpired => "state_expired",
            ConnectError::ConsentDenied => "access_denied",
            ConnectError::CodeRejected(_) => "code_invalid",
            ConnectError::Platform(_) => "platform_error",
            ConnectError::AccountOwnedByAnotherTenant => "account_conflict",
            ConnectError::Store(_) => "internal_error",
        }
    }
}

impl From<ConnectError> for ApiError {
    fn from(err: ConnectError) -> Self {
        let message = err.to_string();
        match &err {
            ConnectError::InvalidProvider(_) => ApiError::bad_request("INVALID_PROVIDER", "provider", message),
            ConnectError::RedirectNotAllowed(_) => {
                ApiError::bad_request("REDIRECT_NOT_ALLOWED", "redirectUrl", message)
            }
            ConnectError::StateMissing => ApiError::bad_request("STATE_MISSING", "state", message),
            ConnectError::StateUnknown => ApiError::bad_request("STATE_INVALID", "state", message),
            ConnectError::StateExpired => ApiError::bad_request("STATE_EXPIRED", "state", message),
            ConnectError::ConsentDenied => ApiError::bad_request("CONSENT_DENIED", "code", message),
            ConnectError::CodeRejected(e) => ApiError::platform(StatusCode::BAD_REQUEST, "AUTH_CODE_INVALID", e),
            ConnectError::Platform(e) => ApiError::platform(StatusCode::BAD_GATEWAY, "PLATFORM_ERROR", e),
            ConnectError::AccountOwnedByAnotherTenant => ApiError::conflict("ACCOUNT_CONFLICT", message),
            ConnectError::Store(e) => ApiError::internal("connect", e),
        }
    }
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        ConnectError::Store(e)
    }
}

impl From<ClaimError> for ConnectError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::OwnedByAnotherTenant { .. } => ConnectError::AccountOwnedByAnotherTenant,
            ClaimError::Store(e) => ConnectError::Store(e),
        }
    }
}

fn platform_error(e: PlatformError) -> ConnectError {
    if e.kind() == ErrorKind::AuthCodeInvalid {
        ConnectError::CodeRejected(e)
    } else {
        ConnectError::Platform(e)
    }
}

/// A consent link ready for the browser.
#[derive(Debug, Clone)]
pub struct ConsentLink {
    pub provider: Provider,
    pub auth_url: Url,
    pub state: String,
    pub expires_at: DateTime<Utc>,
}

pub struct ConnectStart {
    pub oauth: OAuthConfig,
    pub douyin: DouyinConfig,
    pub oceanengine: OceanEngineConfig,
    pub states: Arc<dyn StateStore>,
    pub clock: Arc<dyn Clock>,
}

impl ConnectStart {
    pub async fn start(
        &self,
        tenant: &TenantId,
        provider: Option<&str>,
        redirect_url: Option<&str>,
    ) -> Result<ConsentLink, ConnectError> {
        let provider = match provider {
            None => Provider::Douyin,
            Some(p) => Provider::parse_oauth(p).ok_or_else(|| ConnectError::InvalidProvider(p.to_owned()))?,
        };
        let redirect_url = redirect_url
            .map(|r| allowed_redirect(r, &self.oauth.allowed_redirect_origins))
            .transpose()?;
        let now = self.clock.now();
        let ttl = Duration::from_std(self.oauth.state_ttl).unwrap_or(Duration::minutes(10));
        let state = OAuthState {
            state: random_state()?,
            tenant: tenant.clone(),
            provider,
            redirect_url,
            created_at: now,
            expires_at: now + ttl,
        };
        self.states.create(&state).await?;
        let callback = &self.oauth.callback_url;
        let auth_url = match provider {
            Provider::Douyin => douyin::consent_url(&self.douyin, callback, &state.state),
            Provider::OceanEngine => oceanengine::consent_url(&self.oceanengine, callback, &state.state),
            other => return Err(ConnectError::InvalidProvider(other.as_str().to_owned())),
        };
        tracing::info!(tenant = %tenant, %provider, "consent link issued");
        Ok(ConsentLink {
            provider,
            auth_url,
            state: state.state,
            expires_at: state.expires_at,
        })
    }
}

/// 256 random bits, hex: unguessable, and safe in a URL without encoding.
fn random_state() -> Result<String, ConnectError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ConnectError::Store(StoreError::new("generate state", e)))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Accepts only absolute http(s) URLs whose origin is on the allow-list: no open redirect.
pub fn allowed_redirect(raw: &str, allowed_origins: &[String]) -> Result<String, ConnectError> {
    let url = Url::parse(raw).map_err(|_| ConnectError::RedirectNotAllowed("it is not an absolute URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConnectError::RedirectNotAllowed(
            "only http(s) URLs with a host are allowed".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConnectError::RedirectNotAllowed(
            "credentials in the URL are not allowed".into(),
        ));
    }
    let origin = url.origin().ascii_serialization();
    if !allowed_origins.contains(&origin) {
        return Err(ConnectError::RedirectNotAllowed(format!(
            "{origin} is not an allowed origin"
        )));
    }
    Ok(url.to_string())
}

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
    pub result: Result<Connection, ConnectError>,
}

pub struct ConnectFinish {
    pub states: Arc<dyn StateStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub connections: Arc<dyn ConnectionStore>,
    pub douyin: DouyinClient,
    pub oceanengine: OceanEngineClient,
    pub secret_prefix: String,
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
            Ok(c) => {
                tracing::info!(tenant = %c.tenant, provider = %c.provider, connection_id = %c.id, "account connected")
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

    async fn authorize(&self, state: &OAuthState, code: &str, now: DateTime<Utc>) -> Result<Connection, ConnectError> {
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
        // Claim first: a refused claim must leave no tokens behind for an account we do not own.
        let id = self
            .connections
            .claim(&state.tenant, state.provider, &external_account_id)
            .await?;
        let secret_id = format!("{}{}", self.secret_prefix, id);
        self.vault.put_tokens(&secret_id, &tokens).await?;
        let connection = Connection {
            id,
            tenant: state.tenant.clone(),
            provider: state.provider,
            external_account_id,
            advertiser_ids: tokens.advertiser_ids.clone(),
            scopes: tokens.scopes.clone(),
            status: ConnectionStatus::Active,
            secret_id,
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at: tokens.refresh_expires_at,
            created_at: now,
            updated_at: now,
        };
        self.connections.upsert(&connection).await?;
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_must_match_an_allowed_origin_exactly() {
        let allowed = vec!["https://app.example.com".to_owned(), "http://localhost:3000".to_owned()];
        assert!(allowed_redirect("https://app.example.com/connected?x=1", &allowed).is_ok());
        assert!(allowed_redirect("http://localhost:3000/cb", &allowed).is_ok());
        for bad in [
            "https://evil.example.com/",
            "https://app.example.com.evil.com/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://user:pw@app.example.com/",
            "//app.example.com/x",
            "javascript:alert(1)",
            "/relative",
        ] {
            assert!(
                matches!(
                    allowed_redirect(bad, &allowed),
                    Err(ConnectError::RedirectNotAllowed(_))
                ),
                "{bad} was allowed"
            );
        }
    }

    #[test]
    fn states_are_long_random_and_distinct() {
        let a = random_state().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_state().unwrap());
    }
}
