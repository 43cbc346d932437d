//! The lead API against moto with leads the lead sync pulled from the simulator: filters and
//! paging over real DynamoDB queries, tenant isolation, status work, and a sync requested through
//! EventBridge that lead-sync then runs to completion.

use axum::body::{Body, to_bytes};
use chrono::Duration;
use devkit::connections::bind_laike;
use devkit::local_auth::{self, ALL_SCOPES, LocalJwt};
use devkit::sim::SimSource;
use devkit::sync_harness::SyncHarness;
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::domain::TenantId;
use shared::sync::requests::{EVENT_DETAIL_TYPE, EVENT_SOURCE, EventBridgeSyncRequests};
use std::sync::Arc;
use tower::ServiceExt;

struct Api {
    router: axum::Router,
    jwt: LocalJwt,
}

impl Api {
    async fn call(&self, tenant: &str, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.jwt.mint(tenant, ALL_SCOPES, Duration::hours(1));
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{uri}", leads_api::BASE))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn api(h: &SyncHarness, requests: Arc<dyn shared::sync::requests::SyncRequests>) -> Api {
    let jwt = LocalJwt::new("lead-api-test", &h.config.tenant_claim);
    let api = leads_api::LeadsApi {
        leads: h.stores.leads.clone(),
        tasks: h.stores.tasks.clone(),
        connections: h.stores.connections.clone(),
        ledger: h.stores.ledger.clone(),
        vault: h.stores.vault.clone(),
        requests,
        audit: h.stores.audit.clone(),
        exports: leads_api::exports::ExportPorts {
            jobs: h.stores.export_jobs.clone(),
            sink: h.stores.export_sink.clone(),
            requests: None,
        },
        imports: leads_api::imports::ImportPorts {
            jobs: h.stores.import_jobs.clone(),
            files: h.stores.import_files.clone(),
            requests: None,
            config: h.config.import.clone(),
        },
        catalog: Arc::new(shared::sync::catalog::SourceCatalog::from_config(
            &h.config,
            h.stores.credentials.clone(),
            Arc::new(SystemClock),
        )),
        secret_prefix: h.config.secrets.connection_prefix.clone(),
        task_ttl: Duration::days(30),
        read: h.config.read.clone(),
        clock: Arc::new(SystemClock),
        spend: h.stores.spend.clone(),
        writeback: h.config.writeback.clone(),
        webhooks: None,
    };
    let router =
        leads_api::router(Arc::new(api)).layer(axum::middleware::from_fn_with_state(jwt.clone(), local_auth::layer));
    Api { router, jwt }
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
async fn synced_leads_are_listed_filtered_paged_and_worked_per_tenant() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = api(&h, Arc::new(devkit::sync_requests::RecordedSyncRequests::default()));
    let tenant = devkit::moto::unique("tenant");
    let t = TenantId::new(&tenant);
    let account = format!(
        "73{}",
        &devkit::moto::unique("")[1..].replace(|c: char| !c.is_ascii_digit(), "7")
    );
    h.sim.seed_leads(SimSource::Laike, &account, 57, Duration::days(10));
    let connection = bind_laike(&h.config, &h.stores, &t, &account).await;
    h.sync(&h.engine(), &connection).await;

    let (status, first) = api.call(&tenant, "GET", "/leads?size=20", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["data"]["total"].as_u64(), first["data"]["pages"].as_u64()),
        (Some(57), Some(3))
    );
    let mut by_page = Vec::new();
    for page in 1..=3 {
        let (_, body) = api
            .call(&tenant, "GET", &format!("/leads?size=20&page={page}"), None)
            .await;
        by_page.extend(ids(&body));
    }
    let mut by_cursor = ids(&first);
    let mut cursor = first["data"]["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, body) = api
            .call(&tenant, "GET", &format!("/leads?size=20&cursor={c}"), None)
            .await;
        by_cursor.extend(ids(&body));
        cursor = body["data"]["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(by_page.len(), 57);
    assert_eq!(by_page, by_cursor, "page and cursor walks agree");
    let expected: Vec<String> = h
        .sim
        .leads(SimSource::Laike, &account)
        .iter()
        .map(|l| l.clue_id.clone())
        .collect();
    let (_, body) = api.call(&tenant, "GET", "/leads?size=100", None).await;
    let listed: Vec<String> = body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sourceLeadId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, expected, "newest first, as the platform holds them");

    // Work one lead, then filter on it.
    let lead_id = by_page[3].clone();
    let (status, body) = api
        .call(
            &tenant,
            "PATCH",
            &format!("/leads/{lead_id}"),
            Some(json!({"status": "CONTACTED", "notes": "约周六到店", "version": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            &tenant,
            "PATCH",
            &format!("/leads/{lead_id}"),
            Some(json!({"status": "INVALID", "version": 1})),
        )
        .await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("VERSION_CONFLICT")));
    let (_, body) = api.call(&tenant, "GET", "/leads?status=CONTACTED", None).await;
    assert_eq!(ids(&body), vec![lead_id.clone()]);
    let (_, body) = api
        .call(
            &tenant,
            "GET",
            "/leads?keyword=%E5%91%A8%E5%85%AD%E5%88%B0%E5%BA%97",
            None,
        )
        .await;
    assert_eq!(body["data"]["total"], 1, "keyword matches notes: {body}");
    let phone = h.sim.leads(SimSource::Laike, &account)[0].phone.clone();
    let (_, body) = api.call(&tenant, "GET", &format!("/leads?keyword={phone}"), None).await;
    assert!(
        body["data"]["total"].as_u64().unwrap() >= 1,
        "keyword matches phone digits"
    );

    // The export holds the same leads, parsed back from its CSV.
    let token = api.jwt.mint(&tenant, ALL_SCOPES, Duration::hours(1));
    let request = axum::http::Request::builder()
        .uri(format!("{}/leads/export?status=CONTACTED", leads_api::BASE))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let csv = String::from_utf8(to_bytes(response.into_body(), 1 << 24).await.unwrap().to_vec()).unwrap();
    let rows: Vec<Vec<String>> = csv
        .trim_start_matches('\u{feff}')
        .lines()
        .map(|l| l.split(',').map(|c| c.trim_start_matches('\t').to_owned()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "header and the one CONTACTED lead");
    assert_eq!(
        (rows[1][0].as_str(), rows[1][16].as_str()),
        (lead_id.as_str(), "CONTACTED")
    );
    assert_eq!(
        rows[1][6].len(),
        11,
        "the phone column holds the full number: the token may reveal phones"
    );

    // Another tenant sees nothing of it.
    let (_, body) = api.call("someone-else", "GET", "/leads", None).await;
    assert_eq!(body["data"]["total"], 0);
    let (status, _) = api
        .call("someone-else", "GET", &format!("/leads/{lead_id}"), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            "someone-else",
            "PATCH",
            &format!("/leads/{lead_id}"),
            Some(json!({"status": "INVALID", "version": 2})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, body) = api.call(&tenant, "GET", "/accounts", None).await;
    assert_eq!(body["data"][0]["provider"], json!("laike"));
    assert!(body["data"][0]["lastSuccessAt"].is_string(), "{body}");
    assert_eq!(body["data"][0]["leadCount"], 57, "the connection's lead count");

    // Disconnecting stops the syncs and keeps the leads; nobody else can disconnect it.
    let path = format!("/accounts/{}", connection.id);
    let (status, _) = api.call("someone-else", "DELETE", &path, None).await;
    assert_eq!(status, 404);
    let (status, body) = api.call(&tenant, "DELETE", &path, None).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("DISABLED")),
        "{body}"
    );
    let (status, _) = api.call(&tenant, "DELETE", &path, None).await;
    assert_eq!(status, 200, "disconnecting twice is fine");
    let (_, body) = api.call(&tenant, "GET", "/leads", None).await;
    assert_eq!(body["data"]["total"], 57, "the leads stay");
    let report = shared::sync::fanout::schedule(&h.engine(), None, None).await.unwrap();
    assert_eq!(report.due, 0, "a disconnected account is not synced");
}

#[tokio::test]
async fn disconnecting_schedules_the_token_secret_for_deletion() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = api(&h, Arc::new(devkit::sync_requests::RecordedSyncRequests::default()));
    let tenant = devkit::moto::unique("tenant");
    let t = TenantId::new(&tenant);
    let connection =
        devkit::connections::register_feiyu(&h.config, &h.stores, &t, "1664750332600001", "tok", "key").await;
    assert!(
        h.stores
            .vault
            .get_tokens(&connection.secret_id)
            .await
            .unwrap()
            .is_some()
    );
    let (status, body) = api
        .call(&tenant, "DELETE", &format!("/accounts/{}", connection.id), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        h.stores
            .vault
            .get_tokens(&connection.secret_id)
            .await
            .unwrap()
            .is_none(),
        "the secret is on its way out"
    );
    assert!(!body.to_string().contains("key"), "no credential in the answer");
}

#[tokio::test]
async fn a_sync_requested_through_eventbridge_runs_to_completion() {
    let h = SyncHarness::on_moto(&[]).await;
    let aws = h.aws.clone().unwrap();
    let pattern = json!({"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE]});
    let (bus, queue_url) = devkit::streams::bus_with_queue(&aws, &pattern).await;
    let api = api(&h, Arc::new(EventBridgeSyncRequests::new(aws.events.clone(), &bus)));
    let tenant = devkit::moto::unique("tenant");
    let t = TenantId::new(&tenant);
    h.sim
        .seed_leads(SimSource::Laike, "7343082414312370001", 14, Duration::days(5));
    let connection = bind_laike(&h.config, &h.stores, &t, "7343082414312370001").await;

    let (status, body) = api
        .call(
            &tenant,
            "POST",
            "/fans/sync",
            Some(json!({"connectionId": connection.id, "syncStrategy": "FULL"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let task_id = body["data"]["taskId"].as_str().unwrap().to_owned();
    let (_, body) = api.call(&tenant, "GET", &format!("/sync/tasks/{task_id}"), None).await;
    assert_eq!(body["data"]["status"], json!("PENDING"));

    // What EventBridge delivered is exactly what lead-sync receives.
    let message = aws.sqs.receive_message().queue_url(&queue_url).send().await.unwrap();
    let event: Value = serde_json::from_str(message.messages()[0].body().unwrap()).expect("the event as JSON");
    let answer = lead_sync::handle(&h.engine(), None, &event, None)
        .await
        .expect("lead-sync runs it");
    assert_eq!(answer["status"], json!("COMPLETED"), "{answer}");
    let (_, body) = api.call(&tenant, "GET", &format!("/sync/tasks/{task_id}"), None).await;
    assert_eq!(body["data"]["status"], json!("COMPLETED"), "{body}");
    assert_eq!(body["data"]["sources"]["laike"]["created"], json!(14));
    let (status, _) = api
        .call("someone-else", "GET", &format!("/sync/tasks/{task_id}"), None)
        .await;
    assert_eq!(status, 404, "tasks are per tenant");
}

#[tokio::test]
async fn feiyu_and_laike_accounts_are_verified_with_one_pull_before_they_are_saved() {
    let h = SyncHarness::on_moto(&[]).await;
    let api = api(&h, Arc::new(devkit::sync_requests::RecordedSyncRequests::default()));
    let tenant = devkit::moto::unique("tenant");
    let t = TenantId::new(&tenant);
    h.sim
        .add_feiyu_account("1664750332609999", "feiyu-console-token", "feiyu-signature-key");
    h.sim
        .seed_leads(SimSource::Feiyu, "1664750332609999", 12, Duration::days(3));
    h.sim
        .seed_leads(SimSource::Laike, "7343082414312379999", 8, Duration::days(3));

    let bad_key = json!({"advertiserId": "1664750332609999", "signatureKey": "wrong", "token": "feiyu-console-token"});
    let (status, body) = api.call(&tenant, "POST", "/accounts/feiyu", Some(bad_key)).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("FEIYU_REJECTED")),
        "{body}"
    );
    assert_eq!(
        body["platform"]["name"],
        json!("feiyu"),
        "the platform's answer is passed on"
    );
    assert!(h.stores.connections.list(&t).await.unwrap().is_empty(), "nothing saved");

    let good = json!({"advertiserId": "1664750332609999", "signatureKey": "feiyu-signature-key", "token": "feiyu-console-token"});
    let (status, body) = api.call(&tenant, "POST", "/accounts/feiyu", Some(good.clone())).await;
    assert_eq!(status, 201, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("feiyu-signature-key") && !text.contains("feiyu-console-token"),
        "never returned"
    );
    let (status, _) = api.call("someone-else", "POST", "/accounts/feiyu", Some(good)).await;
    assert_eq!(status, 409, "one account, one tenant");

    let (status, body) = api
        .call(
            &tenant,
            "POST",
            "/accounts/laike",
            Some(json!({"accountId": "7343082414312370404"})),
        )
        .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("LAIKE_REJECTED")),
        "{body}"
    );
    let (status, body) = api
        .call(
            &tenant,
            "POST",
            "/accounts/laike",
            Some(json!({"accountId": "7343082414312379999"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for (payload, field) in [
        (json!({"accountId": "abc"}), "accountId"),
        (json!({"accountId": "1", "extra": true}), "body"),
    ] {
        let (status, body) = api.call(&tenant, "POST", "/accounts/laike", Some(payload)).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{body}");
    }

    // Both sync like any connection.
    let report = shared::sync::fanout::schedule(&h.engine(), None, None).await.unwrap();
    assert_eq!((report.due, report.completed), (2, 2));
    let (_, body) = api.call(&tenant, "GET", "/leads", None).await;
    assert_eq!(body["data"]["total"], 20);
}

/// The lead API's 来客 check and the sync engine share the container's one app token: the
/// engine renewing it must not leave the API holding a token the platform retires 5 minutes
/// later (fact sheet §1.5), which answered a valid account with 400 LAIKE_REJECTED.
#[tokio::test]
async fn a_laike_registration_works_after_the_engine_renewed_the_app_token() {
    let h = SyncHarness::embedded(&[]).await;
    let api = api(&h, Arc::new(devkit::sync_requests::RecordedSyncRequests::default()));
    let tenant = devkit::moto::unique("tenant");
    for account in ["7343082414312371111", "7343082414312372222"] {
        h.sim.seed_leads(SimSource::Laike, account, 3, Duration::days(2));
    }
    let register = |account: &'static str| {
        let api = &api;
        let tenant = tenant.clone();
        async move {
            api.call(
                &tenant,
                "POST",
                "/accounts/laike",
                Some(json!({ "accountId": account })),
            )
            .await
        }
    };
    let (status, body) = register("7343082414312371111").await;
    assert_eq!(status, 201, "{body}");
    let report = shared::sync::fanout::schedule(&h.engine(), None, None).await.unwrap();
    assert_eq!(report.completed, 1, "the engine synced with the app token");
    // Past the previous token's grace: a token held by anyone but the newest holder is dead now.
    h.sim.advance(Duration::minutes(6));
    let (status, body) = register("7343082414312372222").await;
    assert_eq!(status, 201, "one token keeper per container: {body}");
    assert_eq!(
        h.sim.requests_to("/oauth/client_token/"),
        1,
        "one token issued for both callers"
    );
}

/// A token retired by another container (or expired early) is renewed once and the call made
/// again, by every caller: the registration check, a page of a sync, a phone retry.
#[tokio::test]
async fn a_rejected_app_token_is_renewed_once_and_the_call_retried() {
    let h = SyncHarness::embedded(&[]).await;
    let api = api(&h, Arc::new(devkit::sync_requests::RecordedSyncRequests::default()));
    let tenant = devkit::moto::unique("tenant");
    for account in ["7343082414313331111", "7343082414313332222"] {
        h.sim.seed_leads(SimSource::Laike, account, 5, Duration::days(2));
    }
    let (status, body) = api
        .call(
            &tenant,
            "POST",
            "/accounts/laike",
            Some(json!({"accountId": "7343082414313331111"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    h.sim.expire_access_tokens();
    let (status, body) = api
        .call(
            &tenant,
            "POST",
            "/accounts/laike",
            Some(json!({"accountId": "7343082414313332222"})),
        )
        .await;
    assert_eq!(status, 201, "a rejected token is renewed and the check retried: {body}");

    h.sim.expire_access_tokens();
    let report = shared::sync::fanout::schedule(&h.engine(), None, None).await.unwrap();
    assert_eq!((report.due, report.completed), (2, 2), "{report:?}");
    let (_, body) = api.call(&tenant, "GET", "/leads", None).await;
    assert_eq!(body["data"]["total"], 10, "no page was lost to the rejected token");
}
