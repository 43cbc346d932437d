//! Step one: a consent link for Douyin or Ocean Engine, bound to a single-use state.

use super::{ConnectError, allowed_redirect, random_state};
use crate::clock::Clock;
use crate::config::{DouyinConfig, OAuthConfig, OceanEngineConfig};
use crate::domain::{OAuthState, Provider, TenantId};
use crate::platform::{douyin, oceanengine};
use crate::store::StateStore;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use url::Url;

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
