//! `scripts/bench`: how fast a sync runs and what it costs.
//!
//! 1. A full first sync of one Ocean Engine connection holding `BENCH_LEADS` (10,000) simulated
//!    leads with `BENCH_LATENCY_MS` (20) platform latency, into DynamoDB on moto (or the embedded
//!    store without `AWS_ENDPOINT_URL`): leads/s, platform requests, DynamoDB requests, peak RSS,
//!    then an unchanged re-pull.
//! 2. The same first sync of a second connection against an adversarial platform: every page
//!    answered after a random delay (so concurrent pages come back in any order) and 5 % more
//!    leads inserted into the window while it is paged: time, the platform requests spent on
//!    reconciliation, and how much of the rate limit the run used.
//! 3. CPU only: normalize + hash + phone dedupe of generated Ocean Engine records, in leads/s.

use chrono::Duration;
use devkit::bench::peak_rss_mb;
use devkit::connections::connect_oauth;
use devkit::sim::SimSource;
use devkit::sync_harness::SyncHarness;
use shared::domain::{Provider, TenantId};
use shared::lead::LeadRecord;
use shared::sources::oceanengine::{Endpoint, normalize};
use std::collections::HashMap;
use std::time::Instant;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cpu_only(count: usize) {
    let records: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "clue_id": format!("{}", 7_100_000_000_000_000_000u64 + i as u64),
                "advertiser_id": "1769665409798152", "ad_id": "1730000000000000", "creative_id": "1730000000000001",
                "name": "李女士", "telephone": format!("138{:08}", i % (count * 9 / 10).max(1)),
                "create_time_detail": "2025-06-01 10:15:30", "modify_time": "2025-06-01 10:20:02",
                "clue_type": 0, "app_name": "抖音", "convert_status": "合法转化", "location": "浙江+杭州",
                "remark_dict": {"预约时间": "周六"}, "store": {"store_name": "西湖店"}
            })
        })
        .collect();
    let tenant = TenantId::new("bench");
    let connection = shared::domain::ConnectionId::from_stored("c_bench");
    let started = Instant::now();
    let mut first_with_phone: HashMap<String, usize> = HashMap::with_capacity(count);
    let mut duplicates = 0usize;
    for (i, record) in records.iter().enumerate() {
        let lead = normalize(Endpoint::Clue, record).expect("valid record");
        let lead = LeadRecord::new(&tenant, &connection, lead);
        if let Some(phone) = &lead.fields.phone
            && *first_with_phone.entry(phone.clone()).or_insert(i) != i
        {
            duplicates += 1;
        }
        std::hint::black_box(&lead);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "cpu: normalize + hash + dedupe of {count} leads in {:.3} s = {:.0} leads/s ({duplicates} phone duplicates)",
        secs,
        count as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let leads = env_num("BENCH_LEADS", 10_000) as usize;
    let latency = env_num("BENCH_LATENCY_MS", 20);

    let on_moto = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());
    // The deployment's default rate limits: the run should be bound by them, not by us.
    let settings = [
        ("OCEANENGINE_QPS", "10"),
        ("CONNECTION_QPS", "10"),
        ("HTTP_TIMEOUT_MS", "5000"),
        // The lead sync alone; `scripts/bench cost` measures the spend pull.
        ("SPEND_LEVELS", "none"),
    ];
    let h = if on_moto {
        SyncHarness::on_moto(&settings).await
    } else {
        SyncHarness::embedded(&settings).await
    };
    let tenant = TenantId::new("bench-tenant");
    let account = "1769665409798152";
    h.sim
        .seed_leads(SimSource::OceanEngineClue, account, leads, Duration::days(20));
    let connection = connect_oauth(&h.config, &h.stores, &tenant, Provider::OceanEngine, account).await;
    h.sim.set_latency(std::time::Duration::from_millis(latency));
    let engine = h.engine();
    let platform_before = h.sim.api_requests();
    h.counter.reset();
    let started = Instant::now();
    let task = h.sync(&engine, &connection).await;
    let secs = started.elapsed().as_secs_f64();
    let totals = task.totals();
    let pages = h.sim.api_requests() - platform_before;
    println!(
        "sync ({}): {} leads stored in {:.2} s = {:.0} leads/s; status {:?}",
        if on_moto { "DynamoDB Local" } else { "embedded store" },
        totals.created,
        secs,
        totals.created as f64 / secs,
        task.status
    );
    println!(
        "  platform requests: {pages} (at most {} per second configured: floor {:.1} s)",
        h.config.sync.oceanengine_qps,
        pages as f64 / h.config.sync.oceanengine_qps
    );
    if on_moto {
        println!(
            "  DynamoDB requests: {} total, {} to the leads table ({} writes): {:?}",
            h.counter.total(),
            h.counter.requests_to(h.leads_table()),
            h.counter.writes_to(h.leads_table()),
            h.counter.snapshot()
        );
    }
    // Measured before the CPU figure, whose 100,000 pre-built records would dominate it.
    println!(
        "  peak RSS (process: simulator, client, stores): {:.1} MB",
        peak_rss_mb()
    );
    let replay = Instant::now();
    h.counter.reset();
    let again = h.sync_with(&engine, &connection, shared::task::Strategy::Full).await;
    println!(
        "re-pull of all {} leads unchanged: {:.2} s, {} leads-table writes, {} created, {} updated",
        again.totals().fetched,
        replay.elapsed().as_secs_f64(),
        h.counter.writes_to(h.leads_table()),
        again.totals().created,
        again.totals().updated
    );
    let clean = Clean { pages, secs };
    adversarial(&h, leads, clean).await;
    cpu_only(100_000);
}

struct Clean {
    pages: u64,
    secs: f64,
}

/// The first sync of a fresh connection while the platform answers pages in random order and
/// leads arrive in the window being paged.
async fn adversarial(h: &SyncHarness, leads: usize, clean: Clean) {
    use devkit::sim::adversary::{Adversary, Hostility};
    let tenant = TenantId::new("bench-tenant-adversarial");
    let account = "1769665409798153";
    h.sim
        .seed_leads(SimSource::OceanEngineClue, account, leads, Duration::days(20));
    let connection = connect_oauth(&h.config, &h.stores, &tenant, Provider::OceanEngine, account).await;
    let pages_clean = clean.pages.max(1);
    // 5 % of the leads inserted while paging, spread over the requests.
    let budget = leads as u64 * 5 / 100;
    let per_request = budget.div_ceil(pages_clean);
    let hostility = Hostility {
        max_delay: std::time::Duration::from_millis(env_num("BENCH_ADVERSARY_DELAY_MS", 150)),
        insert_percent: 100,
        insert_max: (2 * per_request).max(1),
        insert_budget: budget,
        // New leads arrive recent (`BENCH_ADVERSARY_INSERTS=anywhere` spreads them over the window).
        insert_recent: (std::env::var("BENCH_ADVERSARY_INSERTS").as_deref() != Ok("anywhere"))
            .then(|| Duration::hours(1)),
        delete_percent: 0,
        fault_percent: 0,
        encoding_switch_percent: 0,
        decrypt_refusal_percent: 0,
    };
    h.sim.set_adversary(Some(Adversary::new(7, hostility)));
    let engine = h.engine();
    let before = h.sim.api_requests();
    let started = Instant::now();
    let task = h.sync(&engine, &connection).await;
    let secs = started.elapsed().as_secs_f64();
    h.sim.set_adversary(None);
    let requests = h.sim.api_requests() - before;
    let totals = task.totals();
    let platform_leads = h.sim.leads(SimSource::OceanEngineClue, account).len();
    let qps = h.config.sync.oceanengine_qps;
    println!(
        "adversarial sync (pages in random order, {} leads inserted while paging, {}): {} of {} leads stored in {:.2} s; status {:?}",
        platform_leads - leads,
        if std::env::var("BENCH_ADVERSARY_INSERTS").as_deref() == Ok("anywhere") {
            "anywhere in the window"
        } else {
            "created in the last hour"
        },
        totals.created,
        platform_leads,
        secs,
        task.status
    );
    println!(
        "  platform requests: {requests} ({} for reconciliation: {:.1} % over the {} of the clean run)",
        totals.reconcile_requests,
        100.0 * (requests as f64 - pages_clean as f64) / pages_clean as f64,
        pages_clean
    );
    println!(
        "  rate-limit use: clean {:.1} %, adversarial {:.1} % of {qps} requests/s",
        100.0 * clean.pages as f64 / clean.secs / qps,
        100.0 * requests as f64 / secs / qps
    );
}
