//! Leads in DynamoDB: one item per (tenant, lead id). New leads go out in batches, changed ones
//! as single updates of the platform fields, unchanged ones not at all.
//!
//! Item: `pk = TENANT#<tenant>`, `sk = LEAD#<leadId>`, `fields` (map of the normalized platform
//! fields), `raw` (the platform record as JSON text), `contentHash`, operator fields (`status`,
//! `notes`, `version`, `history`), and the index keys `tenant` + `createdKey` (byCreatedAt: newest
//! first). Beside them, `sk = PHONE#<phone>` items name the lead each phone was first stored
//! with: new leads look them up in one batch read and link to them (`duplicateOf`).

use super::attr::{Item, from_json, get_consistent, get_n, get_opt_s, get_s, get_time, n, s, sdk_error, time, to_json};
use super::dynamo::tenant_pk;
use super::{LeadStore, LeadUpdateError, OperatorChange, PendingPhone, StoreError, UPSERT_BATCH, UpsertReport};
use crate::domain::{ConnectionId, TenantId};
use crate::lead::{HistoryEntry, LeadFields, LeadId, LeadRecord, LeadSource, LeadStatus, StoredLead};
use crate::lead_merge::{PhoneRetryChange, Stored, UpsertPlan, Write};
use crate::lead_query::{Cursor, LeadFilter, LeadPage, PageStart, sort_key};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::Select;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

pub const CREATED_INDEX: &str = "byCreatedAt";
/// BatchGetItem takes at most 100 keys.
const READ_BATCH: usize = 100;
/// BatchWriteItem takes at most 25 requests (moto accepts more; AWS does not).
const WRITE_BATCH: usize = 25;
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

fn new_item(tenant: &TenantId, lead: &LeadRecord, duplicate_of: Option<&LeadId>, now: DateTime<Utc>) -> Item {
    let sort_time = lead.fields.created_at.unwrap_or(now);
    let mut item = key(tenant, &lead.lead_id);
    item.extend([
        ("tenant".to_owned(), s(tenant.as_str())),
        ("createdKey".to_owned(), s(sort_key(sort_time, &lead.lead_id))),
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
        ("history".to_owned(), AttributeValue::L(Vec::new())),
    ]);
    if let Some(original) = duplicate_of {
        item.insert("duplicateOf".to_owned(), s(original.as_str()));
    }
    item
}

fn decode(item: &Item) -> Result<StoredLead, StoreError> {
    let status = get_s(item, "status")?;
    let fields = decode_fields(item)?;
    let history: Vec<HistoryEntry> = match item.get("history") {
        Some(value) => serde_json::from_value(to_json(value)).map_err(|e| StoreError::new("decode lead", e))?,
        None => Vec::new(),
    };
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
        history,
    })
}

/// A Query on `byCreatedAt` for one tenant's leads matching a filter, newest first. Time bounds
/// are key conditions (cheap); the rest are filter expressions, which DynamoDB applies after
/// reading: a keyword search costs the reads of every lead in the time range.
fn filtered_query(client: &Client, table: &str, tenant: &TenantId, filter: &LeadFilter) -> QueryFluentBuilder {
    let mut q = client
        .query()
        .table_name(table)
        .index_name(CREATED_INDEX)
        .scan_index_forward(false)
        .expression_attribute_values(":t", s(tenant.as_str()));
    let lo = filter.start.map(|t| format!("{:013}#", t.timestamp_millis().max(0)));
    let hi = filter.end.map(|t| format!("{:013}#~", t.timestamp_millis().max(0)));
    let key = match (&lo, &hi) {
        (Some(_), Some(_)) => "tenant = :t AND createdKey BETWEEN :lo AND :hi",
        (Some(_), None) => "tenant = :t AND createdKey >= :lo",
        (None, Some(_)) => "tenant = :t AND createdKey <= :hi",
        (None, None) => "tenant = :t",
    };
    q = q.key_condition_expression(key);
    if let Some(lo) = lo {
        q = q.expression_attribute_values(":lo", s(lo));
    }
    if let Some(hi) = hi {
        q = q.expression_attribute_values(":hi", s(hi));
    }
    let mut conditions = Vec::new();
    if let Some(status) = filter.status {
        conditions.push("#status = :status");
        q = q
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()));
    }
    if let Some(source) = filter.source {
        conditions.push("#source = :source");
        q = q
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(":source", s(source.as_str()));
    }
    if let Some(connection) = &filter.connection_id {
        conditions.push("connectionId = :conn");
        q = q.expression_attribute_values(":conn", s(connection.as_str()));
    }
    if let Some(keyword) = &filter.keyword {
        conditions.push(
            "(contains(#f.#name, :kw) OR contains(#f.#nick, :kw) OR contains(#f.#phone, :kw) \
             OR contains(#f.#remark, :kw) OR contains(notes, :kw))",
        );
        q = q
            .expression_attribute_names("#f", "fields")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#nick", "nickname")
            .expression_attribute_names("#phone", "phone")
            .expression_attribute_names("#remark", "remark")
            .expression_attribute_values(":kw", s(keyword));
    }
    if !conditions.is_empty() {
        q = q.filter_expression(conditions.join(" AND "));
    }
    q
}

/// The index position of a lead: its table key and its index key.
fn index_key(tenant: &TenantId, cursor: &Cursor) -> Item {
    let mut k = key(tenant, &cursor.lead_id);
    k.insert("tenant".to_owned(), s(tenant.as_str()));
    k.insert("createdKey".to_owned(), s(&cursor.created_key));
    k
}

fn is_filtered(filter: &LeadFilter) -> bool {
    filter.keyword.is_some() || filter.status.is_some() || filter.source.is_some() || filter.connection_id.is_some()
}

impl DynamoLeadStore {
    /// Leads matching the filter, counted by DynamoDB (no item leaves it).
    async fn count(&self, tenant: &TenantId, filter: &LeadFilter) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = filtered_query(&self.client, &self.table, tenant, filter)
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

    /// The position just before match number `skip` (0-based), reading keys only.
    async fn position_after(
        &self,
        tenant: &TenantId,
        filter: &LeadFilter,
        skip: u64,
    ) -> Result<Option<Item>, StoreError> {
        let mut seen = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = filtered_query(&self.client, &self.table, tenant, filter)
                .projection_expression("pk, sk, tenant, createdKey")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("page leads", e))?;
            for item in out.items() {
                seen += 1;
                if seen == skip {
                    return Ok(Some(item.clone()));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(None),
            }
        }
    }

    /// `attributes` of the items under `sort_keys` that exist, by sort key; batches of 100,
    /// unprocessed keys retried with backoff.
    async fn batch_get(
        &self,
        tenant: &TenantId,
        sort_keys: Vec<String>,
        attributes: &str,
    ) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in sort_keys.chunks(READ_BATCH) {
            let keys: Vec<Item> = chunk.iter().map(|sk| item_key(tenant, sk.clone())).collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression(format!("sk, {attributes}"))
                .consistent_read(true);
            if attributes.contains("#fields") {
                request = request.expression_attribute_names("#fields", "fields");
            }
            let mut pending = Some(request.build().map_err(|e| StoreError::new("batch get", e))?);
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("batch get", e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    found.insert(get_s(&item, "sk")?, item);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    attempt += 1;
                    if attempt >= UNPROCESSED_ATTEMPTS {
                        return Err(StoreError::new("batch get", "keys stayed unprocessed (throttled)"));
                    }
                    backoff(attempt).await;
                }
            }
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

    /// BatchWriteItem in chunks of 25, unprocessed requests retried with backoff.
    async fn write_batch(&self, all: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in all.chunks(WRITE_BATCH) {
            let mut requests: Vec<WriteRequest> = chunk.to_vec();
            let mut attempt = 0;
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| sdk_error("batch write leads", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    attempt += 1;
                    if attempt >= UNPROCESSED_ATTEMPTS {
                        return Err(StoreError::new(
                            "batch write leads",
                            "items stayed unprocessed (throttled)",
                        ));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    async fn update_platform_fields(
        &self,
        tenant: &TenantId,
        lead: &LeadRecord,
        now: DateTime<Utc>,
    ) -> Result<LeadWrite, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, &lead.lead_id)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":fields", fields_attr(&lead.fields))
            .expression_attribute_values(":raw", s(lead.raw.to_string()))
            .expression_attribute_values(":hash", s(&lead.content_hash))
            .expression_attribute_values(":now", time(now));
        let mut sets = "SET #fields = :fields, #raw = :raw, contentHash = :hash, updatedAt = :now".to_owned();
        if let Some(created) = lead.fields.created_at {
            sets.push_str(", createdKey = :created");
            update = update.expression_attribute_values(":created", s(sort_key(created, &lead.lead_id)));
        }
        let expression = sets;
        let result = update
            .update_expression(expression)
            .expression_attribute_names("#fields", "fields")
            .expression_attribute_names("#raw", "raw")
            .send()
            .await;
        match result {
            Ok(_) => Ok(LeadWrite::Written),
            Err(e) if is_item_refused(&e) => Ok(LeadWrite::Refused),
            Err(e) => Err(sdk_error("update lead", e)),
        }
    }

    /// Creates leads unless they exist: two writers of one lead create it once, and only the one
    /// that did counts it. A batch write cannot carry a condition, so the puts go in transactions
    /// of up to 100 (DynamoDB bills a transactional write twice, the price of one request per
    /// page of leads instead of one per lead). A transaction that a condition cancels says which items
    /// exist; the others go again. Outcomes come back in the order of `items`.
    async fn create_many(&self, items: Vec<(usize, Item)>) -> Result<Vec<(usize, LeadWrite)>, StoreError> {
        let mut outcomes: Vec<(usize, Option<LeadWrite>)> = items.iter().map(|(i, _)| (*i, None)).collect();
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < items.len() && end - start < TRANSACTION_ITEMS {
                let size = approximate_size(&items[end].1);
                if end > start && bytes + size > TRANSACTION_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let chunk: Vec<Item> = items[start..end].iter().map(|(_, item)| item.clone()).collect();
            for (offset, outcome) in self.create_chunk(chunk).await?.into_iter().enumerate() {
                outcomes[start + offset].1 = Some(outcome);
            }
            start = end;
        }
        Ok(outcomes
            .into_iter()
            .map(|(i, o)| (i, o.expect("every item has an outcome")))
            .collect())
    }

    /// One transaction of conditional puts, retried for the items a cancellation did not blame.
    async fn create_chunk(&self, items: Vec<Item>) -> Result<Vec<LeadWrite>, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let mut outcomes: Vec<Option<LeadWrite>> = vec![None; items.len()];
        for attempt in 0..UNPROCESSED_ATTEMPTS {
            let pending: Vec<usize> = (0..items.len()).filter(|&i| outcomes[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let writes = pending
                .iter()
                .map(|&i| {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(items[i].clone()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("table and item are set");
                    TransactWriteItem::builder().put(put).build()
                })
                .collect();
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
                            outcomes[i] = Some(self.create(items[i].clone()).await?);
                        }
                        break;
                    }
                    _ => return Err(sdk_error("create leads", e)),
                },
            };
            if reasons.len() != pending.len() {
                for &i in &pending {
                    outcomes[i] = Some(self.create(items[i].clone()).await?);
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

    /// Creates one lead unless it exists.
    async fn create(&self, item: Item) -> Result<LeadWrite, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(LeadWrite::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(LeadWrite::Exists)
            }
            Err(e) if is_item_refused(&e) => Ok(LeadWrite::Refused),
            Err(e) => Err(sdk_error("create lead", e)),
        }
    }

    /// The stored fields and hash of the leads under `records`, by sort key.
    async fn stored_fields(
        &self,
        tenant: &TenantId,
        records: &[&LeadRecord],
    ) -> Result<HashMap<String, (LeadFields, String)>, StoreError> {
        let items = self
            .batch_get(
                tenant,
                records.iter().map(|l| lead_sk(&l.lead_id)).collect(),
                "contentHash, #fields",
            )
            .await?;
        items
            .into_iter()
            .map(|(sk, item)| Ok((sk, (decode_fields(&item)?, get_s(&item, "contentHash")?))))
            .collect()
    }
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
            .batch_get(tenant, phones.iter().map(|p| phone_sk(p)).collect(), "leadId")
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
            planned.push((index, new_item(tenant, lead, duplicate_of.as_ref(), now), duplicate_of));
        }
        let (items, links): (Vec<(usize, Item)>, Vec<Option<LeadId>>) = planned
            .into_iter()
            .map(|(index, item, duplicate_of)| ((index, item), duplicate_of))
            .unzip();
        let outcomes = self.create_many(items).await?;
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
                let current = stored.get(&lead_sk(&lead.lead_id)).map(|(fields, hash)| Stored {
                    fields,
                    content_hash: hash,
                });
                match UpsertPlan::decide(lead, current).write {
                    Write::Update(record) => match self.update_platform_fields(tenant, &record, now).await? {
                        LeadWrite::Refused => report.failed.push(lead.lead_id.clone()),
                        _ => report.updated += 1,
                    },
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
                current.map(|(fields, hash)| Stored {
                    fields,
                    content_hash: hash,
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
                Write::Update(record) => changed.push(record),
                Write::Create(record) => fresh.push(record),
            }
        }
        let updates: Vec<_> = futures_util::stream::iter(changed)
            .map(|record| async move {
                let outcome = self.update_platform_fields(tenant, &record, now).await;
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

    async fn list_all(&self, tenant: &TenantId) -> Result<Vec<StoredLead>, StoreError> {
        let mut leads = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CREATED_INDEX)
                .key_condition_expression("tenant = :t")
                .expression_attribute_values(":t", s(tenant.as_str()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("list leads", e))?;
            for item in out.items() {
                leads.push(decode(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(leads),
            }
        }
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &LeadFilter,
        start: &PageStart,
        size: u32,
    ) -> Result<LeadPage, StoreError> {
        let total = self.count(tenant, filter).await?;
        let (mut position, skipped) = match start {
            PageStart::After(cursor) => (Some(index_key(tenant, cursor)), None),
            PageStart::Number(n) => {
                let skip = u64::from(n.max(&1) - 1) * u64::from(size);
                if skip >= total {
                    return Ok(LeadPage {
                        records: Vec::new(),
                        total,
                        next: None,
                    });
                }
                let position = if skip == 0 {
                    None
                } else {
                    self.position_after(tenant, filter, skip).await?
                };
                (position, Some(skip))
            }
        };
        // Unfiltered, a page is exactly `size` items; filtered, read more per request.
        let limit = if is_filtered(filter) { 500 } else { size as i32 };
        let mut records = Vec::new();
        let mut exhausted = false;
        while records.len() < size as usize && !exhausted {
            let out = filtered_query(&self.client, &self.table, tenant, filter)
                .limit(limit)
                .set_exclusive_start_key(position.take())
                .send()
                .await
                .map_err(|e| sdk_error("page leads", e))?;
            for item in out.items() {
                if records.len() < size as usize {
                    records.push(decode(item)?);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => position = Some(k),
                _ => exhausted = true,
            }
            if let Some(last) = records.last() {
                position = Some(index_key(tenant, &Cursor::of(last)));
            }
        }
        let more = match skipped {
            Some(skip) => skip + (records.len() as u64) < total,
            None => !exhausted || records.len() == size as usize,
        };
        let next = if more { records.last().map(Cursor::of) } else { None };
        Ok(LeadPage { records, total, next })
    }

    async fn append_history(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        entries: &[HistoryEntry],
    ) -> Result<(), LeadUpdateError> {
        let history = serde_json::to_value(entries).map_err(|e| StoreError::new("encode history", e))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id)))
            .update_expression("SET history = list_append(history, :entries)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":entries", from_json(&history))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if super::attr::is_condition_failed(&e) => Err(LeadUpdateError::NotFound),
            Err(e) => Err(sdk_error("append history", e).into()),
        }
    }

    async fn update_operator_fields(
        &self,
        tenant: &TenantId,
        lead_id: &LeadId,
        change: &OperatorChange,
    ) -> Result<StoredLead, LeadUpdateError> {
        let history = serde_json::to_value(&change.history).map_err(|e| StoreError::new("encode history", e))?;
        let mut sets = vec![
            "#version = #version + :one",
            "updatedAt = :now",
            "history = list_append(history, :entries)",
        ];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id)))
            // RAW, STATUS and friends are reserved words in expressions; names go through aliases.
            .condition_expression("attribute_exists(pk) AND #version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", time(change.at))
            .expression_attribute_values(":entries", from_json(&history))
            .expression_attribute_values(":expected", n(change.expected_version as i64))
            .return_values(ReturnValue::AllNew);
        if let Some(status) = change.status {
            sets.push("#status = :status");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        if let Some(notes) = &change.notes {
            sets.push("notes = :notes");
            update = update.expression_attribute_values(":notes", s(notes));
        }
        match update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
        {
            Ok(out) => Ok(decode(&out.attributes.unwrap_or_default())?),
            Err(e) if super::attr::is_condition_failed(&e) => match self.get(tenant, lead_id).await? {
                None => Err(LeadUpdateError::NotFound),
                Some(current) => Err(LeadUpdateError::VersionConflict {
                    current: current.version,
                }),
            },
            Err(e) => Err(sdk_error("update lead", e).into()),
        }
    }
}
