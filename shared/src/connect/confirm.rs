//! Step three: a user of the tenant that started the flow confirms the pending grant with its
//! ticket. Only then are the tokens moved to the connection's secret and the account claimed
//! (conditionally, one tenant per account) with the connection made ACTIVE, in one write.

use super::{ConnectError, ticket_hash};
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionId, ConnectionStatus, PendingGrant, TenantId};
use crate::store::{ClaimError, ConnectionStore, PendingGrantStore, StoreError, TokenVault};
use chrono::SubsecRound;
use std::sync::Arc;

pub struct ConnectConfirm {
    pub pending: Arc<dyn PendingGrantStore>,
    pub vault: Arc<dyn TokenVault>,
    pub connections: Arc<dyn ConnectionStore>,
    pub secret_prefix: String,
    pub clock: Arc<dyn Clock>,
}

/// The callback's tickets: 64 lowercase hex characters.
fn well_formed(ticket: &str) -> bool {
    ticket.len() == 64 && ticket.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ConnectConfirm {
    /// Every step can be repeated: a confirmation cut off midway is completed by the next one,
    /// and a replay after success answers the same connection.
    pub async fn confirm(&self, tenant: &TenantId, ticket: &str) -> Result<Connection, ConnectError> {
        if !well_formed(ticket) {
            return Err(ConnectError::TicketInvalid);
        }
        let hash = ticket_hash(ticket);
        let now = self.clock.now().trunc_subsecs(3);
        let grant = self
            .pending
            .get_pending(&hash)
            .await?
            .ok_or(ConnectError::TicketNotFound)?;
        if &grant.tenant != tenant {
            // The consent link reached a browser of another tenant: the phishing this step stops.
            // The grant is spent, so a ticket that leaked out of that browser cannot be used later.
            tracing::warn!(tenant = %tenant, started_by = %grant.tenant, provider = %grant.provider, "a ticket was presented by another tenant; refused and discarded");
            if grant.confirmed.is_none() {
                self.discard(&grant).await;
            }
            return Err(ConnectError::TicketNotFound);
        }
        if let Some(id) = &grant.confirmed {
            return self.confirmed(tenant, id).await;
        }
        if grant.expires_at <= now {
            self.discard(&grant).await;
            return Err(ConnectError::TicketExpired);
        }
        let Some(tokens) = self.vault.get_tokens(&grant.secret_id).await? else {
            // A concurrent confirmation finished first (and deleted the pending secret), or the
            // secret is not readable yet: never a reason to throw the grant away.
            return match self.pending.get_pending(&hash).await? {
                Some(PendingGrant {
                    confirmed: Some(id), ..
                }) => self.confirmed(tenant, &id).await,
                _ => Err(ConnectError::Store(StoreError::new(
                    "read pending tokens",
                    "the pending secret is not readable yet; the confirmation may be retried",
                ))),
            };
        };
        let id = ConnectionId::derive(tenant, grant.provider, &grant.external_account_id);
        let secret_id = format!("{}{}", self.secret_prefix, id);
        // Tokens first: an ACTIVE connection without its secret would be marked for
        // re-authorisation by the next sync. The claim is made with the row, in one transaction,
        // so no failure in between can leave the account claimed without a connection.
        self.vault.put_tokens(&secret_id, &tokens).await?;
        let connection = Connection {
            id,
            tenant: tenant.clone(),
            provider: grant.provider,
            external_account_id: grant.external_account_id.clone(),
            advertiser_ids: grant.advertiser_ids.clone(),
            scopes: grant.scopes.clone(),
            status: ConnectionStatus::Active,
            secret_id,
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at: tokens.refresh_expires_at,
            created_at: now,
            updated_at: now,
        };
        match self.connections.upsert(&connection).await {
            Ok(()) => {}
            Err(ClaimError::OwnedByAnotherTenant { .. }) => {
                // Another tenant holds the account: no tokens stay behind for it.
                if let Err(e) = self.vault.schedule_deletion(&connection.secret_id).await {
                    tracing::warn!(error = %e, "tokens of a refused claim not deleted");
                }
                self.discard(&grant).await;
                return Err(ConnectError::AccountOwnedByAnotherTenant);
            }
            Err(ClaimError::Store(e)) => return Err(e.into()),
        }
        self.pending.mark_confirmed(&hash, &connection.id).await?;
        if let Err(e) = self.vault.delete_now(&grant.secret_id).await {
            tracing::warn!(connection_id = %connection.id, error = %e, "pending secret left for the sweep");
        }
        tracing::info!(tenant = %tenant, provider = %connection.provider, connection_id = %connection.id, "account connected");
        Ok(connection)
    }

    /// A replay of a confirmation that succeeded: the same connection.
    async fn confirmed(&self, tenant: &TenantId, id: &ConnectionId) -> Result<Connection, ConnectError> {
        self.connections
            .get(tenant, id)
            .await?
            .ok_or(ConnectError::TicketNotFound)
    }

    /// Best effort: what is left behind, the sweep and the table's TTL take.
    async fn discard(&self, grant: &PendingGrant) {
        if let Err(e) = self.vault.delete_now(&grant.secret_id).await {
            tracing::warn!(error = %e, "pending secret left for the sweep");
        }
        if let Err(e) = self.pending.delete_pending(&grant.ticket_hash).await {
            tracing::warn!(error = %e, "pending grant left for its TTL");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_callbacks_ticket_shape_is_looked_up() {
        assert!(well_formed(&"ab".repeat(32)));
        for bad in ["", "abc", &"AB".repeat(32), &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
