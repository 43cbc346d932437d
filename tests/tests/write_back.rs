//! Status write-back end to end: leads synced from the simulator into DynamoDB Local, write-back
//! turned on with `PATCH /accounts/{id}`, a status move through `PATCH /leads/{id}`, its
//! `LeadStatusChanged` fanned out and run from the queue against the simulator's callback
//! endpoints; throttling retried, refusals recorded, nothing sent twice.

use chrono::{Duration, Utc};
use devkit::app;
use devkit::local_auth::LocalJwt;
use devkit::outbound::drain_all;
use devkit::sim::{Fault, SimSource};
use devkit::sync_fixtures::{connected, stored, tenant};
use devkit::sync_harness::SyncHarness;
use lead_events::Outbound;
use serde_json::{Value, json};
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::domain::{Connection, TenantId};
use shared::lead::StoredLead;
use shared::outbound::queue::MemoryDeliveryQueue;
use shared::writeback::runner::WriteBackRunner;
use std::sync::Arc;

const ADMIN: &str = "lead:douyin:admin";
const EDIT: &str = "lead:douyin:leads:edit";
const VIEW: &str = "lead:douyin:leads:view";

struct World {
    h: SyncHarness,
    tenant: TenantId,
    router: axum::Router,
    jwt: LocalJwt,
    clock: Arc<ManualClock>,
    queue: Arc<MemoryDeliveryQueue>,
    outbound: Outbound,
}

async fn world(extra: &[(&str, &str)]) -> World {
    let h = SyncHarness::on_moto(extra).await;
    let jwt = LocalJwt::new("write-back-test", &h.config.tenant_claim);
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(&h.config, &h.stores, requests, Arc::new(SystemClock), jwt.clone());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let queue = Arc::new(MemoryDeliveryQueue::new(clock.clone()));
    let mut deliverer = h.stores.deliverer(&h.config, clock.clone());
    deliverer.queue = queue.clone();
    let writeback = WriteBackRunner::new(&h.stores.sync(), &h.config, queue.clone(), clock.clone());
    World {
        tenant: tenant(),
        router,
        jwt,
        clock,
        queue,
        outbound: Outbound {
            deliverer,
            writeback: Some(writeback),
        },
        h,
    }
}

impl World {
    async fn call(&self, scopes: &[&str], method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.jwt.mint(self.tenant.as_str(), scopes, Duration::hours(1));
        app::call(
            &self.router,
            &token,
            method,
            &format!("/api/v1/lead/douyin{path}"),
            body,
        )
        .await
    }

    async fn synced(&self, source: SimSource) -> (Connection, String, Vec<StoredLead>) {
        let (connection, account) = connected(&self.h, &self.tenant, source, 4).await;
        self.h.sync(&self.h.engine(), &connection).await;
        let leads = stored(&self.h, &self.tenant, source).await;
        assert_eq!(leads.len(), 4);
        (connection, account, leads)
    }

    async fn write_back(&self, connection: &Connection, on: bool) -> (u16, Value) {
        self.call(
            &[ADMIN],
            "PATCH",
            &format!("/accounts/{}", connection.id),
            Some(json!({"writeBack": on})),
        )
        .await
    }

    /// Moves the lead through the API and runs what its change asks for, as lead-events does.
    async fn moved(&self, lead: &StoredLead, body: Value) -> (u16, Value, Vec<String>) {
        let before = self
            .h
            .stores
            .leads
            .get(&self.tenant, &lead.lead_id)
            .await
            .unwrap()
            .unwrap();
        let mut body = body;
        body["version"] = json!(before.version);
        let (status, answer) = self
            .call(&[EDIT, VIEW], "PATCH", &format!("/leads/{}", lead.lead_id), Some(body))
            .await;
        if status != 200 {
            return (status, answer, Vec::new());
        }
        let after = self
            .h
            .stores
            .leads
            .get(&self.tenant, &lead.lead_id)
            .await
            .unwrap()
            .unwrap();
        let events = shared::events::lead_events(Some(&before), Some(&after));
        self.outbound.fan_out(&events).await.unwrap();
        // A replayed stream record asks again: nothing is sent twice.
        self.outbound.fan_out(&events).await.unwrap();
        let steps = drain_all(&self.queue, &self.outbound).await;
        (status, answer, steps)
    }

    async fn record(&self, lead: &StoredLead) -> Value {
        let (_, detail) = self
            .call(&[VIEW], "GET", &format!("/leads/{}", lead.lead_id), None)
            .await;
        detail["data"]["writeBack"].clone()
    }
}

#[tokio::test]
async fn a_status_move_reaches_ocean_engine_once_and_is_recorded_on_the_lead() {
    let w = world(&[]).await;
    let (connection, account, leads) = w.synced(SimSource::OceanEngineClue).await;
    let (_, _, steps) = w.moved(&leads[0], json!({"status": "CONTACTED"})).await;
    assert!(
        w.h.sim.callbacks().is_empty(),
        "write-back is off until turned on: {steps:?}"
    );

    let (status, answer) = w.write_back(&connection, true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["data"]["writeBackSources"],
        json!(["oceanengine_clue", "oceanengine_life"])
    );
    let (_, accounts) = w.call(&[VIEW], "GET", "/accounts", None).await;
    assert_eq!(accounts["data"][0]["writeBack"], true);

    let (_, _, steps) = w.moved(&leads[1], json!({"status": "CONTACTED"})).await;
    assert_eq!(steps.iter().filter(|s| *s == "Sent").count(), 1, "{steps:?}");
    let sent = w.h.sim.callbacks();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, devkit::sim::writeback::CLUE);
    assert_eq!(sent[0].body["clue_id"], leads[1].source_lead_id.as_str());
    assert_eq!(sent[0].body["clue_convert_state"], 194);
    assert_eq!(sent[0].body["advertiser_ids"], json!([account.parse::<u64>().unwrap()]));
    let record = w.record(&leads[1]).await;
    assert_eq!(
        (record["state"].as_str(), record["platformState"].as_str()),
        (Some("SENT"), Some("194"))
    );

    // Throttled: the move is recorded as retrying, then sent when its time comes.
    w.h.sim.push_faults([Fault::Throttle, Fault::Throttle, Fault::Throttle]);
    let (_, _, steps) = w.moved(&leads[1], json!({"status": "CONVERTED"})).await;
    assert!(steps.contains(&"Retrying".to_owned()), "{steps:?}");
    assert_eq!(w.record(&leads[1]).await["state"], "RETRYING");
    w.clock.advance(Duration::minutes(2));
    let steps = drain_all(&w.queue, &w.outbound).await;
    // The replayed request waited too; it finds the state sent and sends nothing.
    assert_eq!(
        steps.iter().filter(|s| *s == "Sent").count(),
        1,
        "sent once its wait is over: {steps:?}"
    );
    assert!(steps.iter().all(|s| s == "Sent" || s == "Nothing"), "{steps:?}");
    let record = w.record(&leads[1]).await;
    assert_eq!(
        (record["state"].as_str(), record["platformState"].as_str()),
        (Some("SENT"), Some("196"))
    );
    assert_eq!(w.h.sim.callbacks().len(), 2);

    // Off again: nothing more is sent.
    w.write_back(&connection, false).await;
    w.moved(&leads[2], json!({"status": "CONTACTED"})).await;
    assert_eq!(w.h.sim.callbacks().len(), 2);
}

#[tokio::test]
async fn an_invalid_local_lead_needs_its_reason_and_sends_it() {
    let w = world(&[]).await;
    let (connection, account, leads) = w.synced(SimSource::OceanEngineLife).await;
    w.write_back(&connection, true).await;
    let (status, answer, _) = w.moved(&leads[0], json!({"status": "INVALID"})).await;
    assert_eq!(
        (status, answer["errorCode"].as_str()),
        (400, Some("INVALID_REASON_REQUIRED")),
        "{answer}"
    );
    let (status, answer, _) = w
        .moved(&leads[0], json!({"status": "INVALID", "invalidReason": "SPAM"}))
        .await;
    assert_eq!(
        (status, answer["errorCode"].as_str()),
        (400, Some("INVALID_REASON")),
        "{answer}"
    );
    let (status, answer, _) = w
        .moved(
            &leads[0],
            json!({"status": "CONTACTED", "invalidReason": "INVALID_NUMBER"}),
        )
        .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("invalidReason")));

    let (status, answer, steps) = w
        .moved(
            &leads[0],
            json!({"status": "INVALID", "invalidReason": "INVALID_NUMBER"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["invalidReason"], "INVALID_NUMBER");
    assert_eq!(steps.iter().filter(|s| *s == "Sent").count(), 1, "{steps:?}");
    let sent = w.h.sim.callbacks();
    assert_eq!(sent[0].path, devkit::sim::writeback::LIFE);
    assert_eq!(sent[0].body["clue_convert_state"], "INVALID_EVENT");
    assert_eq!(sent[0].body["event_data"]["reason_code"], "INVALID_NUMBER");
    assert_eq!(sent[0].body["local_account_ids"], json!([account]), "sent as strings");
    // Reopened, the reason is gone with the INVALID status.
    let (_, answer, _) = w.moved(&leads[0], json!({"status": "NEW"})).await;
    assert!(answer["data"]["invalidReason"].is_null());
}

#[tokio::test]
async fn platforms_without_write_back_say_so_and_feiyu_waits_for_its_switch() {
    let w = world(&[]).await;
    for source in [SimSource::Laike, SimSource::Fans, SimSource::Feiyu] {
        let (connection, _) = connected(&w.h, &w.tenant, source, 1).await;
        let (status, answer) = w.write_back(&connection, true).await;
        assert_eq!(
            (status, answer["errorCode"].as_str()),
            (409, Some("WRITEBACK_UNSUPPORTED")),
            "{source:?}"
        );
        let (status, _) = w.write_back(&connection, false).await;
        assert_eq!(status, 200, "turning it off is always fine");
    }
    let (status, _) = w
        .call(
            &[VIEW],
            "PATCH",
            "/accounts/c_missing",
            Some(json!({"writeBack": true})),
        )
        .await;
    assert_eq!(status, 403, "admin only");
    let (status, _) = w
        .call(
            &[ADMIN],
            "PATCH",
            "/accounts/c_missing",
            Some(json!({"writeBack": true})),
        )
        .await;
    assert_eq!(status, 404);

    let w = world(&[("WRITEBACK_FEIYU_ENABLED", "true")]).await;
    let (connection, _, leads) = w.synced(SimSource::Feiyu).await;
    assert_eq!(w.write_back(&connection, true).await.0, 200);
    let (_, _, steps) = w.moved(&leads[0], json!({"status": "CONTACTED"})).await;
    assert_eq!(steps.iter().filter(|s| *s == "Sent").count(), 1, "{steps:?}");
    let sent = w.h.sim.callbacks();
    assert_eq!(sent[0].path, devkit::sim::writeback::FEIYU, "signed as Feiyu checks it");
    assert_eq!(sent[0].body["data"]["clue_convert_state"], 2);
}

#[tokio::test]
async fn a_refused_write_back_is_recorded_and_not_retried() {
    let w = world(&[("WRITEBACK_OCEANENGINE_CLUE_STATES", "CONTACTED=999")]).await;
    let (connection, _, leads) = w.synced(SimSource::OceanEngineClue).await;
    w.write_back(&connection, true).await;
    let (_, _, steps) = w.moved(&leads[0], json!({"status": "CONTACTED"})).await;
    assert_eq!(steps.iter().filter(|s| *s == "Refused").count(), 1, "{steps:?}");
    let record = w.record(&leads[0]).await;
    assert_eq!(record["state"], "REFUSED");
    assert!(
        record["error"].as_str().unwrap().contains("clue_convert_state"),
        "{record}"
    );
    w.clock.advance(Duration::hours(1));
    assert!(
        drain_all(&w.queue, &w.outbound).await.is_empty(),
        "nothing waits to be retried"
    );
    assert!(w.h.sim.callbacks().is_empty());
    let _ = w.clock.now();
}
