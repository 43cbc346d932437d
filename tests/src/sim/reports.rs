//! Ocean Engine's daily reports (platform-apis.md §3.5), consistent with the leads the simulator
//! serves: each lead belongs to one of four ads (1.0) or promotions (2.0, 本地推) of its account,
//! and every (entity, Beijing day) with leads spent ¥37.50 per lead plus a fixed part of up to
//! ¥19.99 derived from the entity and day. The report's conversions are the leads, plus the
//! re-attribution switch (`SimHandle::reattribute`). Money goes out as yuan floats (1.0, 本地推)
//! or strings (2.0), as the real ones do.

use super::leads::{SimLead, SimSource};
use super::oceanengine::error;
use super::{SimState, lock};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type S = Arc<SimState>;

pub const PROJECT: &str = "7380000000000000001";
const ADS: u64 = 1_730_000_000_000_000;
const PROMOTIONS: u64 = 7_381_234_567_000_000_000;
const LIFE_PROMOTIONS: u64 = 7_381_234_567_100_000_000;

fn entity(lead: &SimLead) -> u64 {
    let h = Sha256::digest(lead.clue_id.as_bytes());
    u64::from(h[0] % 4)
}

/// Even entities are 1.0 ads, odd ones 2.0 promotions.
pub fn clue_ad(lead: &SimLead) -> Option<String> {
    let e = entity(lead);
    e.is_multiple_of(2).then(|| (ADS + e).to_string())
}

pub fn clue_promotion(lead: &SimLead) -> Option<String> {
    let e = entity(lead);
    (!e.is_multiple_of(2)).then(|| (PROMOTIONS + e).to_string())
}

pub fn life_promotion(lead: &SimLead) -> String {
    (LIFE_PROMOTIONS + entity(lead)).to_string()
}

pub(crate) fn routes() -> Router<S> {
    Router::new()
        .route("/open_api/2/report/ad/get/", get(ad_report))
        .route("/open_api/v3.0/report/custom/get/", get(custom_report))
        .route("/open_api/v3.0/local/report/promotion/get/", get(local_report))
}

/// Spend of an (entity, day) with `leads` leads, in fen.
pub fn spend_fen(entity: &str, day: NaiveDate, leads: i64) -> i64 {
    let h = Sha256::digest(format!("{entity}\0{day}").as_bytes());
    leads * 3750 + i64::from(u16::from_le_bytes([h[0], h[1]]) % 2000)
}

/// One (entity, day)'s figures: leads, spend in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSpend {
    pub entity: String,
    pub day: NaiveDate,
    pub leads: i64,
    pub spend_fen: i64,
}

fn beijing_day(lead: &SimLead) -> NaiveDate {
    (lead.create_time + Duration::hours(8)).date_naive()
}

/// What the report of `source` says for `account` over `[from, to]`, by (entity, day).
pub fn figures(
    leads: &[SimLead],
    attribute: impl Fn(&SimLead) -> Option<String>,
    (from, to): (NaiveDate, NaiveDate),
) -> Vec<SimSpend> {
    let mut by: BTreeMap<(String, NaiveDate), i64> = BTreeMap::new();
    for lead in leads {
        let day = beijing_day(lead);
        if day < from || day > to {
            continue;
        }
        if let Some(e) = attribute(lead) {
            *by.entry((e, day)).or_default() += 1;
        }
    }
    by.into_iter()
        .map(|((entity, day), leads)| SimSpend {
            spend_fen: spend_fen(&entity, day, leads),
            entity,
            day,
            leads,
        })
        .collect()
}

/// `n` promotions spending every day of the span (no leads needed).
fn dense_figures(n: u64, (from, to): (NaiveDate, NaiveDate)) -> Vec<SimSpend> {
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        for i in 0..n {
            let entity = (LIFE_PROMOTIONS + 100 + i).to_string();
            out.push(SimSpend {
                spend_fen: spend_fen(&entity, day, 1),
                entity,
                day,
                leads: 1,
            });
        }
        day += Duration::days(1);
    }
    out
}

fn query(raw: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn token_ok(state: &SimState, headers: &HeaderMap) -> bool {
    let Some(token) = headers.get("access-token").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let now = state.now();
    state
        .data()
        .oceanengine_access
        .get(token)
        .is_some_and(|t| t.expires_at > now)
}

fn day(q: &HashMap<String, String>, key: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(q.get(key)?, "%Y-%m-%d").ok()
}

struct Asked {
    account: String,
    span: (NaiveDate, NaiveDate),
    page: usize,
    size: usize,
}

fn asked(
    state: &SimState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    keys: (&str, &str, &str),
    sizes: &[usize],
) -> Result<Asked, Box<Response>> {
    if !token_ok(state, headers) {
        return Err(Box::new(
            error(state, 40105, "access token is invalid or expired").into_response(),
        ));
    }
    let (account_key, from_key, to_key) = keys;
    let Some(account) = q.get(account_key).filter(|a| !a.is_empty()).cloned() else {
        return Err(Box::new(
            error(state, 40002, "the account id is required").into_response(),
        ));
    };
    let (Some(from), Some(to)) = (day(q, from_key), day(q, to_key)) else {
        return Err(Box::new(
            error(state, 40002, "dates must be YYYY-MM-DD").into_response(),
        ));
    };
    if to < from || (to - from).num_days() >= 30 && account_key == "advertiser_id" && from_key == "start_date" {
        return Err(Box::new(
            error(state, 40002, "the span may be at most 30 days").into_response(),
        ));
    }
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1usize).max(1);
    let size = q.get("page_size").and_then(|p| p.parse().ok()).unwrap_or(20usize);
    if !sizes.is_empty() && !sizes.contains(&size) || size == 0 || size > 1000 {
        return Err(Box::new(error(state, 40002, "page_size is invalid").into_response()));
    }
    Ok(Asked {
        account,
        span: (from, to),
        page,
        size,
    })
}

fn leads_of(state: &SimState, source: SimSource, account: &str) -> Vec<SimLead> {
    state.data().leads.all(source, account)
}

fn page_info(a: &Asked, total: usize) -> Value {
    json!({"page": a.page, "page_size": a.size, "total_number": total, "total_page": total.div_ceil(a.size).max(1)})
}

fn bonus(state: &SimState) -> i64 {
    lock(&state.faults).reattributed
}

fn yuan(fen: i64) -> f64 {
    fen as f64 / 100.0
}

fn ok(data: Value) -> Response {
    Json(json!({"code": 0, "message": "OK", "request_id": "SIMREPORT", "data": data})).into_response()
}

async fn ad_report(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Response {
    let q = query(raw);
    let a = match asked(&state, &headers, &q, ("advertiser_id", "start_date", "end_date"), &[]) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let rows = figures(
        &leads_of(&state, SimSource::OceanEngineClue, &a.account),
        clue_ad,
        a.span,
    );
    let extra = bonus(&state);
    let list: Vec<Value> = rows
        .iter()
        .skip((a.page - 1) * a.size)
        .take(a.size)
        .map(|r| {
            json!({
                "stat_datetime": format!("{} 00:00:00", r.day), "advertiser_id": a.account.parse::<u64>().unwrap_or(0),
                "campaign_id": 1_720_000_000_000_000u64, "ad_id": r.entity.parse::<u64>().unwrap_or(0),
                "ad_name": format!("计划{}", &r.entity[r.entity.len() - 1..]), "cost": yuan(r.spend_fen),
                "show": r.leads * 500, "click": r.leads * 20, "convert": r.leads + extra,
            })
        })
        .collect();
    ok(json!({"list": list, "page_info": page_info(&a, rows.len())}))
}

async fn custom_report(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Response {
    let q = query(raw);
    let a = match asked(&state, &headers, &q, ("advertiser_id", "start_time", "end_time"), &[]) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let rows = figures(
        &leads_of(&state, SimSource::OceanEngineClue, &a.account),
        clue_promotion,
        a.span,
    );
    let extra = bonus(&state);
    let list: Vec<Value> = rows
        .iter()
        .skip((a.page - 1) * a.size)
        .take(a.size)
        .map(|r| {
            json!({
                "dimensions": {"stat_time_day": r.day.to_string(), "cdp_project_id": PROJECT, "cdp_promotion_id": r.entity},
                "metrics": {"stat_cost": format!("{:.2}", yuan(r.spend_fen)), "show_cnt": (r.leads * 500).to_string(),
                            "click_cnt": (r.leads * 20).to_string(), "convert_cnt": (r.leads + extra).to_string()},
            })
        })
        .collect();
    ok(json!({"rows": list, "total_metrics": {}, "page_info": page_info(&a, rows.len())}))
}

async fn local_report(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Response {
    let q = query(raw);
    let a = match asked(
        &state,
        &headers,
        &q,
        ("local_account_id", "start_date", "end_date"),
        &[10, 20, 50, 100],
    ) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let dense = lock(&state.faults).dense_promotions;
    let rows = match dense {
        Some(n) => dense_figures(n, a.span),
        None => figures(
            &leads_of(&state, SimSource::OceanEngineLife, &a.account),
            |l| Some(life_promotion(l)),
            a.span,
        ),
    };
    let extra = bonus(&state);
    let list: Vec<Value> = rows
        .iter()
        .skip((a.page - 1) * a.size)
        .take(a.size)
        .map(|r| {
            json!({
                "local_account_id": a.account.parse::<u64>().unwrap_or(0), "project_id": PROJECT.parse::<u64>().unwrap_or(0),
                "project_name": "项目A", "promotion_id": r.entity.parse::<u64>().unwrap_or(0),
                "promotion_name": format!("门店引流-{}", &r.entity[r.entity.len() - 1..]), "stat_time_day": r.day.to_string(),
                "stat_cost": yuan(r.spend_fen), "show_cnt": r.leads * 500, "click_cnt": r.leads * 20,
                "convert_cnt": r.leads + extra,
            })
        })
        .collect();
    ok(json!({"promotion_list": list, "page_info": page_info(&a, rows.len())}))
}

impl super::SimHandle {
    /// 本地推 reports show `n` promotions spending every day (a large account, for benchmarks).
    pub fn dense_promotions(&self, n: u64) {
        lock(&self.0.faults).dense_promotions = Some(n);
    }

    /// The platform re-attributes conversions: every report row counts `extra` more from now on.
    pub fn reattribute(&self, extra: i64) {
        lock(&self.0.faults).reattributed = extra;
    }

    /// What the reports say for (source, account) over `[from, to]`, by (entity, day).
    pub fn spend(&self, source: SimSource, account: &str, span: (NaiveDate, NaiveDate)) -> Vec<SimSpend> {
        let leads = self.leads(source, account);
        match source {
            SimSource::OceanEngineLife => figures(&leads, |l| Some(life_promotion(l)), span),
            _ => {
                let mut all = figures(&leads, clue_ad, span);
                all.extend(figures(&leads, clue_promotion, span));
                all
            }
        }
    }
}
