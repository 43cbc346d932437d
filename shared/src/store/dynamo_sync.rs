//! Sync bookkeeping in DynamoDB: the lease, watermarks and health live on the connection's own
//! item (so one read shows a connection and how its syncs go); tasks have a table with a TTL.

use super::attr::{Item, get_consistent, get_n, get_opt_s, get_opt_time, is_condition_failed, n, s, sdk_error, time};
use super::dynamo::{DynamoConnectionStore, connection_key, tenant_pk};
use super::{Lease, RunRecord, StoreError, SyncInfo, SyncLedger, TaskStore};
use crate::domain::{Connection, ConnectionId, ConnectionStatus, TenantId};
use crate::lead::LeadSource;
use crate::task::SyncTask;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use chrono::{DateTime, TimeZone, Utc};

const WATERMARK_PREFIX: &str = "wm_";

impl DynamoConnectionStore {
    /// Sets a source's watermark to `to` when `condition` holds (forward only, or back only).
    /// RFC 3339 in UTC with fixed millisecond precision sorts as text, so `<` compares times.
    async fn set_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
        condition: &str,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let update = self
            .update_existing(tenant, id)
            .update_expression("SET #wm = :to")
            .condition_expression(condition)
            .expression_attribute_names("#wm", format!("{WATERMARK_PREFIX}{source}"))
            .expression_attribute_values(":to", time(to));
        self.update_or_skip(operation, update).await
    }

    /// An update of an existing connection item; the condition keeps a deleted connection deleted.
    fn update_existing(&self, tenant: &TenantId, id: &ConnectionId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key(tenant, id)))
            .expression_attribute_names("#pk", "pk")
    }

    /// Runs an update whose failed condition means "nothing to do".
    async fn update_or_skip(&self, operation: &'static str, update: UpdateItemFluentBuilder) -> Result<(), StoreError> {
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error(operation, e)),
        }
    }
}

fn lease_of(item: &Item) -> Option<Lease> {
    let holder = get_opt_s(item, "leaseHolder")?;
    let until = Utc.timestamp_millis_opt(get_n(item, "leaseUntilMs")?).single()?;
    Some(Lease { holder, until })
}

#[async_trait]
impl SyncLedger for DynamoConnectionStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Lease>, StoreError> {
        let result = self
            .update_existing(tenant, id)
            .update_expression("SET leaseHolder = :holder, leaseUntilMs = :until")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(leaseHolder) OR leaseUntilMs < :now OR leaseHolder = :holder)",
            )
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) if is_condition_failed(&e) => {
                // Either someone else holds it, or the connection is gone (reported as held by nobody).
                let info = self.sync_info(tenant, id).await?;
                Ok(Err(info.lease.unwrap_or(Lease {
                    holder: String::new(),
                    until: now,
                })))
            }
            Err(e) => Err(sdk_error("acquire lease", e)),
        }
    }

    async fn release_lease(&self, tenant: &TenantId, id: &ConnectionId, holder: &str) -> Result<(), StoreError> {
        let update = self
            .update_existing(tenant, id)
            .update_expression("REMOVE leaseHolder, leaseUntilMs")
            .condition_expression("attribute_exists(#pk) AND leaseHolder = :holder")
            .expression_attribute_values(":holder", s(holder));
        self.update_or_skip("release lease", update).await
    }

    async fn sync_info(&self, tenant: &TenantId, id: &ConnectionId) -> Result<SyncInfo, StoreError> {
        let item = get_consistent(&self.client, &self.table, connection_key(tenant, id), "read sync info").await?;
        item.as_ref().map_or(Ok(SyncInfo::default()), decode_sync_info)
    }

    async fn advance_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let forward = "attribute_exists(#pk) AND (attribute_not_exists(#wm) OR #wm < :to)";
        self.set_watermark(tenant, id, source, to, forward, "advance watermark")
            .await
    }

    async fn rewind_watermark(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        source: LeadSource,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let back = "attribute_exists(#pk) AND #wm > :to";
        self.set_watermark(tenant, id, source, to, back, "rewind watermark")
            .await
    }

    async fn record_run(&self, tenant: &TenantId, id: &ConnectionId, run: &RunRecord) -> Result<(), StoreError> {
        let mut update = self
            .update_existing(tenant, id)
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_values(":at", time(run.at))
            .expression_attribute_values(":task", s(&run.task_id));
        let mut sets = vec!["lastSyncAt = :at", "lastTaskId = :task"];
        if run.succeeded {
            sets.push("lastSuccessAt = :at");
            sets.push("failedRuns = :zero");
            update = update.expression_attribute_values(":zero", n(0));
        }
        // ADD keeps the counts right without reading them, whatever else writes the item.
        let add = if run.failed {
            update = update.expression_attribute_values(":one", n(1));
            " ADD leadCount :created, failedRuns :one"
        } else {
            " ADD leadCount :created"
        };
        update = update.expression_attribute_values(":created", n(run.created as i64));
        let expression = match &run.failure {
            Some(failure) => {
                sets.push("lastError = :error");
                sets.push("lastErrorCode = :code");
                update = update
                    .expression_attribute_values(":error", s(&failure.message))
                    .expression_attribute_values(":code", s(failure.code));
                format!("SET {}{add}", sets.join(", "))
            }
            None => format!("SET {} REMOVE lastError, lastErrorCode{add}", sets.join(", ")),
        };
        self.update_or_skip("record run", update.update_expression(expression))
            .await
    }

    async fn set_write_back(&self, tenant: &TenantId, id: &ConnectionId, on: bool) -> Result<bool, StoreError> {
        let result = self
            .update_existing(tenant, id)
            .update_expression("SET writeBack = :on")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_values(":on", aws_sdk_dynamodb::types::AttributeValue::Bool(on))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("set write-back", e)),
        }
    }

    async fn disable(&self, tenant: &TenantId, id: &ConnectionId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .update_existing(tenant, id)
            .update_expression("SET #status = :status, updatedAt = :now")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(ConnectionStatus::Disabled.as_str()))
            .expression_attribute_values(":now", time(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("disable connection", e)),
        }
    }

    async fn mark_reauth_required(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let update = self
            .update_existing(tenant, id)
            .update_expression("SET #status = :status, lastError = :reason, lastErrorCode = :code, updatedAt = :now")
            // Only an ACTIVE connection: a disconnect meanwhile (DISABLED) stays as it is.
            .condition_expression("attribute_exists(#pk) AND #status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(ConnectionStatus::ReauthRequired.as_str()))
            .expression_attribute_values(":active", s(ConnectionStatus::Active.as_str()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":code", s("REAUTH_REQUIRED"))
            .expression_attribute_values(":now", time(now));
        self.update_or_skip("mark reauth required", update).await
    }

    async fn update_token_expiry(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        access_expires_at: DateTime<Utc>,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let update = self
            .update_existing(tenant, id)
            .update_expression("SET accessExpiresAt = :access, refreshExpiresAt = :refresh")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_values(":access", time(access_expires_at))
            .expression_attribute_values(":refresh", time(refresh_expires_at));
        self.update_or_skip("update token expiry", update).await
    }

    async fn list_active(&self) -> Result<Vec<Connection>, StoreError> {
        let mut connections = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            // The scheduler is the one reader that walks every tenant; the API never scans.
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(sk, :conn) AND #status = :active")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":conn", s("CONN#"))
                .expression_attribute_values(":active", s(ConnectionStatus::Active.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("list active connections", e))?;
            for item in out.items() {
                connections.push(Self::decode(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(connections),
            }
        }
    }
}

pub struct DynamoTaskStore {
    client: Client,
    table: String,
}

impl DynamoTaskStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn task_sk(task_id: &str) -> String {
    format!("TASK#{task_id}")
}

#[async_trait]
impl TaskStore for DynamoTaskStore {
    async fn put(&self, task: &SyncTask) -> Result<(), StoreError> {
        let body = serde_json::to_string(task).map_err(|e| StoreError::new("encode task", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(&task.tenant)))
            .item("sk", s(task_sk(&task.task_id)))
            .item("connectionId", s(task.connection_id.as_str()))
            .item("task", s(body))
            .item("ttl", n(task.expires_at.timestamp()))
            .send()
            .await
            .map_err(|e| sdk_error("put task", e))?;
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, task_id: &str) -> Result<Option<SyncTask>, StoreError> {
        let key = Item::from([
            ("pk".to_owned(), s(tenant_pk(tenant))),
            ("sk".to_owned(), s(task_sk(task_id))),
        ]);
        let Some(item) = get_consistent(&self.client, &self.table, key, "get task").await? else {
            return Ok(None);
        };
        let body = get_opt_s(&item, "task").ok_or_else(|| StoreError::new("decode task", "no task attribute"))?;
        let task: SyncTask = serde_json::from_str(&body).map_err(|e| StoreError::new("decode task", e))?;
        // TTL deletes late; an expired task reads as gone.
        Ok((task.expires_at > Utc::now()).then_some(task))
    }
}

/// The sync bookkeeping a connection item carries (also what its stream images carry).
pub(crate) fn decode_sync_info(item: &Item) -> Result<SyncInfo, StoreError> {
    let mut info = SyncInfo {
        lease: lease_of(item),
        last_sync_at: get_opt_time(item, "lastSyncAt")?,
        last_success_at: get_opt_time(item, "lastSuccessAt")?,
        last_error: get_opt_s(item, "lastError"),
        last_error_code: get_opt_s(item, "lastErrorCode"),
        last_task_id: get_opt_s(item, "lastTaskId"),
        lead_count: get_n(item, "leadCount").unwrap_or(0).max(0) as u64,
        failed_runs: get_n(item, "failedRuns").unwrap_or(0).max(0) as u64,
        write_back: matches!(
            item.get("writeBack"),
            Some(aws_sdk_dynamodb::types::AttributeValue::Bool(true))
        ),
        ..SyncInfo::default()
    };
    for (name, _) in item.iter().filter(|(k, _)| k.starts_with(WATERMARK_PREFIX)) {
        if let Some(source) = LeadSource::parse(&name[WATERMARK_PREFIX.len()..])
            && let Some(at) = get_opt_time(item, name)?
        {
            info.watermarks.insert(source, at);
        }
    }
    Ok(info)
}
