//! Sync exactness, finding by finding (issue 8): each test reproduces what an independent
//! implementation of the platform APIs did to the old code, on DynamoDB Local and the simulator.

use devkit::sim::SimSource;
use devkit::sync_fixtures::{account, assert_exactly_the_platforms_leads, connected, stored, tenant};
use devkit::sync_harness::SyncHarness;
use shared::task::{Strategy, TaskStatus};
use std::time::Duration;

#[tokio::test]
async fn pages_answered_out_of_order_while_leads_arrive_lose_nothing() {
    // 250 leads on a fresh 来客 account; page 2 is answered late, page 3 at once, and 30 leads
    // created 15 minutes ago appear in between: old rows move from page 2 onto page 3 after
    // page 3 answered.
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Laike, 250).await;
    h.sim.script_page(2, Duration::from_millis(400), 30);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
    assert_eq!(h.sim.leads(SimSource::Laike, &account).len(), 280);
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Laike, &account).await;
    let counts = task.totals();
    assert!(
        counts.reconcile_requests <= 4,
        "a final check, the two pages beside the one boundary rows fell through, a second check: {counts:?}"
    );
}

#[tokio::test]
async fn a_refused_decrypt_never_wipes_stored_phones_and_later_runs_retry_the_missing() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Laike, 120).await;
    h.sim.set_enc_phones(true);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.totals().created, 120);
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Laike, &account).await;

    // The decrypt endpoint refuses (quota): a FULL re-pull must not touch a stored phone.
    h.sim.set_decrypt_failures(true);
    let task = h.sync_with(&engine, &connection, Strategy::Full).await;
    assert_eq!(
        (task.totals().updated, task.totals().phones_pending),
        (0, 0),
        "{:?}",
        task.totals()
    );
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Laike, &account).await;

    // A second account's leads (spread over 20 days) arrive while it refuses: stored without
    // phones, remembered, counted.
    let other = tenant();
    let (late, late_account) = connected(&h, &other, SimSource::Laike, 50).await;
    let task = h.sync(&engine, &late).await;
    assert_eq!((task.totals().created, task.totals().phones_pending), (50, 50));
    let task = h.sync(&engine, &late).await;
    assert_eq!(task.totals().phones_pending, 50, "still refused: still pending");

    // The quota is back. The next incremental run's window holds none of them (it starts at the
    // watermark minus the overlap); the retry pass fills every phone in.
    h.sim.set_decrypt_failures(false);
    let task = h.sync(&engine, &late).await;
    assert_eq!(task.totals().fetched, 0, "the window is past all of them");
    assert_eq!((task.totals().phones_recovered, task.totals().phones_pending), (50, 0));
    assert_exactly_the_platforms_leads(&h, &other, SimSource::Laike, &late_account).await;
}

#[tokio::test]
async fn a_repull_that_differs_only_in_wire_encoding_writes_nothing() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    for source in [SimSource::Laike, SimSource::OceanEngineClue, SimSource::Feiyu] {
        let (connection, _) = connected(&h, &t, source, 40).await;
        h.sim.set_string_numbers(false);
        h.sync(&engine, &connection).await;
        h.sim.set_string_numbers(true);
        h.counter.reset();
        let task = h.sync_with(&engine, &connection, Strategy::Full).await;
        let counts = task.totals();
        // Feiyu windows are whole days, so leads on a day two windows share come twice.
        assert!(counts.updated == 0 && counts.unchanged >= 40, "{source:?}: {counts:?}");
        assert_eq!(h.counter.writes_to(h.leads_table()), 0, "{source:?}");
    }
}

#[tokio::test]
async fn every_local_account_of_a_connection_with_more_than_fifty_syncs() {
    let h = SyncHarness::on_moto(&[("OCEANENGINE_LEAD_SOURCES", "life")]).await;
    let engine = h.engine();
    let t = tenant();
    let (mut connection, owner) = connected(&h, &t, SimSource::OceanEngineLife, 10).await;
    let locals: Vec<String> = (0..120).map(|i| format!("{}{i:03}", account("18"))).collect();
    for local in [&locals[3], &locals[64], &locals[119]] {
        h.sim
            .seed_leads(SimSource::OceanEngineLife, local, 15, chrono::Duration::days(5));
    }
    h.sim.grant_accounts(&owner, &locals);
    connection.advertiser_ids = std::iter::once(owner.clone()).chain(locals.iter().cloned()).collect();
    h.stores
        .connections
        .upsert(&connection)
        .await
        .expect("connection updated");
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
    let stored_ids: std::collections::BTreeSet<String> = stored(&h, &t, SimSource::OceanEngineLife)
        .await
        .into_iter()
        .map(|l| l.source_lead_id)
        .collect();
    for local in std::iter::once(&owner).chain([&locals[3], &locals[64], &locals[119]]) {
        for lead in h.sim.leads(SimSource::OceanEngineLife, local) {
            assert!(
                stored_ids.contains(&lead.clue_id),
                "a lead of account {local} is missing"
            );
        }
    }
    assert_eq!(stored_ids.len(), 10 + 3 * 15);
}

#[tokio::test]
async fn the_deadline_margin_covers_the_slowest_page_and_its_store() {
    // Five-second timeouts, three attempts: one page can take over fifteen seconds.
    let h = SyncHarness::embedded(&[
        ("HTTP_TIMEOUT_MS", "5000"),
        ("HTTP_MAX_ATTEMPTS", "3"),
        ("HTTP_RETRY_BASE_MS", "500"),
        ("HTTP_RETRY_MAX_MS", "2000"),
        ("SYNC_DEADLINE_MARGIN_SECS", "5"),
    ])
    .await;
    let margin = h.engine().deadline_margin();
    // 3 × 5 s + 0.5 s + 1 s of backoff, plus 5 s to store the page.
    assert_eq!(margin, Duration::from_millis(3 * 5000 + 500 + 1000 + 5000));
}

#[tokio::test]
async fn no_token_refresh_starts_that_cannot_finish_before_the_deadline() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::OceanEngineClue, 20).await;
    let mut tokens = h.stores.vault.get_tokens(&connection.secret_id).await.unwrap().unwrap();
    tokens.access_expires_at = chrono::Utc::now() - chrono::Duration::minutes(1);
    h.stores.vault.put_tokens(&connection.secret_id, &tokens).await.unwrap();
    let before = h.sim.requests_to("/oauth2/refresh_token/");
    let deadline = tokio::time::Instant::now() + engine.deadline_margin() - Duration::from_secs(1);
    let shared::sync::SyncOutcome::Ran(task) = engine
        .run(shared::sync::SyncRequest::scheduled(&connection), Some(deadline))
        .await
        .unwrap()
    else {
        panic!("ran");
    };
    assert_eq!(
        h.sim.requests_to("/oauth2/refresh_token/"),
        before,
        "no rotation was started"
    );
    assert_eq!(task.status, TaskStatus::Partial, "{:?}", task.error);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed, "the next run refreshes and syncs");
}

#[tokio::test]
async fn a_task_left_processing_by_a_killed_run_is_closed_by_the_next() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::Feiyu, 5).await;
    // What a run killed by the Lambda timeout leaves: its task PROCESSING, its lease unreleased.
    let now = chrono::Utc::now();
    let mut killed = shared::task::SyncTask::new(
        "t_killed".into(),
        t.clone(),
        connection.id.clone(),
        shared::task::Trigger::Schedule,
        Strategy::Incremental,
        now - chrono::Duration::minutes(20),
        chrono::Duration::days(1),
    );
    killed.status = TaskStatus::Processing;
    h.stores.tasks.put(&killed).await.unwrap();
    let taken = h
        .stores
        .ledger
        .acquire_lease(
            &t,
            &connection.id,
            "t_killed/0123",
            now - chrono::Duration::minutes(5),
            now - chrono::Duration::minutes(20),
        )
        .await
        .unwrap();
    assert!(taken.is_ok());
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed);
    let closed = h.stores.tasks.get(&t, "t_killed").await.unwrap().unwrap();
    assert_eq!(closed.status, TaskStatus::Failed);
    assert!(closed.error.unwrap().contains("lease expired"));
}

#[tokio::test]
async fn a_duplicated_delivery_of_one_task_runs_one_writer() {
    let h = SyncHarness::on_moto(&[("SYNC_PAGE_SIZE", "20")]).await;
    h.sim.set_latency(Duration::from_millis(20));
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 60).await;
    let request = shared::sync::SyncRequest {
        task_id: Some("t_twice".into()),
        ..shared::sync::SyncRequest::scheduled(&connection)
    };
    let (a, b) = tokio::join!(engine.run(request.clone(), None), engine.run(request, None));
    let outcomes = [a.unwrap(), b.unwrap()];
    let ran = outcomes
        .iter()
        .filter(|o| matches!(o, shared::sync::SyncOutcome::Ran(_)))
        .count();
    assert_eq!(ran, 1, "the second delivery waits its turn: {outcomes:?}");
    assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineClue, &account).await;
    let info = h.stores.ledger.sync_info(&t, &connection.id).await.unwrap();
    assert_eq!(info.lead_count, 60, "each lead counted once");
}

#[tokio::test]
async fn two_writers_of_one_new_lead_create_it_once() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = tenant();
    let connection = shared::domain::ConnectionId::from_stored("c_writers");
    let leads: Vec<shared::lead::LeadRecord> = (0..50)
        .map(|i| {
            shared::lead::LeadRecord::new(
                &t,
                &connection,
                shared::lead::PlatformLead {
                    source: shared::lead::LeadSource::Feiyu,
                    source_lead_id: format!("{}", 7_000_000_000_000_000_000u64 + i),
                    fields: shared::lead::LeadFields {
                        clue_type: "FORM".into(),
                        phone: Some(format!("139{i:08}")),
                        ..Default::default()
                    },
                    raw: serde_json::Value::Null,
                    phone_cipher: None,
                },
            )
        })
        .collect();
    let now = chrono::Utc::now();
    let (a, b) = tokio::join!(
        h.stores.leads.upsert(&t, &leads, now),
        h.stores.leads.upsert(&t, &leads, now)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.created + b.created, 50, "{a:?} {b:?}");
    assert_eq!(a.created + a.unchanged + a.updated, 50);
    assert_eq!(b.created + b.unchanged + b.updated, 50);
}

#[tokio::test]
async fn reauth_never_overwrites_a_disconnect() {
    for h in [SyncHarness::on_moto(&[]).await, SyncHarness::embedded(&[]).await] {
        let t = tenant();
        let (connection, _) = connected(&h, &t, SimSource::Fans, 3).await;
        let now = chrono::Utc::now();
        assert!(h.stores.ledger.disable(&t, &connection.id, now).await.unwrap());
        h.stores
            .ledger
            .mark_reauth_required(&t, &connection.id, "refresh token expired", now)
            .await
            .unwrap();
        let status = h
            .stores
            .connections
            .get(&t, &connection.id)
            .await
            .unwrap()
            .unwrap()
            .status;
        assert_eq!(status, shared::domain::ConnectionStatus::Disabled);
    }
}

#[tokio::test]
async fn a_lead_too_big_to_store_fails_alone_and_holds_its_window() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Laike, 40).await;
    let big = h.sim.leads(SimSource::Laike, &account)[7].clue_id.clone();
    h.sim.bloat_lead(&big, 420 * 1024);
    let task = h.sync(&engine, &connection).await;
    let counts = task.totals();
    assert_eq!((counts.created, counts.failed_leads), (39, 1), "{counts:?}");
    assert_eq!(task.status, TaskStatus::Partial, "{:?}", task.error);
    let info = h.stores.ledger.sync_info(&t, &connection.id).await.unwrap();
    assert!(info.watermarks.is_empty(), "the window is pulled again next run");
    // Once the platform sends it at a size that fits, the next run stores it.
    h.sim.bloat_lead(&big, 0);
    let task = h.sync(&engine, &connection).await;
    assert_eq!((task.status, task.totals().created), (TaskStatus::Completed, 1));
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Laike, &account).await;
}
