//! Embedded lead and task stores, with the DynamoDB adapters' semantics, for the local run and
//! fast tests. The lead store counts its writes so tests can hold it to "unchanged costs nothing".

use super::memory::lock;
use super::{
    LeadStore, LeadUpdateError, OperatorChange, PendingPhone, StoreError, TaskStore, UPSERT_BATCH, UpsertReport,
};
use crate::domain::{ConnectionId, TenantId};
use crate::lead::{HistoryEntry, LeadId, LeadRecord, LeadStatus, StoredLead};
use crate::lead_merge::{PhoneRetryChange, Stored, UpsertPlan, Write};
use crate::lead_query::{Cursor, LeadFilter, LeadPage, PageStart, sort_key};
use crate::task::SyncTask;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct MemoryLeadStore {
    leads: Mutex<HashMap<(TenantId, LeadId), StoredLead>>,
    /// The lead each phone was first stored with, per tenant.
    phones: Mutex<HashMap<(TenantId, String), LeadId>>,
    /// Each tenant's leads in sort-key order, as the byCreatedAt index keeps them.
    order: Mutex<BTreeMap<(TenantId, String), LeadId>>,
    /// Leads waiting for a phone retry, per (tenant, connection).
    pending: Mutex<BTreeMap<(TenantId, ConnectionId, LeadId), PendingPhone>>,
    writes: AtomicU64,
}

impl MemoryLeadStore {
    /// Items written so far (creates and updates).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl LeadStore for MemoryLeadStore {
    async fn upsert(
        &self,
        tenant: &TenantId,
        leads: &[LeadRecord],
        now: DateTime<Utc>,
    ) -> Result<UpsertReport, StoreError> {
        assert!(leads.len() <= UPSERT_BATCH, "upsert takes at most {UPSERT_BATCH} leads");
        let mut all = lock(&self.leads);
        let mut phones = lock(&self.phones);
        let mut order = lock(&self.order);
        let mut pending = lock(&self.pending);
        let mut report = UpsertReport::default();
        for lead in leads {
            let key = (tenant.clone(), lead.lead_id.clone());
            let stored = all.get(&key).map(|l| (l.fields.clone(), l.content_hash.clone()));
            let plan = UpsertPlan::decide(
                lead,
                stored.as_ref().map(|(fields, hash)| Stored {
                    fields,
                    content_hash: hash,
                }),
            );
            let pending_key = (tenant.clone(), lead.connection_id.clone(), lead.lead_id.clone());
            match plan.phone_retry(lead, now) {
                Some(PhoneRetryChange::Remember(entry)) => {
                    pending.insert(pending_key, entry);
                    report.phones_missing += 1;
                }
                Some(PhoneRetryChange::Forget) => {
                    pending.remove(&pending_key);
                }
                None => {}
            }
            match plan.write {
                Write::Unchanged => report.unchanged += 1,
                Write::Refused(_) => report.failed.push(lead.lead_id.clone()),
                Write::Update(record) => {
                    let stored = all.get_mut(&key).expect("an update is of a stored lead");
                    order.remove(&(tenant.clone(), Cursor::of(stored).created_key));
                    stored.fields = record.fields;
                    stored.raw = record.raw;
                    stored.content_hash = record.content_hash;
                    stored.updated_at = now;
                    order.insert((tenant.clone(), Cursor::of(stored).created_key), stored.lead_id.clone());
                    report.updated += 1;
                }
                Write::Create(record) => {
                    let duplicate_of = record.fields.phone.as_ref().and_then(|phone| {
                        let first = phones
                            .entry((tenant.clone(), phone.clone()))
                            .or_insert_with(|| record.lead_id.clone());
                        (*first != record.lead_id).then(|| first.clone())
                    });
                    report.duplicates += u64::from(duplicate_of.is_some());
                    let at = record.fields.created_at.unwrap_or(now);
                    order.insert((tenant.clone(), sort_key(at, &record.lead_id)), record.lead_id.clone());
                    all.insert(
                        key,
                        StoredLead {
                            lead_id: record.lead_id,
                            tenant: tenant.clone(),
                            connection_id: record.connection_id,
                            source: record.source,
                            source_lead_id: record.source_lead_id,
                            fields: record.fields,
                            raw: record.raw,
                            content_hash: record.content_hash,
                            acquired_at: now,
                            updated_at: now,
                            duplicate_of,
                            status: LeadStatus::New,
                            notes: String::new(),
                            version: 1,
                            history: Vec::new(),
                        },
                    );
                    report.created += 1;
                }
            }
        }
        self.writes
            .fetch_add(report.created + report.updated, Ordering::Relaxed);
        Ok(report)
    }

    async fn get(&self, tenant: &TenantId, lead_id: &LeadId) -> Result<Option<StoredLead>, StoreError> {
        Ok(lock(&self.leads).get(&(tenant.clone(), lead_id.clone())).cloned())
    }

    async fn pending_phones(
        &self,
        tenant: &TenantId,
        connection_id: &ConnectionId,
        limit: u32,
    ) -> Result<Vec<PendingPhone>, StoreError> {
        Ok(lock(&self.pending)
            .iter()
            .filter(|((t, c, _), _)| t == tenant && c == connection_id)
            .take(limit as usize)
            .map(|(_, p)| p.clone())
            .collect())
    }

    async fn put_pending_phones(&self, tenant: &TenantId, entries: &[PendingPhone]) -> Result<(), StoreError> {
        let mut pending = lock(&self.pending);
        for entry in entries {
            let key = (tenant.clone(), entry.connection_id.clone(), entry.lead_id.clone());
            pending.insert(key, entry.clone());
        }
        Ok(())
    }

    async fn drop_pending_phones(&self, tenant: &TenantId, entries: &[PendingPhone]) -> Result<(), StoreError> {
        let mut pending = lock(&self.pending);
        for entry in entries {
            pending.remove(&(tenant.clone(), entry.connection_id.clone(), entry.lead_id.clone()));
        }
        Ok(())
    }

    async fn list_all(&self, tenant: &TenantId) -> Result<Vec<StoredLead>, StoreError> {
        let (all, order) = (lock(&self.leads), lock(&self.order));
        Ok(newest_first(&order, tenant, None)
            .filter_map(|id| all.get(&(tenant.clone(), id.clone())).cloned())
            .collect())
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &LeadFilter,
        start: &PageStart,
        size: u32,
    ) -> Result<LeadPage, StoreError> {
        let (all, order) = (lock(&self.leads), lock(&self.order));
        let matching = |before: Option<&str>| {
            newest_first(&order, tenant, before)
                .filter_map(|id| all.get(&(tenant.clone(), id.clone())))
                .filter(|l| filter.matches(l))
        };
        let total = matching(None).count() as u64;
        let (skip, before) = match start {
            PageStart::Number(n) => ((n.max(&1) - 1) as usize * size as usize, None),
            PageStart::After(cursor) => (0, Some(cursor.created_key.as_str())),
        };
        let mut rest = matching(before).skip(skip);
        let records: Vec<StoredLead> = rest.by_ref().take(size as usize).cloned().collect();
        let next = rest.next().and(records.last()).map(Cursor::of);
        Ok(LeadPage { records, total, next })
    }

    async fn append_history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        entries: &[HistoryEntry],
    ) -> Result<(), LeadUpdateError> {
        let mut all = lock(&self.leads);
        let lead = all
            .get_mut(&(tenant.clone(), lead_id.clone()))
            .ok_or(LeadUpdateError::NotFound)?;
        lead.history.extend(entries.iter().cloned());
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn update_operator_fields(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        change: &OperatorChange,
    ) -> Result<StoredLead, LeadUpdateError> {
        let mut all = lock(&self.leads);
        let lead = all
            .get_mut(&(tenant.clone(), lead_id.clone()))
            .ok_or(LeadUpdateError::NotFound)?;
        if lead.version != change.expected_version {
            return Err(LeadUpdateError::VersionConflict { current: lead.version });
        }
        if let Some(status) = change.status {
            lead.status = status;
        }
        if let Some(notes) = &change.notes {
            lead.notes = notes.clone();
        }
        lead.history.extend(change.history.iter().cloned());
        lead.version += 1;
        lead.updated_at = change.at;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(lead.clone())
    }
}

/// The tenant's lead ids newest first, optionally only those sorting before `before`.
fn newest_first<'a>(
    order: &'a BTreeMap<(TenantId, String), LeadId>,
    tenant: &TenantId,
    before: Option<&str>,
) -> impl Iterator<Item = &'a LeadId> + use<'a> {
    let low = (tenant.clone(), String::new());
    let high = (tenant.clone(), before.unwrap_or("~").to_owned());
    order.range(low..high).rev().map(|(_, id)| id)
}

#[derive(Default)]
pub struct MemoryTaskStore {
    tasks: Mutex<HashMap<(TenantId, String), SyncTask>>,
}

#[async_trait]
impl TaskStore for MemoryTaskStore {
    async fn put(&self, task: &SyncTask) -> Result<(), StoreError> {
        lock(&self.tasks).insert((task.tenant.clone(), task.task_id.clone()), task.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, task_id: &str) -> Result<Option<SyncTask>, StoreError> {
        Ok(lock(&self.tasks).get(&(tenant.clone(), task_id.to_owned())).cloned())
    }
}
