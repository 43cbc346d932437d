//! `scripts/bench api`: the lead read path at scale on DynamoDB Local. One tenant is seeded
//! through the store's batch path with `BENCH_API_LEADS` leads (default 100,000; the issue's
//! 1,000,000 with `BENCH_API_LEADS=1000000`), spread over 365 days and 4 sources, statuses
//! 90/6/3/1 % (moved by the operator path), beside 9 small tenants. At each size of the growth
//! curve (10k, 100k, 1M, up to the target) every call of the table runs `BENCH_API_CALLS`
//! times (default 50) inside the handler: p50/p99, DynamoDB requests and read units per call.
//! Then an export job of the whole tenant: rows/s and peak RSS.

use axum::body::{Body, to_bytes};
use chrono::{DateTime, Duration, TimeZone, Utc};
use devkit::app::{self, StoreSet};
use devkit::bench::peak_rss_mb;
use devkit::ddb_counter::{RequestCounter, counted_client};
use devkit::local_auth::LocalJwt;
use futures_util::StreamExt;
use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::domain::{ConnectionId, TenantId};
use shared::lead::{LeadFields, LeadRecord, LeadSource, LeadStatus, PlatformLead};
use shared::lead_query::{Cursor, CursorCodec, LeadFilter};
use shared::read_model::sort_key;
use shared::store::OperatorChange;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

const SOURCES: [LeadSource; 4] = [
    LeadSource::Laike,
    LeadSource::OceanEngineClue,
    LeadSource::OceanEngineLife,
    LeadSource::Feiyu,
];
const ALL: &[&str] = &[
    "lead:douyin:leads:view",
    "lead:douyin:leads:export",
    "lead:douyin:leads:phone",
];
const VIEW: &[&str] = &["lead:douyin:leads:view"];
const ANALYTICS: &[&str] = &["lead:douyin:analytics:view"];
/// Cost per lead: ads with daily spend, and the days of spend.
const SPEND_ADS: usize = 1_000;
const SPEND_DAYS: i64 = 90;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The newest lead's time; lead `i` is older the larger `i` is, spread over 365 days.
fn newest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap()
}

fn created(i: usize, total: usize) -> DateTime<Utc> {
    let span_ms = 365 * 86_400_000i64;
    newest() - Duration::milliseconds((i as i64 * span_ms) / total.max(1) as i64)
}

/// A lead of about 1 KB as DynamoDB stores it. One in a hundred is a 王 (the name search).
fn lead(tenant: &TenantId, i: usize, total: usize) -> LeadRecord {
    let source = SOURCES[i % 4];
    LeadRecord::new(
        tenant,
        &ConnectionId::from_stored(format!("c_bench{}", i % 4)),
        PlatformLead {
            source,
            source_lead_id: format!("{}", 7_100_000_000_000_000_000u64 + i as u64),
            fields: LeadFields {
                name: Some(if i % 100 == 7 {
                    format!("王{i}")
                } else {
                    format!("客户{i}")
                }),
                phone: Some(format!("139{i:08}")),
                clue_type: "FORM".into(),
                channel: Some("抖音".into()),
                ad_id: Some(format!("{}", 1_780_000_000_000_000_000u64 + (i % 1000) as u64)),
                store: Some("旗舰店".into()),
                remark: Some("想了解价格，周末到店。".repeat(16)),
                created_at: Some(created(i, total)),
                ..LeadFields::default()
            },
            raw: serde_json::json!({"clue_id": i, "telephone": format!("139{i:08}")}),
            phone_cipher: None,
        },
    )
}

/// Statuses 90/6/3/1 %: NEW, CONTACTED, CONVERTED, INVALID, by the lead's number.
fn target_status(i: usize) -> LeadStatus {
    match i % 100 {
        0..=5 => LeadStatus::Contacted,
        6..=8 => LeadStatus::Converted,
        9 => LeadStatus::Invalid,
        _ => LeadStatus::New,
    }
}

struct Bench {
    stores: StoreSet,
    counter: RequestCounter,
    router: axum::Router,
    jwt: LocalJwt,
    config: shared::Config,
    concurrency: usize,
}

impl Bench {
    /// Seeds leads `from..to` of a tenant of `total`, then moves their statuses.
    async fn seed(&self, tenant: &TenantId, from: usize, to: usize, total: usize) {
        let batches: Vec<(usize, usize)> = (from..to).step_by(100).map(|s| (s, (s + 100).min(to))).collect();
        futures_util::stream::iter(batches)
            .for_each_concurrent(self.concurrency, |(s, e)| async move {
                let batch: Vec<LeadRecord> = (s..e).map(|i| lead(tenant, i, total)).collect();
                self.stores
                    .leads
                    .upsert(tenant, &batch, Utc::now())
                    .await
                    .expect("seed");
            })
            .await;
        let moves: Vec<usize> = (from..to).filter(|i| target_status(*i) != LeadStatus::New).collect();
        futures_util::stream::iter(moves)
            .for_each_concurrent(self.concurrency, |i| async move {
                let id = lead(tenant, i, total).lead_id;
                let path: &[LeadStatus] = match target_status(i) {
                    LeadStatus::Contacted => &[LeadStatus::Contacted],
                    LeadStatus::Converted => &[LeadStatus::Contacted, LeadStatus::Converted],
                    _ => &[LeadStatus::Invalid],
                };
                for (n, to) in path.iter().enumerate() {
                    let change = OperatorChange {
                        status: Some(*to),
                        notes: None,
                        invalid_reason: None,
                        expected_version: 1 + n as u64,
                        history: Vec::new(),
                        at: Utc::now(),
                    };
                    self.stores
                        .leads
                        .update_operator_fields(tenant, &id, &change)
                        .await
                        .expect("status move");
                }
            })
            .await;
    }

    async fn call(&self, tenant: &TenantId, scopes: &[&str], method: &str, uri: &str) -> (u16, serde_json::Value) {
        let token = self.jwt.mint(tenant.as_str(), scopes, Duration::hours(1));
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{uri}", leads_api::BASE))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// `calls` runs of one call: latency percentiles, requests and read units per call.
    async fn measure(&self, label: &str, tenant: &TenantId, scopes: &[&str], uri: &str, calls: usize) {
        let mut times = Vec::with_capacity(calls);
        let mut total = None;
        self.counter.reset();
        for _ in 0..calls {
            let started = Instant::now();
            let (status, body) = self.call(tenant, scopes, "GET", uri).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{label}: {body}");
            total = body["data"]["total"].as_u64();
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let by_operation: Vec<String> = self
            .counter
            .snapshot()
            .iter()
            .map(|((op, _), n)| format!("{op} {:.1}", *n as f64 / calls as f64))
            .collect();
        println!(
            "  {label:<30} p50 {:>6.1} ms  p99 {:>6.1} ms  {:>4.1} req  {:>6.1} RCU{}  ({})",
            p(0.5),
            p(0.99),
            self.counter.total() as f64 / calls as f64,
            self.counter.read_units() / calls as f64,
            total.map(|t| format!("  total {t}")).unwrap_or_default(),
            by_operation.join(", "),
        );
    }

    /// The table for a tenant holding leads `0..size` of `total`.
    async fn table(&self, tenant: &TenantId, size: usize, total: usize, calls: usize) {
        let codec = CursorCodec::new(&self.config.read.cursor_key);
        let middle = lead(tenant, size / 2, total);
        let cursor = codec.encode(
            tenant,
            &LeadFilter::default(),
            &Cursor {
                position: sort_key(middle.fields.created_at.unwrap(), &middle.lead_id),
                seen: 0,
            },
        );
        let month_end = newest().date_naive().and_hms_opt(0, 0, 0).unwrap();
        let start = (month_end - Duration::days(30))
            .format("%Y-%m-%dT00:00:00+08:00")
            .to_string()
            .replace('+', "%2B");
        let end = month_end
            .format("%Y-%m-%dT23:59:59.999+08:00")
            .to_string()
            .replace('+', "%2B");
        let detail_id = lead(tenant, 3, total).lead_id;
        for _ in 0..25 {
            // History for the detail: 25 status-free reveals.
            self.call(tenant, ALL, "GET", &format!("/leads/{detail_id}")).await;
        }
        self.measure("first page", tenant, VIEW, "/leads?size=10", calls).await;
        self.measure("page 100", tenant, VIEW, "/leads?size=10&page=100", calls)
            .await;
        self.measure(
            "cursor page at 50%",
            tenant,
            VIEW,
            &format!("/leads?size=10&cursor={cursor}"),
            calls,
        )
        .await;
        self.measure(
            "status=CONVERTED",
            tenant,
            VIEW,
            "/leads?size=10&status=CONVERTED",
            calls,
        )
        .await;
        self.measure(
            "CONVERTED & laike, 30 days",
            tenant,
            VIEW,
            &format!("/leads?size=10&status=CONVERTED&source=laike&startTime={start}&endTime={end}"),
            calls,
        )
        .await;
        self.measure(
            "keyword name (王, 1%)",
            tenant,
            VIEW,
            "/leads?size=10&keyword=%E7%8E%8B",
            calls,
        )
        .await;
        self.measure(
            "full phone",
            tenant,
            VIEW,
            &format!("/leads?keyword=139{:08}", size / 3),
            calls,
        )
        .await;
        self.measure(
            "detail with history",
            tenant,
            VIEW,
            &format!("/leads/{detail_id}"),
            calls,
        )
        .await;
        let last = newest().with_timezone(&shared::sources::beijing()).date_naive();
        let first = last - Duration::days(SPEND_DAYS - 1);
        for group_by in ["ad", "day"] {
            self.measure(
                &format!("cost 90 d x 1000 ads, by {group_by}"),
                tenant,
                ANALYTICS,
                &format!("/analytics/cost?startDate={first}&endDate={last}&groupBy={group_by}"),
                calls.min(10),
            )
            .await;
        }
    }

    /// 90 days of spend for 1,000 ads (the ads the leads carry), one row per ad and day.
    async fn seed_spend(&self, tenant: &TenantId) {
        let last = newest().with_timezone(&shared::sources::beijing()).date_naive();
        let started = Instant::now();
        let rows: Vec<shared::spend::SpendRow> = (0..SPEND_DAYS)
            .flat_map(|d| {
                (0..SPEND_ADS).map(move |a| shared::spend::SpendRow {
                    level: shared::spend::SpendLevel::Ad,
                    entity_id: format!("{}", 1_780_000_000_000_000_000u64 + a as u64),
                    day: last - Duration::days(d),
                    name: Some(format!("计划{a}")),
                    parent_id: Some("1720000000000000".into()),
                    spend_fen: 1_000 + (a as i64 * 37 + d * 11) % 50_000,
                    shows: 500,
                    clicks: 20,
                    conversions: 1,
                    provisional: false,
                })
            })
            .collect();
        let connection = ConnectionId::from_stored("c_bench0");
        futures_util::stream::iter(rows.chunks(1_000))
            .for_each_concurrent(self.concurrency, |chunk| {
                let connection = connection.clone();
                async move {
                    self.stores
                        .spend
                        .put_rows(tenant, &connection, chunk)
                        .await
                        .expect("seed spend");
                }
            })
            .await;
        println!(
            "spend: {} rows ({SPEND_DAYS} days x {SPEND_ADS} ads) in {:.0} s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    }

    async fn export(&self, tenant: &TenantId) {
        let (status, body) = self.call(tenant, ALL, "POST", "/leads/exports").await;
        assert_eq!(status, 202, "{body}");
        let id = body["data"]["exportId"].as_str().unwrap().to_owned();
        let started = Instant::now();
        // The in-process runner started it; wait for it as a client would.
        let rows = loop {
            let (_, job) = self.call(tenant, ALL, "GET", &format!("/leads/exports/{id}")).await;
            match job["data"]["status"].as_str() {
                Some("DONE") => break job["data"]["rows"].as_u64().unwrap_or(0),
                Some("FAILED") => panic!("export failed: {job}"),
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        };
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  export job, all leads: {rows} rows in {secs:.1} s = {:.0} rows/s; peak RSS {:.0} MB",
            rows as f64 / secs,
            peak_rss_mb()
        );
    }
}

#[tokio::main]
async fn main() {
    let target = env_number("BENCH_API_LEADS", 100_000);
    let calls = env_number("BENCH_API_CALLS", 50);
    let concurrency = env_number("BENCH_SEED_CONCURRENCY", 4);
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.is_empty()) {
        panic!("run it with scripts/bench api, which starts DynamoDB Local and moto");
    }
    let sim = devkit::sim::SimApp::default();
    let mut env = app::simulator_env("http://127.0.0.1:9", "http://127.0.0.1:9", &sim);
    let aws = devkit::moto::aws().await;
    let tables = devkit::moto::create_tables(&aws.dynamodb).await;
    env.extend(tables.env());
    env.insert("EXPORT_BUCKET".into(), devkit::moto::create_bucket(&aws.s3).await);
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let counter = RequestCounter::default();
    let counted = AwsClients {
        dynamodb: counted_client(&counter).await,
        ..aws.clone()
    };
    let stores = StoreSet::aws(&counted, &config);
    let jwt = LocalJwt::new("bench", &config.tenant_claim);
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(&config, &stores, requests, Arc::new(SystemClock), jwt.clone());
    let bench = Bench {
        stores,
        counter,
        router,
        jwt,
        config,
        concurrency,
    };
    let seeding = Instant::now();
    let smalls = env_number("BENCH_SMALL_TENANTS", 9);
    for n in 0..smalls {
        let small = TenantId::new(format!("bench-small-{n}"));
        bench.seed(&small, 0, 1_000, 1_000).await;
    }
    println!(
        "{smalls} small tenants of 1,000 leads: {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let tenant = TenantId::new("bench-large");
    let mut sizes: Vec<usize> = [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|s| *s < target)
        .collect();
    sizes.push(target);
    // The leads are numbered newest first over the target's 365 days; each step seeds the next
    // stretch, so the curve's sizes are the same tenant growing.
    bench.seed_spend(&tenant).await;
    let mut seeded = 0;
    for size in sizes {
        let started = Instant::now();
        bench.seed(&tenant, seeded, size, target).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "tenant at {size} leads (seeded {} in {secs:.0} s, {:.0} leads/s with statuses):",
            size - seeded,
            (size - seeded) as f64 / secs
        );
        seeded = size;
        bench.table(&tenant, size, target, calls).await;
    }
    bench.export(&tenant).await;
}
