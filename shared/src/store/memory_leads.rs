//! Embedded lead and task stores, with the DynamoDB adapters' semantics, for the local run and
//! fast tests. The lead store counts its writes so tests can hold it to "unchanged costs nothing".

use super::memory::lock;
use super::{
    AuditLog, AuditRecord, HistoryPage, IndexEntry, IndexPage, IndexRange, LeadStore, LeadUpdateError, OperatorChange,
    PendingPhone, StoreError, TaskStore, UPSERT_BATCH, UpsertReport,
};
use crate::domain::{ConnectionId, TenantId};
use crate::lead::{HistoryEntry, LeadId, LeadRecord, LeadStatus, StoredLead, history_key};
use crate::lead_merge::{PhoneRetryChange, Stored, UpsertPlan, Write};
use crate::read_model::{IndexView, Partition, counter_deltas, id_of_sort_key};
use crate::task::SyncTask;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct MemoryLeadStore {
    leads: Mutex<HashMap<(TenantId, LeadId), StoredLead>>,
    /// The lead each phone was first stored with, per tenant.
    phones: Mutex<HashMap<(TenantId, String), LeadId>>,
    /// The read model: (tenant, partition key, sort key), as the DynamoDB indexes keep it.
    index: Mutex<BTreeSet<(TenantId, String, String)>>,
    /// Day counters: (tenant, partition key, day) → leads.
    counters: Mutex<BTreeMap<(TenantId, String, NaiveDate), i64>>,
    /// History entries: (tenant, lead, key).
    history: Mutex<BTreeMap<(TenantId, LeadId, String), HistoryEntry>>,
    /// Leads waiting for a phone retry, per (tenant, connection).
    pending: Mutex<BTreeMap<(TenantId, ConnectionId, LeadId), PendingPhone>>,
    writes: AtomicU64,
    /// Where each lead write is told, as DynamoDB Streams would (the local run's events).
    feed: Option<Arc<crate::events::feed::ChangeFeed>>,
}

impl MemoryLeadStore {
    /// A store that tells `feed` of every lead write, as DynamoDB Streams would.
    pub fn with_feed(feed: Arc<crate::events::feed::ChangeFeed>) -> Self {
        Self {
            feed: Some(feed),
            ..Self::default()
        }
    }

    /// Items written so far (creates and updates).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Moves a lead in the read model from where `before` put it to where `after` puts it.
fn reindex(
    index: &mut BTreeSet<(TenantId, String, String)>,
    counters: &mut BTreeMap<(TenantId, String, NaiveDate), i64>,
    tenant: &TenantId,
    before: Option<&IndexView>,
    after: Option<&IndexView>,
) {
    if let Some(view) = before {
        for p in view.partitions() {
            index.remove(&(tenant.clone(), p.key(), view.sort_key.clone()));
        }
    }
    if let Some(view) = after {
        for p in view.partitions() {
            index.insert((tenant.clone(), p.key(), view.sort_key.clone()));
        }
    }
    for ((partition, day), delta) in counter_deltas(before, after) {
        *counters.entry((tenant.clone(), partition, day)).or_insert(0) += delta;
    }
}

fn put_history(
    history: &mut BTreeMap<(TenantId, LeadId, String), HistoryEntry>,
    tenant: &TenantId,
    lead_id: &LeadId,
    entries: &[HistoryEntry],
) {
    for (seq, entry) in entries.iter().enumerate() {
        let key = history_key(entry.at, seq);
        history.insert((tenant.clone(), lead_id.clone(), key), entry.clone());
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
        let mut index = lock(&self.index);
        let mut counters = lock(&self.counters);
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
                    let old = self.feed.as_ref().map(|_| stored.clone());
                    let before = IndexView::of(stored);
                    stored.fields = record.fields;
                    stored.raw = record.raw;
                    stored.content_hash = record.content_hash;
                    stored.updated_at = now;
                    reindex(
                        &mut index,
                        &mut counters,
                        tenant,
                        Some(&before),
                        Some(&IndexView::of(stored)),
                    );
                    if let Some(feed) = &self.feed {
                        feed.lead(old.as_ref(), stored);
                    }
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
                    let created = StoredLead {
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
                        changed_by: None,
                        invalid_reason: None,
                        write_back: None,
                    };
                    reindex(&mut index, &mut counters, tenant, None, Some(&IndexView::of(&created)));
                    if let Some(feed) = &self.feed {
                        feed.lead(None, &created);
                    }
                    all.insert(key, created);
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

    async fn index_page(
        &self,
        tenant: &TenantId,
        range: &IndexRange,
        limit: u32,
        with_leads: bool,
    ) -> Result<IndexPage, StoreError> {
        let (index, all) = (lock(&self.index), lock(&self.leads));
        let partition = range.partition.key();
        let hi = match &range.before {
            Some(before) if before.as_str() <= range.lo.as_str() => return Ok(IndexPage::default()),
            Some(before) if before.as_str() <= range.hi.as_str() => Bound::Excluded(before.clone()),
            _ if range.hi < range.lo => return Ok(IndexPage::default()),
            _ => Bound::Included(range.hi.clone()),
        };
        let bounds = (
            Bound::Included((tenant.clone(), partition.clone(), range.lo.clone())),
            hi.map(|k| (tenant.clone(), partition.clone(), k)),
        );
        let mut keys = index.range(bounds).rev().map(|(_, _, k)| k.clone());
        let entries: Vec<IndexEntry> = keys
            .by_ref()
            .take(limit as usize)
            .map(|key| IndexEntry {
                lead: with_leads
                    .then(|| id_of_sort_key(&key))
                    .flatten()
                    .and_then(|id| all.get(&(tenant.clone(), id)).cloned()),
                key,
            })
            .collect();
        Ok(IndexPage {
            more: keys.next().is_some(),
            entries,
        })
    }

    async fn count_range(
        &self,
        tenant: &TenantId,
        partition: &Partition,
        lo: &str,
        hi: &str,
    ) -> Result<u64, StoreError> {
        if hi < lo {
            return Ok(0);
        }
        let p = partition.key();
        let bounds = (tenant.clone(), p.clone(), lo.to_owned())..=(tenant.clone(), p, hi.to_owned());
        Ok(lock(&self.index).range(bounds).count() as u64)
    }

    async fn count_days(
        &self,
        tenant: &TenantId,
        partition: &Partition,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<u64, StoreError> {
        if last < first {
            return Ok(0);
        }
        // One range of the ordered map, as the DynamoDB store reads one range of counter items.
        let p = partition.key();
        let bounds = (tenant.clone(), p.clone(), first)..=(tenant.clone(), p, last);
        let sum: i64 = lock(&self.counters).range(bounds).map(|(_, n)| *n).sum();
        Ok(sum.max(0) as u64)
    }

    async fn analytics_counters(
        &self,
        tenant: &TenantId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let lo = format!("A|{}", crate::read_model::day_key(first));
        let hi = format!("A|{}|~", crate::read_model::day_key(last));
        Ok(lock(&self.counters)
            .iter()
            .filter(|((t, key, _), _)| t == tenant && key.as_str() >= lo.as_str() && key.as_str() <= hi.as_str())
            .map(|((_, key, _), n)| (key.clone(), *n))
            .collect())
    }

    async fn history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        let history = lock(&self.history);
        let low = (tenant.clone(), lead_id.clone(), String::new());
        let high = (tenant.clone(), lead_id.clone(), before.unwrap_or("~").to_owned());
        let mut newest = history.range(low..high).rev();
        let page: Vec<(String, HistoryEntry)> = newest
            .by_ref()
            .take(limit as usize)
            .map(|((_, _, k), e)| (k.clone(), e.clone()))
            .collect();
        let next = newest.next().and(page.last()).map(|(k, _)| k.clone());
        Ok(HistoryPage {
            entries: page.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }

    async fn append_history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        entries: &[HistoryEntry],
    ) -> Result<(), LeadUpdateError> {
        if !lock(&self.leads).contains_key(&(tenant.clone(), lead_id.clone())) {
            return Err(LeadUpdateError::NotFound);
        }
        put_history(&mut lock(&self.history), tenant, lead_id, entries);
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
        let old = self.feed.as_ref().map(|_| lead.clone());
        let before = IndexView::of(lead);
        match change.reason_change(lead.status) {
            crate::store::ReasonChange::Set(reason) => lead.invalid_reason = Some(reason),
            crate::store::ReasonChange::Clear => lead.invalid_reason = None,
            crate::store::ReasonChange::Keep => {}
        }
        if let Some(status) = change.status {
            lead.status = status;
        }
        if let Some(notes) = &change.notes {
            lead.notes = notes.clone();
        }
        if let Some(actor) = change.actor() {
            lead.changed_by = Some(actor.to_owned());
        }
        lead.version += 1;
        lead.updated_at = change.at;
        let after = IndexView::of(lead);
        reindex(
            &mut lock(&self.index),
            &mut lock(&self.counters),
            tenant,
            Some(&before),
            Some(&after),
        );
        put_history(&mut lock(&self.history), tenant, lead_id, &change.history);
        if let Some(feed) = &self.feed {
            feed.lead(old.as_ref(), lead);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(lead.clone())
    }

    async fn record_write_back(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        record: &crate::writeback::WriteBack,
    ) -> Result<(), StoreError> {
        let mut all = lock(&self.leads);
        if let Some(lead) = all.get_mut(&(tenant.clone(), lead_id.clone())) {
            let old = self.feed.as_ref().map(|_| lead.clone());
            lead.write_back = Some(record.clone());
            if let Some(feed) = &self.feed {
                feed.lead(old.as_ref(), lead);
            }
        }
        Ok(())
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

#[derive(Default)]
pub struct MemoryAuditLog {
    records: Mutex<Vec<AuditRecord>>,
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        lock(&self.records).push(record.clone());
        Ok(())
    }

    async fn list(&self, tenant: &TenantId, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(lock(&self.records)
            .iter()
            .rev()
            .filter(|r| &r.tenant == tenant)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
