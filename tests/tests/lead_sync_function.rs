//! The lead-sync function's three triggers, driven with the event shapes AWS sends (fixtures in
//! tests/fixtures/events) against moto (DynamoDB, Secrets Manager, SQS) and the simulator.

use chrono::Duration;
use devkit::connections::{bind_laike, register_feiyu};
use devkit::sim::SimSource;
use devkit::sync_harness::SyncHarness;
use serde_json::{Value, json};
use shared::domain::TenantId;
use shared::sync::fanout::SqsSyncQueue;
use shared::task::TaskStatus;

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture is JSON")
}

/// An SQS event holding `messages` (id, body), in the fixture's shape.
fn sqs_event(messages: &[(String, String)]) -> Value {
    let template = fixture("sqs-batch.json")["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            let mut r = template.clone();
            r["messageId"] = json!(id);
            r["body"] = json!(body);
            r
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn schedule_fans_out_to_the_queue_and_the_queue_batch_syncs_each_connection() {
    let h = SyncHarness::on_moto(&[]).await;
    let aws = h.aws.clone().expect("moto");
    let queue_url = aws
        .sqs
        .create_queue()
        .queue_name(devkit::moto::unique("sync-queue"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let queue = SqsSyncQueue::new(aws.sqs.clone(), &queue_url);
    let t = TenantId::new(devkit::moto::unique("tenant"));
    h.sim
        .seed_leads(SimSource::Laike, "7343082414312376371", 40, Duration::days(10));
    h.sim.add_feiyu_account("1664750332606472", "feiyu-token", "feiyu-key");
    h.sim
        .seed_leads(SimSource::Feiyu, "1664750332606472", 25, Duration::days(10));
    bind_laike(&h.config, &h.stores, &t, "7343082414312376371").await;
    register_feiyu(&h.config, &h.stores, &t, "1664750332606472", "feiyu-token", "feiyu-key").await;
    let engine = h.engine();

    let answer = lead_sync::handle(&engine, Some(&queue), &fixture("eventbridge-scheduled.json"), None)
        .await
        .expect("schedule");
    assert_eq!((answer["due"].as_u64(), answer["queued"].as_u64()), (Some(2), Some(2)));

    let received = aws
        .sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    let mut messages: Vec<(String, String)> = received
        .messages()
        .iter()
        .map(|m| (m.message_id().unwrap().to_owned(), m.body().unwrap().to_owned()))
        .collect();
    assert_eq!(messages.len(), 2, "one message per due connection");
    messages.push(("poison".into(), "not a sync request".into()));

    let answer = lead_sync::handle(&engine, None, &sqs_event(&messages), None)
        .await
        .expect("queue batch");
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "poison"}]}),
        "only the bad message is redelivered"
    );
    let leads = h.stores.leads.list_all(&t).await.unwrap();
    assert_eq!(leads.len(), 65, "both connections synced");
}

#[tokio::test]
async fn a_sync_requested_event_runs_its_task_once() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = TenantId::new(devkit::moto::unique("tenant"));
    h.sim
        .seed_leads(SimSource::Laike, "7343082414312376999", 12, Duration::days(3));
    let connection = bind_laike(&h.config, &h.stores, &t, "7343082414312376999").await;
    let mut event = fixture("eventbridge-sync-requested.json");
    let task_id = shared::task::new_task_id();
    event["detail"]["tenant"] = json!(t.as_str());
    event["detail"]["connectionId"] = json!(connection.id.as_str());
    event["detail"]["taskId"] = json!(task_id);
    let engine = h.engine();

    let answer = lead_sync::handle(&engine, None, &event, None).await.expect("run");
    assert_eq!(answer["status"], json!("COMPLETED"), "{answer}");
    let task = h.stores.tasks.get(&t, &task_id).await.unwrap().expect("task recorded");
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.totals().created, 12);

    let replay = lead_sync::handle(&engine, None, &event, None).await.expect("replay");
    assert_eq!(
        replay["status"],
        json!("SKIPPED"),
        "a replayed event does not run again"
    );

    let mut stranger = event.clone();
    stranger["detail"]["tenant"] = json!("someone-else");
    stranger["detail"]["taskId"] = json!(shared::task::new_task_id());
    let answer = lead_sync::handle(&engine, None, &stranger, None).await.expect("skip");
    assert_eq!(
        answer["status"],
        json!("SKIPPED"),
        "another tenant cannot sync this connection"
    );
    assert_eq!(
        h.stores
            .leads
            .list_all(&TenantId::new("someone-else"))
            .await
            .unwrap()
            .len(),
        0
    );
}

/// Connections that cannot be read: every run fails in storage, as when DynamoDB is down.
struct Unreadable;

#[async_trait::async_trait]
impl shared::store::ConnectionStore for Unreadable {
    async fn upsert(&self, _: &shared::domain::Connection) -> Result<(), shared::store::ClaimError> {
        Err(shared::store::StoreError::new("upsert", "injected: unavailable").into())
    }
    async fn get(
        &self,
        _: &TenantId,
        _: &shared::domain::ConnectionId,
    ) -> Result<Option<shared::domain::Connection>, shared::store::StoreError> {
        Err(shared::store::StoreError::new(
            "get connection",
            "injected: unavailable",
        ))
    }
    async fn list(&self, _: &TenantId) -> Result<Vec<shared::domain::Connection>, shared::store::StoreError> {
        Err(shared::store::StoreError::new(
            "list connections",
            "injected: unavailable",
        ))
    }
    async fn release(&self, _: &shared::domain::Connection) -> Result<(), shared::store::StoreError> {
        Err(shared::store::StoreError::new("release", "injected: unavailable"))
    }
}

#[tokio::test]
async fn an_on_demand_task_whose_last_delivery_fails_ends_failed() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = TenantId::new(devkit::moto::unique("tenant"));
    let connection = bind_laike(&h.config, &h.stores, &t, "7343082414312376888").await;
    let task = devkit::sync_fixtures::requested_task(&h, &connection).await;
    let mut stores = h.stores.sync();
    stores.connections = std::sync::Arc::new(Unreadable);
    let broken = h.engine_with(stores);
    // The body EventBridge puts on the queue: the event's detail.
    let body = serde_json::to_string(&shared::sync::SyncRequest {
        task_id: Some(task.task_id.clone()),
        trigger: shared::task::Trigger::Manual,
        ..shared::sync::SyncRequest::scheduled(&connection)
    })
    .unwrap();
    let mut event = sqs_event(&[("m-1".into(), body)]);
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!("1");
    let answer = lead_sync::handle(&broken, None, &event, None).await.unwrap();
    assert_eq!(answer["batchItemFailures"][0]["itemIdentifier"], json!("m-1"));
    let now = h.stores.tasks.get(&t, &task.task_id).await.unwrap().unwrap();
    assert_eq!(now.status, TaskStatus::Pending, "redelivered: not final yet");
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!("3");
    let answer = lead_sync::handle(&broken, None, &event, None).await.unwrap();
    assert_eq!(answer["batchItemFailures"][0]["itemIdentifier"], json!("m-1"));
    let now = h.stores.tasks.get(&t, &task.task_id).await.unwrap().unwrap();
    assert_eq!(now.status, TaskStatus::Failed, "the last delivery closes the task");
    assert_eq!(now.error_code.as_deref(), Some("DELIVERY_FAILED"));
    assert!(now.error.unwrap().contains("last delivery"));
}

#[test]
fn on_demand_syncs_go_through_the_sync_queue() {
    let template = devkit::moto::template();
    let resources = &template["Resources"];
    let rule = &resources["SyncRequestedRule"]["Properties"];
    assert_eq!(rule["EventPattern"]["detail-type"][0].as_str(), Some("SyncRequested"));
    let target = &rule["Targets"][0];
    assert_eq!(
        target["InputPath"].as_str(),
        Some("$.detail"),
        "the body is a SyncRequest"
    );
    assert!(
        format!("{:?}", target["Arn"]).contains("SyncQueue.Arn"),
        "{:?}",
        target["Arn"]
    );
    let events = &resources["LeadSyncFunction"]["Properties"]["Events"];
    assert!(
        events.get("SyncRequested").is_none(),
        "no direct invocation outside the queue's concurrency bound"
    );
    let receives = resources["SyncQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"].as_u64();
    let configured = resources["LeadSyncFunction"]["Properties"]["Environment"]["Variables"]["SYNC_MAX_RECEIVES"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(receives, configured, "the function knows which delivery is the last");
}
