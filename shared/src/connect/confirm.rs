//! Step three: a user of the tenant that started the flow confirms the pending grant with its
//! ticket. Only then is the account claimed (conditionally, as a one-tenant-per-account rule),
//! the tokens moved to the connection's secret and the connection made ACTIVE.

use super::{ConnectError, ticket_hash};
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionStatus, PendingGrant, TenantId};
use crate::store::{ClaimError, ConnectionStore, PendingGrantStore, TokenVault};
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
            tracing::warn!(tenant = %tenant, started_by = %grant.tenant, provider = %grant.provider, "a ticket was presented by another tenant; refused");
            return Err(ConnectError::TicketNotFound);
        }
        if let Some(id) = &grant.confirmed {
            return self
                .connections
                .get(tenant, id)
                .await?
                .ok_or(ConnectError::TicketNotFound);
        }
        if grant.expires_at <= now {
            self.discard(&grant).await;
            return Err(ConnectError::TicketExpired);
        }
        let Some(tokens) = self.vault.get_tokens(&grant.secret_id).await? else {
            // Swept already: the grant is as good as expired.
            self.discard(&grant).await;
            return Err(ConnectError::TicketExpired);
        };
        let id = match self
            .connections
            .claim(tenant, grant.provider, &grant.external_account_id)
            .await
        {
            Ok(id) => id,
            Err(ClaimError::OwnedByAnotherTenant { .. }) => {
                self.discard(&grant).await;
                return Err(ConnectError::AccountOwnedByAnotherTenant);
            }
            Err(ClaimError::Store(e)) => return Err(e.into()),
        };
        let secret_id = format!("{}{}", self.secret_prefix, id);
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
        self.connections.upsert(&connection).await?;
        self.pending.mark_confirmed(&hash, &connection.id).await?;
        if let Err(e) = self.vault.delete_now(&grant.secret_id).await {
            tracing::warn!(connection_id = %connection.id, error = %e, "pending secret left for the sweep");
        }
        tracing::info!(tenant = %tenant, provider = %connection.provider, connection_id = %connection.id, "account connected");
        Ok(connection)
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
