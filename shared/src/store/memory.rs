//! Embedded stores: the same semantics as the AWS adapters, held in process memory.

use super::{
    AppCredentialsSource, ClaimError, ConnectionStore, Lease, PendingGrantStore, RunRecord, StateError, StateStore,
    StoreError, SyncInfo, SyncLedger, TokenVault, VaultEntry, token_codec,
};
use crate::domain::ConnectionStatus;
use crate::domain::{AppCredentials, Connection, ConnectionId, OAuthState, PendingGrant, Provider, TenantId, TokenSet};
use crate::lead::LeadSource;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole local run down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct MemoryStateStore {
    states: Mutex<HashMap<String, OAuthState>>,
    pending: Mutex<HashMap<String, PendingGrant>>,
}

#[async_trait]
impl PendingGrantStore for MemoryStateStore {
    async fn put_pending(&self, grant: &PendingGrant) -> Result<(), StoreError> {
        let mut pending = lock(&self.pending);
        if pending.contains_key(&grant.ticket_hash) {
            return Err(StoreError::new("create pending grant", "ticket already exists"));
        }
        pending.insert(grant.ticket_hash.clone(), grant.clone());
        Ok(())
    }

    async fn get_pending(&self, ticket_hash: &str) -> Result<Option<PendingGrant>, StoreError> {
        Ok(lock(&self.pending).get(ticket_hash).cloned())
    }

    async fn mark_confirmed(&self, ticket_hash: &str, connection: &ConnectionId) -> Result<(), StoreError> {
        if let Some(grant) = lock(&self.pending).get_mut(ticket_hash) {
            grant.confirmed = Some(connection.clone());
        }
        Ok(())
    }

    async fn delete_pending(&self, ticket_hash: &str) -> Result<(), StoreError> {
        lock(&self.pending).remove(ticket_hash);
        Ok(())
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn create(&self, state: &OAuthState) -> Result<(), StoreError> {
        let mut states = lock(&self.states);
        if states.contains_key(&state.state) {
            return Err(StoreError::new("create state", "state already exists"));
        }
        states.insert(state.state.clone(), state.clone());
        Ok(())
    }

    async fn consume(&self, state: &str, now: DateTime<Utc>) -> Result<OAuthState, StateError> {
        let found = lock(&self.states).remove(state).ok_or(StateError::Unknown)?;
        if found.expires_at <= now {
            return Err(StateError::Expired);
        }
        Ok(found)
    }
}

/// Keeps every version of every secret, newest last, as Secrets Manager keeps AWSPREVIOUS.
pub struct MemoryTokenVault {
    secrets: Mutex<HashMap<String, Vec<String>>>,
    created: Mutex<HashMap<String, DateTime<Utc>>>,
    credentials: Arc<AppCredentials>,
}

impl MemoryTokenVault {
    pub fn new(credentials: AppCredentials) -> Self {
        Self {
            secrets: Mutex::default(),
            created: Mutex::default(),
            credentials: Arc::new(credentials),
        }
    }

    /// How many versions `secret_id` has; for tests of rotation.
    pub fn version_count(&self, secret_id: &str) -> usize {
        lock(&self.secrets).get(secret_id).map_or(0, Vec::len)
    }
}

#[async_trait]
impl TokenVault for MemoryTokenVault {
    async fn put_tokens(&self, secret_id: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        lock(&self.created).entry(secret_id.to_owned()).or_insert_with(Utc::now);
        lock(&self.secrets)
            .entry(secret_id.to_owned())
            .or_default()
            .push(token_codec::encode(tokens));
        Ok(())
    }

    async fn get_tokens(&self, secret_id: &str) -> Result<Option<TokenSet>, StoreError> {
        let current = lock(&self.secrets).get(secret_id).and_then(|v| v.last().cloned());
        current.as_deref().map(token_codec::decode).transpose()
    }

    async fn schedule_deletion(&self, secret_id: &str) -> Result<(), StoreError> {
        lock(&self.secrets).remove(secret_id);
        lock(&self.created).remove(secret_id);
        Ok(())
    }

    async fn delete_now(&self, secret_id: &str) -> Result<(), StoreError> {
        self.schedule_deletion(secret_id).await
    }

    async fn list_prefixed(&self, prefix: &str, limit: usize) -> Result<Vec<VaultEntry>, StoreError> {
        let mut entries: Vec<VaultEntry> = lock(&self.created)
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(id, at)| VaultEntry {
                secret_id: id.clone(),
                created_at: *at,
            })
            .collect();
        entries.sort_by_key(|e| e.created_at);
        entries.truncate(limit);
        Ok(entries)
    }
}

#[async_trait]
impl AppCredentialsSource for MemoryTokenVault {
    async fn app_credentials(&self) -> Result<Arc<AppCredentials>, StoreError> {
        Ok(self.credentials.clone())
    }
}

#[derive(Default)]
pub struct MemoryConnectionStore {
    inner: Mutex<Connections>,
    /// Where each connection write is told, as DynamoDB Streams would (the local run's events).
    feed: Option<Arc<crate::events::feed::ChangeFeed>>,
}

impl MemoryConnectionStore {
    /// A store that tells `feed` of every connection write, as DynamoDB Streams would.
    pub fn with_feed(feed: Arc<crate::events::feed::ChangeFeed>) -> Self {
        Self {
            feed: Some(feed),
            ..Self::default()
        }
    }
}

#[derive(Default)]
struct Connections {
    claims: HashMap<(Provider, String), TenantId>,
    rows: BTreeMap<(TenantId, ConnectionId), Connection>,
    sync: HashMap<(TenantId, ConnectionId), SyncInfo>,
}

impl Connections {
    fn claim(&mut self, tenant: &TenantId, provider: Provider, external: &str) -> Result<(), ClaimError> {
        let owner = self
            .claims
            .entry((provider, external.to_owned()))
            .or_insert_with(|| tenant.clone());
        if owner != tenant {
            return Err(ClaimError::OwnedByAnotherTenant {
                provider,
                external_account_id: external.to_owned(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnectionStore {
    async fn upsert(&self, connection: &Connection) -> Result<(), ClaimError> {
        let mut inner = lock(&self.inner);
        inner.claim(&connection.tenant, connection.provider, &connection.external_account_id)?;
        let key = (connection.tenant.clone(), connection.id.clone());
        let created_at = inner.rows.get(&key).map_or(connection.created_at, |old| old.created_at);
        let old = inner.rows.get(&key).cloned();
        let health = crate::events::RunHealth::of(&inner.sync.get(&key).cloned().unwrap_or_default());
        let new = Connection {
            created_at,
            ..connection.clone()
        };
        if let Some(feed) = &self.feed {
            feed.connection(old.as_ref().map(|o| (o, health.clone())), (&new, health));
        }
        inner.rows.insert(key, new);
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(lock(&self.inner).rows.get(&(tenant.clone(), id.clone())).cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        Ok(lock(&self.inner)
            .rows
            .values()
            .filter(|c| &c.tenant == tenant)
            .cloned()
            .collect())
    }

    async fn release(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        let disabled = inner
            .rows
            .get(&(connection.tenant.clone(), connection.id.clone()))
            .is_some_and(|row| row.status == ConnectionStatus::Disabled);
        let key = (connection.provider, connection.external_account_id.clone());
        if disabled && inner.claims.get(&key) == Some(&connection.tenant) {
            inner.claims.remove(&key);
        }
        Ok(())
    }
}

impl MemoryConnectionStore {
    /// Applies `f` to the sync info of an existing connection; a missing one is left alone, as
    /// the DynamoDB adapter's conditional updates leave it.
    fn with_sync(&self, tenant: &TenantId, id: &ConnectionId, f: impl FnOnce(&mut SyncInfo, &mut Connection)) {
        let mut inner = lock(&self.inner);
        let key = (tenant.clone(), id.clone());
        let Connections { rows, sync, .. } = &mut *inner;
        if let Some(row) = rows.get_mut(&key) {
            let info = sync.entry(key).or_default();
            let before = self
                .feed
                .as_ref()
                .map(|_| (row.clone(), crate::events::RunHealth::of(info)));
            f(info, row);
            if let (Some(feed), Some((old, health))) = (&self.feed, before) {
                feed.connection(Some((&old, health)), (row, crate::events::RunHealth::of(info)));
            }
        }
    }
}

#[async_trait]
impl SyncLedger for MemoryConnectionStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Lease>, StoreError> {
        let mut outcome = Err(Lease {
            holder: String::new(),
            until: now,
        });
        self.with_sync(tenant, id, |info, _| match &info.lease {
            Some(lease) if lease.holder != holder && lease.until >= now => outcome = Err(lease.clone()),
            _ => {
                info.lease = Some(Lease {
                    holder: holder.to_owned(),
                    until,
                });
                outcome = Ok(());
            }
        });
        Ok(outcome)
    }

    async fn release_lease(&self, tenant: &TenantId, id: &ConnectionId, holder: &str) -> Result<(), StoreError> {
        self.with_sync(tenant, id, |info, _| {
            if info.lease.as_ref().is_some_and(|l| l.holder == holder) {
                info.lease = None;
            }
        });
        Ok(())
    }

    async fn sync_info(&self, tenant: &TenantId, id: &ConnectionId) -> Result<SyncInfo, StoreError> {
        Ok(lock(&self.inner)
            .sync
            .get(&(tenant.clone(), id.clone()))
            .cloned()
            .unwrap_or_default())
    }

    async fn advance_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_sync(tenant, id, |info, _| {
            let mark = info.watermarks.entry(source).or_insert(to);
            *mark = (*mark).max(to);
        });
        Ok(())
    }

    async fn rewind_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_sync(tenant, id, |info, _| {
            if let Some(mark) = info.watermarks.get_mut(&source) {
                *mark = (*mark).min(to);
            }
        });
        Ok(())
    }

    async fn record_run(&self, tenant: &TenantId, id: &ConnectionId, run: &RunRecord) -> Result<(), StoreError> {
        self.with_sync(tenant, id, |info, _| {
            info.last_sync_at = Some(run.at);
            info.last_task_id = Some(run.task_id.clone());
            info.lead_count += run.created;
            if run.succeeded {
                info.last_success_at = Some(run.at);
                info.failed_runs = 0;
            }
            if run.failed {
                info.failed_runs += 1;
            }
            info.last_error = run.failure.as_ref().map(|f| f.message.clone());
            info.last_error_code = run.failure.as_ref().map(|f| f.code.to_owned());
        });
        Ok(())
    }

    async fn set_write_back(&self, tenant: &TenantId, id: &ConnectionId, on: bool) -> Result<bool, StoreError> {
        let mut found = false;
        self.with_sync(tenant, id, |info, _| {
            info.write_back = on;
            found = true;
        });
        Ok(found)
    }

    async fn disable(&self, tenant: &TenantId, id: &ConnectionId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut found = false;
        self.with_sync(tenant, id, |_, row| {
            row.status = ConnectionStatus::Disabled;
            row.updated_at = now;
            found = true;
        });
        Ok(found)
    }

    async fn mark_reauth_required(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_sync(tenant, id, |info, row| {
            // Only an ACTIVE connection: a disconnect meanwhile (DISABLED) stays as it is.
            if row.status == ConnectionStatus::Active {
                row.status = ConnectionStatus::ReauthRequired;
                row.updated_at = now;
                info.last_error = Some(reason.to_owned());
                info.last_error_code = Some("REAUTH_REQUIRED".to_owned());
            }
        });
        Ok(())
    }

    async fn update_token_expiry(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        access_expires_at: DateTime<Utc>,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_sync(tenant, id, |_, row| {
            row.access_expires_at = access_expires_at;
            row.refresh_expires_at = refresh_expires_at;
        });
        Ok(())
    }

    async fn list_active(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(lock(&self.inner)
            .rows
            .values()
            .filter(|c| c.status == ConnectionStatus::Active)
            .cloned()
            .collect())
    }
}
