//! Pending grants nobody confirmed: their table rows expire by TTL, their secrets are deleted
//! here, on the scheduler's tick.

use super::pending_secret_prefix;
use crate::store::{StoreError, TokenVault};
use chrono::{DateTime, Duration, Utc};

/// Most pending secrets one sweep looks at; the rest wait for the next tick.
pub const SWEEP_LIMIT: usize = 500;

/// A pending secret outlives its ticket by this much, so a confirmation that read the ticket
/// just in time still finds its tokens.
const GRACE: Duration = Duration::minutes(2);

/// Deletes (without recovery) the secrets of pending grants older than `ttl`; returns how many.
pub async fn sweep_pending(
    vault: &dyn TokenVault,
    connection_prefix: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let prefix = pending_secret_prefix(connection_prefix);
    let mut deleted = 0;
    for entry in vault.list_prefixed(&prefix, SWEEP_LIMIT).await? {
        if entry.created_at + ttl + GRACE > now {
            continue;
        }
        // One that cannot be deleted now is tried again next tick; the rest go on.
        match vault.delete_now(&entry.secret_id).await {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(error = %e, "an expired pending secret could not be deleted"),
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "expired pending grants discarded");
    }
    Ok(deleted)
}
