//! The nouns of the product: providers, tenants, OAuth states, connections and their tokens.

use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The kind of account a connection authorises. Douyin and Ocean Engine connect through OAuth;
/// 抖音来客 accounts are bound by id (read with the app's client_token) and Feiyu accounts are
/// registered with their signature key and token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Douyin,
    #[serde(rename = "oceanengine")]
    OceanEngine,
    Laike,
    Feiyu,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::Douyin,
        Provider::OceanEngine,
        Provider::Laike,
        Provider::Feiyu,
    ];
    /// The providers a consent URL can be issued for.
    pub const OAUTH: [Provider; 2] = [Provider::Douyin, Provider::OceanEngine];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Douyin => "douyin",
            Provider::OceanEngine => "oceanengine",
            Provider::Laike => "laike",
            Provider::Feiyu => "feiyu",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == value)
    }

    pub fn parse_oauth(value: &str) -> Option<Self> {
        Self::OAUTH.into_iter().find(|p| p.as_str() == value)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SaaS customer that owns connections and leads; taken from the JWT, never from input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// Derived from (tenant, provider, external account), so re-authorising the same account
    /// lands on the same connection and a replayed callback writes the same item.
    pub fn derive(tenant: &TenantId, provider: Provider, external_account_id: &str) -> Self {
        Self(derived_id(
            "c_",
            &[tenant.as_str(), provider.as_str(), external_account_id],
        ))
    }

    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `prefix` and 96 bits of SHA-256 over the parts, each ended by a NUL so that ("ab", "c") and
/// ("a", "bc") differ: stable ids for things identified by their parts.
/// A random id: `prefix` and 128 bits of hex (tasks, export jobs, imports).
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("OS randomness is available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

pub(crate) fn derived_id(prefix: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let hex: String = hash.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A pending consent: random, single use, bound to who asked and where they go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    pub state: String,
    pub tenant: TenantId,
    pub provider: Provider,
    pub redirect_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A consent that came back from the platform but is not a connection yet: its tokens sit in a
/// secret of their own until a user of the tenant that started the flow confirms it with the
/// ticket (so a consent link forwarded to another tenant's merchant connects nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingGrant {
    /// SHA-256 of the ticket, hex: the ticket itself is never stored.
    pub ticket_hash: String,
    pub tenant: TenantId,
    pub provider: Provider,
    pub external_account_id: String,
    pub advertiser_ids: Vec<String>,
    pub scopes: Vec<String>,
    /// Where the pending tokens are kept; deleted once confirmed or expired.
    pub secret_id: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set once confirmed, so a replayed confirmation answers the same connection.
    pub confirmed: Option<ConnectionId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    Active,
    ReauthRequired,
    Disabled,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "ACTIVE",
            ConnectionStatus::ReauthRequired => "REAUTH_REQUIRED",
            ConnectionStatus::Disabled => "DISABLED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Active, Self::ReauthRequired, Self::Disabled]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// One authorised account of one source, owned by one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub tenant: TenantId,
    pub provider: Provider,
    /// Douyin `open_id`, or the Ocean Engine advertiser that granted the token.
    pub external_account_id: String,
    /// Ocean Engine: every advertiser the token can read. Empty for Douyin.
    pub advertiser_ids: Vec<String>,
    pub scopes: Vec<String>,
    pub status: ConnectionStatus,
    pub secret_id: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a connection's secret holds. Expiry times are absolute so a reader needs no issue time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub provider: Provider,
    pub access_token: Secret,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: Secret,
    pub refresh_expires_at: DateTime<Utc>,
    pub open_id: Option<String>,
    pub advertiser_ids: Vec<String>,
    pub scopes: Vec<String>,
    /// Douyin allows five renewals of a refresh token; this counts the ones used.
    pub renewals_used: u32,
    pub issued_at: DateTime<Utc>,
    /// Feiyu only: the key that signs every request (its `access_token` is the console token).
    pub signature_key: Option<Secret>,
}

/// App-level credentials, one secret for the whole deployment.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub douyin_client_secret: Secret,
    pub oceanengine_secret: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_id_is_stable_and_separates_tenants_and_providers() {
        let t1 = TenantId::new("t1");
        let t2 = TenantId::new("t2");
        let a = ConnectionId::derive(&t1, Provider::Douyin, "open-1");
        assert_eq!(a, ConnectionId::derive(&t1, Provider::Douyin, "open-1"));
        assert_ne!(a, ConnectionId::derive(&t2, Provider::Douyin, "open-1"));
        assert_ne!(a, ConnectionId::derive(&t1, Provider::OceanEngine, "open-1"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(
            ConnectionId::derive(&TenantId::new("ab"), Provider::Douyin, "c"),
            ConnectionId::derive(&TenantId::new("a"), Provider::Douyin, "bc")
        );
        assert!(a.as_str().starts_with("c_") && a.as_str().len() == 26);
    }

    #[test]
    fn provider_round_trips_through_its_wire_name() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("feiyu"), Some(Provider::Feiyu));
        assert_eq!(Provider::parse_oauth("feiyu"), None);
        assert_eq!(Provider::parse_oauth("oceanengine"), Some(Provider::OceanEngine));
    }
}
