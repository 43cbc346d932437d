//! File imports end to end on DynamoDB Local and moto S3: `POST /imports`, the file PUT to the
//! presigned link, `POST /imports/{id}/start`, `GET /imports/{id}`, and the lead store after.
//! Every sample export (each platform's headers and quirks) lands exactly its valid rows with
//! the rejected ones reasoned; importing again changes nothing; an export that overlaps what the
//! API synced makes no duplicate; a run stopped at its deadline continues to the same result.

use chrono::Duration;
use devkit::app::call;
use devkit::local_auth::LocalJwt;
use devkit::sample_exports::{self, BadRow, FileKind, Manifest, Platform, SampleLead, Style};
use devkit::sim::SimSource;
use devkit::sync_fixtures::{connected, tenant};
use devkit::sync_harness::SyncHarness;
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::domain::TenantId;
use shared::import::row::derived_source_lead_id;
use shared::lead::{LeadId, LeadSource};
use std::collections::BTreeSet;
use std::sync::Arc;

const ADMIN: &[&str] = &["lead:douyin:admin"];

struct Api {
    router: axum::Router,
    jwt: LocalJwt,
}

impl Api {
    fn new(h: &SyncHarness) -> Self {
        let jwt = LocalJwt::new("import-test", &h.config.tenant_claim);
        let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
        let router = devkit::app::routes(&h.config, &h.stores, requests, Arc::new(SystemClock), jwt.clone());
        Self { router, jwt }
    }

    async fn call(&self, t: &TenantId, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.jwt.mint(t.as_str(), ADMIN, Duration::hours(1));
        call(
            &self.router,
            &token,
            method,
            &format!("{}{path}", leads_api::BASE),
            body,
        )
        .await
    }

    /// Makes an import with `body` and uploads `bytes` to its link; the import's id.
    async fn uploaded(&self, t: &TenantId, body: Value, bytes: Vec<u8>) -> String {
        let (status, made) = self.call(t, "POST", "/imports", Some(body)).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["data"]["status"], "AWAITING_UPLOAD");
        let url = made["data"]["uploadUrl"].as_str().unwrap();
        let put = reqwest::Client::new().put(url).body(bytes).send().await.unwrap();
        assert!(put.status().is_success(), "upload: {}", put.status());
        made["data"]["importId"].as_str().unwrap().to_owned()
    }

    /// Makes an import, uploads `bytes` to its link, starts it, and waits for it to end.
    async fn import(&self, t: &TenantId, file_name: &str, source: LeadSource, bytes: Vec<u8>) -> Value {
        let body = json!({"fileName": file_name, "source": source.as_str()});
        let id = self.uploaded(t, body, bytes).await;
        let (status, started) = self.call(t, "POST", &format!("/imports/{id}/start"), None).await;
        assert_eq!(status, 202, "{started}");
        self.wait(t, &id).await
    }

    async fn wait(&self, t: &TenantId, id: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self.call(t, "GET", &format!("/imports/{id}"), None).await;
            assert_eq!(status, 200, "{job}");
            let s = job["data"]["status"].as_str().unwrap().to_owned();
            if s == "DONE" || s == "FAILED" {
                return job["data"].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("import {id} did not finish within 60 s");
    }
}

/// The lead id a sample lead must be stored under.
fn expected_id(t: &TenantId, source: LeadSource, style: Style, lead: &SampleLead) -> LeadId {
    let source_lead_id = if style.without_ids {
        derived_source_lead_id(&lead.phone, Some(lead.created))
    } else {
        lead.id.clone()
    };
    LeadId::derive(t, source, &source_lead_id)
}

fn assert_rejections(job: &Value, manifest: &Manifest, file: &str) {
    let rows = job["rejectedRows"].as_array().unwrap();
    assert_eq!(rows.len(), manifest.rejected.len(), "{file}: {job}");
    for ((row, column, why), got) in manifest.rejected.iter().zip(rows) {
        assert_eq!(got["row"].as_u64(), Some(*row), "{file}: {got}");
        assert_eq!(got["column"].as_str(), column.as_deref(), "{file}: {got}");
        let reason = got["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{file}: row {row}: {reason:?} should say {why:?}");
    }
}

/// Every sample: the store holds exactly the valid rows (with their phones, times and ads),
/// the counts add up, the rejections name row, column and reason; a second import of the same
/// file changes nothing and writes no lead.
#[tokio::test]
async fn each_platforms_export_lands_exactly_its_valid_rows_and_a_second_import_changes_nothing() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = Api::new(&h);
    for (file, platform, style, leads, faults) in sample_exports::samples() {
        let t = tenant();
        let source = platform.source();
        let (bytes, manifest) = sample_exports::render(platform, style, &leads, &faults);
        let job = api.import(&t, &file, source, bytes.clone()).await;
        assert_eq!(job["status"], "DONE", "{file}: {job}");
        let counts = &job["counts"];
        assert_eq!(
            counts["read"].as_u64(),
            Some(leads.len() as u64),
            "{file}: blank rows not counted"
        );
        assert_eq!(counts["created"].as_u64(), Some(manifest.valid.len() as u64), "{file}");
        assert_eq!(
            counts["rejected"].as_u64(),
            Some(manifest.rejected.len() as u64),
            "{file}"
        );
        assert_rejections(&job, &manifest, &file);
        if matches!(style.kind, FileKind::CsvGb18030) {
            assert_eq!(job["encoding"], "gb18030", "{file}");
        }

        let stored = h.stores.leads.list_all(&t).await.unwrap();
        let got: BTreeSet<_> = stored.iter().map(|l| l.lead_id.clone()).collect();
        let want: BTreeSet<_> = manifest
            .valid
            .iter()
            .map(|l| expected_id(&t, source, style, l))
            .collect();
        assert_eq!(got, want, "{file}: exactly the valid rows");
        for lead in &manifest.valid {
            let id = expected_id(&t, source, style, lead);
            let s = stored.iter().find(|l| l.lead_id == id).unwrap();
            let phone = (!lead.phone.is_empty()).then_some(lead.phone.as_str());
            assert_eq!(s.fields.phone.as_deref(), phone, "{file}: a masked phone is no phone");
            assert_eq!(s.fields.created_at, Some(lead.created), "{file}: Beijing time read");
            assert_eq!(s.fields.name.as_deref(), Some(lead.name.as_str()));
            let ad = match source {
                LeadSource::OceanEngineLife => &s.fields.promotion_id,
                _ => &s.fields.ad_id,
            };
            assert_eq!(ad, &lead.ad_id, "{file}: the ad id kept as text");
            assert_eq!(s.fields.platform_status.as_deref(), Some("新线索"));
        }

        h.counter.reset();
        let again = api.import(&t, &file, source, bytes).await;
        assert_eq!(again["status"], "DONE");
        assert_eq!(
            (again["counts"]["created"].as_u64(), again["counts"]["updated"].as_u64()),
            (Some(0), Some(0)),
            "{file}: {again}"
        );
        assert_eq!(again["counts"]["unchanged"].as_u64(), Some(manifest.valid.len() as u64));
        assert_eq!(h.stores.leads.list_all(&t).await.unwrap().len(), manifest.valid.len());
    }
}

/// An export of leads the API already synced lands on the same leads: no duplicate, the
/// operator's work kept. A row without an id whose phone is a synced lead's is a new lead linked
/// to it as a duplicate.
#[tokio::test]
async fn an_export_overlapping_a_synced_window_makes_no_duplicate() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = Api::new(&h);
    let engine = h.engine();
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::Laike, 120).await;
    let task = h.sync(&engine, &connection).await;
    assert_eq!(task.totals().created, 120);
    let platform: Vec<SampleLead> = h
        .sim
        .leads(SimSource::Laike, &account)
        .into_iter()
        .map(|l| SampleLead {
            id: l.clue_id,
            name: l.name,
            phone: l.phone,
            created: l.create_time,
            ad_id: None,
            store: None,
            remark: None,
            status: "新线索".into(),
        })
        .collect();
    // The back office's export of the last 80 of them, and 10 leads the API has not seen.
    let mut rows: Vec<SampleLead> = platform[..80].to_vec();
    rows.extend(sample_exports::leads(10, 77, sample_exports::sample_start()));
    let style = Style {
        blank_every: Some(7),
        ..Style::plain(FileKind::CsvGb18030)
    };
    let (bytes, manifest) = sample_exports::render(Platform::Laike, style, &rows, &[]);
    assert_eq!(manifest.valid.len(), 90);
    let job = api.import(&t, "客资.csv", LeadSource::Laike, bytes).await;
    assert_eq!(job["status"], "DONE", "{job}");
    assert_eq!(job["counts"]["created"].as_u64(), Some(10), "{job}");
    assert_eq!(
        job["counts"]["updated"].as_u64().unwrap() + job["counts"]["unchanged"].as_u64().unwrap(),
        80
    );
    let stored = h.stores.leads.list_all(&t).await.unwrap();
    assert_eq!(stored.len(), 130, "120 synced + 10 new, no duplicate");
    let ids: BTreeSet<_> = stored.iter().map(|l| l.lead_id.clone()).collect();
    assert_eq!(ids.len(), 130);
    // A later sync of the same window still creates nothing.
    let again = h.sync(&engine, &connection).await;
    assert_eq!(again.totals().created, 0);

    // 本地推's export has no id column: a row whose phone a synced lead has is linked to it.
    let known = &platform[0];
    let life = SampleLead {
        created: known.created + Duration::days(2),
        ..known.clone()
    };
    let style = Style {
        without_ids: true,
        ..Style::plain(FileKind::Xlsx)
    };
    let (bytes, _) = sample_exports::render(Platform::OceanEngineLife, style, &[life], &[]);
    let job = api.import(&t, "本地推.xlsx", LeadSource::OceanEngineLife, bytes).await;
    assert_eq!(
        (job["counts"]["created"].as_u64(), job["counts"]["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{job}"
    );
}

/// The routes' refusals: an upload that never came, a file over the limit, an unknown format or
/// source, a header row nowhere, another tenant's import.
#[tokio::test]
async fn imports_refuse_what_they_cannot_take_with_a_reason() {
    let h = SyncHarness::on_moto(&[("IMPORT_MAX_MB", "1")]).await;
    let api = Api::new(&h);
    let t = tenant();
    for (body, code) in [
        (json!({"fileName": "a.xls", "source": "laike"}), "UNSUPPORTED_FORMAT"),
        (json!({"fileName": "a.csv", "source": "douyin_fans"}), "INVALID_SOURCE"),
        (
            json!({"fileName": "a.csv", "source": "laike", "mapping": {"mobile": "手机"}}),
            "INVALID_MAPPING",
        ),
        (json!({"fileName": "a.csv"}), "INVALID_JSON"),
    ] {
        let (status, answer) = api.call(&t, "POST", "/imports", Some(body)).await;
        assert_eq!((status, answer["errorCode"].as_str()), (400, Some(code)), "{answer}");
    }
    let (status, made) = api
        .call(
            &t,
            "POST",
            "/imports",
            Some(json!({"fileName": "big.csv", "source": "laike"})),
        )
        .await;
    assert_eq!(status, 201);
    let id = made["data"]["importId"].as_str().unwrap().to_owned();
    let (status, answer) = api.call(&t, "POST", &format!("/imports/{id}/start"), None).await;
    assert_eq!((status, answer["errorCode"].as_str()), (409, Some("FILE_NOT_UPLOADED")));
    let url = made["data"]["uploadUrl"].as_str().unwrap();
    let big = "手机号\n13800138000\n".repeat(80_000).into_bytes();
    reqwest::Client::new().put(url).body(big).send().await.unwrap();
    let (status, answer) = api.call(&t, "POST", &format!("/imports/{id}/start"), None).await;
    assert_eq!((status, answer["errorCode"].as_str()), (413, Some("FILE_TOO_LARGE")));
    let (status, _) = api.call(&tenant(), "GET", &format!("/imports/{id}"), None).await;
    assert_eq!(status, 404, "another tenant's import is not found");

    let job = api
        .import(
            &t,
            "notes.csv",
            LeadSource::Feiyu,
            "日期,金额\n2026-11-01,3\n".as_bytes().to_vec(),
        )
        .await;
    assert_eq!(job["status"], "FAILED");
    assert!(job["error"].as_str().unwrap().contains("手机号"), "{job}");

    // The request's own mapping finds headers the defaults do not know.
    let body = json!({"fileName": "own.csv", "source": "feiyu", "mapping": {"phone": "客户手机", "name": "称呼"}});
    let id = api
        .uploaded(&t, body, "称呼,客户手机\n周女士,13912345678\n".as_bytes().to_vec())
        .await;
    api.call(&t, "POST", &format!("/imports/{id}/start"), None).await;
    let job = api.wait(&t, &id).await;
    assert_eq!(job["counts"]["created"].as_u64(), Some(1), "{job}");
    let lead = &h.stores.leads.list_all(&t).await.unwrap()[0];
    assert_eq!(lead.fields.name.as_deref(), Some("周女士"));
}

/// The lead-import function on SQS events: a run whose time is up stops at a checkpoint and
/// asks to be continued; the continued runs end with the counts a single run has. A redelivered
/// request of a finished import changes nothing.
#[tokio::test]
async fn the_import_function_continues_a_run_stopped_at_its_deadline() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = Api::new(&h);
    let t = tenant();
    let leads = sample_exports::leads(450, 9, sample_exports::sample_start());
    let faults = [(100, BadRow::MaskedPhone), (333, BadRow::NothingToIdentify)];
    let (bytes, manifest) =
        sample_exports::render(Platform::OceanEngine, Style::plain(FileKind::Xlsx), &leads, &faults);
    let body = json!({"fileName": "线索.xlsx", "source": "oceanengine_clue"});
    let id = api.uploaded(&t, body, bytes).await;
    // Queued as the start route does, but run by the function's handler.
    let mut job = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
    job.status = shared::import::ImportStatus::Queued;
    h.stores.import_jobs.put(&job).await.unwrap();
    let requests = Arc::new(RecordedImports::default());
    let deps = shared::import::ImportDeps {
        leads: h.stores.leads.clone(),
        jobs: h.stores.import_jobs.clone(),
        files: h.stores.import_files.clone(),
        requests: requests.clone(),
        clock: Arc::new(SystemClock),
    };
    let message = json!({"Records": [{"messageId": "m1", "body": json!({"tenant": t, "importId": id}).to_string()}]});
    let mut runs = 0;
    loop {
        runs += 1;
        // A deadline already past: each run writes one batch, then stops and asks again.
        let answer = lead_import::handle(&deps, &message, Some(std::time::Instant::now())).await;
        assert_eq!(answer["batchItemFailures"], json!([]));
        let job = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
        if job.status == shared::import::ImportStatus::Done {
            break;
        }
        assert_eq!(
            requests.0.lock().unwrap().len(),
            runs,
            "a stopped run asks to be continued"
        );
        assert!(runs < 20, "the import moves on at every run");
    }
    assert!(runs >= 4, "450 rows in batches of 100 took {runs} runs");
    let job = api.wait(&t, &id).await;
    assert_eq!(job["counts"]["read"].as_u64(), Some(450));
    assert_eq!(
        job["counts"]["created"].as_u64(),
        Some(manifest.valid.len() as u64),
        "{job}"
    );
    assert_eq!(
        job["counts"]["rejected"].as_u64(),
        Some(1),
        "a masked phone with an id is imported"
    );
    assert_rejections(&job, &manifest, "线索.xlsx");
    assert_eq!(h.stores.leads.list_all(&t).await.unwrap().len(), manifest.valid.len());
    let before = requests.0.lock().unwrap().len();
    lead_import::handle(&deps, &message, None).await;
    let after = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
    assert_eq!(
        after.counts.created,
        manifest.valid.len() as u64,
        "a redelivery changes nothing"
    );
    assert_eq!(requests.0.lock().unwrap().len(), before);
}

/// A run whose file was uploaded over since the start fails with the reason instead of reading
/// the new file from the old checkpoint; a QUEUED import whose run died can be started again.
#[tokio::test]
async fn a_replaced_file_fails_the_import_and_an_abandoned_one_can_be_started_again() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = Api::new(&h);
    let t = tenant();
    let leads = sample_exports::leads(30, 11, sample_exports::sample_start());
    let (bytes, _) = sample_exports::render(Platform::Feiyu, Style::plain(FileKind::CsvUtf8Bom), &leads, &[]);
    let id = api
        .uploaded(&t, json!({"fileName": "线索.csv", "source": "feiyu"}), bytes)
        .await;
    let mut job = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
    job.status = shared::import::ImportStatus::Queued;
    job.file_etag = Some("\"an-earlier-upload\"".into());
    h.stores.import_jobs.put(&job).await.unwrap();
    let deps = shared::import::ImportDeps {
        leads: h.stores.leads.clone(),
        jobs: h.stores.import_jobs.clone(),
        files: h.stores.import_files.clone(),
        requests: Arc::new(RecordedImports::default()),
        clock: Arc::new(SystemClock),
    };
    let end = shared::import::job::run(&deps, &t, &id, None).await.unwrap();
    assert_eq!(end, shared::import::job::RunEnd::Finished);
    let failed = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
    assert_eq!(failed.status, shared::import::ImportStatus::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("uploaded over"),
        "{:?}",
        failed.error
    );
    assert!(
        h.stores.leads.list_all(&t).await.unwrap().is_empty(),
        "nothing of the new file read"
    );

    // Abandoned: QUEUED, its run never came, the record untouched for two hours.
    let mut stuck = failed.clone();
    stuck.status = shared::import::ImportStatus::Queued;
    stuck.file_etag = None;
    stuck.error = None;
    stuck.updated_at = Some(chrono::Utc::now() - Duration::hours(2));
    h.stores.import_jobs.put(&stuck).await.unwrap();
    let (status, _) = api.call(&t, "POST", &format!("/imports/{id}/start"), None).await;
    assert_eq!(status, 202);
    let done = api.wait(&t, &id).await;
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["counts"]["created"].as_u64(), Some(30));
    // A fresh QUEUED one is left to its run: starting it again sends nothing.
    let mut fresh = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
    fresh.status = shared::import::ImportStatus::Queued;
    fresh.updated_at = Some(chrono::Utc::now());
    h.stores.import_jobs.put(&fresh).await.unwrap();
    let (_, answer) = api.call(&t, "POST", &format!("/imports/{id}/start"), None).await;
    assert_eq!(answer["data"]["status"], "QUEUED");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let still = h.stores.import_jobs.get(&t, &id).await.unwrap().unwrap();
    assert_eq!(
        still.status,
        shared::import::ImportStatus::Queued,
        "no second run was started"
    );
}

#[derive(Default)]
struct RecordedImports(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl shared::import::ImportRequests for RecordedImports {
    async fn request(&self, _tenant: &TenantId, import_id: &str) -> Result<(), shared::store::StoreError> {
        self.0.lock().unwrap().push(import_id.to_owned());
        Ok(())
    }
}
