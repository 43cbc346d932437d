//! File import benchmark: the 100k-row 抖音来客 export (`scripts/sample-exports` writes it; an xlsx
//! with shared strings, date cells and blank rows) uploaded to moto S3 and imported into DynamoDB
//! Local through the lead store's upsert, then imported again (every row unchanged). Prints
//! rows/s, DynamoDB requests by operation and per row, and the process's peak RSS.
//! `scripts/bench import`; `BENCH_IMPORT_FILE` names another file (its source: `BENCH_IMPORT_SOURCE`).

use devkit::sync_harness::SyncHarness;
use shared::domain::TenantId;
use shared::import::job::{ImportOrder, RunEnd};
use shared::import::reader::Format;
use shared::import::{ImportDeps, ImportJob, ImportStatus};
use shared::lead::LeadSource;
use std::sync::Arc;
use std::time::Instant;

struct NoContinuation;

#[async_trait::async_trait]
impl shared::import::ImportRequests for NoContinuation {
    async fn request(&self, _: &TenantId, _: &str) -> Result<(), shared::store::StoreError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let file = std::env::var("BENCH_IMPORT_FILE").unwrap_or_else(|_| "target/sample-exports/laike-100k.xlsx".into());
    let source = std::env::var("BENCH_IMPORT_SOURCE")
        .ok()
        .and_then(|s| LeadSource::parse(&s))
        .unwrap_or(LeadSource::Laike);
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e} (run scripts/sample-exports first)"));
    let size = bytes.len();
    let h = SyncHarness::on_moto(&[]).await;
    let aws = h.aws.clone().expect("moto");
    let tenant = TenantId::new("bench-import");
    let format = Format::of(&file).expect("an .xlsx or .csv");
    let deps = ImportDeps {
        leads: h.stores.leads.clone(),
        jobs: h.stores.import_jobs.clone(),
        files: h.stores.import_files.clone(),
        requests: Arc::new(NoContinuation),
        clock: Arc::new(shared::clock::SystemClock),
    };
    for (n, label) in ["first import", "same file again"].iter().enumerate() {
        let order = ImportOrder {
            tenant: tenant.clone(),
            actor: "bench".into(),
            file_name: file.clone(),
            format,
            source,
            connection_id: None,
            mapping: Default::default(),
        };
        let job = ImportJob {
            status: ImportStatus::Queued,
            ..ImportJob::awaiting(
                format!("i_bench{n}"),
                order,
                chrono::Utc::now(),
                chrono::Duration::days(1),
            )
        };
        aws.s3
            .put_object()
            .bucket(&h.config.read.export_bucket)
            .key(job.object_key())
            .body(bytes.clone().into())
            .send()
            .await
            .expect("upload to moto");
        h.stores.import_jobs.put(&job).await.expect("record");
        h.counter.reset();
        let started = Instant::now();
        let end = shared::import::job::run(&deps, &tenant, &job.import_id, None)
            .await
            .expect("the import runs");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(end, RunEnd::Finished);
        let done = h
            .stores
            .import_jobs
            .get(&tenant, &job.import_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, ImportStatus::Done, "{:?}", done.error);
        let c = &done.counts;
        let requests = h.counter.total();
        println!(
            "{label:<16} {} rows ({:.1} MB) in {secs:.1} s = {:.0} rows/s; created {} updated {} unchanged {} rejected {}; {} DynamoDB requests ({:.3}/row: {})",
            c.read,
            size as f64 / 1e6,
            c.read as f64 / secs,
            c.created,
            c.updated,
            c.unchanged,
            c.rejected,
            requests,
            requests as f64 / c.read.max(1) as f64,
            h.counter
                .snapshot()
                .iter()
                .map(|((op, _), n)| format!("{op} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "peak RSS {:.0} MB (this process: DynamoDB and S3 clients, simulator idle)",
        devkit::bench::peak_rss_mb()
    );
}
