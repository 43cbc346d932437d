//! The leads-api router driven by real API Gateway HTTP API (v2) events with JWT authorizer data,
//! over the embedded stores.

use axum::body::to_bytes;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::domain::{ConnectionId, TenantId};
use shared::http::identity::with_api_gateway_identity;
use shared::lead::{LeadFields, LeadRecord, LeadSource, PlatformLead};
use shared::store::memory::MemoryConnectionStore;
use shared::store::memory_leads::{MemoryLeadStore, MemoryTaskStore};
use shared::store::{ConnectionStore, LeadStore, TaskStore};
use shared::task::{Strategy, SyncTask, Trigger};
use std::sync::Arc;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("../../../tests/fixtures/events/apigw-v2-leads-api.json");
/// The fixture's tenant claim (`sub`).
const TENANT: &str = "tenant-42";

struct App {
    leads: Arc<MemoryLeadStore>,
    tasks: Arc<MemoryTaskStore>,
    connections: Arc<MemoryConnectionStore>,
    requests: Arc<Recorded>,
    router: axum::Router,
}

/// Records sync requests instead of putting events on a bus.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<shared::sync::SyncRequest>>);

#[async_trait::async_trait]
impl shared::sync::requests::SyncRequests for Recorded {
    async fn request(&self, r: &shared::sync::SyncRequest) -> Result<(), shared::store::StoreError> {
        self.0.lock().unwrap().push(r.clone());
        Ok(())
    }
}

fn lead(tenant: &TenantId, i: i64) -> LeadRecord {
    LeadRecord::new(
        tenant,
        &ConnectionId::from_stored("c_fixture"),
        PlatformLead {
            source: if i % 2 == 0 {
                LeadSource::Feiyu
            } else {
                LeadSource::OceanEngineClue
            },
            source_lead_id: format!("{}", 7_000_000_000_000_000_000i64 + i),
            fields: LeadFields {
                name: Some(format!("客户{i}")),
                phone: Some(format!("138{:08}", i)),
                clue_type: "FORM".into(),
                created_at: Some(Utc::now() - Duration::hours(i)),
                ..LeadFields::default()
            },
            raw: json!({"telephone": format!("138{:08}", i)}),
            phone_cipher: None,
        },
    )
}

async fn app(leads_per_tenant: i64) -> App {
    app_with(leads_per_tenant, &[]).await
}

async fn app_with(leads_per_tenant: i64, extra_env: &[(&str, String)]) -> App {
    let leads = Arc::new(MemoryLeadStore::default());
    let tasks = Arc::new(MemoryTaskStore::default());
    for tenant in [TENANT, "someone-else"] {
        let t = TenantId::new(tenant);
        let batch: Vec<LeadRecord> = (0..leads_per_tenant).map(|i| lead(&t, i)).collect();
        leads.upsert(&t, &batch, Utc::now()).await.unwrap();
    }
    let connections = Arc::new(MemoryConnectionStore::default());
    let requests = Arc::new(Recorded::default());
    let mut env: std::collections::HashMap<&str, String> = std::collections::HashMap::from([
        ("DOUYIN_CLIENT_KEY", "awfixturekey".to_owned()),
        ("OCEANENGINE_APP_ID", "1700000000000001".to_owned()),
        (
            "OAUTH_CALLBACK_URL",
            "https://api.example.com/api/v1/lead/douyin/auth/callback".to_owned(),
        ),
    ]);
    env.extend(extra_env.iter().cloned());
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let vault = Arc::new(shared::store::memory::MemoryTokenVault::new(
        shared::domain::AppCredentials {
            douyin_client_secret: shared::secret::Secret::new("d"),
            oceanengine_secret: shared::secret::Secret::new("o"),
        },
    ));
    let api = leads_api::LeadsApi {
        leads: leads.clone(),
        tasks: tasks.clone(),
        connections: connections.clone(),
        ledger: connections.clone(),
        vault: vault.clone(),
        requests: requests.clone(),
        audit: Arc::new(shared::store::memory_leads::MemoryAuditLog::default()),
        exports: leads_api::exports::ExportPorts {
            jobs: Arc::new(shared::export::memory::MemoryExportJobs::default()),
            sink: Arc::new(shared::export::memory::MemorySink::new("/files")),
            requests: None,
        },
        imports: leads_api::imports::ImportPorts {
            jobs: Arc::new(shared::import::memory::MemoryImportJobs::default()),
            files: Arc::new(shared::import::memory::DirectoryFiles::new(
                std::env::temp_dir(),
                "/uploads",
            )),
            requests: None,
            config: config.import.clone(),
        },
        catalog: Arc::new(shared::sync::catalog::SourceCatalog::from_config(
            &config,
            vault,
            Arc::new(SystemClock),
        )),
        secret_prefix: "test/connections/".into(),
        task_ttl: Duration::days(30),
        read: config.read.clone(),
        clock: Arc::new(SystemClock),
        spend: Arc::new(shared::spend::store::MemorySpendStore::default()),
        writeback: shared::writeback::WriteBackConfig::defaults(),
        webhooks: None,
    };
    App {
        leads,
        tasks,
        connections,
        requests,
        router: with_api_gateway_identity(leads_api::router(Arc::new(api)), "sub"),
    }
}

/// A request built from the fixture: method, path (under the base), query and body replaced.
async fn call(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    edit: impl FnOnce(&mut Value),
) -> (u16, Value) {
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    let full = format!("{}{path}", leads_api::BASE);
    event["rawPath"] = json!(full);
    event["requestContext"]["http"]["path"] = json!(full);
    event["requestContext"]["http"]["method"] = json!(method);
    event["routeKey"] = json!(format!("{method} {full}"));
    event["rawQueryString"] = json!(query);
    let params: serde_json::Map<String, Value> = url_pairs(query).into_iter().map(|(k, v)| (k, json!(v))).collect();
    event["queryStringParameters"] = Value::Object(params);
    if let Some(body) = body {
        event["body"] = json!(body);
        event["headers"]["content-type"] = json!("application/json");
    }
    edit(&mut event);
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.replace("%2B", "+").replace("%3A", ":"))
        })
        .collect()
}

fn scopes(event: &mut Value, scopes: &[&str]) {
    event["requestContext"]["authorizer"]["jwt"]["scopes"] = json!(scopes);
    event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = json!(scopes.join(" "));
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["leadId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_newest_first_with_masked_phones_and_pages_and_cursors_agree() {
    let app = app(25).await;
    let (status, body) = call(&app, "GET", "/leads", "page=1&size=10", None, |_| {}).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(
        (
            data["total"].as_u64(),
            data["size"].as_u64(),
            data["current"].as_u64(),
            data["pages"].as_u64()
        ),
        (Some(25), Some(10), Some(1), Some(3))
    );
    assert_eq!(data["records"][0]["name"], json!("客户0"), "newest first");
    assert_eq!(data["records"][0]["phone"], json!("138****0000"));
    assert_eq!(
        data["records"][1]["sourceLeadId"],
        json!("7000000000000000001"),
        "ids stay strings"
    );
    assert!(data["records"][0].get("raw").is_none());

    let mut by_pages = Vec::new();
    for page in 1..=3 {
        let (_, body) = call(&app, "GET", "/leads", &format!("page={page}&size=10"), None, |_| {}).await;
        by_pages.extend(ids(&body));
    }
    let mut by_cursor = Vec::new();
    let mut query = "size=10".to_owned();
    loop {
        let (status, body) = call(&app, "GET", "/leads", &query, None, |_| {}).await;
        assert_eq!(status, 200, "{body}");
        by_cursor.extend(ids(&body));
        match body["data"]["nextCursor"].as_str() {
            Some(c) => query = format!("size=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(by_pages.len(), 25);
    assert_eq!(by_pages, by_cursor, "page and cursor walks agree");

    let (_, body) = call(&app, "GET", "/leads", "source=feiyu&keyword=客户1", None, |e| {
        e["queryStringParameters"]["keyword"] = json!("客户1");
    })
    .await;
    let names: Vec<&str> = body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("客户1")),
        "{names:?}"
    );
}

#[tokio::test]
async fn bad_list_input_is_a_400_naming_the_field() {
    let app = app(3).await;
    for (query, field) in [
        ("size=101", "size"),
        ("status=DONE", "status"),
        ("cursor=nope", "cursor"),
        ("startTime=today", "startTime"),
        ("x=1", "query"),
    ] {
        let (status, body) = call(&app, "GET", "/leads", query, None, |_| {}).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{query}: {body}");
        assert!(body["errorCode"].is_string());
    }
}

#[tokio::test]
async fn identity_and_scopes_are_enforced() {
    let app = app(1).await;
    let (status, _) = call(&app, "GET", "/leads", "", None, |e| {
        e["requestContext"].as_object_mut().unwrap().remove("authorizer");
    })
    .await;
    assert_eq!(status, 401);
    let (status, body) = call(&app, "GET", "/leads", "", None, |e| {
        scopes(e, &["lead:douyin:auth:get_url"])
    })
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(
        &app,
        "PATCH",
        "/leads/l_x",
        "",
        Some(r#"{"status":"CONTACTED","version":1}"#),
        |e| scopes(e, &["lead:douyin:leads:view"]),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_lead_reveals_its_phone_only_with_the_scope_and_records_it() {
    let app = app(2).await;
    let t = TenantId::new(TENANT);
    let id = lead(&t, 1).lead_id;
    let (status, body) = call(&app, "GET", &format!("/leads/{id}"), "", None, |e| {
        scopes(e, &["lead:douyin:leads:view"])
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["phone"], json!("138****0001"));
    assert!(body["data"].get("raw").is_none(), "the raw record can hold a phone");
    let (_, body) = call(&app, "GET", &format!("/leads/{id}"), "", None, |_| {}).await;
    assert_eq!(body["data"]["phone"], json!("13800000001"));
    assert_eq!(body["data"]["history"][0]["action"], json!("PHONE_REVEALED"));
    let stored = app.leads.get(&t, &id).await.unwrap().unwrap();
    let history = app.leads.history(&t, &id, None, 20).await.unwrap();
    assert_eq!(
        (history.entries.len(), stored.version),
        (1, 1),
        "recorded without a new version"
    );

    let other = lead(&TenantId::new("someone-else"), 1).lead_id;
    let (status, body) = call(&app, "GET", &format!("/leads/{other}"), "", None, |_| {}).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("LEAD_NOT_FOUND")),
        "another tenant's lead is not found"
    );
}

#[tokio::test]
async fn status_work_follows_the_workflow_and_versions() {
    let app = app(1).await;
    let id = lead(&TenantId::new(TENANT), 0).lead_id;
    let path = format!("/leads/{id}");
    let (status, body) = call(
        &app,
        "PATCH",
        &path,
        "",
        Some(r#"{"status":"CONTACTED","notes":"called","version":1}"#),
        |_| {},
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["data"]["status"].as_str(), body["data"]["version"].as_u64()),
        (Some("CONTACTED"), Some(2))
    );
    assert_eq!(body["data"]["history"][0]["from"], json!("NEW"));
    assert_eq!(body["data"]["history"][0]["actor"], json!(TENANT));

    let (status, body) = call(
        &app,
        "PATCH",
        &path,
        "",
        Some(r#"{"status":"CONVERTED","version":1}"#),
        |_| {},
    )
    .await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("VERSION_CONFLICT")));
    let (status, body) = call(
        &app,
        "PATCH",
        &path,
        "",
        Some(r#"{"status":"NEW","version":2}"#),
        |_| {},
    )
    .await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("ILLEGAL_STATUS_MOVE")));
    for (payload, field) in [
        ("{not json", "body"),
        (r#"{"status":"CONVERTED"}"#, "version"),
        (r#"{"status":"DONE","version":2}"#, "status"),
        (r#"{"version":2,"owner":"x"}"#, "body"),
        (r#"{"version":2}"#, "body"),
    ] {
        let (status, body) = call(&app, "PATCH", &path, "", Some(payload), |_| {}).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{payload}: {body}"
        );
    }
    let long = json!({"notes": "记".repeat(2001), "version": 2}).to_string();
    let (status, body) = call(&app, "PATCH", &path, "", Some(&long), |_| {}).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("notes")));
    let huge = json!({"notes": "x".repeat(20_000), "version": 2}).to_string();
    let (status, body) = call(&app, "PATCH", &path, "", Some(&huge), |_| {}).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("BODY_TOO_LARGE")));
    let (status, _) = call(
        &app,
        "PATCH",
        "/leads/l_missing",
        "",
        Some(r#"{"status":"INVALID","version":1}"#),
        |_| {},
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn sync_tasks_are_read_within_the_tenant() {
    let app = app(0).await;
    let task = SyncTask::new(
        "t_1".into(),
        TenantId::new(TENANT),
        ConnectionId::from_stored("c_1"),
        Trigger::Manual,
        Strategy::Full,
        Utc::now(),
        Duration::days(1),
    );
    app.tasks.put(&task).await.unwrap();
    let (status, body) = call(&app, "GET", "/sync/tasks/t_1", "", None, |_| {}).await;
    assert_eq!(
        (status, body["data"]["taskId"].as_str(), body["data"]["status"].as_str()),
        (200, Some("t_1"), Some("PENDING"))
    );
    let (status, body) = call(&app, "GET", "/sync/tasks/t_2", "", None, |_| {}).await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("TASK_NOT_FOUND")));
    let (status, _) = call(&app, "GET", "/accounts", "", None, |_| {}).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_sync_request_records_a_task_and_asks_for_it_once() {
    use shared::store::{ConnectionStore, SyncLedger};
    let app = app(0).await;
    let now = Utc::now();
    let t = TenantId::new(TENANT);
    let id = ConnectionId::derive(&t, shared::domain::Provider::Douyin, "open-fixture");
    let connection = shared::domain::Connection {
        id: id.clone(),
        tenant: t.clone(),
        provider: shared::domain::Provider::Douyin,
        external_account_id: "open-fixture".into(),
        advertiser_ids: vec![],
        scopes: vec![],
        status: shared::domain::ConnectionStatus::Active,
        secret_id: "s".into(),
        access_expires_at: now,
        refresh_expires_at: now,
        created_at: now,
        updated_at: now,
    };
    app.connections.upsert(&connection).await.unwrap();

    let (status, body) = call(
        &app,
        "POST",
        "/fans/sync",
        "",
        Some(r#"{"douyinUserId":"open-fixture","syncStrategy":"FULL"}"#),
        |_| {},
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let task_id = body["data"]["taskId"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["status"], json!("PENDING"));
    let task = app.tasks.get(&t, &task_id).await.unwrap().expect("task recorded");
    assert_eq!((task.strategy, task.trigger), (Strategy::Full, Trigger::Manual));
    let asked = app.requests.0.lock().unwrap().clone();
    assert_eq!((asked.len(), asked[0].task_id.as_deref()), (1, Some(task_id.as_str())));

    // A run holds the connection: the answer names it instead of queueing another.
    app.connections
        .acquire_lease(&t, &id, &task_id, now + Duration::minutes(5), now)
        .await
        .unwrap()
        .unwrap();
    let (status, body) = call(
        &app,
        "POST",
        "/fans/sync",
        "",
        Some(&json!({"connectionId": id}).to_string()),
        |_| {},
    )
    .await;
    assert_eq!(
        (status, body["data"]["taskId"].as_str(), body["data"]["status"].as_str()),
        (202, Some(task_id.as_str()), Some("PROCESSING"))
    );
    assert_eq!(app.requests.0.lock().unwrap().len(), 1);

    for (payload, code) in [
        (r#"{"connectionId":"c_nobody"}"#, 404),
        (r#"{"douyinUserId":"open-other"}"#, 404),
        (r#"{}"#, 400),
        (r#"{"connectionId":"c_x","syncStrategy":"SOMETIMES"}"#, 400),
        (r#"{"connectionId":1}"#, 400),
    ] {
        let (status, body) = call(&app, "POST", "/fans/sync", "", Some(payload), |_| {}).await;
        assert_eq!(status, code, "{payload}: {body}");
    }
}

/// The export through what deploys: the router behind the Lambda body layer, called by
/// lambda_http's own adapter, and the body read off the Lambda response it produces.
#[tokio::test]
async fn the_exported_bom_survives_the_lambda_adapter() {
    use lambda_http::tower::Service;
    let app = app(3).await;
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    let full = format!("{}/leads/export", leads_api::BASE);
    event["rawPath"] = json!(full);
    event["requestContext"]["http"]["path"] = json!(full);
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = json!({});
    scopes(&mut event, &["lead:douyin:leads:export"]);
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event).unwrap();
    let mut adapter = lambda_http::Adapter::from(shared::http::lambda_body::for_lambda(app.router.clone()));
    let response = adapter
        .call(lambda_http::LambdaEvent::new(request, lambda_http::Context::default()))
        .await
        .unwrap();
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(wire["statusCode"], json!(200));
    let body = match wire["isBase64Encoded"].as_bool() {
        Some(true) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(wire["body"].as_str().unwrap())
                .unwrap();
            String::from_utf8(bytes).unwrap()
        }
        _ => wire["body"].as_str().unwrap().to_owned(),
    };
    assert!(body.starts_with('\u{feff}'), "the BOM reaches the caller");
    assert!(!body[3..].starts_with('\u{feff}'), "exactly one BOM");
    assert!(body.contains("leadId,source"), "{body}");
}

#[tokio::test]
async fn export_is_csv_with_a_bom_masked_phones_and_text_ids() {
    let app = app(3).await;
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    let full = format!("{}/leads/export", leads_api::BASE);
    event["rawPath"] = json!(full);
    event["requestContext"]["http"]["path"] = json!(full);
    event["rawQueryString"] = json!("source=feiyu");
    event["queryStringParameters"] = json!({"source": "feiyu"});
    scopes(&mut event, &["lead:douyin:leads:export"]);
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let text = String::from_utf8(to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a BOM for Excel");
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][..3], ["leadId", "source", "sourceLeadId"]);
    assert_eq!(rows.len(), 1 + 2, "header and the two Feiyu leads (0 and 2)");
    assert_eq!(rows[1][2], "\t7000000000000000000", "ids as text");
    assert_eq!(rows[1][6], "138****0000", "phones masked without the phone scope");
    assert_eq!(rows[1][4], "客户0");
    let (status, _) = call(&app, "GET", "/leads/export", "", None, |e| {
        scopes(e, &["lead:douyin:leads:view"])
    })
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn registering_accounts_needs_the_admin_scope_and_a_well_formed_body() {
    let app = app(0).await;
    let body = r#"{"advertiserId":"1664750332606472","signatureKey":"k","token":"t"}"#;
    let (status, _) = call(&app, "POST", "/accounts/feiyu", "", Some(body), |_| {}).await;
    assert_eq!(status, 403, "the fixture token has no admin scope");
    let admin = |e: &mut Value| scopes(e, &["lead:douyin:admin"]);
    for (route, payload, field) in [
        (
            "/accounts/feiyu",
            r#"{"advertiserId":"adv","signatureKey":"k","token":"t"}"#,
            "advertiserId",
        ),
        (
            "/accounts/feiyu",
            r#"{"advertiserId":"1","signatureKey":"","token":"t"}"#,
            "signatureKey",
        ),
        ("/accounts/feiyu", r#"{"advertiserId":"1","signatureKey":"k"}"#, "body"),
        ("/accounts/laike", r#"{"accountId":""}"#, "accountId"),
        ("/accounts/laike", "[]", "body"),
    ] {
        let (status, body) = call(&app, "POST", route, "", Some(payload), admin).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{route} {payload}: {body}"
        );
    }
    let (status, body) = call(&app, "DELETE", "/accounts/c_nobody", "", None, |e| {
        scopes(e, &["lead:douyin:accounts:delete"])
    })
    .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("CONNECTION_NOT_FOUND"))
    );
    let (status, _) = call(&app, "DELETE", "/accounts/c_nobody", "", None, |e| {
        scopes(e, &["lead:douyin:auth:get_url", "lead:douyin:admin"])
    })
    .await;
    assert_eq!(status, 403, "disconnecting needs lead:douyin:accounts:delete");
}

#[tokio::test]
async fn ids_that_cannot_exist_are_not_found_without_a_lookup() {
    let app = app(1).await;
    let huge = "l_".to_owned() + &"9".repeat(5000);
    for (method, path, code) in [
        ("GET", format!("/leads/{huge}"), "LEAD_NOT_FOUND"),
        ("GET", "/leads/not-an-id".to_owned(), "LEAD_NOT_FOUND"),
        ("GET", format!("/sync/tasks/t_{}", "x".repeat(100)), "TASK_NOT_FOUND"),
        ("DELETE", "/accounts/..%2F..".to_owned(), "CONNECTION_NOT_FOUND"),
    ] {
        let (status, body) = call(&app, method, &path, "", None, |e| {
            scopes(
                e,
                &[
                    "lead:douyin:leads:view",
                    "lead:douyin:fans:sync",
                    "lead:douyin:accounts:delete",
                ],
            )
        })
        .await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (404, Some(code)),
            "{method} {path}"
        );
    }
}

/// A platform host that accepts connections and never answers.
async fn silent_platform() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    base
}

/// Against a platform that never answers, `POST /accounts/feiyu` answers 502 before the
/// invocation's deadline instead of being killed by Lambda at its timeout: the deadline from
/// the Lambda context bounds every attempt and retry (by default 3 x 5 s plus backoff).
#[tokio::test]
async fn a_platform_that_never_answers_is_a_502_before_the_lambda_deadline() {
    use lambda_http::tower::Service;
    let platform = silent_platform().await;
    let app = app_with(0, &[("FEIYU_BASE_URL", platform)]).await;
    let full = format!("{}/accounts/feiyu", leads_api::BASE);
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    event["rawPath"] = json!(full);
    event["requestContext"]["http"]["path"] = json!(full);
    event["requestContext"]["http"]["method"] = json!("POST");
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = json!({});
    event["headers"]["content-type"] = json!("application/json");
    event["body"] = json!(r#"{"advertiserId":"1664750332600001","signatureKey":"feiyu-key","token":"feiyu-token"}"#);
    scopes(&mut event, &["lead:douyin:admin"]);
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event).unwrap();
    // What `main` serves: the deadline layer (0.5 s kept to answer) behind the body layer.
    let router =
        shared::http::deadline::with_lambda_deadline(app.router.clone(), std::time::Duration::from_millis(500));
    let mut adapter = lambda_http::Adapter::from(shared::http::lambda_body::for_lambda(router));
    let budget = std::time::Duration::from_secs(3);
    let mut context = lambda_http::Context::default();
    context.deadline = (std::time::SystemTime::now() + budget)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let started = std::time::Instant::now();
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        adapter.call(lambda_http::LambdaEvent::new(request, context)),
    )
    .await
    .expect("an answer at all")
    .unwrap();
    let elapsed = started.elapsed();
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(wire["statusCode"], json!(502), "{wire}");
    let body: Value = serde_json::from_str(wire["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["errorCode"], "PLATFORM_ERROR");
    assert_eq!(body["platform"]["name"], "feiyu");
    assert!(
        elapsed < budget,
        "answered after {elapsed:?}, past the {budget:?} deadline"
    );
    assert!(
        app.connections.list(&TenantId::new(TENANT)).await.unwrap().is_empty(),
        "nothing saved"
    );
}
