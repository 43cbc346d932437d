//! Export jobs in the leads table: `pk = TENANT#<tenant>`, `sk = EXPORT#<exportId>`, the job as
//! a map, and `ttl` so DynamoDB drops it when its file expires (reads check `expiresAt`
//! themselves: TTL deletes late).

use super::job::{ExportJob, ExportJobs};
use crate::domain::TenantId;
use crate::store::StoreError;
use crate::store::attr::{Item, from_json, get_consistent, n, s, sdk_error, to_json};
use crate::store::dynamo::tenant_pk;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

pub struct DynamoExportJobs {
    client: Client,
    table: String,
}

impl DynamoExportJobs {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn key(tenant: &TenantId, export_id: &str) -> Item {
    Item::from([
        ("pk".to_owned(), s(tenant_pk(tenant))),
        ("sk".to_owned(), s(format!("EXPORT#{export_id}"))),
    ])
}

#[async_trait]
impl ExportJobs for DynamoExportJobs {
    async fn put(&self, job: &ExportJob) -> Result<(), StoreError> {
        let mut item = key(&job.tenant, &job.export_id);
        let value = serde_json::to_value(job).map_err(|e| StoreError::new("encode export job", e))?;
        item.insert("job".to_owned(), from_json(&value));
        item.insert("ttl".to_owned(), n(job.expires_at.timestamp()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("put export job", e))?;
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
        let Some(item) = get_consistent(&self.client, &self.table, key(tenant, export_id), "get export job").await?
        else {
            return Ok(None);
        };
        let value = item
            .get("job")
            .ok_or_else(|| StoreError::new("decode export job", "attribute job is missing"))?;
        serde_json::from_value(to_json(value))
            .map(Some)
            .map_err(|e| StoreError::new("decode export job", e))
    }
}
