//! 抖音来客 (platform-apis.md §2.2, §2.3): the clue query with the app client_token, phones as
//! local-AES ciphertexts (or `Enc.` ones), and the batch decrypt endpoint.

use super::lead_api::{format_bj, gate, num, openapi_error, openapi_ok, parse_bj};
use super::leads::{SimLead, SimSource, page_of};
use super::params::collect;
use super::{SimState, lock};
use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::sync::Arc;

type S = Arc<SimState>;

pub fn routes() -> Router<S> {
    Router::new()
        .route("/goodlife/v1/open_api/crm/clue/query/", get(clue_query))
        .route(
            "/goodlife/v1/open/common_biz/crypto/decrypt/batch/",
            post(decrypt_batch),
        )
}

fn client_token_ok(state: &SimState, headers: &HeaderMap) -> bool {
    headers
        .get("access-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| super::douyin::client_token_valid(state, t))
}

/// AES-256-CBC with the 32-character app secret as key and its right half as IV, base64.
fn encrypt_local(secret: &str, phone: &str) -> String {
    let key: [u8; 32] = secret
        .as_bytes()
        .try_into()
        .expect("the simulated app secret has 32 bytes");
    let ciphertext = cbc::Encryptor::<aes::Aes256>::new(&key.into(), key[16..].into())
        .encrypt_padded_vec_mut::<Pkcs7>(phone.as_bytes());
    STANDARD.encode(ciphertext)
}

/// An opaque ciphertext only the decrypt endpoint opens.
fn encrypt_online(phone: &str) -> String {
    let reversed: String = phone.chars().rev().collect();
    format!("Enc.{}", STANDARD.encode(reversed))
}

fn decrypt_online(cipher: &str) -> Option<String> {
    let bytes = STANDARD.decode(cipher.strip_prefix("Enc.")?).ok()?;
    Some(String::from_utf8(bytes).ok()?.chars().rev().collect())
}

fn remark(state: &SimState, lead: &SimLead) -> String {
    match &lock(&state.faults).bloated {
        Some((id, size)) if *id == lead.clue_id => "备".repeat(size / 3),
        _ => String::new(),
    }
}

fn record(state: &SimState, account: &str, lead: &SimLead) -> Value {
    let telephone = if lock(&state.faults).enc_phones {
        encrypt_online(&lead.phone)
    } else {
        encrypt_local(&state.app.douyin_client_secret, &lead.phone)
    };
    json!({
        "clue_id": lead.clue_id, "req_id": format!("REQ{}", lead.clue_id),
        "create_time_detail": format_bj(lead.create_time), "modify_time": format_bj(lead.modify_time),
        "name": lead.name, "telephone": telephone, "weixin": "", "gender": num(state, 1), "age": num(state, 0),
        "province_name": "浙江省", "city_name": "杭州市", "county_name": "西湖区", "remark": remark(state, lead),
        "remark_dict": "{\"预约时间\":\"周六\"}", "clue_type": num(state, 1), "flow_type": num(state, 1),
        "effective_state": num(state, if lead.convert_status.is_empty() { 0 } else { 1 }),
        "convert_status": num(state, if lead.convert_status.is_empty() { 0 } else { 1 }),
        "advertiser_id": "1769665409798152", "ad_id": num(state, 0), "promotion_id": 7381234567000000000u64,
        "root_life_account_id": account, "follow_life_account_name": "XX美业(西湖店)", "tags": [], "system_tags": [],
    })
}

async fn clue_query(State(state): State<S>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = collect(q.as_deref(), &headers, &body);
    if !client_token_ok(&state, &headers) {
        return openapi_error(&state, 28001008, "access token is invalid or expired");
    }
    let account = p.get("account_id").cloned().unwrap_or_default();
    if !state.data().leads.has(SimSource::Laike, &account) {
        return openapi_error(&state, 2100007, "the merchant has not authorised this app");
    }
    let (Some(start), Some(end)) = (
        p.get("start_time").and_then(|t| parse_bj(t, false)),
        p.get("end_time").and_then(|t| parse_bj(t, true)),
    ) else {
        return openapi_error(&state, 2100005, "start_time and end_time must be YYYY-MM-DD HH:MM:SS");
    };
    if end > state.now() - chrono::Duration::minutes(10) {
        return openapi_error(&state, 2100005, "end_time must be at least 10 minutes before now");
    }
    let page: u32 = p.get("page").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size: u32 = p.get("page_size").and_then(|v| v.parse().ok()).unwrap_or(0);
    if page < 1 || !(1..=100).contains(&size) {
        return openapi_error(&state, 2100005, "Parameter error: page >= 1, 1 <= page_size <= 100");
    }
    if let Some(fault) = gate(
        &state,
        SimSource::Laike,
        std::slice::from_ref(&account),
        page,
        (start, end),
    )
    .await
    {
        return fault;
    }
    let all = state.data().leads.window(SimSource::Laike, &account, start, end);
    let overlap = lock(&state.faults).duplicate_across_pages;
    let rows: Vec<Value> = page_of(&all, page as usize, size as usize, overlap)
        .iter()
        .map(|l| record(&state, &account, l))
        .collect();
    let total = all.len() as i64;
    let page_total = (total + i64::from(size) - 1) / i64::from(size);
    openapi_ok(
        &state,
        json!({"clue_data": rows, "page": {"page_number": num(&state, i64::from(page)),
            "page_size": num(&state, i64::from(size)), "page_total": num(&state, page_total), "total": num(&state, total)}}),
    )
}

async fn decrypt_batch(State(state): State<S>, headers: HeaderMap, body: Bytes) -> Response {
    if !client_token_ok(&state, &headers) {
        return openapi_error(&state, 28001008, "access token is invalid or expired");
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let ciphers: Vec<String> = request
        .get("cipher_texts")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if ciphers.is_empty() || ciphers.len() > 50 {
        return openapi_error(&state, 2100005, "cipher_texts must hold 1 to 50 values");
    }
    let failing = lock(&state.faults).decrypt_failures;
    let results: Vec<Value> = ciphers
        .iter()
        .map(|c| match decrypt_online(c).filter(|_| !failing) {
            Some(plain) => json!({"cipher_text": c, "plain_text": plain, "is_success": true, "error_msg": ""}),
            None => json!({"cipher_text": c, "plain_text": "", "is_success": false, "error_msg": "decrypt failed"}),
        })
        .collect();
    openapi_ok(&state, json!({"results": results}))
}
