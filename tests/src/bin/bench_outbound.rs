//! Outbound benchmark: 10k `LeadCreated` events (made by the stream rules from 10k stored leads)
//! put on the bus (EventBridge on moto) and fanned out to one signed webhook, then delivered to a
//! loopback receiver through the delivery rules on DynamoDB Local, ten at a time as one SQS batch
//! is. Stream polling and SQS polling are excluded (the in-process queue stands in for SQS).
//! `scripts/bench outbound`; `BENCH_OUTBOUND_LEADS` changes the count.

use chrono::Utc;
use devkit::app::{self, StoreSet};
use devkit::moto;
use devkit::outbound::Receiver;
use futures_util::StreamExt;
use shared::clock::SystemClock;
use shared::domain::TenantId;
use shared::events::bus::{EventBridgePublisher, EventPublisher};
use shared::lead::{LeadSource, StoredLead};
use shared::outbound::queue::MemoryDeliveryQueue;
use shared::outbound::signing::{new_secret, verify_webhook};
use shared::outbound::{HookKind, HookStatus, Subscription};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

fn lead(n: usize) -> StoredLead {
    let mut lead = devkit::sync_fixtures::stored_lead("bench", n, LeadSource::OceanEngineClue, Utc::now());
    lead.fields.remark = Some("想了解价格，请尽快联系".into());
    lead
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("BENCH_OUTBOUND_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    let bus = aws
        .events
        .create_event_bus()
        .name(moto::unique("bench-leads"))
        .send()
        .await
        .expect("create bus");
    let bus_name = bus
        .event_bus_arn()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("default")
        .to_owned();
    let sim = devkit::sim::SimApp::default();
    let mut env: HashMap<String, String> = app::simulator_env("http://127.0.0.1:9", "http://127.0.0.1:9", &sim);
    env.extend(tables.env());
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).expect("valid config");
    let stores = StoreSet::aws(&aws, &config);
    let receiver = Receiver::start().await;
    let secret = new_secret();
    stores
        .deliveries
        .create_subscription(&Subscription {
            id: "wh_bench0000000000000000".into(),
            tenant: TenantId::new("bench"),
            kind: HookKind::Webhook,
            url: receiver.url.clone(),
            events: vec!["LeadCreated".into()],
            include_phone: false,
            secret: Some(shared::Secret::new(secret.clone())),
            status: HookStatus::Active,
            created_at: Utc::now(),
            created_by: "bench".into(),
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
        })
        .await
        .expect("subscribe");
    let queue = Arc::new(MemoryDeliveryQueue::new(Arc::new(SystemClock)));
    let mut deliverer = stores.deliverer(&config, Arc::new(SystemClock));
    deliverer.queue = queue.clone();
    let deliverer = Arc::new(deliverer);

    let events: Vec<_> = (0..count)
        .flat_map(|n| shared::events::lead_events(None, Some(&lead(n))))
        .collect();
    println!("outbound benchmark: {count} LeadCreated, one signed webhook on loopback");

    let publisher = EventBridgePublisher::new(aws.events.clone(), &bus_name);
    let started = Instant::now();
    for chunk in events.chunks(100) {
        let refused = publisher.publish(chunk).await.expect("publish");
        assert!(refused.is_empty(), "the bus refused {} events", refused.len());
    }
    let publish_secs = started.elapsed().as_secs_f64();
    println!(
        "bus:        {count} events in {publish_secs:.1} s = {:.0} events/s (PutEvents of 10, moto)",
        count as f64 / publish_secs
    );

    // Stream batches of 100 are fanned out while ten workers deliver what is queued, as the
    // function's two event sources run side by side.
    let produced_at: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let producer = {
        let (deliverer, produced_at) = (deliverer.clone(), produced_at.clone());
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(100) {
                let t = Instant::now();
                produced_at
                    .lock()
                    .unwrap()
                    .extend(chunk.iter().map(|e| (e.id.clone(), t)));
                deliverer.fan_out(chunk).await.expect("fan out");
            }
            Instant::now()
        })
    };
    let mut delivered = 0;
    while delivered < count {
        let due = queue.take_due();
        if due.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        }
        let steps: Vec<_> = futures_util::stream::iter(due.iter().map(|m| deliverer.handle(m)))
            .buffer_unordered(10)
            .collect()
            .await;
        delivered += steps
            .iter()
            .filter(|s| matches!(s, Ok(shared::outbound::deliver::Step::Delivered)))
            .count();
    }
    let fanned_out = producer.await.expect("producer") - started;
    let total = started.elapsed().as_secs_f64();
    let received = receiver.received();
    let produced = std::mem::take(&mut *produced_at.lock().unwrap());
    let mut latencies: Vec<f64> = received
        .iter()
        .filter_map(|r| {
            let id = r.header("x-leads-event-id")?;
            Some((r.at - *produced.get(id)?).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let ids: HashSet<&str> = received.iter().filter_map(|r| r.header("x-leads-event-id")).collect();
    let signed = received
        .iter()
        .all(|r| verify_webhook(&secret, r.header("x-leads-signature").unwrap_or(""), &r.body));
    println!(
        "fan-out:    {count} deliveries made in {:.1} s = {:.0} deliveries/s (DynamoDB Local, 16 conditional puts at a time)",
        fanned_out.as_secs_f64(),
        count as f64 / fanned_out.as_secs_f64()
    );
    println!(
        "delivery:   {} received ({} distinct, all signed: {signed}) in {total:.1} s = {:.0} deliveries/s",
        received.len(),
        ids.len(),
        received.len() as f64 / total
    );
    println!(
        "latency:    write to receipt p50 {:.0} ms, p99 {:.0} ms (stream and SQS polling excluded)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    // Steady state: batches of 20 every 200 ms (100 leads/s, a busy tenant's sync), so the time
    // from the write to the receipt is one delivery's, not a backlog's.
    let steady: Vec<_> = (count..count + 1_000)
        .flat_map(|n| shared::events::lead_events(None, Some(&lead(n))))
        .collect();
    let before = receiver.received().len();
    let mut made_at: HashMap<String, Instant> = HashMap::new();
    for chunk in steady.chunks(20) {
        let t = Instant::now();
        made_at.extend(chunk.iter().map(|e| (e.id.clone(), t)));
        deliverer.fan_out(chunk).await.expect("fan out");
        let due = queue.take_due();
        futures_util::stream::iter(due.iter().map(|m| deliverer.handle(m)))
            .buffer_unordered(10)
            .collect::<Vec<_>>()
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(200).saturating_sub(t.elapsed())).await;
    }
    let mut steady_ms: Vec<f64> = receiver.received()[before..]
        .iter()
        .filter_map(|r| Some((r.at - *made_at.get(r.header("x-leads-event-id")?)?).as_secs_f64() * 1000.0))
        .collect();
    steady_ms.sort_by(f64::total_cmp);
    println!(
        "steady:     {} delivered at 100 leads/s, write to receipt p50 {:.0} ms, p99 {:.0} ms",
        steady_ms.len(),
        percentile(&steady_ms, 0.5),
        percentile(&steady_ms, 0.99)
    );
    println!("peak RSS:   {:.1} MB", devkit::bench::peak_rss_mb());
}
