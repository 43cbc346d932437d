//! DynamoDB adapters. Uniqueness and single use are enforced by conditional writes, never by a
//! read followed by a write.

use super::attr::{
    Item, get_consistent, get_list, get_opt_s, get_s, get_time, is_condition_failed, list, n, s, sdk_error, time,
};
use super::{ClaimError, ConnectionStore, PendingGrantStore, StateError, StateStore, StoreError};
use crate::domain::{Connection, ConnectionId, ConnectionStatus, OAuthState, PendingGrant, Provider, TenantId};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, ReturnValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

pub struct DynamoStateStore {
    client: Client,
    table: String,
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes an item whose key must be new: a state or a ticket is never issued twice.
    async fn put_new(&self, item: Item, operation: &'static str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", "state")
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        Ok(())
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn create(&self, state: &OAuthState) -> Result<(), StoreError> {
        let mut item = Item::from([
            ("state".to_owned(), s(&state.state)),
            ("tenant".to_owned(), s(state.tenant.as_str())),
            ("provider".to_owned(), s(state.provider.as_str())),
            ("createdAt".to_owned(), time(state.created_at)),
            ("expiresAt".to_owned(), time(state.expires_at)),
            // DynamoDB's TTL deletes lazily (up to days late); `consume` checks expiresAt itself.
            ("ttl".to_owned(), n(state.expires_at.timestamp())),
        ]);
        if let Some(url) = &state.redirect_url {
            item.insert("redirectUrl".to_owned(), s(url));
        }
        self.put_new(item, "create state").await
    }

    async fn consume(&self, state: &str, now: DateTime<Utc>) -> Result<OAuthState, StateError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("state", s(state))
            // A pending grant shares the table: a "state" naming one is no state.
            .condition_expression("attribute_exists(#k) AND attribute_not_exists(#ticket)")
            .expression_attribute_names("#k", "state")
            .expression_attribute_names("#ticket", "ticketHash")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                return Err(StateError::Unknown);
            }
            Err(e) => return Err(sdk_error("consume state", e).into()),
        };
        let provider = get_s(&item, "provider")?;
        let found = OAuthState {
            state: get_s(&item, "state")?,
            tenant: TenantId::new(get_s(&item, "tenant")?),
            provider: Provider::parse(&provider)
                .ok_or_else(|| StoreError::new("decode state", format!("unknown provider {provider}")))?,
            redirect_url: get_opt_s(&item, "redirectUrl"),
            created_at: get_time(&item, "createdAt")?,
            expires_at: get_time(&item, "expiresAt")?,
        };
        if found.expires_at <= now {
            return Err(StateError::Expired);
        }
        Ok(found)
    }
}

/// Pending grants share the states table (and its TTL); their keys cannot meet a state's 64 hex.
fn pending_key(ticket_hash: &str) -> AttributeValue {
    s(format!("pending#{ticket_hash}"))
}

#[async_trait]
impl PendingGrantStore for DynamoStateStore {
    async fn put_pending(&self, g: &PendingGrant) -> Result<(), StoreError> {
        let item = Item::from([
            ("state".to_owned(), pending_key(&g.ticket_hash)),
            ("ticketHash".to_owned(), s(&g.ticket_hash)),
            ("tenant".to_owned(), s(g.tenant.as_str())),
            ("provider".to_owned(), s(g.provider.as_str())),
            ("externalAccountId".to_owned(), s(&g.external_account_id)),
            ("advertiserIds".to_owned(), list(&g.advertiser_ids)),
            ("scopes".to_owned(), list(&g.scopes)),
            ("secretId".to_owned(), s(&g.secret_id)),
            ("accessExpiresAt".to_owned(), time(g.access_expires_at)),
            ("refreshExpiresAt".to_owned(), time(g.refresh_expires_at)),
            ("createdAt".to_owned(), time(g.created_at)),
            ("expiresAt".to_owned(), time(g.expires_at)),
            ("status".to_owned(), s("PENDING_CONFIRMATION")),
            ("ttl".to_owned(), n(g.expires_at.timestamp())),
        ]);
        self.put_new(item, "create pending grant").await
    }

    async fn get_pending(&self, ticket_hash: &str) -> Result<Option<PendingGrant>, StoreError> {
        let key = Item::from([("state".to_owned(), pending_key(ticket_hash))]);
        let Some(item) = get_consistent(&self.client, &self.table, key, "get pending grant").await? else {
            return Ok(None);
        };
        let provider = get_s(&item, "provider")?;
        Ok(Some(PendingGrant {
            ticket_hash: get_s(&item, "ticketHash")?,
            tenant: TenantId::new(get_s(&item, "tenant")?),
            provider: Provider::parse(&provider)
                .ok_or_else(|| StoreError::new("decode pending grant", format!("unknown provider {provider}")))?,
            external_account_id: get_s(&item, "externalAccountId")?,
            advertiser_ids: get_list(&item, "advertiserIds"),
            scopes: get_list(&item, "scopes"),
            secret_id: get_s(&item, "secretId")?,
            access_expires_at: get_time(&item, "accessExpiresAt")?,
            refresh_expires_at: get_time(&item, "refreshExpiresAt")?,
            created_at: get_time(&item, "createdAt")?,
            expires_at: get_time(&item, "expiresAt")?,
            confirmed: get_opt_s(&item, "connectionId").map(ConnectionId::from_stored),
        }))
    }

    async fn mark_confirmed(&self, ticket_hash: &str, connection: &ConnectionId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("state", pending_key(ticket_hash))
            .update_expression("SET #status = :confirmed, #cid = :cid")
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#cid", "connectionId")
            .expression_attribute_values(":confirmed", s("CONFIRMED"))
            .expression_attribute_values(":cid", s(connection.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Expired away meanwhile: the connection stands; only the replay record is gone.
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("confirm pending grant", e)),
        }
    }

    async fn delete_pending(&self, ticket_hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("state", pending_key(ticket_hash))
            .send()
            .await
            .map_err(|e| sdk_error("delete pending grant", e))?;
        Ok(())
    }
}

pub struct DynamoConnectionStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub(crate) fn connection_sk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

pub(crate) fn connection_key(tenant: &TenantId, id: &ConnectionId) -> Item {
    Item::from([
        ("pk".to_owned(), s(tenant_pk(tenant))),
        ("sk".to_owned(), s(connection_sk(id))),
    ])
}

fn claim_pk(provider: Provider, external: &str) -> String {
    format!("CLAIM#{provider}#{external}")
}

const CLAIM_SK: &str = "CLAIM";

/// `attribute_not_exists(pk) OR tenant = :tenant`: free, or already ours.
const CLAIM_CONDITION: &str = "attribute_not_exists(#pk) OR #tenant = :tenant";

fn claim_update(table: &str, tenant: &TenantId, provider: Provider, external: &str, now: DateTime<Utc>) -> Update {
    let id = ConnectionId::derive(tenant, provider, external);
    Update::builder()
        .table_name(table)
        .key("pk", s(claim_pk(provider, external)))
        .key("sk", s(CLAIM_SK))
        .update_expression("SET #tenant = :tenant, #cid = :cid, #claimedAt = if_not_exists(#claimedAt, :now)")
        .condition_expression(CLAIM_CONDITION)
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_names("#tenant", "tenant")
        .expression_attribute_names("#cid", "connectionId")
        .expression_attribute_names("#claimedAt", "claimedAt")
        .expression_attribute_values(":tenant", s(tenant.as_str()))
        .expression_attribute_values(":cid", s(id.as_str()))
        .expression_attribute_values(":now", time(now))
        .build()
        .expect("table, key and expression are set")
}

impl DynamoConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn decode(item: &Item) -> Result<Connection, StoreError> {
        let provider = get_s(item, "provider")?;
        let status = get_s(item, "status")?;
        Ok(Connection {
            id: ConnectionId::from_stored(get_s(item, "connectionId")?),
            tenant: TenantId::new(get_s(item, "tenant")?),
            provider: Provider::parse(&provider)
                .ok_or_else(|| StoreError::new("decode connection", format!("unknown provider {provider}")))?,
            external_account_id: get_s(item, "externalAccountId")?,
            advertiser_ids: get_list(item, "advertiserIds"),
            scopes: get_list(item, "scopes"),
            status: ConnectionStatus::parse(&status)
                .ok_or_else(|| StoreError::new("decode connection", format!("unknown status {status}")))?,
            secret_id: get_s(item, "secretId")?,
            access_expires_at: get_time(item, "accessExpiresAt")?,
            refresh_expires_at: get_time(item, "refreshExpiresAt")?,
            created_at: get_time(item, "createdAt")?,
            updated_at: get_time(item, "updatedAt")?,
        })
    }
}

fn owned_elsewhere(provider: Provider, external: &str) -> ClaimError {
    ClaimError::OwnedByAnotherTenant {
        provider,
        external_account_id: external.to_owned(),
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnectionStore {
    async fn release(&self, c: &Connection) -> Result<(), StoreError> {
        let claim = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(claim_pk(c.provider, &c.external_account_id)))
            .key("sk", s(CLAIM_SK))
            .condition_expression("#tenant = :tenant")
            .expression_attribute_names("#tenant", "tenant")
            .expression_attribute_values(":tenant", s(c.tenant.as_str()))
            .build()
            .expect("table, key and condition are set");
        let still_disabled = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(connection_key(&c.tenant, &c.id)))
            .condition_expression("#status = :disabled")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":disabled", s(ConnectionStatus::Disabled.as_str()))
            .build()
            .expect("table, key and condition are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(claim).build())
            .transact_items(TransactWriteItem::builder().condition_check(still_disabled).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Released already, claimed by someone else since, or reconnected meanwhile: nothing
            // of ours to give up.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("release account", e)),
        }
    }

    async fn upsert(&self, c: &Connection) -> Result<(), ClaimError> {
        let claim = claim_update(&self.table, &c.tenant, c.provider, &c.external_account_id, c.updated_at);
        let fields: [(&str, AttributeValue); 11] = [
            ("connectionId", s(c.id.as_str())),
            ("tenant", s(c.tenant.as_str())),
            ("provider", s(c.provider.as_str())),
            ("externalAccountId", s(&c.external_account_id)),
            ("advertiserIds", list(&c.advertiser_ids)),
            ("scopes", list(&c.scopes)),
            ("status", s(c.status.as_str())),
            ("secretId", s(&c.secret_id)),
            ("accessExpiresAt", time(c.access_expires_at)),
            ("refreshExpiresAt", time(c.refresh_expires_at)),
            ("updatedAt", time(c.updated_at)),
        ];
        let mut sets: Vec<String> = Vec::new();
        let mut builder = Update::builder()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&c.tenant)))
            .key("sk", s(connection_sk(&c.id)));
        for (i, (name, value)) in fields.into_iter().enumerate() {
            sets.push(format!("#f{i} = :f{i}"));
            builder = builder
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
        }
        sets.push("#created = if_not_exists(#created, :created)".to_owned());
        let row = builder
            .update_expression(format!("SET {}", sets.join(", ")))
            .expression_attribute_names("#created", "createdAt")
            .expression_attribute_values(":created", time(c.created_at))
            .build()
            .expect("table, key and expression are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(claim).build())
            .transact_items(TransactWriteItem::builder().update(row).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let claim_failed = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                        tc.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                    }
                    _ => false,
                };
                if claim_failed {
                    Err(owned_elsewhere(c.provider, &c.external_account_id))
                } else {
                    Err(sdk_error("upsert connection", e).into())
                }
            }
        }
    }

    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let item = get_consistent(&self.client, &self.table, connection_key(tenant, id), "get connection").await?;
        item.as_ref().map(Self::decode).transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":prefix", s("CONN#"));
        super::attr::query_all(query, "list connections")
            .await?
            .iter()
            .map(Self::decode)
            .collect()
    }
}
