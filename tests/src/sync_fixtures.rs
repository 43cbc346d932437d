//! What sync tests share: a fresh tenant, a connection of each source's kind with simulated
//! leads, and the check that the stored leads are exactly the platform's.

use crate::connections::{bind_laike, connect_oauth, register_feiyu};
use crate::sim::SimSource;
use crate::sync_harness::SyncHarness;
use chrono::Duration;
use shared::domain::{Connection, Provider, TenantId};
use shared::lead::{LeadSource, StoredLead};
use std::collections::BTreeMap;

/// How far back simulated leads reach.
pub const SPAN_DAYS: i64 = 20;

pub fn tenant() -> TenantId {
    TenantId::new(crate::moto::unique("tenant"))
}

pub fn account(prefix: &str) -> String {
    // Numeric-looking, unique per test: Ocean Engine and Feiyu ids are digits.
    let unique = crate::moto::unique("x");
    let digits: String = unique
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("{prefix}{digits}")
}

/// A connection of `source`'s kind with `count` simulated leads.
pub async fn connected(h: &SyncHarness, tenant: &TenantId, source: SimSource, count: usize) -> (Connection, String) {
    let span = Duration::days(SPAN_DAYS);
    match source {
        SimSource::Laike => {
            let id = account("73");
            h.sim.seed_leads(source, &id, count, span);
            (bind_laike(&h.config, &h.stores, tenant, &id).await, id)
        }
        SimSource::OceanEngineClue | SimSource::OceanEngineLife => {
            let id = account("17");
            h.sim.seed_leads(source, &id, count, span);
            (
                connect_oauth(&h.config, &h.stores, tenant, Provider::OceanEngine, &id).await,
                id,
            )
        }
        SimSource::Feiyu => {
            let id = account("16");
            let (token, key) = (format!("token{id}"), format!("key{id}"));
            h.sim.add_feiyu_account(&id, &token, &key);
            h.sim.seed_leads(source, &id, count, span);
            (
                register_feiyu(&h.config, &h.stores, tenant, &id, &token, &key).await,
                id,
            )
        }
        SimSource::Fans => {
            let id = format!("open-{}", account(""));
            h.sim.seed_leads(source, &id, count, span);
            (
                connect_oauth(&h.config, &h.stores, tenant, Provider::Douyin, &id).await,
                id,
            )
        }
    }
}

/// A task the API recorded for an on-demand sync of `connection`, as `POST /fans/sync` does.
pub async fn requested_task(h: &SyncHarness, connection: &Connection) -> shared::task::SyncTask {
    let task = shared::task::SyncTask::new(
        shared::task::new_task_id(),
        connection.tenant.clone(),
        connection.id.clone(),
        shared::task::Trigger::Manual,
        shared::task::Strategy::Incremental,
        chrono::Utc::now(),
        Duration::days(1),
    );
    h.stores.tasks.put(&task).await.expect("record the task");
    task
}

pub fn lead_source(source: SimSource) -> LeadSource {
    match source {
        SimSource::Laike => LeadSource::Laike,
        SimSource::OceanEngineClue => LeadSource::OceanEngineClue,
        SimSource::OceanEngineLife => LeadSource::OceanEngineLife,
        SimSource::Feiyu => LeadSource::Feiyu,
        SimSource::Fans => LeadSource::DouyinFans,
    }
}

pub async fn stored(h: &SyncHarness, tenant: &TenantId, source: SimSource) -> Vec<StoredLead> {
    let all = h.stores.leads.list_all(tenant).await.expect("list leads");
    all.into_iter().filter(|l| l.source == lead_source(source)).collect()
}

/// The stored leads are exactly the simulator's: same ids, no duplicates, same phones.
pub async fn assert_exactly_the_platforms_leads(h: &SyncHarness, tenant: &TenantId, source: SimSource, account: &str) {
    let expected: BTreeMap<String, Option<String>> = h
        .sim
        .leads(source, account)
        .into_iter()
        .map(|l| (l.clue_id, (source != SimSource::Fans).then_some(l.phone)))
        .collect();
    let leads = stored(h, tenant, source).await;
    let got: BTreeMap<String, Option<String>> = leads
        .iter()
        .map(|l| (l.source_lead_id.clone(), l.fields.phone.clone()))
        .collect();
    assert_eq!(got.len(), leads.len(), "{source:?}: one item per lead");
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| (k, v, got.get(k)))
        .collect();
    let extra: Vec<_> = got.iter().filter(|(k, _)| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{source:?}: stored leads and phones must match the platform; missing or different {missing:?}, extra {extra:?}"
    );
}

/// A stored lead as the stores hold one, for tests and benchmarks that make events without a
/// sync: lead `n` of `tenant`, created at `at`, named and with a phone.
pub fn stored_lead(tenant: &str, n: usize, source: LeadSource, at: chrono::DateTime<chrono::Utc>) -> StoredLead {
    StoredLead {
        lead_id: shared::lead::LeadId::from_stored(format!("l_{n:04}")),
        tenant: TenantId::new(tenant),
        connection_id: shared::domain::ConnectionId::from_stored("c_1"),
        source,
        source_lead_id: format!("70{n:08}"),
        fields: shared::lead::LeadFields {
            name: Some(format!("客户{n}")),
            phone: Some(format!("138{n:08}")),
            clue_type: "FORM".into(),
            promotion_id: Some("7301".into()),
            ..shared::lead::LeadFields::default()
        },
        raw: serde_json::json!({}),
        content_hash: format!("h{n}"),
        acquired_at: at,
        updated_at: at,
        duplicate_of: None,
        status: shared::lead::LeadStatus::New,
        notes: String::new(),
        version: 1,
        changed_by: None,
        invalid_reason: None,
        write_back: None,
    }
}
