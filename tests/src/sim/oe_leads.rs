//! Ocean Engine leads (platform-apis.md §3.3, §3.4): `tools/clue/get` and `tools/clue/life/get`,
//! read with an access token for the advertiser that granted it. The two name their page_info
//! keys differently, as the real ones do.

use super::lead_api::{date_bj, format_bj, gate, num, parse_bj};
use super::leads::{SimLead, SimSource, page_of};
use super::oceanengine::error;
use super::params::collect;
use super::{SimState, lock};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type S = Arc<SimState>;

pub fn routes() -> Router<S> {
    Router::new()
        .route("/open_api/2/tools/clue/get/", get(clue_get))
        .route("/open_api/2/tools/clue/life/get/", get(life_get).post(life_get))
}

fn success(state: &SimState, data: Value) -> Response {
    Json(json!({"code": num(state, 0), "message": "OK", "request_id": format!("{}SIMREQ", state.now().format("%Y%m%d%H%M%S%3f")), "data": data}))
        .into_response()
}

/// The advertiser the `Access-Token` header belongs to, if it is live.
fn token_account(state: &SimState, headers: &HeaderMap) -> Option<String> {
    let token = headers.get("access-token")?.to_str().ok()?;
    let now = state.now();
    state
        .data()
        .oceanengine_access
        .get(token)
        .filter(|t| t.expires_at > now)
        .map(|t| t.account.clone())
}

/// Ids from a JSON array (of numbers or strings), given as text or as a JSON value.
fn ids(raw: Option<&String>) -> Vec<String> {
    let parsed: Value = raw.and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default();
    parsed
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Query {
    account: String,
    leads: Vec<SimLead>,
    page: u32,
    size: u32,
}

/// Checks token, accounts, times and paging shared by both endpoints.
async fn read(
    state: &SimState,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
    ids_key: &str,
    max_ids: usize,
    source: SimSource,
) -> Result<Query, Box<Response>> {
    let Some(owner) = token_account(state, headers) else {
        return Err(Box::new(
            error(state, 40105, "access token is invalid or expired").into_response(),
        ));
    };
    let accounts = ids(p.get(ids_key));
    if accounts.is_empty() || accounts.len() > max_ids {
        return Err(Box::new(
            error(state, 40002, &format!("{ids_key} must hold 1 to {max_ids} ids")).into_response(),
        ));
    }
    let granted = state.data().granted.get(&owner).cloned().unwrap_or_default();
    if accounts.iter().any(|a| *a != owner && !granted.contains(a)) {
        return Err(Box::new(
            error(state, 40002, "no permission for this advertiser").into_response(),
        ));
    }
    let (Some(start), Some(end)) = (
        p.get("start_time").and_then(|t| parse_bj(t, false)),
        p.get("end_time").and_then(|t| parse_bj(t, true)),
    ) else {
        return Err(Box::new(
            error(state, 40002, "start_time and end_time are required").into_response(),
        ));
    };
    let page: u32 = p.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let size: u32 = p.get("page_size").and_then(|v| v.parse().ok()).unwrap_or(10);
    if page < 1 || !(1..=100).contains(&size) {
        return Err(Box::new(
            error(state, 40002, "page >= 1 and 1 <= page_size <= 100").into_response(),
        ));
    }
    if let Some(fault) = gate(state, source, &accounts, page, (start, end)).await {
        return Err(Box::new(fault));
    }
    let leads = state.data().leads.window_of(source, &accounts, start, end);
    Ok(Query {
        account: owner,
        leads,
        page,
        size,
    })
}

fn page_rows(state: &SimState, q: &Query, record: impl Fn(&SimLead) -> Value) -> Vec<Value> {
    let overlap = lock(&state.faults).duplicate_across_pages;
    page_of(&q.leads, q.page as usize, q.size as usize, overlap)
        .iter()
        .map(record)
        .collect()
}

async fn clue_get(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = collect(raw.as_deref(), &headers, &body);
    let q = match read(&state, &headers, &p, "advertiser_ids", 100, SimSource::OceanEngineClue).await {
        Ok(q) => q,
        Err(answer) => return *answer,
    };
    let rows = page_rows(&state, &q, |l| {
        json!({
            "clue_id": l.clue_id, "advertiser_id": q.account, "advertiser_name": "XX教育",
            "ad_id": super::reports::clue_ad(l).map_or(json!(0), |a| json!(a)), "ad_name": "计划A", "creative_id": "1730000000000001",
            "promotion_id": super::reports::clue_promotion(l).map_or(json!(0), |p| json!(p)),
            "project_id": super::reports::clue_promotion(l).map_or(String::new(), |_| super::reports::PROJECT.to_owned()),
            "module_id": "1667193548958733", "module_name": "表单1",
            "clue_type": num(&state, 0), "clue_source": num(&state, 1),
            "create_time": date_bj(l.create_time), "create_time_detail": format_bj(l.create_time),
            "name": l.name, "telephone": l.phone, "gender": num(&state, 2), "age": num(&state, 0),
            "province_name": "浙江", "city_name": "杭州", "location": "浙江+杭州", "remark": "",
            "remark_dict": {"预约时间": "周六"}, "app_name": l.app_name, "convert_status": l.convert_status,
            "store": {"store_id": num(&state, 0), "store_name": ""}, "tags": [], "system_tags": [],
        })
    });
    let total = q.leads.len() as i64;
    let pages = (total + i64::from(q.size) - 1) / i64::from(q.size);
    success(
        &state,
        json!({"list": rows, "page_info": {"page": num(&state, i64::from(q.page)),
        "page_size": num(&state, i64::from(q.size)), "total_number": num(&state, total), "total_page": num(&state, pages)}}),
    )
}

async fn life_get(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = collect(raw.as_deref(), &headers, &body);
    let q = match read(
        &state,
        &headers,
        &p,
        "local_account_ids",
        50,
        SimSource::OceanEngineLife,
    )
    .await
    {
        Ok(q) => q,
        Err(answer) => return *answer,
    };
    let rows = page_rows(&state, &q, |l| {
        json!({
            "clue_id": l.clue_id, "local_account_id": q.account, "advertiser_name": "XX美业-本地推",
            "promotion_id": super::reports::life_promotion(l), "promotion_name": "门店引流-0601",
            "project_id": super::reports::PROJECT,
            "create_time_detail": format_bj(l.create_time), "modify_time": format_bj(l.modify_time),
            "name": l.name, "telephone": l.phone, "gender": "MALE", "age": num(&state, 0),
            "province_name": "浙江省", "city_name": "杭州市", "county_name": "西湖区", "remark": "", "remark_dict": "{}",
            "flow_type": "AD", "action_type": "SHORT_VIDEO", "leads_page": "POI", "clue_type": "FORM",
            "effective_state": num(&state, 0), "convert_status": num(&state, if l.convert_status.is_empty() { -1 } else { 1 }),
            "allocation_status": "NOT_ASSIGN", "follow_life_account_name": "XX美业(西湖店)", "tags": [], "system_tags": [],
        })
    });
    let total = q.leads.len() as i64;
    let pages = (total + i64::from(q.size) - 1) / i64::from(q.size);
    success(
        &state,
        json!({"list": rows, "page_info": {"page_number": num(&state, i64::from(q.page)),
        "page_size": num(&state, i64::from(q.size)), "page_total": num(&state, pages), "total": num(&state, total)}}),
    )
}
