//! Leads in DynamoDB: one item per (tenant, lead id). New leads go out in batches, changed ones
//! as single updates of the platform fields, unchanged ones not at all.
//!
//! Item: `pk = TENANT#<tenant>`, `sk = LEAD#<leadId>`, `fields` (map of the normalized platform
//! fields), `raw` (the platform record as JSON text), `contentHash`, operator fields (`status`,
//! `notes`, `version`), and the read model's index keys (see [`crate::read_model`]): `tenant` +
//! `createdKey` (byCreatedAt with the items, ixAll keys only) and one `x…` attribute per
//! filtered index (`<tenant>|<partition>`), each a keys-only index sorted by `createdKey`.
//! Beside them: `sk = PHONE#<phone>` items name the lead each phone was first stored with (new
//! leads link to it, `duplicateOf`); `sk = COUNT#<partition>#<day>` items count a partition's
//! leads per Beijing day, added to in the transaction that writes the lead; `pk =
//! HIST#<tenant>#<leadId>`, `sk = H#<key>` items are the lead's history.

use super::attr::{
    Item, from_json, get_consistent, get_n, get_opt_s, get_s, get_time, n, query_all, s, sdk_error, time, to_json,
};
use super::dynamo::tenant_pk;
use super::{
    HistoryPage, IndexEntry, IndexPage, IndexRange, LeadStore, LeadUpdateError, OperatorChange, PendingPhone,
    StoreError, UPSERT_BATCH, UpsertReport,
};
use crate::domain::{ConnectionId, TenantId};
use crate::lead::{HistoryEntry, LeadFields, LeadId, LeadRecord, LeadSource, LeadStatus, StoredLead, history_key};
use crate::lead_merge::{PhoneRetryChange, Stored, UpsertPlan, Write};
use crate::read_model::{IndexKind, IndexView, Partition, counter_deltas, day_key, id_of_sort_key, sort_key};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::Select;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, KeysAndAttributes, Put, PutRequest, TransactWriteItem, Update,
    WriteRequest,
};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;

pub const CREATED_INDEX: &str = "byCreatedAt";
/// Most items one Query returns before a 1 MB page ends it anyway.
const QUERY_PAGE: usize = 1000;
/// BatchGetItem takes at most 100 keys.
const READ_BATCH: usize = 100;
/// Unprocessed items are retried this many times with backoff before the batch counts as failed.
const UNPROCESSED_ATTEMPTS: u32 = 8;

pub struct DynamoLeadStore {
    client: Client,
    table: String,
}

impl DynamoLeadStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

pub(crate) fn lead_sk(id: &LeadId) -> String {
    format!("LEAD#{id}")
}

fn phone_sk(phone: &str) -> String {
    format!("PHONE#{phone}")
}

fn item_key(tenant: &TenantId, sk: String) -> Item {
    Item::from([("pk".to_owned(), s(tenant_pk(tenant))), ("sk".to_owned(), s(sk))])
}

fn key(tenant: &TenantId, id: &LeadId) -> Item {
    item_key(tenant, lead_sk(id))
}

/// The item that makes `lead` the one its phone links to.
fn phone_claim(tenant: &TenantId, phone: &str, lead: &LeadId) -> Item {
    let mut item = item_key(tenant, phone_sk(phone));
    item.insert("leadId".to_owned(), s(lead.as_str()));
    item
}

/// How one lead's write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeadWrite {
    Written,
    /// Another writer created it first.
    Exists,
    /// DynamoDB refused this item (over 400 KB, say); the others go on.
    Refused,
}

/// Changed leads updated at once, one request each.
const WRITE_CONCURRENCY: usize = 16;
/// Conditional puts per transaction (DynamoDB's most) and their size, under its 4 MB.
const TRANSACTION_ITEMS: usize = 100;
const TRANSACTION_BYTES: usize = 3 * 1024 * 1024;

/// About how many bytes an item takes (names and values), to keep a transaction under its limit.
fn approximate_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::M(m) => m.iter().map(|(k, v)| k.len() + value(v)).sum(),
            AttributeValue::L(l) => l.iter().map(value).sum(),
            _ => 8,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// A refusal of this one item (DynamoDB's ValidationException: too large, bad attribute), not
/// of the store: the lead fails alone.
fn is_item_refused<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()) == Some("ValidationException")
}

fn pending_key(tenant: &TenantId, connection: &ConnectionId, lead: &LeadId) -> Item {
    item_key(tenant, format!("PHONEWAIT#{connection}#{lead}"))
}

fn pending_item(tenant: &TenantId, p: &PendingPhone) -> Item {
    let mut item = pending_key(tenant, &p.connection_id, &p.lead_id);
    item.extend([
        ("leadId".to_owned(), s(p.lead_id.as_str())),
        ("connectionId".to_owned(), s(p.connection_id.as_str())),
        ("source".to_owned(), s(p.source.as_str())),
        ("sourceLeadId".to_owned(), s(&p.source_lead_id)),
        ("cipher".to_owned(), s(&p.cipher)),
        ("attempts".to_owned(), n(i64::from(p.attempts))),
        ("since".to_owned(), time(p.since)),
    ]);
    item
}

/// The item's `source`, one this version knows.
fn get_source(item: &Item) -> Result<LeadSource, StoreError> {
    let source = get_s(item, "source")?;
    LeadSource::parse(&source).ok_or_else(|| StoreError::new("decode lead", format!("unknown source {source}")))
}

fn decode_pending(item: &Item) -> Result<PendingPhone, StoreError> {
    Ok(PendingPhone {
        lead_id: LeadId::from_stored(get_s(item, "leadId")?),
        connection_id: ConnectionId::from_stored(get_s(item, "connectionId")?),
        source: get_source(item)?,
        source_lead_id: get_s(item, "sourceLeadId")?,
        cipher: get_s(item, "cipher")?,
        attempts: get_n(item, "attempts").unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        since: get_time(item, "since")?,
    })
}

fn decode_fields(item: &Item) -> Result<LeadFields, StoreError> {
    match item.get("fields") {
        Some(value) => serde_json::from_value(to_json(value)).map_err(|e| StoreError::new("decode lead", e)),
        None => Err(StoreError::new("decode lead", "attribute fields is missing")),
    }
}

fn fields_attr(fields: &LeadFields) -> AttributeValue {
    from_json(&serde_json::to_value(fields).expect("lead fields always serialize"))
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(25u64 << attempt.min(6))).await;
}

/// The index attribute values of a lead's item.
fn index_value(tenant: &TenantId, partition_key: &str) -> AttributeValue {
    s(format!("{tenant}|{partition_key}"))
}

/// The index key attributes of a lead placed at `view`.
fn index_attributes(tenant: &TenantId, view: &IndexView) -> Vec<(String, AttributeValue)> {
    let mut attrs = vec![
        ("tenant".to_owned(), s(tenant.as_str())),
        ("createdKey".to_owned(), s(&view.sort_key)),
    ];
    for (kind, key) in view.index_attributes() {
        attrs.push((kind.attribute().to_owned(), index_value(tenant, &key)));
    }
    attrs
}

fn counter_key(tenant: &TenantId, partition_key: &str, day: NaiveDate) -> Item {
    item_key(tenant, format!("COUNT#{partition_key}#{}", day_key(day)))
}

/// The counter additions of `deltas`, as transaction items.
fn counter_updates(
    table: &str,
    tenant: &TenantId,
    deltas: &BTreeMap<(String, NaiveDate), i64>,
) -> Vec<TransactWriteItem> {
    deltas
        .iter()
        .map(|((partition, day), delta)| {
            let update = Update::builder()
                .table_name(table)
                .set_key(Some(counter_key(tenant, partition, *day)))
                .update_expression("ADD #n :d")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":d", n(*delta))
                .build()
                .expect("table, key and expression are set");
            TransactWriteItem::builder().update(update).build()
        })
        .collect()
}

/// A lead's history lives in a partition of its own (`HIST#<tenant>#<leadId>`): reading a page
/// of it never walks the tenant's partition.
fn history_pk(tenant: &TenantId, lead_id: &LeadId) -> String {
    format!("HIST#{tenant}#{lead_id}")
}

fn history_key_item(tenant: &TenantId, lead_id: &LeadId, key: &str) -> Item {
    Item::from([
        ("pk".to_owned(), s(history_pk(tenant, lead_id))),
        ("sk".to_owned(), s(format!("H#{key}"))),
    ])
}

fn history_item(
    tenant: &TenantId,
    lead_id: &LeadId,
    key_suffix: &str,
    entry: &HistoryEntry,
) -> Result<Item, StoreError> {
    let mut item = history_key_item(tenant, lead_id, key_suffix);
    let value = serde_json::to_value(entry).map_err(|e| StoreError::new("encode history", e))?;
    item.insert("entry".to_owned(), from_json(&value));
    Ok(item)
}

fn history_puts(
    table: &str,
    tenant: &TenantId,
    lead_id: &LeadId,
    entries: &[HistoryEntry],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    entries
        .iter()
        .enumerate()
        .map(|(seq, entry)| {
            let item = history_item(tenant, lead_id, &history_key(entry.at, seq), entry)?;
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .expect("table and item are set");
            Ok(TransactWriteItem::builder().put(put).build())
        })
        .collect()
}

fn new_item(tenant: &TenantId, lead: &LeadRecord, duplicate_of: Option<&LeadId>, now: DateTime<Utc>) -> Item {
    let mut item = key(tenant, &lead.lead_id);
    item.extend(index_attributes(tenant, &IndexView::of_new(lead, now)));
    item.extend([
        ("leadId".to_owned(), s(lead.lead_id.as_str())),
        ("connectionId".to_owned(), s(lead.connection_id.as_str())),
        ("source".to_owned(), s(lead.source.as_str())),
        ("sourceLeadId".to_owned(), s(&lead.source_lead_id)),
        ("fields".to_owned(), fields_attr(&lead.fields)),
        ("raw".to_owned(), s(lead.raw.to_string())),
        ("contentHash".to_owned(), s(&lead.content_hash)),
        ("acquiredAt".to_owned(), time(now)),
        ("updatedAt".to_owned(), time(now)),
        ("status".to_owned(), s(LeadStatus::New.as_str())),
        ("notes".to_owned(), s("")),
        ("version".to_owned(), n(1)),
    ]);
    if let Some(original) = duplicate_of {
        item.insert("duplicateOf".to_owned(), s(original.as_str()));
    }
    item
}

pub(crate) fn decode(item: &Item) -> Result<StoredLead, StoreError> {
    let status = get_s(item, "status")?;
    let fields = decode_fields(item)?;
    let tenant_pk = get_s(item, "pk")?;
    Ok(StoredLead {
        lead_id: LeadId::from_stored(get_s(item, "leadId")?),
        tenant: TenantId::new(tenant_pk.trim_start_matches("TENANT#")),
        connection_id: ConnectionId::from_stored(get_s(item, "connectionId")?),
        source: get_source(item)?,
        source_lead_id: get_s(item, "sourceLeadId")?,
        fields,
        raw: get_opt_s(item, "raw")
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        content_hash: get_s(item, "contentHash")?,
        acquired_at: get_time(item, "acquiredAt")?,
        updated_at: get_time(item, "updatedAt")?,
        duplicate_of: get_opt_s(item, "duplicateOf").map(LeadId::from_stored),
        status: LeadStatus::parse(&status)
            .ok_or_else(|| StoreError::new("decode lead", format!("unknown status {status}")))?,
        notes: get_opt_s(item, "notes").unwrap_or_default(),
        version: get_n(item, "version").unwrap_or(1).max(0) as u64,
        changed_by: get_opt_s(item, "changedBy"),
        invalid_reason: get_opt_s(item, "invalidReason"),
        write_back: item
            .get("writeBack")
            .map(|v| serde_json::from_value(crate::store::attr::to_json(v)))
            .transpose()
            .map_err(|e| StoreError::new("decode lead", format!("attribute writeBack: {e}")))?,
    })
}

/// The value of the index's hash key for a partition of `tenant`.
fn partition_value(tenant: &TenantId, partition: &Partition) -> AttributeValue {
    match partition.index() {
        IndexKind::All => s(tenant.as_str()),
        _ => index_value(tenant, &partition.key()),
    }
}

/// The index position of the lead at `sort_key`: its table key and its index key.
fn index_position(tenant: &TenantId, partition: &Partition, position: &str) -> Option<Item> {
    let id = id_of_sort_key(position)?;
    let mut k = key(tenant, &id);
    k.insert(
        partition.index().attribute().to_owned(),
        partition_value(tenant, partition),
    );
    k.insert("createdKey".to_owned(), s(position));
    Some(k)
}

impl DynamoLeadStore {
    /// `attributes` of the items under `sort_keys` that exist, by sort key; batches of 100,
    /// unprocessed keys retried with backoff.
    async fn batch_get(
        &self,
        tenant: &TenantId,
        sort_keys: Vec<String>,
        attributes: Option<&str>,
        consistent: bool,
    ) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in sort_keys.chunks(READ_BATCH) {
            let keys: Vec<Item> = chunk.iter().map(|sk| item_key(tenant, sk.clone())).collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(consistent);
            if let Some(attributes) = attributes {
                request = request.projection_expression(format!("sk, {attributes}"));
                for (alias, name) in [("#fields", "fields"), ("#status", "status"), ("#source", "source")] {
                    if attributes.contains(alias) {
                        request = request.expression_attribute_names(alias, name);
                    }
                }
            }
            let request = request.build().map_err(|e| StoreError::new("batch get", e))?;
            crate::store::attr::batch_get(&self.client, &self.table, request, "batch get", &mut found).await?;
        }
        Ok(found)
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item)).build().expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        self.write_batch(requests).await
    }

    async fn delete_batch(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder().set_key(Some(key)).build().expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        self.write_batch(requests).await
    }

    async fn write_batch(&self, all: Vec<WriteRequest>) -> Result<(), StoreError> {
        crate::store::attr::batch_write(&self.client, &self.table, all, "batch write leads").await
    }

    /// Replaces a lead's platform fields. When that moves the lead in the read model (its phone
    /// or creation time changed), the index attributes move too, and a move to another day
    /// moves its counters in the same transaction.
    async fn update_platform_fields(
        &self,
        tenant: &TenantId,
        lead: &LeadRecord,
        before: &IndexView,
        acquired_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<LeadWrite, StoreError> {
        let at = lead.fields.created_at.unwrap_or(acquired_at);
        let after = IndexView {
            phone: lead.fields.phone.clone(),
            sort_key: sort_key(at, &lead.lead_id),
            day: crate::read_model::day_of(at),
            cell: crate::read_model::attribution_cell(&before.connection_id, before.source, &lead.fields),
            ..before.clone()
        };
        let mut values: Item = Item::from([
            (":fields".to_owned(), fields_attr(&lead.fields)),
            (":raw".to_owned(), s(lead.raw.to_string())),
            (":hash".to_owned(), s(&lead.content_hash)),
            (":now".to_owned(), time(now)),
        ]);
        let mut names = HashMap::from([
            ("#fields".to_owned(), "fields".to_owned()),
            ("#raw".to_owned(), "raw".to_owned()),
        ]);
        let mut sets = "SET #fields = :fields, #raw = :raw, contentHash = :hash, updatedAt = :now".to_owned();
        let mut removes = Vec::new();
        if after.sort_key != before.sort_key {
            sets.push_str(", createdKey = :created");
            values.insert(":created".to_owned(), s(&after.sort_key));
        }
        if after.phone != before.phone {
            let attr = IndexKind::Phone.attribute();
            match &after.phone {
                Some(phone) => {
                    sets.push_str(&format!(", {attr} = :phoneIx"));
                    values.insert(
                        ":phoneIx".to_owned(),
                        index_value(tenant, &Partition::Phone(phone.clone()).key()),
                    );
                }
                None => removes.push(attr),
            }
        }
        let mut expression = sets;
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let deltas = counter_deltas(Some(before), Some(&after));
        if deltas.is_empty() {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(tenant, &lead.lead_id)))
                .condition_expression("attribute_exists(pk)")
                .update_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(LeadWrite::Written),
                Err(e) if is_item_refused(&e) => Ok(LeadWrite::Refused),
                Err(e) => Err(sdk_error("update lead", e)),
            };
        }
        // The counters move with the lead only if it is still where they were read from.
        names.insert("#status".to_owned(), "status".to_owned());
        values.insert(":oldKey".to_owned(), s(&before.sort_key));
        values.insert(":oldStatus".to_owned(), s(before.status.as_str()));
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(tenant, &lead.lead_id)))
            .condition_expression("createdKey = :oldKey AND #status = :oldStatus")
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .expect("table, key and expression are set");
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(counter_updates(&self.table, tenant, &deltas));
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(LeadWrite::Written),
            Err(e) if is_item_refused(&e) => Ok(LeadWrite::Refused),
            Err(e) => Err(sdk_error("move lead", e)),
        }
    }

    /// Creates leads unless they exist: two writers of one lead create it once, and only the one
    /// that did counts it. A batch write cannot carry a condition, so the puts go in transactions
    /// with the day counters they add to (DynamoDB bills a transactional write twice, the price of
    /// a few requests per page of leads instead of one per lead, and of counters that are exact).
    /// A transaction that a condition cancels says which items exist; the others go again.
    /// Outcomes come back sorted by the index each item carries (its place in the caller's list).
    async fn create_many(
        &self,
        tenant: &TenantId,
        mut items: Vec<NewLead>,
    ) -> Result<Vec<(usize, LeadWrite)>, StoreError> {
        // Leads of one day and connection add to the same counters: side by side, they share
        // transactions (a page of leads is mostly one day, so a page is mostly one transaction).
        items.sort_by(|a, b| (a.2.day, &a.2.connection_id, a.2.source).cmp(&(b.2.day, &b.2.connection_id, b.2.source)));
        let mut outcomes: Vec<(usize, Option<LeadWrite>)> = items.iter().map(|(i, _, _)| (*i, None)).collect();
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0;
            let mut counters = std::collections::BTreeSet::new();
            while end < items.len() {
                let size = approximate_size(&items[end].1);
                let mut with = counters.clone();
                with.extend(counter_deltas(None, Some(&items[end].2)).into_keys());
                if end > start
                    && (bytes + size > TRANSACTION_BYTES || (end + 1 - start) + with.len() > TRANSACTION_ITEMS)
                {
                    break;
                }
                bytes += size;
                counters = with;
                end += 1;
            }
            let chunk: Vec<(Item, IndexView)> = items[start..end]
                .iter()
                .map(|(_, item, view)| (item.clone(), view.clone()))
                .collect();
            for (offset, outcome) in self.create_chunk(tenant, chunk).await?.into_iter().enumerate() {
                outcomes[start + offset].1 = Some(outcome);
            }
            start = end;
        }
        let mut outcomes: Vec<(usize, LeadWrite)> = outcomes
            .into_iter()
            .map(|(i, o)| (i, o.expect("every item has an outcome")))
            .collect();
        // Back in the callers' order.
        outcomes.sort_by_key(|(i, _)| *i);
        Ok(outcomes)
    }

    /// One transaction of conditional puts and their counters, retried for the items a
    /// cancellation did not blame.
    async fn create_chunk(
        &self,
        tenant: &TenantId,
        items: Vec<(Item, IndexView)>,
    ) -> Result<Vec<LeadWrite>, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let mut outcomes: Vec<Option<LeadWrite>> = vec![None; items.len()];
        for attempt in 0..UNPROCESSED_ATTEMPTS {
            let pending: Vec<usize> = (0..items.len()).filter(|&i| outcomes[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let mut deltas = BTreeMap::new();
            for &i in &pending {
                for (k, d) in counter_deltas(None, Some(&items[i].1)) {
                    *deltas.entry(k).or_insert(0) += d;
                }
            }
            let mut writes: Vec<TransactWriteItem> = pending
                .iter()
                .map(|&i| {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(items[i].0.clone()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("table and item are set");
                    TransactWriteItem::builder().put(put).build()
                })
                .collect();
            writes.extend(counter_updates(&self.table, tenant, &deltas));
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await;
            let reasons = match result {
                Ok(_) => {
                    for &i in &pending {
                        outcomes[i] = Some(LeadWrite::Written);
                    }
                    break;
                }
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                        cancel.cancellation_reasons().to_vec()
                    }
                    _ if is_item_refused(&e) && pending.len() == 1 => {
                        outcomes[pending[0]] = Some(LeadWrite::Refused);
                        break;
                    }
                    _ if is_item_refused(&e) => {
                        // Which item is not said: each goes on its own, so only that one fails.
                        for &i in &pending {
                            outcomes[i] = Some(self.create(tenant, &items[i]).await?);
                        }
                        break;
                    }
                    _ => return Err(sdk_error("create leads", e)),
                },
            };
            if reasons.len() < pending.len() {
                for &i in &pending {
                    outcomes[i] = Some(self.create(tenant, &items[i]).await?);
                }
                break;
            }
            for (&i, reason) in pending.iter().zip(&reasons) {
                match reason.code() {
                    Some("ConditionalCheckFailed") => outcomes[i] = Some(LeadWrite::Exists),
                    Some("ValidationError") | Some("ItemCollectionSizeLimitExceeded") => {
                        outcomes[i] = Some(LeadWrite::Refused)
                    }
                    // Cancelled because of another item, a conflict or throttling: again.
                    _ => {}
                }
            }
            backoff(attempt + 1).await;
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.ok_or_else(|| {
                    StoreError::new(
                        "create leads",
                        "transactions stayed cancelled (conflicts or throttling)",
                    )
                })
            })
            .collect()
    }

    /// Creates one lead and its counters unless it exists.
    async fn create(&self, tenant: &TenantId, (item, view): &(Item, IndexView)) -> Result<LeadWrite, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        let mut writes = vec![TransactWriteItem::builder().put(put).build()];
        writes.extend(counter_updates(&self.table, tenant, &counter_deltas(None, Some(view))));
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(LeadWrite::Written),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                    match cancel.cancellation_reasons().first().and_then(|r| r.code()) {
                        Some("ConditionalCheckFailed") => Ok(LeadWrite::Exists),
                        Some("ValidationError") | Some("ItemCollectionSizeLimitExceeded") => Ok(LeadWrite::Refused),
                        _ => Err(sdk_error("create lead", e)),
                    }
                }
                _ if is_item_refused(&e) => Ok(LeadWrite::Refused),
                _ => Err(sdk_error("create lead", e)),
            },
        }
    }

    /// What is stored of the leads under `records`, by sort key: fields and hash (to decide the
    /// write) and the lead's place in the read model (to move it if the write does).
    async fn stored_fields(
        &self,
        tenant: &TenantId,
        records: &[&LeadRecord],
    ) -> Result<HashMap<String, StoredState>, StoreError> {
        let items = self
            .batch_get(
                tenant,
                records.iter().map(|l| lead_sk(&l.lead_id)).collect(),
                Some("contentHash, #fields, #status, #source, connectionId, acquiredAt, leadId, createdKey"),
                true,
            )
            .await?;
        items
            .into_iter()
            .map(|(sk, item)| {
                let fields = decode_fields(&item)?;
                let status = get_s(&item, "status")?;
                let acquired_at = get_time(&item, "acquiredAt")?;
                let source = get_source(&item)?;
                let connection_id = ConnectionId::from_stored(get_s(&item, "connectionId")?);
                let view = IndexView {
                    status: LeadStatus::parse(&status)
                        .ok_or_else(|| StoreError::new("decode lead", format!("unknown status {status}")))?,
                    cell: crate::read_model::attribution_cell(&connection_id, source, &fields),
                    source,
                    connection_id,
                    phone: fields.phone.clone(),
                    sort_key: get_s(&item, "createdKey")?,
                    day: crate::read_model::day_of(fields.created_at.unwrap_or(acquired_at)),
                };
                let hash = get_s(&item, "contentHash")?;
                Ok((
                    sk,
                    StoredState {
                        fields,
                        hash,
                        view,
                        acquired_at,
                    },
                ))
            })
            .collect()
    }
}

/// A lead to create: its place in the batch, its item, and its place in the read model.
type NewLead = (usize, Item, IndexView);

/// A stored lead as the write path needs it.
struct StoredState {
    fields: LeadFields,
    hash: String,
    view: IndexView,
    acquired_at: DateTime<Utc>,
}

impl DynamoLeadStore {
    /// Creates new leads one conditional put each (a batch write cannot be conditional), linking
    /// each to the lead its phone was first stored with. A lead another writer created meanwhile
    /// is decided again against what that writer stored.
    async fn create_all(
        &self,
        tenant: &TenantId,
        fresh: &[LeadRecord],
        now: DateTime<Utc>,
        report: &mut UpsertReport,
    ) -> Result<(), StoreError> {
        // Which lead each new phone links to: the lead it was first stored with, else the first
        // new lead of this batch that has it (which then claims it).
        let mut phones: Vec<String> = fresh.iter().filter_map(|l| l.fields.phone.clone()).collect();
        phones.sort();
        phones.dedup();
        let claims = self
            .batch_get(
                tenant,
                phones.iter().map(|p| phone_sk(p)).collect(),
                Some("leadId"),
                true,
            )
            .await?;
        let mut originals: HashMap<&str, LeadId> = HashMap::new();
        for phone in &phones {
            if let Some(item) = claims.get(&phone_sk(phone)) {
                originals.insert(phone, LeadId::from_stored(get_s(item, "leadId")?));
            }
        }
        let mut planned = Vec::new();
        for (index, lead) in fresh.iter().enumerate() {
            let duplicate_of = lead
                .fields
                .phone
                .as_deref()
                .and_then(|phone| match originals.get(phone) {
                    Some(first) => Some(first.clone()),
                    None => {
                        originals.insert(phone, lead.lead_id.clone());
                        None
                    }
                });
            let view = IndexView::of_new(lead, now);
            planned.push((
                index,
                new_item(tenant, lead, duplicate_of.as_ref(), now),
                view,
                duplicate_of,
            ));
        }
        let (items, links): (Vec<NewLead>, Vec<Option<LeadId>>) = planned
            .into_iter()
            .map(|(index, item, view, duplicate_of)| ((index, item, view), duplicate_of))
            .unzip();
        let outcomes = self.create_many(tenant, items).await?;
        let mut claimed = Vec::new();
        let mut raced = Vec::new();
        for ((index, outcome), duplicate_of) in outcomes.into_iter().zip(links) {
            let lead = &fresh[index];
            match outcome {
                LeadWrite::Written => {
                    report.created += 1;
                    report.duplicates += u64::from(duplicate_of.is_some());
                    if let (None, Some(phone)) = (duplicate_of, lead.fields.phone.as_deref()) {
                        claimed.push(phone_claim(tenant, phone, &lead.lead_id));
                    }
                }
                LeadWrite::Refused => report.failed.push(lead.lead_id.clone()),
                LeadWrite::Exists => raced.push(lead),
            }
        }
        self.put_batch(claimed).await?;
        if !raced.is_empty() {
            let stored = self.stored_fields(tenant, &raced).await?;
            for lead in raced {
                let state = stored.get(&lead_sk(&lead.lead_id));
                let current = state.map(|st| Stored {
                    fields: &st.fields,
                    content_hash: &st.hash,
                });
                match (UpsertPlan::decide(lead, current).write, state) {
                    (Write::Update(record), Some(st)) => {
                        match self
                            .update_platform_fields(tenant, &record, &st.view, st.acquired_at, now)
                            .await?
                        {
                            LeadWrite::Refused => report.failed.push(lead.lead_id.clone()),
                            _ => report.updated += 1,
                        }
                    }
                    _ => report.unchanged += 1,
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl LeadStore for DynamoLeadStore {
    async fn upsert(
        &self,
        tenant: &TenantId,
        leads: &[LeadRecord],
        now: DateTime<Utc>,
    ) -> Result<UpsertReport, StoreError> {
        assert!(leads.len() <= UPSERT_BATCH, "upsert takes at most {UPSERT_BATCH} leads");
        let all: Vec<&LeadRecord> = leads.iter().collect();
        let stored = self.stored_fields(tenant, &all).await?;
        let mut report = UpsertReport::default();
        let mut fresh = Vec::new();
        let mut changed = Vec::new();
        let (mut wait, mut recovered) = (Vec::new(), Vec::new());
        for lead in leads {
            let current = stored.get(&lead_sk(&lead.lead_id));
            let plan = UpsertPlan::decide(
                lead,
                current.map(|st| Stored {
                    fields: &st.fields,
                    content_hash: &st.hash,
                }),
            );
            match plan.phone_retry(lead, now) {
                Some(PhoneRetryChange::Remember(entry)) => wait.push(entry),
                Some(PhoneRetryChange::Forget) => {
                    recovered.push(pending_key(tenant, &lead.connection_id, &lead.lead_id))
                }
                None => {}
            }
            match plan.write {
                Write::Unchanged => report.unchanged += 1,
                Write::Refused(_) => report.failed.push(lead.lead_id.clone()),
                Write::Update(record) => {
                    let st = current.expect("an update is of a stored lead");
                    changed.push((record, st.view.clone(), st.acquired_at))
                }
                Write::Create(record) => fresh.push(record),
            }
        }
        let updates: Vec<_> = futures_util::stream::iter(changed)
            .map(|(record, view, acquired_at)| async move {
                let outcome = self
                    .update_platform_fields(tenant, &record, &view, acquired_at, now)
                    .await;
                (record, outcome)
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (record, outcome) in updates {
            match outcome? {
                LeadWrite::Refused => report.failed.push(record.lead_id.clone()),
                _ => report.updated += 1,
            }
        }
        self.create_all(tenant, &fresh, now, &mut report).await?;
        report.phones_missing = wait.len() as u64;
        self.put_batch(wait.iter().map(|p| pending_item(tenant, p)).collect())
            .await?;
        self.delete_batch(recovered).await?;
        Ok(report)
    }

    async fn get(&self, tenant: &TenantId, lead_id: &LeadId) -> Result<Option<StoredLead>, StoreError> {
        let item = get_consistent(&self.client, &self.table, key(tenant, lead_id), "get lead").await?;
        item.as_ref().map(decode).transpose()
    }

    async fn pending_phones(
        &self,
        tenant: &TenantId,
        connection_id: &ConnectionId,
        limit: u32,
    ) -> Result<Vec<PendingPhone>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":prefix", s(format!("PHONEWAIT#{connection_id}#")))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| sdk_error("list pending phones", e))?;
        out.items().iter().map(decode_pending).collect()
    }

    async fn put_pending_phones(&self, tenant: &TenantId, entries: &[PendingPhone]) -> Result<(), StoreError> {
        self.put_batch(entries.iter().map(|p| pending_item(tenant, p)).collect())
            .await
    }

    async fn drop_pending_phones(&self, tenant: &TenantId, entries: &[PendingPhone]) -> Result<(), StoreError> {
        self.delete_batch(
            entries
                .iter()
                .map(|p| pending_key(tenant, &p.connection_id, &p.lead_id))
                .collect(),
        )
        .await
    }

    async fn index_page(
        &self,
        tenant: &TenantId,
        range: &IndexRange,
        limit: u32,
        with_leads: bool,
    ) -> Result<IndexPage, StoreError> {
        let mut start = match &range.before {
            Some(before) if before.as_str() <= range.lo.as_str() => return Ok(IndexPage::default()),
            // A position outside the range would be refused by DynamoDB: the range starts there.
            Some(before) if before.as_str() <= range.hi.as_str() => index_position(tenant, &range.partition, before),
            _ => None,
        };
        if range.hi < range.lo {
            return Ok(IndexPage::default());
        }
        // The unfiltered listing with its leads reads the index that holds the items (one request
        // per page); every other read uses a keys-only index, and fetches leads by key.
        let items_index = with_leads && range.partition == Partition::All;
        let index = if items_index {
            CREATED_INDEX
        } else {
            range.partition.index().index_name()
        };
        let mut entries: Vec<IndexEntry> = Vec::new();
        let mut more = false;
        while entries.len() < limit as usize {
            let out = self
                .range_query(index, tenant, &range.partition, &range.lo, &range.hi)
                .scan_index_forward(false)
                .limit((limit as usize - entries.len()).min(QUERY_PAGE) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("read index", e))?;
            for item in out.items() {
                entries.push(IndexEntry {
                    key: get_s(item, "createdKey")?,
                    lead: if items_index { Some(decode(item)?) } else { None },
                });
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => {
                    more = true;
                    start = Some(k);
                }
                _ => {
                    more = false;
                    break;
                }
            }
        }
        if with_leads && !items_index {
            let ids: Vec<String> = entries
                .iter()
                .filter_map(|e| id_of_sort_key(&e.key))
                .map(|id| lead_sk(&id))
                .collect();
            let found = self.get_leads(tenant, ids).await?;
            for entry in &mut entries {
                entry.lead = id_of_sort_key(&entry.key).and_then(|id| found.get(&lead_sk(&id)).cloned());
            }
        }
        Ok(IndexPage { entries, more })
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
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .range_query(partition.index().index_name(), tenant, partition, lo, hi)
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("count leads", e))?;
            total += out.count.max(0) as u64;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    async fn analytics_counters(
        &self,
        tenant: &TenantId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":lo", s(format!("COUNT#A|{}", day_key(first))))
            .expression_attribute_values(":hi", s(format!("COUNT#A|{}|~", day_key(last))));
        let mut found = Vec::new();
        for item in query_all(query, "read analytics counters").await? {
            let sk = get_s(&item, "sk")?;
            // COUNT#<key>#<day>: the key holds no '#'.
            let key = sk
                .trim_start_matches("COUNT#")
                .rsplit_once('#')
                .map_or(sk.as_str(), |(k, _)| k);
            found.push((key.to_owned(), get_n(&item, "n").unwrap_or(0)));
        }
        Ok(found)
    }

    async fn count_days(
        &self,
        tenant: &TenantId,
        partition: &Partition,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<u64, StoreError> {
        let prefix = format!("COUNT#{}#", partition.key());
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":lo", s(format!("{prefix}{}", day_key(first))))
            .expression_attribute_values(":hi", s(format!("{prefix}{}", day_key(last))));
        let items = query_all(query, "read counters").await?;
        let total: i64 = items.iter().map(|i| get_n(i, "n").unwrap_or(0)).sum();
        Ok(total.max(0) as u64)
    }

    async fn history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        let prefix = "H#";
        let start = before.map(|b| history_key_item(tenant, lead_id, b));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(history_pk(tenant, lead_id)))
            .expression_attribute_values(":prefix", s(prefix))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("read history", e))?;
        let entries = out
            .items()
            .iter()
            .map(|item| {
                let value = item
                    .get("entry")
                    .ok_or_else(|| StoreError::new("decode history", "attribute entry is missing"))?;
                serde_json::from_value(to_json(value)).map_err(|e| StoreError::new("decode history", e))
            })
            .collect::<Result<Vec<HistoryEntry>, StoreError>>()?;
        let next = out
            .last_evaluated_key
            .filter(|k| !k.is_empty() && entries.len() == limit as usize)
            .and_then(|k| get_opt_s(&k, "sk"))
            .and_then(|sk| sk.strip_prefix(prefix).map(str::to_owned));
        Ok(HistoryPage { entries, next })
    }

    async fn append_history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        entries: &[HistoryEntry],
    ) -> Result<(), LeadUpdateError> {
        // The lead must exist: history is never written for a lead that is not there.
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("table, key and condition are set");
        let mut items = vec![TransactWriteItem::builder().condition_check(check).build()];
        items.extend(history_puts(&self.table, tenant, lead_id, entries)?);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if transaction_condition_failed(&e) => Err(LeadUpdateError::NotFound),
            Err(e) => Err(sdk_error("append history", e).into()),
        }
    }

    async fn update_operator_fields(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        change: &OperatorChange,
    ) -> Result<StoredLead, LeadUpdateError> {
        let current = self.get(tenant, lead_id).await?.ok_or(LeadUpdateError::NotFound)?;
        if current.version != change.expected_version {
            return Err(LeadUpdateError::VersionConflict {
                current: current.version,
            });
        }
        let before = IndexView::of(&current);
        let mut updated = current.clone();
        if let Some(status) = change.status {
            updated.status = status;
        }
        if let Some(notes) = &change.notes {
            updated.notes = notes.clone();
        }
        updated.version += 1;
        updated.updated_at = change.at;
        let after = IndexView::of(&updated);
        let mut sets = vec!["#version = #version + :one", "updatedAt = :now"];
        let mut names = HashMap::from([("#version".to_owned(), "version".to_owned())]);
        let mut values = Item::from([
            (":one".to_owned(), n(1)),
            (":now".to_owned(), time(change.at)),
            (":expected".to_owned(), n(change.expected_version as i64)),
        ]);
        let mut index_sets = Vec::new();
        if after.status != before.status {
            // RAW, STATUS and friends are reserved words in expressions; names go through aliases.
            sets.push("#status = :status");
            names.insert("#status".to_owned(), "status".to_owned());
            values.insert(":status".to_owned(), s(after.status.as_str()));
            let old: BTreeMap<IndexKind, String> = before.index_attributes().into_iter().collect();
            for (kind, value) in after.index_attributes() {
                if old.get(&kind) != Some(&value) {
                    let alias = format!(":ix{}", kind.attribute());
                    index_sets.push(format!("{} = {alias}", kind.attribute()));
                    values.insert(alias, index_value(tenant, &value));
                }
            }
        }
        if let Some(notes) = &change.notes {
            sets.push("notes = :notes");
            values.insert(":notes".to_owned(), s(notes));
        }
        let mut removes = Vec::new();
        match change.reason_change(current.status) {
            crate::store::ReasonChange::Set(reason) => {
                sets.push("invalidReason = :reason");
                values.insert(":reason".to_owned(), s(&reason));
                updated.invalid_reason = Some(reason);
            }
            crate::store::ReasonChange::Clear => {
                removes.push("invalidReason");
                updated.invalid_reason = None;
            }
            crate::store::ReasonChange::Keep => {}
        }
        if let Some(actor) = change.actor() {
            sets.push("changedBy = :actor");
            values.insert(":actor".to_owned(), s(actor));
            updated.changed_by = Some(actor.to_owned());
        }
        let mut expression = format!("SET {}", sets.join(", "));
        for set in &index_sets {
            expression.push_str(", ");
            expression.push_str(set);
        }
        if !removes.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&removes.join(", "));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id)))
            .condition_expression("attribute_exists(pk) AND #version = :expected")
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .expect("table, key and expression are set");
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(counter_updates(
            &self.table,
            tenant,
            &counter_deltas(Some(&before), Some(&after)),
        ));
        items.extend(history_puts(&self.table, tenant, lead_id, &change.history)?);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(updated),
            Err(e) if transaction_condition_failed(&e) => match self.get(tenant, lead_id).await? {
                None => Err(LeadUpdateError::NotFound),
                Some(now) => Err(LeadUpdateError::VersionConflict { current: now.version }),
            },
            Err(e) => Err(sdk_error("update lead", e).into()),
        }
    }

    async fn record_write_back(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        record: &crate::writeback::WriteBack,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_value(record).map_err(|e| StoreError::new("encode write-back", e))?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id)))
            .update_expression("SET writeBack = :wb")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":wb", crate::store::attr::from_json(&value))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if crate::store::attr::is_condition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("record write-back", e)),
        }
    }
}

/// Whether a transaction was cancelled by a failed condition (not by a conflict or throttling).
fn transaction_condition_failed<R>(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => cancel
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

impl DynamoLeadStore {
    /// A Query on `index` for the partition's sort keys within `lo..=hi` ("" is the open low end:
    /// DynamoDB takes no empty key value, and every sort key is above "0").
    fn range_query(
        &self,
        index: &str,
        tenant: &TenantId,
        partition: &Partition,
        lo: &str,
        hi: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#p = :p AND createdKey BETWEEN :lo AND :hi")
            .expression_attribute_names("#p", partition.index().attribute())
            .expression_attribute_values(":p", partition_value(tenant, partition))
            .expression_attribute_values(":lo", s(if lo.is_empty() { "0" } else { lo }))
            .expression_attribute_values(":hi", s(hi))
    }

    /// Whole leads by sort key, read eventually consistent (a list may be a moment behind),
    /// batches of 100 at once.
    async fn get_leads(
        &self,
        tenant: &TenantId,
        sort_keys: Vec<String>,
    ) -> Result<HashMap<String, StoredLead>, StoreError> {
        let chunks: Vec<Vec<String>> = sort_keys.chunks(READ_BATCH).map(<[String]>::to_vec).collect();
        let found = futures_util::future::try_join_all(
            chunks
                .into_iter()
                .map(|chunk| self.batch_get(tenant, chunk, None, false)),
        )
        .await?;
        found
            .into_iter()
            .flatten()
            .map(|(sk, item)| Ok((sk, decode(&item)?)))
            .collect()
    }
}

/// Audit records in the leads table: `pk = TENANT#<tenant>`, `sk = AUDIT#<millis>#<nonce>`.
pub struct DynamoAuditLog {
    client: Client,
    table: String,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl super::AuditLog for DynamoAuditLog {
    async fn record(&self, record: &super::AuditRecord) -> Result<(), StoreError> {
        let mut item = item_key(&record.tenant, format!("AUDIT#{}", history_key(record.at, 0)));
        let value = serde_json::to_value(record).map_err(|e| StoreError::new("encode audit record", e))?;
        item.insert("record".to_owned(), from_json(&value));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("record audit", e))?;
        Ok(())
    }

    async fn list(&self, tenant: &TenantId, limit: u32) -> Result<Vec<super::AuditRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":prefix", s("AUDIT#"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| sdk_error("list audit records", e))?;
        out.items()
            .iter()
            .map(|item| {
                let value = item
                    .get("record")
                    .ok_or_else(|| StoreError::new("decode audit record", "attribute record is missing"))?;
                serde_json::from_value(to_json(value)).map_err(|e| StoreError::new("decode audit record", e))
            })
            .collect()
    }
}
