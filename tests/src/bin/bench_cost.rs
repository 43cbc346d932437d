//! Spend sync benchmark: one 本地推 account with 1,000 promotions spending every day, its first
//! pull of 90 days (`SPEND_BACKFILL_DAYS`) through the sync engine into DynamoDB Local at the
//! default Ocean Engine rate, then the daily re-pull of 7 settled days. Prints time, platform
//! requests, rows and writes, DynamoDB requests. `scripts/bench cost`; `BENCH_PROMOTIONS` changes
//! the count. The analytics call for the same range is in `scripts/bench api`.

use chrono::Duration;
use devkit::connections::connect_oauth;
use devkit::sim::SimSource;
use devkit::sync_harness::SyncHarness;
use shared::domain::{Provider, TenantId};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let promotions: u64 = std::env::var("BENCH_PROMOTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let settings = [
        ("OCEANENGINE_QPS", "10"),
        ("CONNECTION_QPS", "10"),
        ("SPEND_LEVELS", "local_promotion"),
        ("SPEND_BACKFILL_DAYS", "90"),
        ("OCEANENGINE_LEAD_SOURCES", "life"),
    ];
    let h = SyncHarness::on_moto(&settings).await;
    let tenant = TenantId::new("bench-cost");
    let account = "1800000000000001";
    h.sim
        .seed_leads(SimSource::OceanEngineLife, account, 10, Duration::days(5));
    h.sim.dense_promotions(promotions);
    let connection = connect_oauth(&h.config, &h.stores, &tenant, Provider::OceanEngine, account).await;
    let engine = h.engine();
    for label in ["first pull, 90 days", "re-pull, 7 days"] {
        h.counter.reset();
        let started = Instant::now();
        let task = h.sync(&engine, &connection).await;
        let secs = started.elapsed().as_secs_f64();
        let spend = task.spend.expect("spend counts");
        println!(
            "{label:<22} {secs:>6.1} s  {:>5} report requests  {:>7} rows  {:>7} written  {:>7} unchanged  {:>6} DynamoDB requests ({})",
            spend.requests,
            spend.rows,
            spend.written,
            spend.unchanged,
            h.counter.total(),
            h.counter
                .snapshot()
                .iter()
                .map(|((op, _), n)| format!("{op} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("peak RSS {:.0} MB", devkit::bench::peak_rss_mb());
}
