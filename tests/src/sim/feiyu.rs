//! Feiyu CRM (platform-apis.md §4.1): `pull-clues`, signed with HMAC-SHA256 over the path, the
//! two times exactly as sent, a space and the timestamp; base64 of the lowercase hex digest.

use super::lead_api::{gate, num, parse_bj};
use super::leads::{SimSource, page_of};
use super::{SimState, lock};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;

type S = Arc<SimState>;

pub const PATH: &str = "/crm/v2/openapi/pull-clues/";

pub fn routes() -> Router<S> {
    Router::new().route(PATH, get(pull_clues))
}

/// A registered Feiyu account: its console token and signature key.
#[derive(Debug, Clone)]
pub struct FeiyuAccount {
    pub advertiser_id: String,
    pub signature_key: String,
}

pub fn signature(key: &str, start: &str, end: &str, timestamp: &str) -> String {
    let data = format!("{PATH}?start_time={start}&end_time={end} {timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(data.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    base64::engine::general_purpose::STANDARD.encode(hex)
}

pub fn fail(msg: &str) -> Response {
    Json(json!({"status": "fail", "msg": msg, "count": 0, "data": []})).into_response()
}

async fn pull_clues(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let Some(account) = state.data().feiyu.get(&header("access-token")).cloned() else {
        return fail("access token is invalid");
    };
    let (start, end) = (
        q.get("start_time").cloned().unwrap_or_default(),
        q.get("end_time").cloned().unwrap_or_default(),
    );
    let timestamp = header("timestamp");
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (state.now().timestamp() - t).abs() <= 300);
    if !fresh || header("signature") != signature(&account.signature_key, &start, &end, &timestamp) {
        return fail("signature error");
    }
    let (Some(from), Some(to)) = (parse_bj(&start, false), parse_bj(&end, true)) else {
        return fail("start_time and end_time are invalid");
    };
    let page: u32 = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let size: u32 = q
        .get("page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let accounts = std::slice::from_ref(&account.advertiser_id);
    if let Some(fault) = gate(&state, SimSource::Feiyu, accounts, page, (from, to)).await {
        return fault;
    }
    let all = state
        .data()
        .leads
        .window(SimSource::Feiyu, &account.advertiser_id, from, to);
    let overlap = lock(&state.faults).duplicate_across_pages;
    let rows: Vec<Value> = page_of(&all, page as usize, size as usize, overlap)
        .iter()
        .map(|l| {
            json!({
                "clue_id": l.clue_id, "adv_id": account.advertiser_id, "adv_name": "XX招商",
                "ad_plan_id": "1667816235431981", "ad_plan_name": "oCPM_05_27", "cid": num(&state, 0),
                "module_id": "1667193548958733", "module_name": "表单1", "clue_type": num(&state, 1),
                "clue_source": num(&state, 1), "create_time": l.create_time.timestamp().to_string(), "date": null,
                "name": l.name, "telphone": l.phone, "gender": num(&state, 0), "age": num(&state, 0),
                "location": "江苏+镇江", "remark": "", "remark_dict": {}, "appname": l.app_name,
                "convert_status": l.convert_status, "store": {"store_id": num(&state, 0), "store_name": ""},
            })
        })
        .collect();
    Json(json!({"status": "success", "count": num(&state, all.len() as i64), "data": rows})).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_the_fact_sheet_vector() {
        assert_eq!(
            super::signature("ABCDEFGHIJKLMNOP", "2024-06-01", "2024-06-02", "1717200000"),
            "MjQwZGM1YjViMDVmZjFmZWU1OTJlYmNmNDE3Y2NiY2ZkNGJhMGI2NDEwY2ExNWRjMGFhYWQ4MGMwZmI2NjAyNA=="
        );
    }
}
