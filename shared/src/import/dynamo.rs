//! Imports in the leads table: `pk = TENANT#<tenant>`, `sk = IMPORT#<importId>`, the record as a
//! map, `revision` beside it for the writes' condition, and `ttl` (reads check `expiresAt`).

use super::job::{ImportJob, ImportJobs};
use crate::domain::TenantId;
use crate::store::StoreError;
use crate::store::attr::{Item, from_json, get_consistent, is_condition_failed, n, s, sdk_error, to_json};
use crate::store::dynamo::tenant_pk;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

pub struct DynamoImportJobs {
    client: Client,
    table: String,
}

impl DynamoImportJobs {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn key(tenant: &TenantId, import_id: &str) -> Item {
    Item::from([
        ("pk".to_owned(), s(tenant_pk(tenant))),
        ("sk".to_owned(), s(format!("IMPORT#{import_id}"))),
    ])
}

fn item(job: &ImportJob) -> Result<Item, StoreError> {
    let mut item = key(&job.tenant, &job.import_id);
    let value = serde_json::to_value(job).map_err(|e| StoreError::new("encode import", e))?;
    item.insert("job".to_owned(), from_json(&value));
    item.insert("revision".to_owned(), n(job.revision as i64));
    item.insert("ttl".to_owned(), n(job.expires_at.timestamp()));
    Ok(item)
}

#[async_trait]
impl ImportJobs for DynamoImportJobs {
    async fn put(&self, job: &ImportJob) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(job)?))
            .send()
            .await
            .map_err(|e| sdk_error("put import", e))?;
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, import_id: &str) -> Result<Option<ImportJob>, StoreError> {
        let Some(item) = get_consistent(&self.client, &self.table, key(tenant, import_id), "get import").await? else {
            return Ok(None);
        };
        let value = item
            .get("job")
            .ok_or_else(|| StoreError::new("decode import", "attribute job is missing"))?;
        serde_json::from_value(to_json(value))
            .map(Some)
            .map_err(|e| StoreError::new("decode import", e))
    }

    async fn advance(&self, job: &ImportJob) -> Result<bool, StoreError> {
        let Some(read) = job.revision.checked_sub(1) else {
            return Ok(false);
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(job)?))
            .condition_expression("revision = :read")
            .expression_attribute_values(":read", n(read as i64))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("advance import", e)),
        }
    }
}
