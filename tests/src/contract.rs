//! The store contract: one suite, run against the embedded stores and against DynamoDB and
//! Secrets Manager (moto). An adapter that passes it can stand in for the other.

use chrono::{Duration, DurationRound, Utc};
use shared::domain::{
    Connection, ConnectionId, ConnectionStatus, OAuthState, PendingGrant, Provider, TenantId, TokenSet,
};
use shared::lead::{HistoryEntry, LeadFields, LeadRecord, LeadSource, LeadStatus, PlatformLead};
use shared::lead_query::{LeadFilter, PageStart};
use shared::secret::Secret;
use shared::store::{
    ClaimError, ConnectionStore, LeadStore, LeadUpdateError, OperatorChange, PendingGrantStore, RunRecord, StateError,
    StateStore, SyncLedger, TaskStore, TokenVault,
};
use shared::task::{SourceCounts, Strategy, SyncTask, TaskStatus, Trigger, new_task_id};

fn now() -> chrono::DateTime<Utc> {
    // Stores keep milliseconds; compare at that precision.
    Utc::now().duration_trunc(Duration::milliseconds(1)).expect("truncate")
}

fn state(id: &str, tenant: &str, redirect: Option<&str>, ttl: Duration) -> OAuthState {
    let now = now();
    OAuthState {
        state: id.to_owned(),
        tenant: TenantId::new(tenant),
        provider: Provider::OceanEngine,
        redirect_url: redirect.map(str::to_owned),
        created_at: now,
        expires_at: now + ttl,
    }
}

pub async fn state_store(store: &dyn StateStore) {
    let issued = state(
        &crate::moto::unique("st"),
        "tenant-a",
        Some("https://app.example.com/cb"),
        Duration::minutes(10),
    );
    store.create(&issued).await.expect("create state");
    let consumed = store.consume(&issued.state, Utc::now()).await.expect("consume once");
    assert_eq!(consumed, issued, "a consumed state returns what was stored");
    assert!(
        matches!(store.consume(&issued.state, Utc::now()).await, Err(StateError::Unknown)),
        "a replayed state is refused"
    );
    assert!(matches!(
        store.consume("never-issued", Utc::now()).await,
        Err(StateError::Unknown)
    ));

    let plain = state(&crate::moto::unique("st"), "tenant-a", None, Duration::minutes(10));
    store.create(&plain).await.expect("create state without redirect");
    assert_eq!(
        store
            .consume(&plain.state, Utc::now())
            .await
            .expect("consume")
            .redirect_url,
        None
    );

    let short = state(&crate::moto::unique("st"), "tenant-a", None, Duration::minutes(10));
    store.create(&short).await.expect("create state");
    let later = Utc::now() + Duration::minutes(11);
    assert!(
        matches!(store.consume(&short.state, later).await, Err(StateError::Expired)),
        "an expired state is refused"
    );
    assert!(
        matches!(store.consume(&short.state, Utc::now()).await, Err(StateError::Unknown)),
        "an expired state is consumed by the refusal and cannot be retried"
    );
}

fn tokens(access: &str, refresh: &str) -> TokenSet {
    let now = now();
    TokenSet {
        provider: Provider::Douyin,
        access_token: Secret::new(access),
        access_expires_at: now + Duration::days(15),
        refresh_token: Secret::new(refresh),
        refresh_expires_at: now + Duration::days(30),
        open_id: Some("open-1".into()),
        advertiser_ids: Vec::new(),
        scopes: vec!["user_info".into(), "fans.list".into()],
        renewals_used: 1,
        issued_at: now,
        signature_key: None,
    }
}

pub async fn token_vault(vault: &dyn TokenVault) {
    let id = crate::moto::unique("douyin-leads/connections/c");
    assert!(
        vault.get_tokens(&id).await.expect("get missing").is_none(),
        "a missing secret reads as None"
    );
    let first = tokens("act.1", "rft.1");
    vault.put_tokens(&id, &first).await.expect("create secret");
    assert_eq!(vault.get_tokens(&id).await.expect("get").as_ref(), Some(&first));
    let second = tokens("act.2", "rft.2");
    vault.put_tokens(&id, &second).await.expect("new version");
    assert_eq!(
        vault.get_tokens(&id).await.expect("get").as_ref(),
        Some(&second),
        "the newest version is current"
    );

    vault.schedule_deletion(&id).await.expect("schedule deletion");
    assert!(
        vault.get_tokens(&id).await.unwrap().is_none(),
        "a deleted secret is not served"
    );
    vault.schedule_deletion(&id).await.expect("deleting twice is fine");

    // Pending grants: listed by prefix (exactly: another prefix's secrets are not), deleted at once.
    let prefix = crate::moto::unique("douyin-leads/connections/pending-");
    let pending = [format!("{prefix}a"), format!("{prefix}b")];
    for id in &pending {
        vault.put_tokens(id, &first).await.expect("create pending secret");
    }
    vault
        .put_tokens(&prefix.to_string(), &first)
        .await
        .expect("a secret named the prefix itself");
    let mut listed: Vec<String> = vault
        .list_prefixed(&format!("{prefix}a"), 10)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.secret_id)
        .collect();
    assert_eq!(listed, vec![pending[0].clone()], "the prefix is matched exactly");
    let entries = vault.list_prefixed(&prefix, 10).await.expect("list");
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| (Utc::now() - e.created_at).num_minutes().abs() < 5)
    );
    vault.delete_now(&pending[0]).await.expect("delete now");
    vault
        .delete_now(&pending[0])
        .await
        .expect("deleting a missing secret is fine");
    assert!(vault.get_tokens(&pending[0]).await.unwrap().is_none());
    listed = vault
        .list_prefixed(&prefix, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.secret_id)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![prefix.clone(), pending[1].clone()],
        "a deleted secret is not listed"
    );
    assert_eq!(
        vault.list_prefixed(&prefix, 1).await.unwrap().len(),
        1,
        "the limit holds"
    );
}

pub async fn pending_grants(store: &dyn PendingGrantStore) {
    let now = now();
    let grant = PendingGrant {
        ticket_hash: crate::moto::unique("hash"),
        tenant: TenantId::new("tenant-p"),
        provider: Provider::OceanEngine,
        external_account_id: "1769665409798152".into(),
        advertiser_ids: vec!["1769665409798152".into(), "1769665409798153".into()],
        scopes: Vec::new(),
        secret_id: "douyin-leads/connections/pending-x".into(),
        access_expires_at: now + Duration::days(1),
        refresh_expires_at: now + Duration::days(30),
        created_at: now,
        expires_at: now + Duration::minutes(10),
        confirmed: None,
    };
    assert!(store.get_pending(&grant.ticket_hash).await.unwrap().is_none());
    store.put_pending(&grant).await.expect("put");
    assert!(store.put_pending(&grant).await.is_err(), "a ticket is never reused");
    assert_eq!(
        store.get_pending(&grant.ticket_hash).await.unwrap().as_ref(),
        Some(&grant)
    );
    let id = ConnectionId::from_stored("c_confirmed");
    store.mark_confirmed(&grant.ticket_hash, &id).await.expect("confirm");
    assert_eq!(
        store.get_pending(&grant.ticket_hash).await.unwrap().unwrap().confirmed,
        Some(id.clone())
    );
    store.delete_pending(&grant.ticket_hash).await.expect("delete");
    assert!(store.get_pending(&grant.ticket_hash).await.unwrap().is_none());
    store
        .mark_confirmed(&grant.ticket_hash, &id)
        .await
        .expect("confirming what expired away is no error");
    assert!(
        store.get_pending(&grant.ticket_hash).await.unwrap().is_none(),
        "and recreates nothing"
    );
    store
        .delete_pending(&grant.ticket_hash)
        .await
        .expect("deleting twice is fine");
}

fn connection(tenant: &str, provider: Provider, external: &str) -> Connection {
    let tenant = TenantId::new(tenant);
    let id = ConnectionId::derive(&tenant, provider, external);
    let now = now();
    Connection {
        secret_id: format!("douyin-leads/connections/{id}"),
        id,
        tenant,
        provider,
        external_account_id: external.to_owned(),
        advertiser_ids: vec!["1769665409798152".into()],
        scopes: vec!["user_info".into()],
        status: ConnectionStatus::Active,
        access_expires_at: now + Duration::days(1),
        refresh_expires_at: now + Duration::days(30),
        created_at: now,
        updated_at: now,
    }
}

pub async fn connection_store(store: &dyn ConnectionStore) {
    let external = crate::moto::unique("acct");
    let (a, b) = (
        TenantId::new(crate::moto::unique("tenant-a")),
        TenantId::new(crate::moto::unique("tenant-b")),
    );

    // The claim is made with the row: a's first connection of the account claims it.
    let first = connection(a.as_str(), Provider::Douyin, &external);
    store.upsert(&first).await.expect("create connection");
    assert_eq!(first.id, ConnectionId::derive(&a, Provider::Douyin, &external));
    store.upsert(&first).await.expect("re-claiming is idempotent");
    let claim_as = |tenant: &TenantId, provider: Provider| connection(tenant.as_str(), provider, &external);
    assert!(
        matches!(
            store.upsert(&claim_as(&b, Provider::Douyin)).await,
            Err(ClaimError::OwnedByAnotherTenant { .. })
        ),
        "another tenant cannot claim the account"
    );
    let c = TenantId::new(crate::moto::unique("tenant-c"));
    store
        .upsert(&claim_as(&c, Provider::OceanEngine))
        .await
        .expect("the same id on another provider is another account");

    assert_eq!(store.get(&a, &first.id).await.expect("get").as_ref(), Some(&first));

    let mut again = first.clone();
    again.created_at = first.created_at + Duration::hours(1);
    again.updated_at = first.updated_at + Duration::hours(1);
    again.scopes = vec!["user_info".into(), "fans.list".into()];
    again.status = ConnectionStatus::Active;
    store.upsert(&again).await.expect("update connection");
    let stored = store.get(&a, &first.id).await.expect("get").expect("present");
    assert_eq!(stored.created_at, first.created_at, "an update keeps the creation time");
    assert_eq!(stored.updated_at, again.updated_at);
    assert_eq!(stored.scopes, again.scopes);

    let stolen = connection(b.as_str(), Provider::Douyin, &external);
    assert!(
        matches!(
            store.upsert(&stolen).await,
            Err(ClaimError::OwnedByAnotherTenant { .. })
        ),
        "an upsert cannot attach another tenant's account"
    );
    assert!(
        store.get(&b, &stolen.id).await.expect("get").is_none(),
        "the refused upsert wrote nothing"
    );

    assert!(
        store.get(&b, &first.id).await.expect("get").is_none(),
        "tenants do not see each other's connections"
    );
    let listed = store.list(&a).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, first.id);
    assert!(store.list(&b).await.expect("list").is_empty());

    // A release frees the claim only of a DISABLED connection of the claim's holder.
    store.release(&first).await.expect("release of an ACTIVE connection");
    assert!(
        store.upsert(&claim_as(&b, Provider::Douyin)).await.is_err(),
        "an ACTIVE connection keeps its claim (a reconnect racing a disconnect)"
    );
    let disabled = Connection {
        status: ConnectionStatus::Disabled,
        ..again.clone()
    };
    store.upsert(&disabled).await.expect("disable");
    let foreign = Connection {
        tenant: b.clone(),
        id: ConnectionId::derive(&b, Provider::Douyin, &external),
        ..disabled.clone()
    };
    store.release(&foreign).await.expect("release by another");
    assert!(
        store.upsert(&claim_as(&b, Provider::Douyin)).await.is_err(),
        "still a's"
    );
    store.release(&disabled).await.expect("release");
    store.release(&disabled).await.expect("releasing twice is fine");
    store
        .upsert(&claim_as(&b, Provider::Douyin))
        .await
        .expect("a released account can be claimed by another tenant");
    assert!(
        store.get(&a, &first.id).await.expect("get").is_some(),
        "the old tenant's connection row stays"
    );
}

fn lead(tenant: &TenantId, connection: &ConnectionId, id: &str, phone: Option<&str>, minutes_ago: i64) -> LeadRecord {
    let fields = LeadFields {
        name: Some(format!("客户{id}")),
        phone: phone.map(str::to_owned),
        clue_type: "FORM".into(),
        created_at: Some(now() - Duration::minutes(minutes_ago)),
        ..LeadFields::default()
    };
    LeadRecord::new(
        tenant,
        connection,
        PlatformLead {
            source: LeadSource::OceanEngineClue,
            source_lead_id: id.to_owned(),
            fields,
            raw: serde_json::json!({"clue_id": id, "promotion_id": 7381234567000000000u64}),
            phone_cipher: None,
        },
    )
}

pub async fn lead_store(store: &dyn LeadStore) {
    let tenant = TenantId::new(crate::moto::unique("tenant"));
    let other = TenantId::new(crate::moto::unique("tenant"));
    let conn = ConnectionId::from_stored("c_test");
    let batch = vec![
        lead(&tenant, &conn, "7000000000000000001", Some("13800138000"), 30),
        lead(&tenant, &conn, "7000000000000000002", Some("13900139000"), 20),
        lead(&tenant, &conn, "7000000000000000003", Some("13800138000"), 10),
    ];
    let report = store.upsert(&tenant, &batch, now()).await.expect("first upsert");
    assert_eq!(
        (report.created, report.updated, report.unchanged, report.duplicates),
        (3, 0, 0, 1)
    );
    let again = store.upsert(&tenant, &batch, now()).await.expect("replay");
    assert_eq!(
        (again.created, again.updated, again.unchanged),
        (0, 0, 3),
        "a replay changes nothing"
    );

    let first = store
        .get(&tenant, &batch[0].lead_id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(first.status, LeadStatus::New);
    assert_eq!(first.version, 1);
    assert_eq!(
        first.raw["promotion_id"],
        serde_json::json!(7381234567000000000u64),
        "raw kept whole"
    );
    let third = store
        .get(&tenant, &batch[2].lead_id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        third.duplicate_of.as_ref(),
        Some(&batch[0].lead_id),
        "same phone links to the earlier lead"
    );

    let change = OperatorChange {
        status: Some(LeadStatus::Contacted),
        notes: Some("called".into()),
        invalid_reason: None,
        expected_version: 1,
        history: vec![HistoryEntry {
            at: now(),
            actor: "sales-1".into(),
            action: "STATUS".into(),
            from: Some("NEW".into()),
            to: Some("CONTACTED".into()),
        }],
        at: now(),
    };
    let updated = store
        .update_operator_fields(&tenant, &batch[0].lead_id, &change)
        .await
        .expect("operator change");
    assert_eq!((updated.status, updated.version), (LeadStatus::Contacted, 2));
    let history = store
        .history(&tenant, &batch[0].lead_id, None, 20)
        .await
        .expect("history");
    assert_eq!((history.entries, history.next), (change.history.clone(), None));
    assert!(matches!(
        store.update_operator_fields(&tenant, &batch[0].lead_id, &change).await,
        Err(LeadUpdateError::VersionConflict { current: 2 })
    ));
    assert!(matches!(
        store.update_operator_fields(&other, &batch[0].lead_id, &change).await,
        Err(LeadUpdateError::NotFound)
    ));

    // A late field arrives: the platform fields change, the operator's stay.
    let mut late = lead(&tenant, &conn, "7000000000000000001", Some("13800138000"), 30);
    late.fields.channel = Some("抖音".into());
    late.content_hash = late.fields.content_hash();
    let report = store.upsert(&tenant, &[late.clone()], now()).await.expect("update");
    assert_eq!((report.created, report.updated), (0, 1));
    let stored = store.get(&tenant, &late.lead_id).await.expect("get").expect("stored");
    assert_eq!(stored.fields.channel.as_deref(), Some("抖音"));
    assert_eq!(
        (stored.status, stored.notes.as_str(), stored.version),
        (LeadStatus::Contacted, "called", 2)
    );

    let listed = store.list_all(&tenant).await.expect("list");
    let order: Vec<&str> = listed.iter().map(|l| l.source_lead_id.as_str()).collect();
    assert_eq!(
        order,
        ["7000000000000000003", "7000000000000000002", "7000000000000000001"],
        "newest first"
    );
    assert!(
        store.list_all(&other).await.expect("list").is_empty(),
        "tenants are apart"
    );
    assert!(store.get(&other, &batch[0].lead_id).await.expect("get").is_none());
}

/// `connections` must hold the connection the ledger keeps books on.
pub async fn sync_ledger(connections: &dyn ConnectionStore, ledger: &dyn SyncLedger) {
    let external = crate::moto::unique("acct");
    let tenant = TenantId::new(crate::moto::unique("tenant"));
    let c = connection(tenant.as_str(), Provider::OceanEngine, &external);
    connections.upsert(&c).await.expect("create connection");
    let t0 = now();

    assert_eq!(
        ledger
            .acquire_lease(&tenant, &c.id, "task-1", t0 + Duration::minutes(15), t0)
            .await
            .unwrap(),
        Ok(())
    );
    let held = ledger
        .acquire_lease(&tenant, &c.id, "task-2", t0 + Duration::minutes(15), t0)
        .await
        .unwrap()
        .expect_err("a live lease is not taken over");
    assert_eq!(held.holder, "task-1");
    let later = t0 + Duration::minutes(16);
    assert_eq!(
        ledger
            .acquire_lease(&tenant, &c.id, "task-2", later + Duration::minutes(15), later)
            .await
            .unwrap(),
        Ok(()),
        "an expired lease is taken over"
    );
    ledger.release_lease(&tenant, &c.id, "task-1").await.unwrap();
    assert_eq!(
        ledger.sync_info(&tenant, &c.id).await.unwrap().lease.unwrap().holder,
        "task-2",
        "only the holder releases"
    );
    ledger.release_lease(&tenant, &c.id, "task-2").await.unwrap();
    assert!(ledger.sync_info(&tenant, &c.id).await.unwrap().lease.is_none());

    ledger
        .advance_watermark(&tenant, &c.id, LeadSource::OceanEngineClue, t0)
        .await
        .unwrap();
    ledger
        .advance_watermark(&tenant, &c.id, LeadSource::OceanEngineClue, t0 - Duration::hours(1))
        .await
        .unwrap();
    let info = ledger.sync_info(&tenant, &c.id).await.unwrap();
    assert_eq!(
        info.watermarks.get(&LeadSource::OceanEngineClue),
        Some(&t0),
        "watermarks never move back"
    );

    ledger
        .record_run(
            &tenant,
            &c.id,
            &RunRecord {
                task_id: "task-2".into(),
                at: t0,
                succeeded: false,
                failed: true,
                failure: Some(shared::failure::Failure::deadline()),
                created: 3,
            },
        )
        .await
        .unwrap();
    let info = ledger.sync_info(&tenant, &c.id).await.unwrap();
    assert_eq!(
        (info.last_sync_at, info.last_success_at, info.last_error_code.as_deref()),
        (Some(t0), None, Some("DEADLINE_REACHED"))
    );
    assert_eq!(info.last_error, Some(shared::failure::Failure::deadline().message));
    assert_eq!(info.failed_runs, 1, "a failure in a row");
    let partial = RunRecord {
        task_id: "task-2b".into(),
        at: t0,
        succeeded: false,
        failed: false,
        failure: Some(shared::failure::Failure::deadline()),
        created: 0,
    };
    ledger.record_run(&tenant, &c.id, &partial).await.unwrap();
    assert_eq!(
        ledger.sync_info(&tenant, &c.id).await.unwrap().failed_runs,
        1,
        "a partial run neither adds nor resets"
    );
    let second = RunRecord {
        task_id: "task-3".into(),
        at: t0,
        succeeded: true,
        failed: false,
        failure: None,
        created: 4,
    };
    ledger.record_run(&tenant, &c.id, &second).await.unwrap();
    let info = ledger.sync_info(&tenant, &c.id).await.unwrap();
    assert_eq!(
        (
            info.lead_count,
            info.last_error,
            info.last_error_code,
            info.last_success_at
        ),
        (7, None, None, Some(t0)),
        "counts add up"
    );
    assert_eq!(info.failed_runs, 0, "a completed run ends the streak");

    assert_eq!(
        ledger
            .list_active()
            .await
            .unwrap()
            .iter()
            .filter(|a| a.id == c.id)
            .count(),
        1
    );
    ledger
        .mark_reauth_required(&tenant, &c.id, "refresh token expired", t0)
        .await
        .unwrap();
    let stored = connections.get(&tenant, &c.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::ReauthRequired);
    assert!(
        ledger.list_active().await.unwrap().iter().all(|a| a.id != c.id),
        "no longer scheduled"
    );

    assert!(ledger.disable(&tenant, &c.id, t0).await.unwrap());
    assert_eq!(
        connections.get(&tenant, &c.id).await.unwrap().unwrap().status,
        ConnectionStatus::Disabled
    );
    let ghost = ConnectionId::from_stored("c_missing");
    assert!(
        !ledger.disable(&tenant, &ghost, t0).await.unwrap(),
        "disabling nothing says so"
    );
    ledger
        .advance_watermark(&tenant, &ghost, LeadSource::Feiyu, t0)
        .await
        .unwrap();
    assert!(
        connections.get(&tenant, &ghost).await.unwrap().is_none(),
        "no phantom connection appears"
    );
}

pub async fn task_store(store: &dyn TaskStore) {
    let tenant = TenantId::new(crate::moto::unique("tenant"));
    let mut task = SyncTask::new(
        new_task_id(),
        tenant.clone(),
        ConnectionId::from_stored("c_1"),
        Trigger::Manual,
        Strategy::Full,
        now(),
        Duration::days(30),
    );
    store.put(&task).await.unwrap();
    assert_eq!(store.get(&tenant, &task.task_id).await.unwrap().as_ref(), Some(&task));
    task.status = TaskStatus::Completed;
    task.sources.insert(
        LeadSource::Laike,
        SourceCounts {
            fetched: 3,
            created: 3,
            ..SourceCounts::default()
        },
    );
    store.put(&task).await.unwrap();
    assert_eq!(store.get(&tenant, &task.task_id).await.unwrap(), Some(task.clone()));
    assert!(
        store
            .get(&TenantId::new("someone-else"), &task.task_id)
            .await
            .unwrap()
            .is_none()
    );
}

/// Listing: filters, totals, and page-number and cursor walks that agree.
/// One list page through the query plan, as a caller who may see phones.
async fn q(
    store: &dyn LeadStore,
    tenant: &TenantId,
    filter: &LeadFilter,
    start: &PageStart,
    size: u32,
) -> Result<shared::lead_query::LeadPage, shared::lead_query::QueryError> {
    shared::lead_query::list(store, tenant, filter, start, size, true, Default::default()).await
}

pub async fn lead_queries(store: &dyn LeadStore) {
    let tenant = TenantId::new(crate::moto::unique("tenant"));
    let conn = ConnectionId::from_stored("c_q");
    let batch: Vec<LeadRecord> = (0..30)
        .map(|i| {
            let mut l = lead(
                &tenant,
                &conn,
                &format!("71000000000000000{i:02}"),
                Some(&format!("139{i:08}")),
                30 + i * 60,
            );
            if i % 3 == 0 {
                l.source = LeadSource::Feiyu;
                l.lead_id = shared::lead::LeadId::derive(&tenant, LeadSource::Feiyu, &l.source_lead_id);
            }
            l
        })
        .collect();
    store.upsert(&tenant, &batch, now()).await.expect("seed");
    let other = TenantId::new(crate::moto::unique("tenant"));
    store
        .upsert(&other, &batch[..5], now())
        .await
        .expect("seed other tenant");
    let contacted = OperatorChange {
        status: Some(LeadStatus::Contacted),
        notes: Some("约了周六到店".into()),
        invalid_reason: None,
        expected_version: 1,
        history: Vec::new(),
        at: now(),
    };
    store
        .update_operator_fields(&tenant, &batch[4].lead_id, &contacted)
        .await
        .expect("work a lead");

    let all = LeadFilter::default();
    let mut by_page = Vec::new();
    for page in 1..=4 {
        let p = q(store, &tenant, &all, &PageStart::Number(page), 8)
            .await
            .expect("page");
        assert_eq!(p.total, 30);
        assert_eq!(p.next.is_some(), page < 4, "page {page}");
        by_page.extend(p.records.into_iter().map(|l| l.lead_id));
    }
    let mut by_cursor = Vec::new();
    let mut start = PageStart::Number(1);
    loop {
        let p = q(store, &tenant, &all, &start, 8).await.expect("cursor page");
        by_cursor.extend(p.records.into_iter().map(|l| l.lead_id));
        match p.next {
            Some(c) => start = PageStart::After(c),
            None => break,
        }
    }
    let newest_first: Vec<_> = batch.iter().map(|l| l.lead_id.clone()).collect();
    assert_eq!(by_page, newest_first, "newest first, every lead once");
    assert_eq!(by_cursor, by_page, "page and cursor walks agree");
    let beyond = q(store, &tenant, &all, &PageStart::Number(9), 8).await.unwrap();
    assert!(beyond.records.is_empty() && beyond.total == 30);

    let feiyu = LeadFilter {
        source: Some(LeadSource::Feiyu),
        ..LeadFilter::default()
    };
    let p = q(store, &tenant, &feiyu, &PageStart::Number(2), 4).await.unwrap();
    assert_eq!((p.total, p.records.len()), (10, 4));
    assert!(p.records.iter().all(|l| l.source == LeadSource::Feiyu));
    let status = LeadFilter {
        status: Some(LeadStatus::Contacted),
        ..LeadFilter::default()
    };
    let p = q(store, &tenant, &status, &PageStart::Number(1), 10).await.unwrap();
    assert_eq!((p.total, p.records[0].lead_id.clone()), (1, batch[4].lead_id.clone()));
    for keyword in ["到店", "13900000004", "客户71000000000000000"] {
        let k = LeadFilter {
            keyword: Some(keyword.into()),
            ..LeadFilter::default()
        };
        let p = q(store, &tenant, &k, &PageStart::Number(1), 50).await.unwrap();
        let expected = if keyword.starts_with("客户") { 30 } else { 1 };
        assert_eq!(p.total, expected, "{keyword}");
    }
    let window = LeadFilter {
        // Half an hour of slack on each side: lead i was created (30 + 60 i) minutes before seeding.
        start: Some(now() - Duration::minutes(30 + 9 * 60 + 30)),
        end: Some(now() - Duration::minutes(30 + 5 * 60 - 30)),
        ..LeadFilter::default()
    };
    let p = q(store, &tenant, &window, &PageStart::Number(1), 50).await.unwrap();
    assert_eq!(p.total, 5, "leads 5..=9 fall in the window");
    assert_eq!(
        q(store, &other, &all, &PageStart::Number(1), 50).await.unwrap().total,
        5,
        "tenants apart"
    );
}

/// The spend store: rows of two months round-trip to the fen, a range returns exactly its days,
/// an unchanged re-put writes nothing, a changed figure writes that row, tenants are apart, a
/// watermark only moves forward.
pub async fn spend_store(store: &dyn shared::spend::store::SpendStore) {
    use chrono::NaiveDate;
    use shared::spend::{SpendLevel, SpendRow};
    let tenant = TenantId::new(crate::moto::unique("spend-tenant"));
    let connection = shared::domain::ConnectionId::from_stored("c_spend");
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Duration::days(i64::from(d));
    let rows: Vec<SpendRow> = (0..40)
        .map(|d| SpendRow {
            level: SpendLevel::LocalPromotion,
            entity_id: format!("738{}", d % 3),
            day: day(d),
            name: Some("门店引流".into()),
            parent_id: Some("7380000000000000001".into()),
            spend_fen: 15_237 + i64::from(d),
            shows: 100,
            clicks: 7,
            conversions: 2,
            provisional: d == 39,
        })
        .collect();
    let first = store.put_rows(&tenant, &connection, &rows).await.unwrap();
    assert_eq!((first.written, first.unchanged), (40, 0));
    let again = store.put_rows(&tenant, &connection, &rows).await.unwrap();
    assert_eq!(
        (again.written, again.unchanged),
        (0, 40),
        "an unchanged re-put writes nothing"
    );
    let mut changed = rows[35].clone();
    changed.conversions = 5;
    let third = store.put_rows(&tenant, &connection, &[changed.clone()]).await.unwrap();
    assert_eq!((third.written, third.unchanged), (1, 0));
    let mut got: Vec<SpendRow> = store
        .rows(&tenant, day(28), day(36))
        .await
        .unwrap()
        .into_iter()
        .map(|(c, r)| {
            assert_eq!(c, connection);
            r
        })
        .collect();
    got.sort_by_key(|r| r.day);
    let mut expected: Vec<SpendRow> = rows[28..=36].to_vec();
    expected[7] = changed;
    assert_eq!(got, expected, "exactly the range's days, across a month boundary");
    let other = TenantId::new(crate::moto::unique("spend-other"));
    assert!(store.rows(&other, day(0), day(40)).await.unwrap().is_empty());
    assert_eq!(
        store.watermark(&tenant, &connection, SpendLevel::Ad).await.unwrap(),
        None
    );
    store
        .advance_watermark(&tenant, &connection, SpendLevel::Ad, day(10))
        .await
        .unwrap();
    store
        .advance_watermark(&tenant, &connection, SpendLevel::Ad, day(5))
        .await
        .unwrap();
    assert_eq!(
        store.watermark(&tenant, &connection, SpendLevel::Ad).await.unwrap(),
        Some(day(10))
    );
}

/// Imports: a record reads back as written, per tenant; `advance` writes revision `r` only over
/// revision `r - 1`, so of two runs (or starts) of one import only one goes on.
pub async fn import_jobs(store: &dyn shared::import::ImportJobs) {
    use shared::import::job::{ImportJob, ImportOrder};
    use shared::import::row::Rejection;
    use shared::import::{ImportStatus, reader::Format};
    let tenant = TenantId::new(crate::moto::unique("imports"));
    let at = now();
    let order = ImportOrder {
        tenant: tenant.clone(),
        actor: "admin-1".into(),
        file_name: "客资管理.xlsx".into(),
        format: Format::Xlsx,
        source: LeadSource::Laike,
        connection_id: Some(ConnectionId::from_stored("c_1")),
        mapping: [("phone".to_owned(), "客户手机".to_owned())].into(),
    };
    let job = ImportJob::awaiting(shared::import::job::new_import_id(), order, at, Duration::days(7));
    store.put(&job).await.expect("put");
    assert_eq!(store.get(&tenant, &job.import_id).await.unwrap(), Some(job.clone()));
    let stranger = TenantId::new(crate::moto::unique("stranger"));
    assert_eq!(store.get(&stranger, &job.import_id).await.unwrap(), None, "per tenant");
    assert_eq!(store.get(&tenant, "i_missing").await.unwrap(), None);
    let mut unknown = job.clone();
    unknown.import_id = "i_missing".into();
    unknown.revision = 1;
    assert!(!store.advance(&unknown).await.unwrap(), "advance never makes a record");

    // Two runs read revision 0; the first to write moves it, the other's write is refused.
    let mut first = job.clone();
    first.status = ImportStatus::Running;
    first.next_row = 101;
    first.counts.read = 100;
    first.counts.created = 99;
    first.counts.rejected = 1;
    first.rejections.push(Rejection {
        row: 7,
        column: Some("客户电话".into()),
        reason: "masked".into(),
    });
    first.encoding = Some("utf-8".into());
    first.revision = 1;
    let mut second = job.clone();
    second.status = ImportStatus::Running;
    second.revision = 1;
    assert!(store.advance(&first).await.unwrap(), "moved on from the revision read");
    assert!(
        !store.advance(&second).await.unwrap(),
        "a second writer that read the old revision does not move it"
    );
    assert_eq!(store.get(&tenant, &job.import_id).await.unwrap(), Some(first.clone()));
    let mut next = first.clone();
    next.next_row = 201;
    next.revision = 2;
    assert!(store.advance(&next).await.unwrap());
    assert_eq!(store.get(&tenant, &job.import_id).await.unwrap(), Some(next));
}
