//! Subscriptions and deliveries in memory, for the local run and unit tests; the store contract
//! runs the same checks over this and the DynamoDB store.

use super::{Delivery, DeliveryPage, DeliveryStatus, DeliveryStore, HookStatus, Subscription};
use crate::domain::TenantId;
use crate::store::StoreError;
use crate::store::memory::lock;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
struct State {
    subscriptions: BTreeMap<(String, String), Subscription>,
    deliveries: HashMap<(String, String), Delivery>,
    lanes: HashMap<(String, String), u64>,
    rates: HashMap<(String, i64), u32>,
    /// Queued digest lines per hook, in arrival order.
    digest: HashMap<String, Vec<(String, String)>>,
    windows: HashSet<(String, i64)>,
}

#[derive(Default)]
pub struct MemoryDeliveryStore(Mutex<State>);

fn key(tenant: &TenantId, id: &str) -> (String, String) {
    (tenant.as_str().to_owned(), id.to_owned())
}

#[async_trait]
impl DeliveryStore for MemoryDeliveryStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        lock(&self.0)
            .subscriptions
            .insert(key(&subscription.tenant, &subscription.id), subscription.clone());
        Ok(())
    }

    async fn subscription(&self, tenant: &TenantId, id: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(lock(&self.0).subscriptions.get(&key(tenant, id)).cloned())
    }

    async fn subscriptions(&self, tenant: &TenantId) -> Result<Vec<Subscription>, StoreError> {
        let mut list: Vec<Subscription> = lock(&self.0)
            .subscriptions
            .values()
            .filter(|s| &s.tenant == tenant)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    async fn delete_subscription(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.0).subscriptions.remove(&key(tenant, id)).is_some())
    }

    async fn mark_failing(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let mut state = lock(&self.0);
        let Some(sub) = state.subscriptions.get_mut(&key(tenant, id)) else {
            return Ok(at);
        };
        Ok(*sub.failing_since.get_or_insert(at))
    }

    async fn clear_failing(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        if let Some(sub) = lock(&self.0).subscriptions.get_mut(&key(tenant, id)) {
            sub.failing_since = None;
        }
        Ok(())
    }

    async fn disable(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>, reason: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.0);
        match state.subscriptions.get_mut(&key(tenant, id)) {
            Some(sub) if sub.status == HookStatus::Active => {
                sub.status = HookStatus::Disabled;
                sub.disabled_at = Some(at);
                sub.disabled_reason = Some(reason.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn add_delivery(&self, delivery: &Delivery) -> Result<(Delivery, bool), StoreError> {
        let mut state = lock(&self.0);
        let k = (delivery.hook_id.clone(), delivery.delivery_id.clone());
        if let Some(existing) = state.deliveries.get(&k) {
            return Ok((existing.clone(), false));
        }
        state.deliveries.insert(k, delivery.clone());
        Ok((delivery.clone(), true))
    }

    async fn delivery(&self, hook_id: &str, delivery_id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(lock(&self.0)
            .deliveries
            .get(&(hook_id.to_owned(), delivery_id.to_owned()))
            .cloned())
    }

    async fn update_delivery(&self, delivery: &Delivery, seen: (DeliveryStatus, u32)) -> Result<bool, StoreError> {
        let mut state = lock(&self.0);
        let k = (delivery.hook_id.clone(), delivery.delivery_id.clone());
        match state.deliveries.get_mut(&k) {
            Some(current) if (current.status, current.attempts) == seen => {
                *current = delivery.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn deliveries(&self, hook_id: &str, from: Option<&str>, limit: u32) -> Result<DeliveryPage, StoreError> {
        let state = lock(&self.0);
        let mut all: Vec<&Delivery> = state.deliveries.values().filter(|d| d.hook_id == hook_id).collect();
        all.sort_by_key(|d| std::cmp::Reverse(position(d)));
        let start = from.map_or(0, |f| {
            all.iter().position(|d| position(d).as_str() < f).unwrap_or(all.len())
        });
        let records: Vec<Delivery> = all
            .iter()
            .skip(start)
            .take(limit as usize)
            .map(|d| (*d).clone())
            .collect();
        let next = (start + records.len() < all.len())
            .then(|| records.last().map(position))
            .flatten();
        Ok(DeliveryPage { records, next })
    }

    async fn lane(&self, hook_id: &str, lead_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(lock(&self.0)
            .lanes
            .get(&(hook_id.to_owned(), lead_id.to_owned()))
            .copied())
    }

    async fn advance_lane(&self, hook_id: &str, lead_id: &str, version: u64) -> Result<(), StoreError> {
        let mut state = lock(&self.0);
        let lane = state
            .lanes
            .entry((hook_id.to_owned(), lead_id.to_owned()))
            .or_insert(version);
        *lane = (*lane).max(version);
        Ok(())
    }

    async fn take_rate_slot(&self, hook_id: &str, window: i64, limit: u32) -> Result<bool, StoreError> {
        let mut state = lock(&self.0);
        let used = state.rates.entry((hook_id.to_owned(), window)).or_insert(0);
        if *used >= limit {
            return Ok(false);
        }
        *used += 1;
        Ok(true)
    }

    async fn queue_digest_line(&self, hook_id: &str, delivery_id: &str, line: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.0);
        let queue = state.digest.entry(hook_id.to_owned()).or_default();
        if !queue.iter().any(|(id, _)| id == delivery_id) {
            queue.push((delivery_id.to_owned(), line.to_owned()));
        }
        Ok(())
    }

    async fn digest_lines(&self, hook_id: &str, limit: u32) -> Result<Vec<(String, String)>, StoreError> {
        let state = lock(&self.0);
        Ok(state
            .digest
            .get(hook_id)
            .map(|q| q.iter().take(limit as usize).cloned().collect())
            .unwrap_or_default())
    }

    async fn drop_digest_lines(&self, hook_id: &str, delivery_ids: &[String]) -> Result<(), StoreError> {
        if let Some(queue) = lock(&self.0).digest.get_mut(hook_id) {
            queue.retain(|(id, _)| !delivery_ids.contains(id));
        }
        Ok(())
    }

    async fn schedule_digest(&self, hook_id: &str, window: i64) -> Result<bool, StoreError> {
        Ok(lock(&self.0).windows.insert((hook_id.to_owned(), window)))
    }
}

/// Where a delivery sorts in the newest-first list: its creation time, then its id.
pub(crate) fn position(d: &Delivery) -> String {
    format!(
        "{}#{}",
        d.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        d.delivery_id
    )
}
