//! Why a sync, or a part of it, did not succeed, as callers see it on a task (`error`,
//! `errorCode`) and on a connection (`lastError`, `lastErrorCode`): a stable code and a message
//! written for them. Infrastructure detail (SDK text, table names, ARNs, transport and decoder
//! errors) never goes in; it is logged where the failure happens.

use crate::lead::LeadSource;
use crate::platform::PlatformError;
use crate::sources::SourceError;
use crate::sync::SkipReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Our storage failed; the run is retried by its queue.
    pub fn storage() -> Self {
        Self::new(
            "STORAGE_FAILED",
            "storing the sync's results failed; it is retried (details are in the function's log)",
        )
    }

    /// The sync request could not be delivered, or its last delivery failed.
    pub fn delivery() -> Self {
        Self::new(
            "DELIVERY_FAILED",
            "the sync could not be requested or run: its last delivery failed (details are in the function's log)",
        )
    }

    pub fn interrupted(lease_until: chrono::DateTime<chrono::Utc>) -> Self {
        Self::new(
            "RUN_INTERRUPTED",
            format!(
                "the run stopped before it finished (its invocation timed out or crashed); its lease expired at {}",
                lease_until.to_rfc3339()
            ),
        )
    }

    pub fn skipped(reason: &SkipReason) -> Self {
        let code = match reason {
            SkipReason::ConnectionNotFound => "CONNECTION_NOT_FOUND",
            SkipReason::NotActive(_) => "CONNECTION_NOT_ACTIVE",
            SkipReason::AlreadyRunning { .. } => "ALREADY_RUNNING",
            SkipReason::TaskAlreadyFinished => "TASK_ALREADY_FINISHED",
        };
        Self::new(code, reason.to_string())
    }

    pub fn reauth(message: impl Into<String>) -> Self {
        Self::new("REAUTH_REQUIRED", message)
    }

    pub fn token_refresh(e: &PlatformError) -> Self {
        Self::new(
            "TOKEN_REFRESH_FAILED",
            format!("token refresh failed: {}", e.public_message()),
        )
    }

    pub fn deadline() -> Self {
        Self::new(
            "DEADLINE_REACHED",
            "stopped before the invocation deadline; the rest follows next run",
        )
    }

    /// A window not proven complete (reconciliation), or leads the store refused one by one.
    pub fn incomplete(source: LeadSource, held: &str) -> Self {
        Self::new("WINDOW_INCOMPLETE", format!("{source}: {held}"))
    }

    /// The spend reports failed; the leads are not affected.
    pub fn spend(e: &PlatformError) -> Self {
        Self::new("PLATFORM_ERROR", format!("spend reports: {}", e.public_message()))
    }

    pub fn spend_unusable() -> Self {
        Self::new("SOURCE_UNUSABLE", "spend reports: the connection has no access token")
    }

    /// A source failed for a reason that is not ours to retry at once.
    pub fn source(source: LeadSource, e: &SourceError) -> Self {
        match e {
            SourceError::Platform(p) => Self::new("PLATFORM_ERROR", format!("{source}: {}", p.public_message())),
            SourceError::Unusable(reason) => Self::new("SOURCE_UNUSABLE", format!("{source}: {reason}")),
            SourceError::OutOfTime => Self::deadline(),
            // Store failures end the run instead (and are retried); never shown in detail.
            SourceError::Store(_) => Self::storage(),
        }
    }
}

/// Several failures as one: the first one's code, every message.
pub fn combined(failures: &[Failure]) -> Option<Failure> {
    let first = failures.first()?;
    let message = failures
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some(Failure::new(first.code, message))
}
