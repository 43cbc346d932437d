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
        counts.reconcile_requests <= 3,
        "a final check and one repaired page: {counts:?}"
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
