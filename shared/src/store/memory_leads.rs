//! Embedded lead and task stores, with the DynamoDB adapters' semantics, for the local run and
//! fast tests. The lead store counts its writes so tests can hold it to "unchanged costs nothing".

use super::memory::lock;
use super::{LeadStore, LeadUpdateError, OperatorChange, StoreError, TaskStore, UPSERT_BATCH, UpsertReport};
use crate::domain::TenantId;
use crate::lead::{HistoryEntry, LeadId, LeadRecord, LeadStatus, StoredLead};
use crate::lead_query::{Cursor, LeadFilter, LeadPage, PageStart};
use crate::task::SyncTask;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct MemoryLeadStore {
    leads: Mutex<HashMap<(TenantId, LeadId), StoredLead>>,
    /// The lead each phone was first stored with, per tenant.
    phones: Mutex<HashMap<(TenantId, String), LeadId>>,
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
        let mut report = UpsertReport::default();
        for lead in leads {
            let key = (tenant.clone(), lead.lead_id.clone());
            if let Some(stored) = all.get_mut(&key) {
                if stored.content_hash == lead.content_hash {
                    report.unchanged += 1;
                } else {
                    stored.fields = lead.fields.clone();
                    stored.raw = lead.raw.clone();
                    stored.content_hash = lead.content_hash.clone();
                    stored.updated_at = now;
                    report.updated += 1;
                }
                continue;
            }
            let duplicate_of = lead.fields.phone.as_ref().and_then(|phone| {
                let first = phones
                    .entry((tenant.clone(), phone.clone()))
                    .or_insert_with(|| lead.lead_id.clone());
                (*first != lead.lead_id).then(|| first.clone())
            });
            report.duplicates += u64::from(duplicate_of.is_some());
            all.insert(
                key,
                StoredLead {
                    lead_id: lead.lead_id.clone(),
                    tenant: tenant.clone(),
                    connection_id: lead.connection_id.clone(),
                    source: lead.source,
                    source_lead_id: lead.source_lead_id.clone(),
                    fields: lead.fields.clone(),
                    raw: lead.raw.clone(),
                    content_hash: lead.content_hash.clone(),
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
        self.writes
            .fetch_add(report.created + report.updated, Ordering::Relaxed);
        Ok(report)
    }

    async fn get(&self, tenant: &TenantId, lead_id: &LeadId) -> Result<Option<StoredLead>, StoreError> {
        Ok(lock(&self.leads).get(&(tenant.clone(), lead_id.clone())).cloned())
    }

    async fn list_all(&self, tenant: &TenantId) -> Result<Vec<StoredLead>, StoreError> {
        let mut leads: Vec<StoredLead> = lock(&self.leads)
            .values()
            .filter(|l| &l.tenant == tenant)
            .cloned()
            .collect();
        leads.sort_by(|a, b| (b.sort_time(), &b.lead_id).cmp(&(a.sort_time(), &a.lead_id)));
        Ok(leads)
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &LeadFilter,
        start: &PageStart,
        size: u32,
    ) -> Result<LeadPage, StoreError> {
        let matched: Vec<StoredLead> = self
            .list_all(tenant)
            .await?
            .into_iter()
            .filter(|l| filter.matches(l))
            .collect();
        let from = match start {
            PageStart::Number(n) => (n.max(&1) - 1) as usize * size as usize,
            PageStart::After(cursor) => matched
                .iter()
                .position(|l| Cursor::of(l).created_key < cursor.created_key)
                .unwrap_or(matched.len()),
        };
        let records: Vec<StoredLead> = matched.iter().skip(from).take(size as usize).cloned().collect();
        let next = (from + records.len() < matched.len())
            .then(|| records.last().map(Cursor::of))
            .flatten();
        Ok(LeadPage {
            records,
            total: matched.len() as u64,
            next,
        })
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
