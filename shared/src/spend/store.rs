//! Spend rows, one per (tenant, connection, level, entity, Beijing day). DynamoDB keeps an
//! entity's month in one item (`pk = TENANT#<tenant>`, `sk = SPEND#<yyyy-mm>#<connection>#<level>#<entity>`,
//! the days in a map), so a 90-day report of 1,000 entities reads about 4,000 small items in one
//! key range, not 90,000. A re-pull reads the stored months first and writes only months in
//! which a day's figures changed.

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

    /// The stored month items among `keys` (BatchGetItem, 100 keys at a time), by sort key.
    async fn stored(&self, keys: Vec<Item>) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .build()
                .map_err(|e| StoreError::new("read spend rows", e))?;
            crate::store::attr::batch_get(&self.client, &self.table, request, "read spend rows", &mut found).await?;
        }
        Ok(found)
    }
}

fn month_key(connection: &ConnectionId, row: &SpendRow) -> String {
    format!(
        "SPEND#{}#{connection}#{}#{}",
        row.day.format("%Y-%m"),
        row.level.as_str(),
        row.entity_id
    )
}

/// A day's figures inside its month item.
fn day_value(row: &SpendRow) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("f".to_owned(), n(row.spend_fen)),
        ("s".to_owned(), n(row.shows)),
        ("c".to_owned(), n(row.clicks)),
        ("v".to_owned(), n(row.conversions)),
        ("p".to_owned(), AttributeValue::Bool(row.provisional)),
    ]))
}

/// Every day of a month item, as rows.
fn month_rows(item: &Item) -> Result<Vec<SpendRow>, StoreError> {
    let Some(AttributeValue::M(days)) = item.get("days") else {
        return Ok(Vec::new());
    };
    let level = get_s(item, "level")?;
    let level =
        SpendLevel::parse(&level).ok_or_else(|| StoreError::new("decode spend row", format!("level {level:?}")))?;
    let entity = get_s(item, "entityId")?;
    let (name, parent) = (get_opt_s(item, "name"), get_opt_s(item, "parentId"));
    let mut rows = Vec::with_capacity(days.len());
    for (day, v) in days {
        let AttributeValue::M(v) = v else { continue };
        rows.push(SpendRow {
            level,
            entity_id: entity.clone(),
            day: NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|e| StoreError::new("decode spend row", e))?,
            name: name.clone(),
            parent_id: parent.clone(),
            spend_fen: get_n(v, "f").unwrap_or(0),
            shows: get_n(v, "s").unwrap_or(0),
            clicks: get_n(v, "c").unwrap_or(0),
            conversions: get_n(v, "v").unwrap_or(0),
            provisional: matches!(v.get("p"), Some(AttributeValue::Bool(true))),
        });
    }
    Ok(rows)
}

#[async_trait]
impl SpendStore for DynamoSpendStore {
    async fn put_rows(
        &self,
        tenant: &TenantId,
        connection: &ConnectionId,
        rows: &[SpendRow],
    ) -> Result<RowsWritten, StoreError> {
        let mut months: BTreeMap<String, Vec<&SpendRow>> = BTreeMap::new();
        for row in rows {
            months.entry(month_key(connection, row)).or_default().push(row);
        }
        let keys = months.keys().map(|sk| Self::key(tenant, sk.clone())).collect();
        let stored = self.stored(keys).await?;
        let mut out = RowsWritten::default();
        let mut writes = Vec::new();
        for (sk, new_rows) in months {
            let mut item = stored
                .get(&sk)
                .cloned()
                .unwrap_or_else(|| Self::key(tenant, sk.clone()));
            let old: HashMap<NaiveDate, SpendRow> = month_rows(&item)?.into_iter().map(|r| (r.day, r)).collect();
            let mut days = match item.remove("days") {
                Some(AttributeValue::M(days)) => days,
                _ => HashMap::new(),
            };
            let mut changed = false;
            for row in &new_rows {
                if old.get(&row.day).is_some_and(|o| o.same_figures(row)) {
                    out.unchanged += 1;
                } else {
                    out.written += 1;
                    changed = true;
                    days.insert(row.day.format("%Y-%m-%d").to_string(), day_value(row));
                }
            }
            if !changed {
                continue;
            }
            let last = new_rows.last().expect("a month has rows");
            item.insert("connectionId".into(), s(connection.as_str()));
            item.insert("level".into(), s(last.level.as_str()));
            item.insert("entityId".into(), s(&last.entity_id));
            match &last.name {
                Some(name) => item.insert("name".into(), s(name)),
                None => item.remove("name"),
            };
            match &last.parent_id {
                Some(parent) => item.insert("parentId".into(), s(parent)),
                None => item.remove("parentId"),
            };
            item.insert("days".into(), AttributeValue::M(days));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::new("write spend rows", e))?;
            writes.push(WriteRequest::builder().put_request(put).build());
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
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(crate::store::dynamo::tenant_pk(tenant)))
            .expression_attribute_values(":from", s(format!("SPEND#{}", from.format("%Y-%m"))))
            .expression_attribute_values(":to", s(format!("SPEND#{}#~", to.format("%Y-%m"))));
        let mut out = Vec::new();
        for item in crate::store::attr::query_all(query, "query spend rows").await? {
            let connection = ConnectionId::from_stored(get_s(&item, "connectionId")?);
            for row in month_rows(&item)? {
                if row.day >= from && row.day <= to {
                    out.push((connection.clone(), row));
                }
            }
        }
        Ok(out)
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
