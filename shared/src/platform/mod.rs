//! Clients for the ByteDance platforms. Each speaks its platform's envelope, tolerates the
//! documented inconsistencies (numbers as strings, two envelope styles) and maps error codes to
//! [`ErrorKind`], which is what callers decide on.

pub mod douyin;
pub mod http;
pub mod oceanengine;

use crate::http::error::PlatformDetail;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Douyin,
    OceanEngine,
    Feiyu,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Douyin => "douyin",
            Platform::OceanEngine => "oceanengine",
            Platform::Feiyu => "feiyu",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a platform error means for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The authorization code is unknown, used or expired: the user must consent again.
    AuthCodeInvalid,
    /// The access token expired or was revoked: refresh and retry once.
    AccessTokenInvalid,
    /// The refresh token expired or the grant is gone: the connection needs re-authorisation.
    GrantRevoked,
    /// Douyin's five refresh-token renewals are used up.
    RenewLimitReached,
    /// Our app credentials are wrong: an operator problem.
    BadAppCredentials,
    /// The app lacks a permission or capability.
    NoPermission,
    /// Too many requests: back off and retry.
    Throttled,
    /// The platform says it is busy or had a fault: retry.
    Transient,
    /// Anything else: not retried.
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PlatformError {
    #[error("{platform} answered error {code}: {message}")]
    Api {
        platform: Platform,
        code: i64,
        message: String,
        log_id: Option<String>,
        kind: ErrorKind,
    },
    #[error("{platform} answered HTTP {status}")]
    Status { platform: Platform, status: u16 },
    #[error("{platform} could not be reached: {message}")]
    Transport {
        platform: Platform,
        message: String,
        before_send: bool,
    },
    #[error("{platform} sent a response we could not read: {message}")]
    Decode { platform: Platform, message: String },
}

impl PlatformError {
    pub fn platform(&self) -> Platform {
        match self {
            PlatformError::Api { platform, .. }
            | PlatformError::Status { platform, .. }
            | PlatformError::Transport { platform, .. }
            | PlatformError::Decode { platform, .. } => *platform,
        }
    }

    /// What may be shown to a caller or kept on a task: the platform's own answer (code, its
    /// message, log id), but none of our transport's or decoder's text, which can carry hosts,
    /// addresses or response fragments. The full error is for the log.
    pub fn public_message(&self) -> String {
        match self {
            PlatformError::Api {
                platform,
                code,
                message,
                log_id,
                ..
            } => {
                let message: String = message.chars().take(200).collect();
                match log_id {
                    Some(log) => format!("{platform} answered error {code}: {message} (log id {log})"),
                    None => format!("{platform} answered error {code}: {message}"),
                }
            }
            PlatformError::Status { platform, status } => format!("{platform} answered HTTP {status}"),
            PlatformError::Transport { platform, .. } => format!("{platform} could not be reached"),
            PlatformError::Decode { platform, .. } => format!("{platform} sent a response we could not read"),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            PlatformError::Api { kind, .. } => *kind,
            PlatformError::Status { status: 429, .. } => ErrorKind::Throttled,
            PlatformError::Status { status, .. } if *status >= 500 => ErrorKind::Transient,
            PlatformError::Status { .. } => ErrorKind::Other,
            PlatformError::Transport { .. } | PlatformError::Decode { .. } => ErrorKind::Transient,
        }
    }

    /// True when the platform surely did not act on the request, so even a non-idempotent call
    /// (a code exchange, a rotating refresh) may be sent again.
    pub fn surely_not_processed(&self) -> bool {
        matches!(self, PlatformError::Transport { before_send: true, .. }) || self.kind() == ErrorKind::Throttled
    }

    pub fn detail(&self) -> PlatformDetail {
        let (error_code, log_id) = match self {
            PlatformError::Api { code, log_id, .. } => (Some(*code), log_id.clone()),
            PlatformError::Status { status, .. } => (Some(i64::from(*status)), None),
            _ => (None, None),
        };
        PlatformDetail {
            name: self.platform().as_str(),
            error_code,
            log_id,
        }
    }
}
