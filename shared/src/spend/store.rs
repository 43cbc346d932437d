//! Spend rows: one item per (tenant, connection, level, entity, Beijing day) in the spend table,
//! `pk = TENANT#<tenant>`, `sk = SPEND#<day>#<connection>#<level>#<entity>`, so a tenant's date
//! range is one key range. A re-pull reads what is stored first and writes only rows whose
//! figures changed.

use super::{SpendLevel, SpendRow};
use crate::domain::{ConnectionId, TenantId};
use crate::store::StoreError;
use crate::store::attr::{Item, get_n, get_opt_s, get_s, n, s, sdk_error};
use crate::store::memory::lock;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What a write of report rows did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsWritten {
    pub written: u64,
    pub unchanged: u64,
}

#[async_trait]
pub trait SpendStore: Send + Sync {
    /// Stores the rows that are new or whose figures changed.
    async fn put_rows(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        rows: &[SpendRow],
    ) -> Result<RowsWritten, StoreError>;
    /// The tenant's rows of `[from, to]`, every connection's.
    async fn rows(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(ConnectionId, SpendRow)>, StoreError>;

    /// The last day of `level` whose every row is stored, for the connection.
    async fn watermark(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        level: SpendLevel,
    ) -> Result<Option<NaiveDate>, StoreError>;
    /// Moves it forward (never back).
    async fn advance_watermark(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        level: SpendLevel,
        day: NaiveDate,
    ) -> Result<(), StoreError>;
}

fn watermark_key(connection: &ConnectionId, level: SpendLevel) -> String {
    format!("WM#{connection}#{}", level.as_str())
}

fn sort_key(connection: &ConnectionId, row: &SpendRow) -> String {
    format!(
        "SPEND#{}#{}#{}#{}",
        row.day.format("%Y-%m-%d"),
        connection,
        row.level.as_str(),
        row.entity_id
    )
}

#[derive(Default)]
pub struct MemorySpendStore {
    rows: Mutex<BTreeMap<(String, String), (ConnectionId, SpendRow)>>,
    watermarks: Mutex<HashMap<(String, String), NaiveDate>>,
}

#[async_trait]
impl SpendStore for MemorySpendStore {
    async fn put_rows(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        rows: &[SpendRow],
    ) -> Result<RowsWritten, StoreError> {
        let mut all = lock(&self.rows);
        let mut out = RowsWritten::default();
        for row in rows {
            let key = (tenant.as_str().to_owned(), sort_key(connection, row));
            match all.get(&key) {
                Some((_, stored)) if stored.same_figures(row) => out.unchanged += 1,
                _ => {
                    all.insert(key, (connection.clone(), row.clone()));
                    out.written += 1;
                }
            }
        }
        Ok(out)
    }

    async fn rows(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(ConnectionId, SpendRow)>, StoreError> {
        Ok(lock(&self.rows)
            .iter()
            .filter(|((t, _), (_, r))| t == tenant.as_str() && r.day >= from && r.day <= to)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn watermark(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        level: SpendLevel,
    ) -> Result<Option<NaiveDate>, StoreError> {
        let key = (tenant.as_str().to_owned(), watermark_key(connection, level));
        Ok(lock(&self.watermarks).get(&key).copied())
    }

    async fn advance_watermark(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        level: SpendLevel,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        let key = (tenant.as_str().to_owned(), watermark_key(connection, level));
        let mut all = lock(&self.watermarks);
        let w = all.entry(key).or_insert(day);
        *w = (*w).max(day);
        Ok(())
    }
}

pub struct DynamoSpendStore {
    client: Client,
    table: String,
}

impl DynamoSpendStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn key(tenant: &TenantId, sk: String) -> Item {
        Item::from([
            ("pk".to_owned(), s(crate::store::dynamo::tenant_pk(tenant))),
            ("sk".to_owned(), s(sk)),
        ])
    }

    /// The stored rows among `keys` (BatchGetItem, 100 keys at a time).
    async fn stored(&self, keys: Vec<Item>) -> Result<HashMap<String, SpendRow>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .build()
                    .map_err(|e| StoreError::new("read spend rows", e))?,
            );
            let mut attempt = 0u32;
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("read spend rows", e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    found.insert(get_s(&item, "sk")?, decode(&item)?);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    attempt += 1;
                    if attempt >= 8 {
                        return Err(StoreError::new(
                            "read spend rows",
                            "keys stayed unprocessed (throttled)",
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
                }
            }
        }
        Ok(found)
    }
}

fn encode(tenant: &TenantId, connection: &ConnectionId, row: &SpendRow) -> Item {
    let mut item = DynamoSpendStore::key(tenant, sort_key(connection, row));
    item.insert("connectionId".into(), s(connection.as_str()));
    item.insert("level".into(), s(row.level.as_str()));
    item.insert("entityId".into(), s(&row.entity_id));
    item.insert("day".into(), s(row.day.format("%Y-%m-%d").to_string()));
    if let Some(name) = &row.name {
        item.insert("name".into(), s(name));
    }
    if let Some(parent) = &row.parent_id {
        item.insert("parentId".into(), s(parent));
    }
    item.insert("spendFen".into(), n(row.spend_fen));
    item.insert("shows".into(), n(row.shows));
    item.insert("clicks".into(), n(row.clicks));
    item.insert("conversions".into(), n(row.conversions));
    item.insert("provisional".into(), AttributeValue::Bool(row.provisional));
    item
}

fn decode(item: &Item) -> Result<SpendRow, StoreError> {
    let level = get_s(item, "level")?;
    let day = get_s(item, "day")?;
    Ok(SpendRow {
        level: SpendLevel::parse(&level)
            .ok_or_else(|| StoreError::new("decode spend row", format!("level {level:?}")))?,
        entity_id: get_s(item, "entityId")?,
        day: NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| StoreError::new("decode spend row", e))?,
        name: get_opt_s(item, "name"),
        parent_id: get_opt_s(item, "parentId"),
        spend_fen: get_n(item, "spendFen").unwrap_or(0),
        shows: get_n(item, "shows").unwrap_or(0),
        clicks: get_n(item, "clicks").unwrap_or(0),
        conversions: get_n(item, "conversions").unwrap_or(0),
        provisional: matches!(item.get("provisional"), Some(AttributeValue::Bool(true))),
    })
}

#[async_trait]
impl SpendStore for DynamoSpendStore {
    async fn put_rows(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        rows: &[SpendRow],
    ) -> Result<RowsWritten, StoreError> {
        let keys: Vec<Item> = rows
            .iter()
            .map(|r| Self::key(tenant, sort_key(connection, r)))
            .collect();
        let stored = self.stored(keys).await?;
        let mut out = RowsWritten::default();
        let mut writes = Vec::new();
        for row in rows {
            match stored.get(&sort_key(connection, row)) {
                Some(old) if old.same_figures(row) => out.unchanged += 1,
                _ => {
                    out.written += 1;
                    let put = PutRequest::builder()
                        .set_item(Some(encode(tenant, connection, row)))
                        .build()
                        .map_err(|e| StoreError::new("write spend rows", e))?;
                    writes.push(WriteRequest::builder().put_request(put).build());
                }
            }
        }
        crate::store::attr::batch_write(&self.client, &self.table, writes, "write spend rows").await?;
        Ok(out)
    }

    async fn rows(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(ConnectionId, SpendRow)>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(crate::store::dynamo::tenant_pk(tenant)))
                .expression_attribute_values(":from", s(format!("SPEND#{}", from.format("%Y-%m-%d"))))
                .expression_attribute_values(":to", s(format!("SPEND#{}#~", to.format("%Y-%m-%d"))))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("query spend rows", e))?;
            for item in page.items() {
                out.push((ConnectionId::from_stored(get_s(item, "connectionId")?), decode(item)?));
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }

    async fn watermark(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        level: SpendLevel,
    ) -> Result<Option<NaiveDate>, StoreError> {
        let key = Self::key(tenant, watermark_key(connection, level));
        let item = crate::store::attr::get_consistent(&self.client, &self.table, key, "read spend watermark").await?;
        item.and_then(|i| get_opt_s(&i, "day"))
            .map(|d| {
                NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| StoreError::new("decode spend watermark", e))
            })
            .transpose()
    }

    async fn advance_watermark(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        level: SpendLevel,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant, watermark_key(connection, level))))
            .update_expression("SET #day = :day")
            .condition_expression("attribute_not_exists(#day) OR #day < :day")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":day", s(day.format("%Y-%m-%d").to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if crate::store::attr::is_condition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("advance spend watermark", e)),
        }
    }
}
