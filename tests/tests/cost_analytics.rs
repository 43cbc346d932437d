//! Cost per lead end to end: two Ocean Engine connections (classic and 2.0 ad leads, 本地推
//! leads) synced with their spend from the simulator into DynamoDB Local, some leads worked
//! through the API, then `GET /analytics/cost` for every groupBy checked against a hand
//! computation over the simulator's spend and the stored leads; the CSV, the scope and tenant
//! isolation too.

use chrono::{Duration, NaiveDate, Utc};
use devkit::app;
use devkit::local_auth::LocalJwt;
use devkit::sim::SimSource;
use devkit::sim::reports::PROJECT;
use devkit::sync_fixtures::{connected, tenant};
use devkit::sync_harness::SyncHarness;
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::lead::{LeadSource, LeadStatus, StoredLead};
use shared::spend::sync::beijing_day;
use std::collections::BTreeMap;
use std::sync::Arc;

const VIEW: &str = "lead:douyin:analytics:view";
const EDIT: &str = "lead:douyin:leads:edit";
const U: &str = "unattributed";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Expected {
    spend_fen: i64,
    leads: i64,
    contacted: i64,
    converted: i64,
    invalid: i64,
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

#[tokio::test]
async fn every_grouping_matches_a_hand_computation_over_the_platforms_data() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = tenant();
    let (clue, clue_account) = connected(&h, &t, SimSource::OceanEngineClue, 240).await;
    let (life, life_account) = connected(&h, &t, SimSource::OceanEngineLife, 120).await;
    for c in [&clue, &life] {
        let task = h.sync(&h.engine(), c).await;
        assert_eq!(task.status, shared::task::TaskStatus::Completed, "{:?}", task.error);
    }
    let jwt = LocalJwt::new("cost-test", &h.config.tenant_claim);
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(&h.config, &h.stores, requests, Arc::new(SystemClock), jwt.clone());
    let token = jwt.mint(t.as_str(), &[VIEW, EDIT], Duration::hours(1));

    // Sales works some leads: status moves move the counters.
    let mut leads = h.stores.leads.list_all(&t).await.unwrap();
    let moves = [LeadStatus::Contacted, LeadStatus::Converted, LeadStatus::Invalid];
    for (i, lead) in leads.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let to = moves[i % 3];
        let path = format!("/api/v1/lead/douyin/leads/{}", lead.lead_id);
        let mut body = json!({"status": to.as_str(), "version": lead.version});
        if to == LeadStatus::Converted {
            body["status"] = json!("CONTACTED");
            let (s, _) = app::call(&router, &token, "PATCH", &path, Some(body)).await;
            assert_eq!(s, 200);
            body = json!({"status": "CONVERTED", "version": lead.version + 1});
        }
        let (s, answer) = app::call(&router, &token, "PATCH", &path, Some(body)).await;
        assert_eq!(s, 200, "{answer}");
    }
    leads = h.stores.leads.list_all(&t).await.unwrap();

    let today = beijing_day(Utc::now());
    let (from, to) = (today - Duration::days(29), today);
    let clue_spend = h.sim.spend(SimSource::OceanEngineClue, &clue_account, (from, to));
    let life_spend = h.sim.spend(SimSource::OceanEngineLife, &life_account, (from, to));
    for group_by in ["day", "source", "connection", "campaign", "project", "promotion", "ad"] {
        let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
        let spend_rows = clue_spend
            .iter()
            .map(|s| (&clue, LeadSource::OceanEngineClue, s, s.entity.starts_with("173")))
            .chain(
                life_spend
                    .iter()
                    .map(|s| (&life, LeadSource::OceanEngineLife, s, false)),
            );
        for (connection, source, s, is_ad) in spend_rows {
            let key = match group_by {
                "day" => s.day.to_string(),
                "source" => source.as_str().to_owned(),
                "connection" => connection.id.to_string(),
                "campaign" if is_ad => "1720000000000000".to_owned(),
                "project" if !is_ad => PROJECT.to_owned(),
                "promotion" if !is_ad => s.entity.clone(),
                "ad" if is_ad => s.entity.clone(),
                _ => U.to_owned(),
            };
            expected.entry(key).or_default().spend_fen += s.spend_fen;
        }
        for lead in leads.iter().filter(|l| in_range(l, from, to)) {
            let f = &lead.fields;
            let key = match group_by {
                "day" => beijing_day(lead.sort_time()).to_string(),
                "source" => lead.source.as_str().to_owned(),
                "connection" => lead.connection_id.to_string(),
                "campaign" => f.campaign_id.clone().unwrap_or_else(|| U.into()),
                "project" => f
                    .promotion_id
                    .as_ref()
                    .map_or_else(|| U.to_owned(), |_| PROJECT.to_owned()),
                "promotion" => f.promotion_id.clone().unwrap_or_else(|| U.into()),
                _ => f.ad_id.clone().unwrap_or_else(|| U.into()),
            };
            let e = expected.entry(key).or_default();
            e.leads += 1;
            match lead.status {
                LeadStatus::Contacted => e.contacted += 1,
                LeadStatus::Converted => e.converted += 1,
                LeadStatus::Invalid => e.invalid += 1,
                LeadStatus::New => {}
            }
        }
        let path = format!("/api/v1/lead/douyin/analytics/cost?startDate={from}&endDate={to}&groupBy={group_by}");
        let (status, answer) = app::call(&router, &token, "GET", &path, None).await;
        assert_eq!(status, 200, "{answer}");
        let got: BTreeMap<String, Expected> = answer["data"]["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_owned(), figures(r)))
            .collect();
        assert_eq!(got, expected, "groupBy={group_by}");
        let total: i64 = expected.values().map(|e| e.spend_fen).sum();
        assert_eq!(answer["data"]["totals"]["spend"], yuan(total), "groupBy={group_by}");
        assert_eq!(
            answer["data"]["totals"]["leads"],
            leads.iter().filter(|l| in_range(l, from, to)).count()
        );
    }

    // One promotion's ratios, by hand.
    let path = format!(
        "/api/v1/lead/douyin/analytics/cost?startDate={from}&endDate={to}&groupBy=promotion&source=oceanengine_life"
    );
    let (_, answer) = app::call(&router, &token, "GET", &path, None).await;
    let row = &answer["data"]["records"][0];
    let (fen, n) = (figures(row).spend_fen, row["leads"].as_i64().unwrap());
    assert_eq!(row["costPerLead"], yuan((fen * 2 + n) / (n * 2)));
    if row["converted"] == 0 {
        assert!(row["costPerConversion"].is_null(), "no conversions: null");
    }
    assert!(
        answer["data"]["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["key"] != U || r["leads"] == 0)
    );

    // CSV: a BOM, the header, a row per group and the totals.
    let csv_path = format!("/api/v1/lead/douyin/analytics/cost.csv?startDate={from}&endDate={to}&groupBy=source");
    let request = axum::http::Request::builder()
        .uri(csv_path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router.clone(), request).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.starts_with("\u{feff}key,name,spend,"), "{text}");
    assert_eq!(text.lines().count(), 1 + 2 + 1, "header, two sources, totals:\n{text}");

    // Scope and tenancy.
    let other = jwt.mint(tenant().as_str(), &[VIEW], Duration::hours(1));
    let (_, empty) = app::call(
        &router,
        &other,
        "GET",
        &format!("/api/v1/lead/douyin/analytics/cost?startDate={from}&endDate={to}&groupBy=day"),
        None,
    )
    .await;
    assert_eq!(empty["data"]["records"], json!([]), "another tenant sees nothing");
    let narrow = jwt.mint(t.as_str(), &["lead:douyin:leads:view"], Duration::hours(1));
    let (status, _) = app::call(&router, &narrow, "GET", &path, None).await;
    assert_eq!(status, 403);
    for bad in ["groupBy=week", "startDate=2026-13-01", "endDate=2020-01-01", "extra=1"] {
        let path = format!("/api/v1/lead/douyin/analytics/cost?startDate={from}&endDate={to}&groupBy=day&{bad}");
        let (status, answer) = app::call(&router, &token, "GET", &path, None).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
}

fn in_range(lead: &StoredLead, from: NaiveDate, to: NaiveDate) -> bool {
    let d = beijing_day(lead.sort_time());
    d >= from && d <= to
}

fn figures(r: &Value) -> Expected {
    let spend = r["spend"].as_str().unwrap();
    let (y, f) = spend.split_once('.').unwrap();
    Expected {
        spend_fen: y.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap(),
        leads: r["leads"].as_i64().unwrap(),
        contacted: r["contacted"].as_i64().unwrap(),
        converted: r["converted"].as_i64().unwrap(),
        invalid: r["invalid"].as_i64().unwrap(),
    }
}
