//! The three status write-back endpoints (platform-apis.md §9.1, §9.2), recording what they
//! accept. They check what the fact sheet says each checks: a live token, the required fields,
//! the states each one knows, 本地推's reason for INVALID_EVENT, Feiyu's signature.

use super::oceanengine::error;
use super::{SimState, lock};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;

type S = Arc<SimState>;

pub const CLUE: &str = "/open_api/2/tools/clue/callback/";
pub const LIFE: &str = "/open_api/2/tools/clue/life/callback/";
pub const FEIYU: &str = "/crm/v2/openapi/clue/callback/";

const CLUE_STATES: &[i64] = &[194, 195, 196, 527, 285, 10000];
const LIFE_STATES: &[&str] = &[
    "CLUE_CONFIRM",
    "CLUE_HIGH_INTENTION",
    "ARRIVAL",
    "CONVERSION_CLASS",
    "INVALID_EVENT",
];

/// One write-back the simulator accepted.
#[derive(Debug, Clone)]
pub struct Callback {
    pub path: &'static str,
    pub body: Value,
}

pub(crate) fn routes() -> Router<S> {
    Router::new()
        .route(CLUE, post(clue))
        .route(LIFE, post(life))
        .route(FEIYU, post(feiyu))
}

fn live_token(state: &SimState, headers: &HeaderMap) -> bool {
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

fn ok(state: &SimState, path: &'static str, body: Value) -> Response {
    state.data().callbacks.push(Callback { path, body });
    Json(json!({"code": 0, "message": "OK", "request_id": "SIMWB", "data": {}})).into_response()
}

/// An id array whose entries are numbers or digit strings (the SDKs disagree).
fn ids_ok(v: &Value) -> bool {
    v.as_array().is_some_and(|a| {
        !a.is_empty()
            && a.iter().all(|id| match id {
                Value::Number(n) => n.is_u64(),
                Value::String(s) => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
                _ => false,
            })
    })
}

async fn clue(State(state): State<S>, headers: HeaderMap, body: Bytes) -> Response {
    if !live_token(&state, &headers) {
        return error(&state, 40105, "access token is invalid or expired").into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(&state, 40000, "invalid json").into_response();
    };
    if !ids_ok(&body["advertiser_ids"]) || body["clue_id"].as_str().is_none_or(str::is_empty) {
        return error(&state, 40002, "advertiser_ids and clue_id are required").into_response();
    }
    if body["source"].as_i64().is_none() {
        return error(&state, 40002, "source is required").into_response();
    }
    if !body["clue_convert_state"]
        .as_i64()
        .is_some_and(|s| CLUE_STATES.contains(&s))
    {
        return error(&state, 40002, "clue_convert_state is invalid").into_response();
    }
    ok(&state, CLUE, body)
}

async fn life(State(state): State<S>, headers: HeaderMap, body: Bytes) -> Response {
    if !live_token(&state, &headers) {
        return error(&state, 40105, "access token is invalid or expired").into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(&state, 40000, "invalid json").into_response();
    };
    if !ids_ok(&body["local_account_ids"]) || body["clue_id"].as_str().is_none_or(str::is_empty) {
        return error(&state, 40002, "local_account_ids and clue_id are required").into_response();
    }
    let Some(to) = body["clue_convert_state"].as_str().filter(|s| LIFE_STATES.contains(s)) else {
        return error(&state, 40002, "clue_convert_state is invalid").into_response();
    };
    if to == "INVALID_EVENT" && body["event_data"]["reason_code"].as_str().is_none_or(str::is_empty) {
        return error(&state, 40002, "event_data.reason_code is required for INVALID_EVENT").into_response();
    }
    ok(&state, LIFE, body)
}

fn feiyu_signature(key: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{FEIYU} {timestamp}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    base64::engine::general_purpose::STANDARD.encode(hex)
}

async fn feiyu(State(state): State<S>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let fail = |msg: &str| Json(json!({"status": -1, "msg": msg})).into_response();
    let Some(account) = state.data().feiyu.get(&header("access-token")).cloned() else {
        return fail("access token is invalid");
    };
    let timestamp = header("timestamp");
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (state.now().timestamp() - t).abs() <= 300);
    if !fresh || header("signature") != feiyu_signature(&account.signature_key, &timestamp) {
        return fail("signature error");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return fail("missing params");
    };
    if body["data"]["clue_id"].as_str().is_none_or(str::is_empty) {
        return fail("missing params");
    }
    if !body["data"]["clue_convert_state"]
        .as_i64()
        .is_some_and(|s| (1..=4).contains(&s))
    {
        return fail("clue_convert_state error");
    }
    state.data().callbacks.push(Callback { path: FEIYU, body });
    Json(json!({"status": "success", "msg": ""})).into_response()
}

impl super::SimHandle {
    /// The write-backs accepted so far, oldest first.
    pub fn callbacks(&self) -> Vec<Callback> {
        lock(&self.0.data).callbacks.clone()
    }
}
