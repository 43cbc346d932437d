//! Connecting an account, in three steps: a consent link bound to a single-use state
//! ([`start`]); the platform's callback, which exchanges the code and keeps the grant *pending*
//! behind a one-time ticket ([`callback`]); and the confirmation by a user of the tenant that
//! started the flow, which claims the account and makes the connection ACTIVE ([`confirm`]).
//! The state alone proves who asked, not who finished: a consent link forwarded to another
//! tenant's merchant must connect nothing, so the browser that comes back has to prove its
//! tenant with its own JWT. Grants nobody confirms are discarded ([`sweep`]).

pub mod callback;
pub mod confirm;
pub mod start;
pub mod sweep;

pub use callback::{CallbackOutcome, CallbackParams, ConnectFinish, PendingIssued};
pub use confirm::ConnectConfirm;
pub use start::{ConnectStart, ConsentLink};

use crate::http::ApiError;
use crate::platform::{ErrorKind, PlatformError};
use crate::store::{ClaimError, StoreError};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
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
    #[error("ticket must be the 64 hex characters the callback gave")]
    TicketInvalid,
    /// Unknown, or started by another tenant: the two look the same on purpose.
    #[error("no pending connection for this ticket")]
    TicketNotFound,
    #[error("the pending connection has expired; start the connection again")]
    TicketExpired,
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
            ConnectError::TicketInvalid => "ticket_invalid",
            ConnectError::TicketNotFound => "ticket_not_found",
            ConnectError::TicketExpired => "ticket_expired",
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
            ConnectError::TicketInvalid => ApiError::bad_request("INVALID_TICKET", "ticket", message),
            ConnectError::TicketNotFound => ApiError::not_found("TICKET_NOT_FOUND", message),
            ConnectError::TicketExpired => ApiError::new(StatusCode::GONE, "TICKET_EXPIRED", message),
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

pub(crate) fn platform_error(e: PlatformError) -> ConnectError {
    if e.kind() == ErrorKind::AuthCodeInvalid {
        ConnectError::CodeRejected(e)
    } else {
        ConnectError::Platform(e)
    }
}

/// 256 random bits, hex: unguessable, and safe in a URL without encoding.
pub(crate) fn random_state() -> Result<String, ConnectError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ConnectError::Store(StoreError::new("generate state", e)))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a ticket is stored under: its SHA-256, so a reader of the table cannot confirm anything.
pub(crate) fn ticket_hash(ticket: &str) -> String {
    Sha256::digest(ticket.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Pending tokens live under `<prefix>pending-<hash>`: beside the connections' `<prefix>c_…`,
/// covered by the same IAM grant, and listable by the sweep.
pub fn pending_secret_prefix(connection_prefix: &str) -> String {
    format!("{connection_prefix}pending-")
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
    fn tickets_are_stored_hashed() {
        let ticket = random_state().unwrap();
        let hash = ticket_hash(&ticket);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, ticket);
        assert_eq!(hash, ticket_hash(&ticket));
    }

    #[test]
    fn states_are_long_random_and_distinct() {
        let a = random_state().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_state().unwrap());
    }
}
