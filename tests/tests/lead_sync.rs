//! Lead sync against moto and the simulator: every source stores exactly the platform's leads,
//! an unchanged re-pull writes nothing, late changes keep the operator's work, and every fault
//! ends, after one more run, with the same leads as a clean run.

use chrono::Duration;
use devkit::faulty_leads::FaultyLeads;
use devkit::sim::{Fault, SimSource};
use devkit::sync_harness::SyncHarness;
use shared::domain::ConnectionStatus;
use shared::lead::{HistoryEntry, LeadSource, LeadStatus, StoredLead};
use shared::store::OperatorChange;
use shared::sync::{SkipReason, SyncOutcome, SyncRequest};
use shared::task::{Strategy, TaskStatus, Trigger};

use devkit::sync_fixtures::{SPAN_DAYS, assert_exactly_the_platforms_leads, connected, stored, tenant};

#[tokio::test]
async fn every_source_stores_exactly_its_leads_and_an_unchanged_repull_writes_nothing() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    for (source, count) in [
        (SimSource::Laike, 230),
        (SimSource::OceanEngineClue, 180),
        (SimSource::Feiyu, 120),
        (SimSource::Fans, 70),
    ] {
        let (connection, account) = connected(&h, &t, source, count).await;
        if source == SimSource::OceanEngineClue {
            h.sim
                .seed_leads(SimSource::OceanEngineLife, &account, 60, Duration::days(SPAN_DAYS));
        }
        let first = h.sync(&engine, &connection).await;
        assert_eq!(first.status, TaskStatus::Completed, "{source:?}: {:?}", first.error);
        let life = if source == SimSource::OceanEngineClue { 60 } else { 0 };
        assert_eq!(
            first.totals().created,
            (count + life) as u64,
            "{source:?}: every lead created once"
        );
        assert_exactly_the_platforms_leads(&h, &t, source, &account).await;
        if source == SimSource::OceanEngineClue {
            assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineLife, &account).await;
            assert_eq!(first.sources.len(), 2, "both Ocean Engine sources ran");
        }

        h.counter.reset();
        let second = h.sync(&engine, &connection).await;
        assert_eq!(second.status, TaskStatus::Completed);
        assert_eq!((second.totals().created, second.totals().updated), (0, 0), "{source:?}");
        assert_eq!(
            h.counter.writes_to(h.leads_table()),
            0,
            "{source:?}: an unchanged re-pull writes nothing"
        );
    }
}

#[tokio::test]
async fn late_changes_update_platform_fields_and_keep_the_operators_work() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 50).await;
    h.sync(&engine, &connection).await;
    h.sim.insert_leads(SimSource::OceanEngineClue, &account, 3);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.totals().created, 3);

    let newest = stored(&h, &t, SimSource::OceanEngineClue).await.remove(0);
    assert_eq!(newest.fields.channel, None, "app_name arrives late");
    let change = OperatorChange {
        status: Some(LeadStatus::Contacted),
        notes: Some("回访过".into()),
        invalid_reason: None,
        expected_version: newest.version,
        history: vec![HistoryEntry {
            at: chrono::Utc::now(),
            actor: "sales".into(),
            action: "STATUS".into(),
            from: Some("NEW".into()),
            to: Some("CONTACTED".into()),
        }],
        at: chrono::Utc::now(),
    };
    h.stores
        .leads
        .update_operator_fields(&t, &newest.lead_id, &change)
        .await
        .expect("operator works the lead");

    h.sim.change_leads(SimSource::OceanEngineClue, &account, 3);
    h.counter.reset();
    let task = h.sync(&engine, &connection).await;
    assert_eq!((task.totals().updated, task.totals().created), (3, 0));
    assert_eq!(h.counter.writes_to(h.leads_table()), 3, "one write per changed lead");
    let after = h.stores.leads.get(&t, &newest.lead_id).await.unwrap().unwrap();
    assert!(
        after.fields.channel.is_some() && after.fields.platform_status.is_some(),
        "late fields stored"
    );
    assert_eq!(
        (after.status, after.notes.as_str(), after.version),
        (LeadStatus::Contacted, "回访过", 2)
    );
    assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineClue, &account).await;
}

/// One scenario per fault: the faulty run, then a clean one, end with exactly the platform's leads.
#[tokio::test]
async fn every_fault_ends_with_the_same_leads_as_a_clean_run() {
    // The timeout leaves room for a loaded CI machine; the injected delay outlasts it.
    let h = SyncHarness::on_moto(&[("HTTP_TIMEOUT_MS", "1000"), ("SYNC_PAGE_SIZE", "20")]).await;
    let engine = h.engine();
    type Arrange = fn(&SyncHarness);
    let scenarios: Vec<(&str, SimSource, Arrange)> = vec![
        // Each fault outlasts the client's three attempts once, so exactly one page fails.
        ("5xx on page 3", SimSource::OceanEngineClue, |h| {
            h.sim.fail_page(3, 502, 3)
        }),
        ("throttled after 2 requests", SimSource::Laike, |h| {
            h.sim.throttle_after(2, 3)
        }),
        ("timeouts", SimSource::Feiyu, |h| {
            h.sim.push_faults([Fault::Pass]);
            h.sim
                .push_faults(vec![Fault::Delay(std::time::Duration::from_millis(600)); 3]);
        }),
        ("bad JSON", SimSource::OceanEngineLife, |h| {
            h.sim.push_faults([
                Fault::Pass,
                Fault::MalformedJson,
                Fault::MalformedJson,
                Fault::MalformedJson,
            ])
        }),
        ("token expiry mid-sync", SimSource::OceanEngineClue, |h| {
            h.sim.push_faults([Fault::Pass, Fault::Pass, Fault::TokenExpired])
        }),
        ("client token expiry mid-sync", SimSource::Laike, |h| {
            h.sim.push_faults([Fault::Pass, Fault::Pass, Fault::TokenExpired])
        }),
        ("fans token expiry mid-sync", SimSource::Fans, |h| {
            h.sim.push_faults([Fault::Pass, Fault::Pass, Fault::TokenExpired])
        }),
        ("leads inserted while paging", SimSource::Laike, |h| {
            h.sim.insert_while_paging(4)
        }),
        ("duplicates across pages", SimSource::Feiyu, |h| {
            h.sim.set_duplicate_across_pages(true)
        }),
        ("Enc. phones", SimSource::Laike, |h| h.sim.set_enc_phones(true)),
        ("string numbers", SimSource::OceanEngineClue, |h| {
            h.sim.set_string_numbers(true)
        }),
    ];
    for (name, source, arrange) in scenarios {
        eprintln!("scenario: {name}");
        let t = tenant();
        let (connection, account) = connected(&h, &t, source, 110).await;
        arrange(&h);
        let faulty = h.sync(&engine, &connection).await;
        h.sim.set_duplicate_across_pages(false);
        h.sim.set_string_numbers(false);
        let clean = h.sync(&engine, &connection).await;
        h.sim.set_enc_phones(false);
        assert_eq!(
            clean.status,
            TaskStatus::Completed,
            "{name}: {:?} then {:?}",
            faulty.error,
            clean.error
        );
        assert_exactly_the_platforms_leads(&h, &t, source, &account).await;
        assert_eq!(
            h.stores
                .connections
                .get(&t, &connection.id)
                .await
                .unwrap()
                .unwrap()
                .status,
            ConnectionStatus::Active,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_failed_page_holds_the_watermark_and_its_leads_come_next_run() {
    let h = SyncHarness::on_moto(&[("SYNC_PAGE_SIZE", "10"), ("OCEANENGINE_LEAD_SOURCES", "clue")]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 60).await;
    h.sim.fail_page(4, 500, 100);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Failed, "the only source failed");
    assert!(task.sources[&LeadSource::OceanEngineClue].failed >= 1);
    let info = h.stores.ledger.sync_info(&t, &connection.id).await.unwrap();
    assert!(
        !info.watermarks.contains_key(&LeadSource::OceanEngineClue),
        "the watermark did not pass the failed page"
    );
    assert!(info.last_error.is_some());
    h.sim.fail_page(4, 500, 0);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineClue, &account).await;
    assert!(
        h.stores
            .ledger
            .sync_info(&t, &connection.id)
            .await
            .unwrap()
            .watermarks
            .contains_key(&LeadSource::OceanEngineClue)
    );
}

#[tokio::test]
async fn a_decrypt_failure_keeps_the_lead_without_its_phone() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Laike, 30).await;
    h.sim.set_enc_phones(true);
    h.sim.set_decrypt_failures(true);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.totals().created, 30);
    assert_eq!(
        task.totals().phones_pending,
        30,
        "the task counts the phones still to come"
    );
    let leads = stored(&h, &t, SimSource::Laike).await;
    assert!(
        leads
            .iter()
            .all(|l| l.fields.phone.is_none() && l.fields.phone_error.is_some())
    );
    h.sim.set_decrypt_failures(false);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(
        (task.totals().phones_recovered, task.totals().phones_pending),
        (30, 0),
        "the retry pass fills the phones in once decryption works"
    );
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Laike, &account).await;
}

#[tokio::test]
async fn leads_with_one_phone_are_linked_not_merged() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::Feiyu, 40).await;
    h.sync(&h.engine(), &connection).await;
    let leads = stored(&h, &t, SimSource::Feiyu).await;
    assert_eq!(leads.len(), 40, "nothing merged or dropped");
    let linked: Vec<&StoredLead> = leads.iter().filter(|l| l.duplicate_of.is_some()).collect();
    assert!(!linked.is_empty(), "the simulator repeats phones");
    for dup in linked {
        let original = leads
            .iter()
            .find(|l| Some(&l.lead_id) == dup.duplicate_of.as_ref())
            .expect("links a stored lead");
        assert_eq!(original.fields.phone, dup.fields.phone);
        assert!(original.duplicate_of.is_none(), "links point at the first lead");
    }
}

#[tokio::test]
async fn an_expired_refresh_token_marks_only_that_connection() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = tenant();
    let (doomed, _) = connected(&h, &t, SimSource::Fans, 10).await;
    let (healthy, healthy_account) = connected(&h, &t, SimSource::Fans, 15).await;
    let mut tokens = h.stores.vault.get_tokens(&doomed.secret_id).await.unwrap().unwrap();
    tokens.refresh_expires_at = chrono::Utc::now() - Duration::hours(1);
    tokens.access_expires_at = chrono::Utc::now() - Duration::hours(2);
    h.stores.vault.put_tokens(&doomed.secret_id, &tokens).await.unwrap();

    let report = shared::sync::fanout::schedule(&h.engine(), None, None).await.unwrap();
    assert!(report.due >= 2);
    let doomed_now = h.stores.connections.get(&t, &doomed.id).await.unwrap().unwrap();
    assert_eq!(doomed_now.status, ConnectionStatus::ReauthRequired);
    let info = h.stores.ledger.sync_info(&t, &doomed.id).await.unwrap();
    assert!(
        info.last_error.unwrap().contains("refresh token"),
        "the reason is visible"
    );
    assert_eq!(
        h.stores.connections.get(&t, &healthy.id).await.unwrap().unwrap().status,
        ConnectionStatus::Active
    );
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Fans, &healthy_account).await;

    let again = shared::sync::fanout::schedule(&h.engine(), None, None).await.unwrap();
    assert_eq!(
        again.due,
        report.due - 1,
        "a connection that needs re-authorisation is no longer scheduled"
    );
}

#[tokio::test]
async fn concurrent_runs_of_one_connection_do_not_double_write() {
    let h = SyncHarness::on_moto(&[("SYNC_PAGE_SIZE", "20")]).await;
    h.sim.set_latency(std::time::Duration::from_millis(30));
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 100).await;
    let request = || SyncRequest::scheduled(&connection);
    h.counter.reset();
    let (a, b) = tokio::join!(engine.run(request(), None), engine.run(request(), None));
    let outcomes = [a.unwrap(), b.unwrap()];
    let ran = outcomes.iter().filter(|o| matches!(o, SyncOutcome::Ran(_))).count();
    let skipped = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                SyncOutcome::Skipped {
                    reason: SkipReason::AlreadyRunning { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!((ran, skipped), (1, 1), "the second run sees the lease and says so");
    assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineClue, &account).await;
    // Each page: one transaction of 20 conditional puts (a second writer of a lead cannot create
    // it again) and one batch write of the items of their (about 18) new phones.
    assert_eq!(
        h.counter.writes_to(h.leads_table()),
        10,
        "one transaction of new leads and one phone batch per page"
    );
}

#[tokio::test]
async fn a_run_stops_before_its_deadline_and_the_next_finishes() {
    let h = SyncHarness::on_moto(&[("SYNC_DEADLINE_MARGIN_SECS", "1"), ("SYNC_PAGE_SIZE", "10")]).await;
    h.sim.set_latency(std::time::Duration::from_millis(100));
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Feiyu, 200).await;
    let request = SyncRequest::scheduled(&connection);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(1800);
    let SyncOutcome::Ran(task) = engine.run(request, Some(deadline)).await.unwrap() else {
        panic!("ran")
    };
    assert_eq!(task.status, TaskStatus::Partial, "{:?}", task.error);
    assert!(task.totals().created < 200, "it stopped early");
    h.sim.set_latency(std::time::Duration::ZERO);
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Feiyu, &account).await;
}

#[tokio::test]
async fn a_replayed_request_for_a_finished_task_does_nothing() {
    let h = SyncHarness::on_moto(&[]).await;
    let engine = h.engine();
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::Laike, 20).await;
    let request = SyncRequest {
        task_id: Some(shared::task::new_task_id()),
        trigger: Trigger::Manual,
        strategy: Strategy::Full,
        ..SyncRequest::scheduled(&connection)
    };
    let SyncOutcome::Ran(task) = engine.run(request.clone(), None).await.unwrap() else {
        panic!("ran")
    };
    assert_eq!(task.status, TaskStatus::Completed);
    let stored_task = h.stores.tasks.get(&t, &task.task_id).await.unwrap().unwrap();
    assert_eq!(stored_task.sources[&LeadSource::Laike].created, 20);
    h.counter.reset();
    let replay = engine.run(request, None).await.unwrap();
    assert!(matches!(
        replay,
        SyncOutcome::Skipped {
            reason: SkipReason::TaskAlreadyFinished,
            ..
        }
    ));
    assert_eq!(h.counter.writes_to(h.leads_table()), 0);
}

/// A vault that fails writes before they land a set number of times, or lets one write land and
/// then "crashes": that write and every later one fail, as for a process that died mid-call.
struct FlakyVault {
    inner: std::sync::Arc<dyn shared::store::TokenVault>,
    crash_after_write: std::sync::atomic::AtomicU32,
    fail_before_write: std::sync::atomic::AtomicU32,
    dead: std::sync::atomic::AtomicBool,
}

fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok()
}

#[async_trait::async_trait]
impl shared::store::TokenVault for FlakyVault {
    async fn put_tokens(&self, id: &str, tokens: &shared::domain::TokenSet) -> Result<(), shared::store::StoreError> {
        if take_one(&self.fail_before_write) || self.dead.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(shared::store::StoreError::new(
                "put connection secret",
                "injected: write refused",
            ));
        }
        self.inner.put_tokens(id, tokens).await?;
        if take_one(&self.crash_after_write) {
            self.dead.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(shared::store::StoreError::new(
                "put connection secret",
                "injected: crashed after the write",
            ));
        }
        Ok(())
    }

    async fn get_tokens(&self, id: &str) -> Result<Option<shared::domain::TokenSet>, shared::store::StoreError> {
        self.inner.get_tokens(id).await
    }

    async fn schedule_deletion(&self, id: &str) -> Result<(), shared::store::StoreError> {
        self.inner.schedule_deletion(id).await
    }

    async fn delete_now(&self, id: &str) -> Result<(), shared::store::StoreError> {
        self.inner.delete_now(id).await
    }

    async fn list_prefixed(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<shared::store::VaultEntry>, shared::store::StoreError> {
        self.inner.list_prefixed(prefix, limit).await
    }
}

#[tokio::test]
async fn the_rotated_oceanengine_refresh_token_survives_a_crash_between_refresh_and_store() {
    // Refresh on every run: the access token lives one day, this asks for two days of headroom.
    let h = SyncHarness::on_moto(&[
        ("TOKEN_REFRESH_AHEAD_SECS", "172800"),
        ("OCEANENGINE_LEAD_SOURCES", "clue"),
    ])
    .await;
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 30).await;
    let before = h.stores.vault.get_tokens(&connection.secret_id).await.unwrap().unwrap();
    let flaky = |crash: u32, fail: u32| {
        let mut stores = h.stores.sync();
        stores.vault = std::sync::Arc::new(FlakyVault {
            inner: h.stores.vault.clone(),
            crash_after_write: crash.into(),
            fail_before_write: fail.into(),
            dead: false.into(),
        });
        h.engine_with(stores)
    };

    // The process dies right after the rotated pair is written: the run fails, the vault kept it.
    let request = SyncRequest::scheduled(&connection);
    assert!(
        flaky(1, 0).run(request.clone(), None).await.is_err(),
        "the crashed run reports failure"
    );
    let rotated = h.stores.vault.get_tokens(&connection.secret_id).await.unwrap().unwrap();
    assert_ne!(
        rotated.refresh_token, before.refresh_token,
        "the rotated refresh token was stored first"
    );
    assert!(
        !h.sim.oceanengine_refresh_token_valid(before.refresh_token.expose()),
        "the old one is dead"
    );
    assert!(h.sim.oceanengine_refresh_token_valid(rotated.refresh_token.expose()));
    let aws = h.aws.as_ref().unwrap();
    let previous = aws
        .secrets
        .get_secret_value()
        .secret_id(&connection.secret_id)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("the previous version is kept");
    assert!(
        previous
            .secret_string()
            .unwrap()
            .contains(before.refresh_token.expose())
    );

    // Writes refused twice before landing: retried within the run, which then completes.
    let task = h.sync(&flaky(0, 2), &connection).await;
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
    let stored = h.stores.vault.get_tokens(&connection.secret_id).await.unwrap().unwrap();
    assert!(h.sim.oceanengine_refresh_token_valid(stored.refresh_token.expose()));
    assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineClue, &account).await;
    assert_eq!(
        h.stores
            .connections
            .get(&t, &connection.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Active
    );
}

#[tokio::test]
async fn sync_logs_hold_no_token_secret_or_phone() {
    devkit::log_capture::captured_logs();
    let h = SyncHarness::on_moto(&[("TOKEN_REFRESH_AHEAD_SECS", "172800")]).await;
    let engine = h.engine();
    let t = tenant();
    h.sim.set_enc_phones(true);
    let mut phones = Vec::new();
    let mut feiyu_key = String::new();
    for source in [
        SimSource::Laike,
        SimSource::OceanEngineClue,
        SimSource::Feiyu,
        SimSource::Fans,
    ] {
        let (connection, account) = connected(&h, &t, source, 25).await;
        if source == SimSource::Feiyu {
            feiyu_key = format!("key{account}");
        } else {
            // A refresh mid-run (Feiyu tokens do not refresh: for it this is a re-authorisation).
            h.sim.push_faults([Fault::Pass, Fault::TokenExpired]);
        }
        let task = h.sync(&engine, &connection).await;
        assert_eq!(task.status, TaskStatus::Completed, "{source:?}: {:?}", task.error);
        phones.extend(h.sim.leads(source, &account).into_iter().map(|l| l.phone));
    }
    let logs = devkit::log_capture::logs();
    assert!(logs.contains("connection sync finished"), "one line per connection run");
    let app = h.sim.app();
    for secret in h
        .sim
        .issued_tokens()
        .iter()
        .chain([&app.douyin_client_secret, &app.oceanengine_secret, &feiyu_key])
    {
        assert!(!logs.contains(secret.as_str()), "a token or secret reached the logs");
    }
    assert!(
        phones.iter().all(|p| !logs.contains(p.as_str())),
        "a phone number reached the logs"
    );
}

#[tokio::test]
async fn a_window_deeper_than_the_platform_pages_is_split() {
    let h = SyncHarness::on_moto(&[("SYNC_MAX_WINDOW_ROWS", "100")]).await;
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Laike, 250).await;
    let task = h.sync(&h.engine(), &connection).await;
    assert_eq!((task.status, task.totals().created), (TaskStatus::Completed, 250));
    assert!(
        h.sim.requests_to("/crm/clue/query/") >= 4,
        "halves were asked for until each fits"
    );
    assert_exactly_the_platforms_leads(&h, &t, SimSource::Laike, &account).await;
}

#[tokio::test]
async fn dynamodb_throttling_loses_no_lead() {
    let h = SyncHarness::on_moto(&[("SYNC_PAGE_SIZE", "20"), ("OCEANENGINE_LEAD_SOURCES", "clue")]).await;
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 90).await;
    let mut stores = h.stores.sync();
    stores.leads = std::sync::Arc::new(FaultyLeads::failing_first(h.stores.leads.clone(), 2));
    let throttled = h.engine_with(stores);
    let request = SyncRequest::scheduled(&connection);
    assert!(
        throttled.run(request.clone(), None).await.is_err(),
        "the run fails; its message is redelivered"
    );
    let info = h.stores.ledger.sync_info(&t, &connection.id).await.unwrap();
    assert!(
        info.watermarks.is_empty() && info.lease.is_none(),
        "no watermark moved, the lease is free"
    );
    assert!(throttled.run(request, None).await.is_err(), "still throttled");
    let task = h.sync(&throttled, &connection).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_exactly_the_platforms_leads(&h, &t, SimSource::OceanEngineClue, &account).await;
}

/// A task and a connection show a stable code and a message written for callers; the store's
/// text (table names, ARNs) and our decoder's text stay in the log.
#[tokio::test]
async fn task_and_account_errors_carry_a_code_and_no_infrastructure_detail() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::OceanEngineClue, 30).await;
    let task = devkit::sync_fixtures::requested_task(&h, &connection).await;
    let mut stores = h.stores.sync();
    stores.leads = std::sync::Arc::new(FaultyLeads::failing_first(h.stores.leads.clone(), 1));
    let request = SyncRequest {
        task_id: Some(task.task_id.clone()),
        ..SyncRequest::scheduled(&connection)
    };
    assert!(h.engine_with(stores).run(request, None).await.is_err());
    let failed = h.stores.tasks.get(&t, &task.task_id).await.unwrap().unwrap();
    assert_eq!(failed.error_code.as_deref(), Some("STORAGE_FAILED"));
    let text = serde_json::to_string(&failed).unwrap();
    assert!(
        !text.contains("arn:") && !text.contains("table/") && !text.contains("Exception"),
        "{text}"
    );

    // Garbage from the platform on every attempt: the account says so, without the decoder's text.
    h.sim
        .push_faults(std::iter::repeat_n(devkit::sim::Fault::MalformedJson, 3));
    let ended = h.sync(&h.engine(), &connection).await;
    assert_eq!(ended.error_code.as_deref(), Some("PLATFORM_ERROR"), "{ended:?}");
    let info = h.stores.ledger.sync_info(&t, &connection.id).await.unwrap();
    assert_eq!(info.last_error_code.as_deref(), Some("PLATFORM_ERROR"));
    let message = info.last_error.unwrap();
    assert!(message.contains("could not read"), "{message}");
    assert!(!message.contains("line") && !message.contains("column"), "{message}");
}
