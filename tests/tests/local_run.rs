//! The README's local walk-through, step by step, against the local run's router: token, consent
//! link, the simulator's consent page, the callback, the frontend page, the connection list.

use devkit::local::{self, LocalOptions};
use serde_json::Value;

/// GET with the caller's token, the answer as JSON.
async fn get_json(http: &reqwest::Client, url: impl reqwest::IntoUrl, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_readme_walk_through_works_on_the_local_run() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = LocalOptions {
        host: "127.0.0.1".into(),
        port,
        jwt_secret: "walk-through".into(),
        sync_interval: Some(std::time::Duration::from_millis(500)),
    };
    let router = local::build(&options).expect("the local run's default configuration is valid");
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let token = http
        .get(format!("{base}/local/token?tenant=demo-tenant"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for provider in ["douyin", "oceanengine"] {
        let link = get_json(
            &http,
            format!("{base}/api/v1/lead/douyin/auth/url?provider={provider}&redirectUrl={base}/local/done"),
            &token,
        )
        .await;
        let auth_url = link["data"]["authUrl"].as_str().expect("authUrl").to_owned();
        assert!(auth_url.starts_with(&format!("{base}/sim/")), "{auth_url}");

        let consent = http.get(&auth_url).send().await.unwrap();
        assert_eq!(consent.status(), 302);
        let callback = consent.headers()["location"].to_str().unwrap().to_owned();
        let back = http.get(&callback).send().await.unwrap();
        assert_eq!(back.status(), 302);
        let done = back.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            done.starts_with(&format!("{base}/local/done?status=pending_confirmation&ticket=")),
            "{done}"
        );
        assert_eq!(http.get(&done).send().await.unwrap().status(), 200);
        // The frontend confirms the ticket with its user's JWT (README walk-through step 4).
        let ticket = url::Url::parse(&done)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned())
            .expect("a ticket");
        let confirmed: Value = http
            .post(format!("{base}/api/v1/lead/douyin/auth/confirm"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "ticket": ticket }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(confirmed["data"]["status"], "ACTIVE", "{confirmed}");
        assert_eq!(confirmed["data"]["provider"], provider);
    }

    let list: Value = get_json(&http, format!("{base}/local/connections"), &token).await;
    let providers: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.len(), 2);
    assert!(providers.contains(&"douyin") && providers.contains(&"oceanengine"));
    assert!(!list.to_string().contains("act."), "no token is listed");

    // The scheduler syncs the new connections on its own: the simulator's demo leads arrive.
    let expected = 60 + 150 + 80;
    let mut total = 0;
    for _ in 0..60 {
        let leads: Value = get_json(&http, format!("{base}/local/leads"), &token).await;
        total = leads["data"]["total"].as_u64().unwrap();
        if total == expected {
            let text = leads.to_string();
            assert!(text.contains("****"), "phones are masked");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(total, expected, "the scheduler stored every demo lead");

    // The outbox: what lead-events would put on the bus, from the embedded stores' change feed.
    let events: Value = get_json(&http, format!("{base}/local/events"), &token).await;
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "LeadCreated").count(), expected as usize);
    assert_eq!(
        kinds.iter().filter(|k| **k == "ConnectionStatusChanged").count(),
        2,
        "both connections connected; sync bookkeeping says nothing"
    );
    assert!(!events.to_string().contains("\"raw\""), "no raw record leaves");

    // The lead API serves them, scoped like API Gateway would.
    let page = get_json(
        &http,
        format!("{base}/api/v1/lead/douyin/leads?size=5&source=oceanengine_clue"),
        &token,
    )
    .await;
    assert_eq!(page["data"]["total"], 150, "{page}");
    assert_eq!(page["data"]["records"].as_array().unwrap().len(), 5);

    // 6. An export job of the same filter, and its file behind the download link.
    let job: Value = http
        .post(format!(
            "{base}/api/v1/lead/douyin/leads/exports?source=oceanengine_clue"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let export_id = job["data"]["exportId"].as_str().expect("an export id").to_owned();
    let mut link = None;
    for _ in 0..40 {
        let status: Value = get_json(
            &http,
            format!("{base}/api/v1/lead/douyin/leads/exports/{export_id}"),
            &token,
        )
        .await;
        if let Some(url) = status["data"]["downloadUrl"].as_str() {
            assert_eq!(status["data"]["rows"], 150, "{status}");
            link = Some(url.to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let csv = http
        .get(link.expect("the export finished"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with('\u{feff}') && csv.lines().count() == 151,
        "a BOM, the header and 150 rows"
    );

    // 8. Cost per lead of the demo Ocean Engine account: its spend was pulled with its leads.
    let today = shared::spend::sync::beijing_day(chrono::Utc::now());
    let cost = get_json(
        &http,
        format!(
            "{base}/api/v1/lead/douyin/analytics/cost?startDate={}&endDate={today}&groupBy=source",
            today - chrono::Duration::days(29)
        ),
        &token,
    )
    .await;
    let clue = cost["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "oceanengine_clue")
        .cloned()
        .unwrap_or_else(|| panic!("a cost row for the demo ad leads: {cost}"));
    assert!(
        clue["spend"].as_str().unwrap() != "0.00" && clue["costPerLead"].is_string(),
        "{clue}"
    );

    // 9. A webhook on the local run's own receiver: a status move arrives there, signed.
    let hook: Value = http
        .post(format!("{base}/api/v1/lead/douyin/webhooks"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": format!("{base}/local/receiver"), "events": ["LeadStatusChanged"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = hook["data"]["secret"]
        .as_str()
        .expect("the secret, shown once")
        .to_owned();
    let lead = &page["data"]["records"][0];
    let moved = http
        .patch(format!(
            "{base}/api/v1/lead/douyin/leads/{}",
            lead["leadId"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"status": "CONTACTED", "version": lead["version"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let mut received = Value::Null;
    for _ in 0..40 {
        received = get_json(&http, format!("{base}/local/received"), &token).await;
        if !received["data"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let delivery = &received["data"][0];
    assert_eq!(delivery["eventType"], "LeadStatusChanged", "{received}");
    assert!(shared::outbound::signing::verify_webhook(
        &secret,
        delivery["signature"].as_str().unwrap(),
        delivery["body"].as_str().unwrap().as_bytes()
    ));

    // 10. A merchant without API access imports its back office's export: one row in, one
    // refused with its row, column and reason.
    let csv = "客资ID,客户姓名,客户电话,留资时间\n7301234567890123456,张先生,138 0013 8000,2026-11-01 09:30\n,李女士,139****5678,2026-11-01 10:00\n";
    let made: Value = http
        .post(format!("{base}/api/v1/lead/douyin/imports"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"fileName": "客资.csv", "source": "laike"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let import_id = made["data"]["importId"].as_str().expect("importId").to_owned();
    let upload_url = made["data"]["uploadUrl"].as_str().unwrap();
    assert!(
        upload_url.starts_with(&format!("{base}/local/uploads/")),
        "{upload_url}"
    );
    let put = http.put(upload_url).body(csv).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let started = http
        .post(format!("{base}/api/v1/lead/douyin/imports/{import_id}/start"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let mut import = Value::Null;
    for _ in 0..40 {
        import = get_json(&http, format!("{base}/api/v1/lead/douyin/imports/{import_id}"), &token).await;
        if import["data"]["status"] == "DONE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(import["data"]["counts"]["created"], 1, "{import}");
    assert_eq!(import["data"]["counts"]["rejected"], 1, "{import}");
    let refused_row = &import["data"]["rejectedRows"][0];
    assert_eq!(
        (refused_row["row"].as_u64(), refused_row["column"].as_str()),
        (Some(3), Some("客户电话"))
    );
    // An imported lead is a lead like any other: its LeadCreated goes out.
    let events: Value = get_json(&http, format!("{base}/local/events"), &token).await;
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "LeadCreated" && e["lead"]["sourceLeadId"] == "7301234567890123456"),
        "the imported lead's LeadCreated"
    );

    let narrow = http
        .get(format!(
            "{base}/local/token?tenant=demo-tenant&scopes=lead:douyin:auth:get_url"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = http
        .get(format!("{base}/api/v1/lead/douyin/leads"))
        .bearer_auth(&narrow)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "the local token layer enforces scopes");

    let other: Value = http
        .get(format!("{base}/local/connections"))
        .bearer_auth(
            http.get(format!("{base}/local/token?tenant=someone-else"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["data"], serde_json::json!([]), "another tenant sees none of it");
}
