//! The outbox end to end: leads and connections written by the real stores into DynamoDB Local,
//! their stream records read back and handed to lead-events in the Lambda event shape, the events
//! put on an EventBridge bus (moto) and read from the queue its rule feeds. Every event is checked
//! against its JSON Schema in docs/events.md.

use chrono::Utc;
use devkit::sim::SimSource;
use devkit::streams;
use devkit::sync_fixtures::{connected, tenant};
use devkit::sync_harness::SyncHarness;
use serde_json::{Value, json};
use shared::events::bus::EventBridgePublisher;
use shared::lead::{HistoryEntry, LeadStatus};
use shared::store::OperatorChange;
use std::collections::{BTreeMap, BTreeSet};

static OUTBOUND: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"source": [shared::events::bus::EVENT_SOURCE]}));

const RULES: shared::events::EventRules = shared::events::EventRules { sync_failing_after: 3 };

/// The JSON Schemas of docs/events.md, by title.
fn schemas() -> BTreeMap<String, jsonschema::Validator> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md")).expect("docs/events.md");
    let mut schemas = BTreeMap::new();
    for block in text.split("```json").skip(1) {
        let body = &block[..block.find("```").expect("a closed block")];
        let schema: Value = serde_json::from_str(body).expect("each JSON block is JSON");
        if let Some(title) = schema.get("title").and_then(Value::as_str) {
            let validator = jsonschema::validator_for(&schema).expect("a valid schema");
            schemas.insert(title.to_owned(), validator);
        }
    }
    assert_eq!(schemas.len(), 6, "one schema per event");
    schemas
}

fn assert_valid(schemas: &BTreeMap<String, jsonschema::Validator>, detail: &Value) {
    let kind = detail["type"].as_str().expect("a type");
    let schema = schemas.get(kind).unwrap_or_else(|| panic!("no schema for {kind}"));
    let errors: Vec<String> = schema.iter_errors(detail).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{kind} does not fit its schema: {errors:?}\n{detail}"
    );
}

#[tokio::test]
async fn lead_and_connection_changes_reach_the_bus_and_bookkeeping_says_nothing() {
    let schemas = schemas();
    let h = SyncHarness::on_moto_streaming(&[]).await;
    let aws = h.aws.clone().expect("moto");
    let tables = h.tables.clone().expect("tables");
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::OceanEngineClue, 25).await;
    let task = h.sync(&h.engine(), &connection).await;
    assert_eq!(task.totals().created, 25);
    let lead = h.stores.leads.list_all(&t).await.unwrap().remove(0);
    let now = Utc::now();
    let change = OperatorChange {
        status: Some(LeadStatus::Contacted),
        notes: Some("called back".into()),
        invalid_reason: None,
        expected_version: lead.version,
        history: vec![HistoryEntry {
            at: now,
            actor: "sales-7".into(),
            action: "STATUS".into(),
            from: Some("NEW".into()),
            to: Some("CONTACTED".into()),
        }],
        at: now,
    };
    h.stores
        .leads
        .update_operator_fields(&t, &lead.lead_id, &change)
        .await
        .unwrap();
    h.stores.ledger.disable(&t, &connection.id, Utc::now()).await.unwrap();

    let (bus, queue) = streams::bus_with_queue(&aws, &OUTBOUND).await;
    let publisher = EventBridgePublisher::new(aws.events.clone(), &bus);
    let mut first_ids = BTreeSet::new();
    for table in [&tables.leads, &tables.connections] {
        let event = streams::lambda_event(&aws, table).await;
        let (answer, outcome) = lead_events::handle(&publisher, None, RULES, &event)
            .await
            .expect("handled");
        assert_eq!(answer, json!({"batchItemFailures": []}));
        assert!(outcome.records > 0);
    }
    let delivered = streams::drain(&aws, &queue).await;
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for envelope in &delivered {
        assert_eq!(envelope["source"], "douyin-leads.leads");
        let detail = envelope["detail"].clone();
        assert_valid(&schemas, &detail);
        assert_eq!(detail["tenant"], t.as_str(), "{detail}");
        assert_eq!(envelope["detail-type"], detail["type"]);
        first_ids.insert(detail["eventId"].as_str().unwrap().to_owned());
        by_type
            .entry(detail["type"].as_str().unwrap().to_owned())
            .or_default()
            .push(detail);
    }
    let count = |k: &str| by_type.get(k).map_or(0, Vec::len);
    assert_eq!(
        count("LeadCreated"),
        25,
        "one per lead; counters, history and phone rows say nothing"
    );
    assert_eq!(count("LeadUpdated"), 0);
    let moved = &by_type["LeadStatusChanged"];
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (
            &moved[0]["from"],
            &moved[0]["to"],
            &moved[0]["actor"],
            &moved[0]["notesChanged"]
        ),
        (&json!("NEW"), &json!("CONTACTED"), &json!("sales-7"), &json!(true))
    );
    let statuses: Vec<(Value, Value)> = by_type["ConnectionStatusChanged"]
        .iter()
        .map(|d| (d["from"].clone(), d["to"].clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![(Value::Null, json!("ACTIVE")), (json!("ACTIVE"), json!("DISABLED"))],
        "connected, then disconnected; sync bookkeeping on the row says nothing"
    );
    let text = serde_json::to_string(&delivered).unwrap();
    assert!(!text.contains("\"raw\""), "no raw record leaves");
    for created in &by_type["LeadCreated"] {
        if let Some(phone) = created["lead"]["phone"].as_str() {
            assert!(phone.contains('*'), "phones leave masked: {phone}");
        }
    }
    assert_eq!(first_ids.len(), delivered.len(), "ids are distinct");

    // A redelivered batch (Lambda retrying after a failure) sends the same ids again.
    let event = streams::lambda_event(&aws, &tables.leads).await;
    lead_events::handle(&publisher, None, RULES, &event).await.unwrap();
    let again: BTreeSet<String> = streams::drain(&aws, &queue)
        .await
        .iter()
        .map(|e| e["detail"]["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        again.is_subset(&first_ids) && again.len() == 26,
        "replays repeat ids, never new ones"
    );
}

/// Syncs that fail again and again raise `SyncFailing` once, when the streak reaches
/// `SYNC_FAILING_AFTER` (3), with the last error's code; a longer streak raises nothing more.
#[tokio::test]
async fn a_connection_whose_syncs_keep_failing_raises_sync_failing_once() {
    let schemas = schemas();
    let h = SyncHarness::on_moto_streaming(&[]).await;
    let aws = h.aws.clone().expect("moto");
    let tables = h.tables.clone().expect("tables");
    let t = tenant();
    let (connection, _) = connected(&h, &t, SimSource::Feiyu, 5).await;
    h.sim
        .push_faults(std::iter::repeat_n(devkit::sim::Fault::Status(503), 200));
    for _ in 0..4 {
        let task = h.sync(&h.engine(), &connection).await;
        assert_eq!(task.status, shared::task::TaskStatus::Failed, "{task:?}");
    }
    let info = h.stores.ledger.sync_info(&t, &connection.id).await.unwrap();
    assert_eq!(info.failed_runs, 4);

    let (bus, queue) = streams::bus_with_queue(&aws, &OUTBOUND).await;
    let publisher = EventBridgePublisher::new(aws.events.clone(), &bus);
    let event = streams::lambda_event(&aws, &tables.connections).await;
    lead_events::handle(&publisher, None, RULES, &event)
        .await
        .expect("handled");
    let failing: Vec<Value> = streams::drain(&aws, &queue)
        .await
        .into_iter()
        .map(|e| e["detail"].clone())
        .filter(|d| d["type"] == "SyncFailing")
        .collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_valid(&schemas, &failing[0]);
    assert_eq!(failing[0]["failedRuns"], 3);
    assert_eq!(failing[0]["reasonCode"], "PLATFORM_ERROR");
    assert_eq!(failing[0]["connectionId"], connection.id.as_str());
}

/// An event too large for EventBridge goes without its lead, and still fits its schema.
#[test]
fn an_event_without_its_lead_still_fits_its_schema() {
    let schemas = schemas();
    let huge = shared::events::OutboundEvent {
        id: "ev_0123456789abcdef01234567".into(),
        detail_type: "LeadCreated",
        detail: json!({
            "eventId": "ev_0123456789abcdef01234567", "type": "LeadCreated", "schemaVersion": 1,
            "tenant": "t1", "occurredAt": "2026-12-02T08:00:00Z", "leadId": "l_1", "version": 1,
            "lead": {"leadId": "l_1", "remark": "x".repeat(300 * 1024)},
        }),
        revealed_lead: None,
    };
    let slim = shared::events::bus::fit(&huge);
    assert_valid(&schemas, &slim.detail);
    assert!(slim.detail.get("lead").is_none());
}

/// The delivery worker's own event fits its schema too.
#[test]
fn webhook_disabled_fits_its_schema() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T02:00:00Z")
        .unwrap()
        .to_utc();
    let sub = shared::outbound::Subscription {
        id: "wh_0123456789abcdef0123".into(),
        tenant: shared::domain::TenantId::new("t1"),
        kind: shared::outbound::HookKind::Wecom,
        url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret".into(),
        events: vec!["LeadCreated".into()],
        include_phone: false,
        secret: None,
        status: shared::outbound::HookStatus::Active,
        created_at: at,
        created_by: "admin".into(),
        failing_since: Some(at),
        disabled_at: None,
        disabled_reason: None,
    };
    let event = shared::outbound::deliver::disabled_event(&sub, at - chrono::Duration::days(3), "HTTP 500", at);
    assert_valid(&schemas(), &event.detail);
    assert!(
        !event.detail.to_string().contains("key=secret"),
        "the bot's key is not in the event"
    );
}

/// Stream records of a real sync, handed to the function as Lambda would, become signed webhook
/// deliveries; the same records again make none twice.
#[tokio::test]
async fn stream_records_become_webhook_deliveries_once() {
    let h = SyncHarness::on_moto_streaming(&[]).await;
    let aws = h.aws.clone().expect("moto");
    let tables = h.tables.clone().expect("tables");
    let t = tenant();
    let receiver = devkit::outbound::Receiver::start().await;
    let secret = "whsec_stream_test".to_owned();
    h.stores
        .deliveries
        .create_subscription(&shared::outbound::Subscription {
            id: "wh_stream0000000000000000".into(),
            tenant: t.clone(),
            kind: shared::outbound::HookKind::Webhook,
            url: receiver.url.clone(),
            events: vec!["LeadCreated".into()],
            include_phone: false,
            secret: Some(shared::Secret::new(secret.clone())),
            status: shared::outbound::HookStatus::Active,
            created_at: Utc::now(),
            created_by: "test".into(),
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
        })
        .await
        .unwrap();
    let (connection, _) = connected(&h, &t, SimSource::OceanEngineLife, 12).await;
    h.sync(&h.engine(), &connection).await;
    let (bus, _) = streams::bus_with_queue(&aws, &OUTBOUND).await;
    let publisher = EventBridgePublisher::new(aws.events.clone(), &bus);
    let outbound = h
        .stores
        .outbound(&h.config, std::sync::Arc::new(shared::clock::SystemClock));
    let queue = h.stores.memory_queue.clone().expect("deliveries run in process here");
    let event = streams::lambda_event(&aws, &tables.leads).await;
    for _ in 0..2 {
        let (answer, _) = lead_events::handle(&publisher, Some(&outbound), RULES, &event)
            .await
            .expect("handled");
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    devkit::outbound::drain_all(&queue, &outbound).await;
    let got = receiver.received();
    assert_eq!(
        got.len(),
        12,
        "one delivery per new lead, however often the batch is replayed"
    );
    for r in &got {
        let signature = r.header("x-leads-signature").unwrap();
        assert!(shared::outbound::signing::verify_webhook(&secret, signature, &r.body));
        assert_eq!(r.json()["type"], "LeadCreated");
    }
}
