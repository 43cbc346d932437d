//! `scripts/bench api`: list latency inside the lead API handler for a tenant with 100,000
//! leads (`BENCH_API_LEADS`): the first page, a keyword page and a deep cursor page, on the
//! embedded store and, with `AWS_ENDPOINT_URL`, on DynamoDB (moto) with `BENCH_API_MOTO_LEADS`
//! (10,000: moto re-reads a whole partition per query page, so it measures our request pattern,
//! not DynamoDB's speed). Then peak RSS.

use axum::body::{Body, to_bytes};
use chrono::{Duration, Utc};
use devkit::app::{self, StoreSet};
use devkit::bench::peak_rss_mb;
use devkit::local_auth::{ALL_SCOPES, LocalJwt};
use shared::clock::SystemClock;
use shared::domain::{AppCredentials, ConnectionId, TenantId};
use shared::lead::{LeadFields, LeadRecord, LeadSource, PlatformLead};
use shared::secret::Secret;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

fn lead(tenant: &TenantId, i: usize) -> LeadRecord {
    LeadRecord::new(
        tenant,
        &ConnectionId::from_stored("c_bench"),
        PlatformLead {
            source: LeadSource::OceanEngineClue,
            source_lead_id: format!("{}", 7_100_000_000_000_000_000u64 + i as u64),
            fields: LeadFields {
                // One lead in a hundred is a 王, the keyword searched for.
                name: Some(if i % 100 == 7 {
                    format!("王{i}")
                } else {
                    format!("客户{i}")
                }),
                phone: Some(format!("139{i:08}")),
                clue_type: "FORM".into(),
                channel: Some("抖音".into()),
                created_at: Some(Utc::now() - Duration::seconds(i as i64 * 20)),
                ..LeadFields::default()
            },
            raw: serde_json::json!({"clue_id": i, "telephone": format!("139{i:08}")}),
            phone_cipher: None,
        },
    )
}

async fn time_call(router: &axum::Router, token: &str, uri: &str) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..3 {
        let request = axum::http::Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = router.clone().oneshot(request).await.unwrap();
        let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        total = body["data"]["total"].as_u64().unwrap_or(0);
    }
    (best, total)
}

async fn run(label: &str, stores: StoreSet, config: &shared::Config, count: usize) {
    let tenant = TenantId::new(format!("bench-{}", devkit::moto::unique("t")));
    let seeding = Instant::now();
    let mut middle = None;
    for start in (0..count).step_by(100) {
        let batch: Vec<LeadRecord> = (start..(start + 100).min(count)).map(|i| lead(&tenant, i)).collect();
        stores.leads.upsert(&tenant, &batch, Utc::now()).await.expect("seed");
    }
    middle.replace(String::new());
    println!(
        "{label}: seeded {count} leads in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let jwt = LocalJwt::new("bench", &config.tenant_claim);
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(config, &stores, requests, Arc::new(SystemClock), jwt.clone());
    let token = jwt.mint(tenant.as_str(), ALL_SCOPES, Duration::hours(1));
    let base = "/api/v1/lead/douyin/leads";
    let (ms, total) = time_call(&router, &token, &format!("{base}?size=20")).await;
    println!("  first page (size 20):        {ms:>9.1} ms  total {total}");
    let (ms, total) = time_call(&router, &token, &format!("{base}?size=20&keyword=%E7%8E%8B")).await;
    println!("  keyword page (1% match):     {ms:>9.1} ms  total {total}");
    let cursor = middle.expect("the middle lead exists");
    let (ms, total) = time_call(&router, &token, &format!("{base}?size=20&cursor={cursor}")).await;
    println!("  deep cursor page (at 50%):   {ms:>9.1} ms  total {total}");
    let (ms, _) = time_call(&router, &token, &format!("{base}?size=20&page={}", count / 40)).await;
    println!("  deep page number (middle):   {ms:>9.1} ms");
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("BENCH_API_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let sim = devkit::sim::SimApp::default();
    let mut env = app::simulator_env("http://127.0.0.1:9", "http://127.0.0.1:9", &sim);
    let credentials = || AppCredentials {
        douyin_client_secret: Secret::new("d"),
        oceanengine_secret: Secret::new("o"),
    };
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    run("embedded store", StoreSet::embedded(credentials()), &config, count).await;
    println!("  peak RSS so far: {:.1} MB", peak_rss_mb());
    if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()) {
        let aws = devkit::moto::aws().await;
        let tables = devkit::moto::create_tables(&aws.dynamodb).await;
        env.extend(tables.env());
        let config = shared::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
        let moto_count: usize = std::env::var("BENCH_API_MOTO_LEADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        run("DynamoDB on moto", StoreSet::aws(&aws, &config), &config, moto_count).await;
        println!("  peak RSS: {:.1} MB", peak_rss_mb());
    }
}
