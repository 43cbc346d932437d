//! Subscriptions and deliveries in the webhooks table:
//!   pk TENANT#<tenant>, sk HOOK#<id>        a subscription
//!   pk HOOK#<id>, sk DLV#<deliveryId>       a delivery (`created` sorts it in the byCreated index)
//!   pk HOOK#<id>, sk LANE#<leadId>          the newest version of the lead delivered
//!   pk HOOK#<id>, sk RATE#<minute>          a bot's messages this minute
//!   pk HOOK#<id>, sk DIGQ#<deliveryId>      a line waiting for the bot's next digest
//!   pk HOOK#<id>, sk DIGW#<minute>          the digest of that minute is scheduled
//! Bookkeeping rows carry `ttl`; every read checks what it needs itself.

use super::memory::position;
use super::{Delivery, DeliveryPage, DeliveryStatus, DeliveryStore, HookKind, HookStatus, Subscription};
use crate::domain::TenantId;
use crate::secret::Secret;
use crate::store::StoreError;
use crate::store::attr::{
    Item, get_consistent, get_list, get_n, get_opt_s, get_opt_time, get_s, get_time, is_condition_failed, list, n, s,
    sdk_error, time,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

/// Deliveries are kept this long for the deliveries list, then DynamoDB drops them.
const DELIVERY_DAYS: i64 = 30;
const BY_CREATED: &str = "byCreated";

pub struct DynamoDeliveryStore {
    client: Client,
    table: String,
}

impl DynamoDeliveryStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn key(pk: String, sk: String) -> Item {
        Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
    }

    fn sub_key(tenant: &TenantId, id: &str) -> Item {
        Self::key(crate::store::dynamo::tenant_pk(tenant), format!("HOOK#{id}"))
    }

    fn hook_key(hook_id: &str, sk: String) -> Item {
        Self::key(format!("HOOK#{hook_id}"), sk)
    }
}

fn encode_subscription(sub: &Subscription) -> Item {
    let mut item = DynamoDeliveryStore::sub_key(&sub.tenant, &sub.id);
    item.insert("id".into(), s(&sub.id));
    item.insert("kind".into(), s(sub.kind.as_str()));
    item.insert("url".into(), s(&sub.url));
    item.insert("events".into(), list(&sub.events));
    item.insert("includePhone".into(), AttributeValue::Bool(sub.include_phone));
    item.insert(
        "status".into(),
        s(match sub.status {
            HookStatus::Active => "ACTIVE",
            HookStatus::Disabled => "DISABLED",
        }),
    );
    item.insert("createdAt".into(), time(sub.created_at));
    item.insert("createdBy".into(), s(&sub.created_by));
    if let Some(secret) = &sub.secret {
        item.insert("secret".into(), s(secret.expose()));
    }
    if let Some(at) = sub.failing_since {
        item.insert("failingSince".into(), time(at));
    }
    item
}

fn decode_subscription(tenant: &TenantId, item: &Item) -> Result<Subscription, StoreError> {
    let kind = get_s(item, "kind")?;
    Ok(Subscription {
        id: get_s(item, "id")?,
        tenant: tenant.clone(),
        kind: HookKind::parse(&kind).ok_or_else(|| StoreError::new("decode subscription", format!("kind {kind:?}")))?,
        url: get_s(item, "url")?,
        events: get_list(item, "events"),
        include_phone: matches!(item.get("includePhone"), Some(AttributeValue::Bool(true))),
        secret: get_opt_s(item, "secret").map(Secret::new),
        status: if get_s(item, "status")? == "DISABLED" {
            HookStatus::Disabled
        } else {
            HookStatus::Active
        },
        created_at: get_time(item, "createdAt")?,
        created_by: get_opt_s(item, "createdBy").unwrap_or_default(),
        failing_since: get_opt_time(item, "failingSince")?,
        disabled_at: get_opt_time(item, "disabledAt")?,
        disabled_reason: get_opt_s(item, "disabledReason"),
    })
}

fn encode_delivery(d: &Delivery) -> Item {
    let mut item = DynamoDeliveryStore::hook_key(&d.hook_id, format!("DLV#{}", d.delivery_id));
    item.insert("created".into(), s(position(d)));
    item.insert("deliveryId".into(), s(&d.delivery_id));
    item.insert("tenant".into(), s(d.tenant.as_str()));
    item.insert("eventId".into(), s(&d.event_id));
    item.insert("eventType".into(), s(&d.event_type));
    if let Some(lead) = &d.lead_id {
        item.insert("leadId".into(), s(lead));
    }
    if let Some(v) = d.version {
        item.insert("version".into(), n(v as i64));
    }
    item.insert("payload".into(), s(&d.payload));
    item.insert("status".into(), s(d.status.as_str()));
    item.insert("attempts".into(), n(d.attempts as i64));
    if let Some(code) = d.last_status_code {
        item.insert("lastStatusCode".into(), n(code as i64));
    }
    if let Some(e) = &d.last_error {
        item.insert("lastError".into(), s(e));
    }
    item.insert("nextAttemptAt".into(), time(d.next_attempt_at));
    item.insert("createdAt".into(), time(d.created_at));
    item.insert("windowStart".into(), time(d.window_start));
    if let Some(at) = d.delivered_at {
        item.insert("deliveredAt".into(), time(at));
    }
    item.insert(
        "ttl".into(),
        n((d.created_at + chrono::Duration::days(DELIVERY_DAYS)).timestamp()),
    );
    item
}

fn decode_delivery(item: &Item) -> Result<Delivery, StoreError> {
    let hook = get_s(item, "pk")?;
    let status = get_s(item, "status")?;
    Ok(Delivery {
        hook_id: hook.trim_start_matches("HOOK#").to_owned(),
        delivery_id: get_s(item, "deliveryId")?,
        tenant: TenantId::new(get_s(item, "tenant")?),
        event_id: get_s(item, "eventId")?,
        event_type: get_s(item, "eventType")?,
        lead_id: get_opt_s(item, "leadId"),
        version: get_n(item, "version").map(|v| v as u64),
        payload: get_s(item, "payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::new("decode delivery", format!("status {status:?}")))?,
        attempts: get_n(item, "attempts").unwrap_or(0) as u32,
        last_status_code: get_n(item, "lastStatusCode").map(|c| c as u16),
        last_error: get_opt_s(item, "lastError"),
        next_attempt_at: get_time(item, "nextAttemptAt")?,
        created_at: get_time(item, "createdAt")?,
        window_start: get_time(item, "windowStart")?,
        delivered_at: get_opt_time(item, "deliveredAt")?,
    })
}

#[async_trait]
impl DeliveryStore for DynamoDeliveryStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_subscription(subscription)))
            .send()
            .await
            .map_err(|e| sdk_error("put subscription", e))?;
        Ok(())
    }

    async fn subscription(&self, tenant: &TenantId, id: &str) -> Result<Option<Subscription>, StoreError> {
        get_consistent(&self.client, &self.table, Self::sub_key(tenant, id), "get subscription")
            .await?
            .map(|item| decode_subscription(tenant, &item))
            .transpose()
    }

    async fn subscriptions(&self, tenant: &TenantId) -> Result<Vec<Subscription>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :hook)")
            .expression_attribute_values(":pk", s(crate::store::dynamo::tenant_pk(tenant)))
            .expression_attribute_values(":hook", s("HOOK#"))
            .consistent_read(true);
        let mut out = crate::store::attr::query_all(query, "list subscriptions")
            .await?
            .iter()
            .map(|item| decode_subscription(tenant, item))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn delete_subscription(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::sub_key(tenant, id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("delete subscription", e))?;
        Ok(out.attributes.is_some())
    }

    async fn mark_failing(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::sub_key(tenant, id)))
            .update_expression("SET failingSince = if_not_exists(failingSince, :at)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", time(at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .attributes
                .as_ref()
                .and_then(|a| get_opt_time(a, "failingSince").ok().flatten())
                .unwrap_or(at)),
            Err(e) if is_condition_failed(&e) => Ok(at),
            Err(e) => Err(sdk_error("mark subscription failing", e)),
        }
    }

    async fn clear_failing(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::sub_key(tenant, id)))
            .update_expression("REMOVE failingSince")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("clear subscription failing", e)),
        }
    }

    async fn disable(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>, reason: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::sub_key(tenant, id)))
            .update_expression("SET #st = :disabled, disabledAt = :at, disabledReason = :why")
            .condition_expression("#st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":disabled", s("DISABLED"))
            .expression_attribute_values(":active", s("ACTIVE"))
            .expression_attribute_values(":at", time(at))
            .expression_attribute_values(":why", s(reason))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("disable subscription", e)),
        }
    }

    async fn add_delivery(&self, delivery: &Delivery) -> Result<(Delivery, bool), StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_delivery(delivery)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok((delivery.clone(), true)),
            Err(e) if is_condition_failed(&e) => {
                let existing = self.delivery(&delivery.hook_id, &delivery.delivery_id).await?;
                Ok((existing.unwrap_or_else(|| delivery.clone()), false))
            }
            Err(e) => Err(sdk_error("put delivery", e)),
        }
    }

    async fn delivery(&self, hook_id: &str, delivery_id: &str) -> Result<Option<Delivery>, StoreError> {
        let key = Self::hook_key(hook_id, format!("DLV#{delivery_id}"));
        get_consistent(&self.client, &self.table, key, "get delivery")
            .await?
            .map(|item| decode_delivery(&item))
            .transpose()
    }

    async fn update_delivery(&self, delivery: &Delivery, seen: (DeliveryStatus, u32)) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_delivery(delivery)))
            .condition_expression("#st = :seen AND attempts = :attempts")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":seen", s(seen.0.as_str()))
            .expression_attribute_values(":attempts", n(seen.1 as i64))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("update delivery", e)),
        }
    }

    async fn deliveries(&self, hook_id: &str, from: Option<&str>, limit: u32) -> Result<DeliveryPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CREATED)
            .expression_attribute_values(":pk", s(format!("HOOK#{hook_id}")))
            .scan_index_forward(false)
            .limit(limit as i32);
        query = match from {
            Some(from) => query
                .key_condition_expression("pk = :pk AND created < :from")
                .expression_attribute_values(":from", s(from)),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query.send().await.map_err(|e| sdk_error("list deliveries", e))?;
        let records = out.items().iter().map(decode_delivery).collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|_| records.last().map(position));
        Ok(DeliveryPage { records, next })
    }

    async fn lane(&self, hook_id: &str, lead_id: &str) -> Result<Option<u64>, StoreError> {
        let item = get_consistent(
            &self.client,
            &self.table,
            Self::hook_key(hook_id, format!("LANE#{lead_id}")),
            "get lane",
        )
        .await?;
        Ok(item.and_then(|i| get_n(&i, "version")).map(|v| v as u64))
    }

    async fn advance_lane(&self, hook_id: &str, lead_id: &str, version: u64) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::hook_key(hook_id, format!("LANE#{lead_id}"))))
            .update_expression("SET version = :v, #ttl = :ttl")
            .condition_expression("attribute_not_exists(version) OR version < :v")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":v", n(version as i64))
            .expression_attribute_values(
                ":ttl",
                n((Utc::now() + chrono::Duration::days(DELIVERY_DAYS)).timestamp()),
            )
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("advance lane", e)),
        }
    }

    async fn take_rate_slot(&self, hook_id: &str, window: i64, limit: u32) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::hook_key(hook_id, format!("RATE#{window}"))))
            .update_expression("ADD used :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(used) OR used < :limit")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit as i64))
            .expression_attribute_values(":ttl", n(window * 60 + 3600))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("take rate slot", e)),
        }
    }

    async fn queue_digest_line(&self, hook_id: &str, delivery_id: &str, line: &str) -> Result<(), StoreError> {
        let mut item = Self::hook_key(hook_id, format!("DIGQ#{delivery_id}"));
        item.insert("line".into(), s(line));
        item.insert("at".into(), time(Utc::now()));
        item.insert(
            "ttl".into(),
            n((Utc::now() + chrono::Duration::days(DELIVERY_DAYS)).timestamp()),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("queue digest line", e))?;
        Ok(())
    }

    async fn digest_lines(&self, hook_id: &str, limit: u32) -> Result<Vec<(String, String)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :q)")
            .expression_attribute_values(":pk", s(format!("HOOK#{hook_id}")))
            .expression_attribute_values(":q", s("DIGQ#"))
            .consistent_read(true)
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| sdk_error("read digest lines", e))?;
        let mut lines: Vec<(String, String, String)> = out
            .items()
            .iter()
            .filter_map(|i| {
                let sk = get_opt_s(i, "sk")?;
                Some((
                    get_opt_s(i, "at").unwrap_or_default(),
                    sk.trim_start_matches("DIGQ#").to_owned(),
                    get_opt_s(i, "line")?,
                ))
            })
            .collect();
        lines.sort();
        Ok(lines.into_iter().map(|(_, id, line)| (id, line)).collect())
    }

    async fn drop_digest_lines(&self, hook_id: &str, delivery_ids: &[String]) -> Result<(), StoreError> {
        let requests = delivery_ids
            .iter()
            .map(|id| {
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .delete_request(
                        aws_sdk_dynamodb::types::DeleteRequest::builder()
                            .set_key(Some(Self::hook_key(hook_id, format!("DIGQ#{id}"))))
                            .build()
                            .expect("key is set"),
                    )
                    .build()
            })
            .collect();
        crate::store::attr::batch_write(&self.client, &self.table, requests, "drop digest lines").await
    }

    async fn schedule_digest(&self, hook_id: &str, window: i64) -> Result<bool, StoreError> {
        let mut item = Self::hook_key(hook_id, format!("DIGW#{window}"));
        item.insert("ttl".into(), n(window * 60 + 3600));
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_error("schedule digest", e)),
        }
    }
}
