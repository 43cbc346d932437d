//! Douyin OAuth (platform-apis.md §1): consent page, access_token, refresh_token,
//! renew_refresh_token (max 5), client_token (2 h, previous one valid 5 more minutes, 500 / 5 min).

use super::params::collect;
use super::{ClientToken, DouyinRefresh, Grant, Issued, SimState, lock};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Duration;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type S = Arc<SimState>;

pub fn routes() -> Router<S> {
    Router::new()
        .route("/platform/oauth/connect/", get(consent))
        .route("/oauth/access_token/", post(access_token).get(access_token))
        .route("/oauth/refresh_token/", post(refresh_token))
        .route("/oauth/renew_refresh_token/", post(renew_refresh_token))
        .route("/oauth/client_token/", post(client_token).get(client_token))
}

fn num(state: &SimState, n: i64) -> Value {
    if lock(&state.faults).string_numbers {
        Value::String(n.to_string())
    } else {
        Value::from(n)
    }
}

fn log_id(state: &SimState) -> String {
    format!("{}SIMLOG", state.now().format("%Y%m%d%H%M%S"))
}

/// A business error: HTTP 200, in the current or the old envelope.
pub fn error(state: &SimState, code: i64, description: &str) -> Json<Value> {
    let old = lock(&state.faults).old_error_envelope;
    let code = num(state, code);
    if old {
        Json(json!({
            "data": {"description": description, "error_code": code},
            "extra": {"logid": log_id(state), "now": state.now().timestamp_millis()}
        }))
    } else {
        Json(json!({
            "data": {"captcha": "", "desc_url": "", "description": description, "error_code": code, "log_id": log_id(state)},
            "message": "error"
        }))
    }
}

fn success(state: &SimState, mut data: Value) -> Json<Value> {
    data["error_code"] = num(state, 0);
    data["description"] = Value::from("");
    data["log_id"] = Value::from(log_id(state));
    Json(json!({"data": data, "message": "success"}))
}

/// Checks `client_key` (and `client_secret` where given); `Err` is the error to answer with.
fn check_app(state: &SimState, p: &HashMap<String, String>, needs_secret: bool) -> Result<(), Json<Value>> {
    match p.get("client_key") {
        None => return Err(error(state, 10005, "missing client_key")),
        Some(k) if *k != state.app.douyin_client_key => return Err(error(state, 10003, "client_key does not exist")),
        _ => {}
    }
    if needs_secret && p.get("client_secret") != Some(&state.app.douyin_client_secret) {
        return Err(error(state, 10013, "client_key or client_secret is wrong"));
    }
    Ok(())
}

/// The consent page: the simulated user agrees at once and is sent back with a code.
/// `sim_account` chooses the user's open_id; `sim_deny=1` makes the user refuse.
async fn consent(State(state): State<S>, RawQuery(raw): RawQuery) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    if q.get("client_key") != Some(&state.app.douyin_client_key)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "unknown client_key or response_type").into_response();
    }
    let Some(Ok(mut back)) = q.get("redirect_uri").map(|r| url::Url::parse(r)) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is missing or invalid").into_response();
    };
    let scope = q.get("scope").cloned().unwrap_or_default();
    let state_param = q.get("state").cloned().unwrap_or_default();
    if q.get("sim_deny").map(String::as_str) == Some("1") {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &state_param);
    } else {
        let account = q
            .get("sim_account")
            .cloned()
            .unwrap_or_else(|| "open-sim-user-1".into());
        let expires_at = state.now() + state.app.code_ttl;
        let code = {
            let mut data = state.data();
            let code = state.next_token(&mut data, "code.");
            data.douyin_codes.insert(
                code.clone(),
                Grant {
                    account,
                    scope: scope.clone(),
                    expires_at,
                },
            );
            code
        };
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state_param)
            .append_pair("scopes", &scope);
    }
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

fn token_data(
    state: &SimState,
    access: &str,
    access_left: Duration,
    refresh: &str,
    refresh_left: Duration,
    open_id: &str,
    scope: &str,
) -> Value {
    json!({
        "access_token": access, "expires_in": num(state, access_left.num_seconds()),
        "refresh_token": refresh, "refresh_expires_in": num(state, refresh_left.num_seconds()),
        "open_id": open_id, "scope": scope, "captcha": "", "desc_url": "",
    })
}

async fn access_token(State(state): State<S>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let p = collect(q.as_deref(), &headers, &body);
    if let Err(e) = check_app(&state, &p, true) {
        return e;
    }
    if p.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return error(&state, 10005, "grant_type must be authorization_code");
    }
    let Some(code) = p.get("code") else {
        return error(&state, 10005, "missing code");
    };
    let now = state.now();
    let mut data = state.data();
    // A code works once: it is removed whether or not it is still fresh.
    let grant = match data.douyin_codes.remove(code) {
        Some(g) if g.expires_at > now => g,
        _ => return error(&state, 10007, "code is expired"),
    };
    let access = state.next_token(&mut data, "act.");
    let refresh = state.next_token(&mut data, "rft.");
    let (access_ttl, refresh_ttl) = (state.app.douyin_access_ttl, state.app.douyin_refresh_ttl);
    data.douyin_access.insert(
        access.clone(),
        Issued {
            account: grant.account.clone(),
            expires_at: now + access_ttl,
        },
    );
    data.douyin_refresh.insert(
        refresh.clone(),
        DouyinRefresh {
            account: grant.account.clone(),
            scope: grant.scope.clone(),
            expires_at: now + refresh_ttl,
            renewals: 0,
            access_token: access.clone(),
        },
    );
    drop(data);
    success(
        &state,
        token_data(
            &state,
            &access,
            access_ttl,
            &refresh,
            refresh_ttl,
            &grant.account,
            &grant.scope,
        ),
    )
}

/// Extends a live access token, or issues a new one for an expired one; the refresh token's own
/// expiry does not move (§1.3).
async fn refresh_token(State(state): State<S>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let p = collect(q.as_deref(), &headers, &body);
    if let Err(e) = check_app(&state, &p, false) {
        return e;
    }
    let Some(rt) = p.get("refresh_token") else {
        return error(&state, 10005, "missing refresh_token");
    };
    let now = state.now();
    let mut data = state.data();
    let grant = match data.douyin_refresh.get(rt) {
        Some(g) if g.expires_at > now => g.clone(),
        _ => return error(&state, 10010, "refresh_token is expired"),
    };
    let ttl = state.app.douyin_access_ttl;
    let access = match data.douyin_access.get(&grant.access_token) {
        Some(live) if live.expires_at > now => grant.access_token.clone(),
        _ => state.next_token(&mut data, "act."),
    };
    data.douyin_access.insert(
        access.clone(),
        Issued {
            account: grant.account.clone(),
            expires_at: now + ttl,
        },
    );
    if let Some(g) = data.douyin_refresh.get_mut(rt) {
        g.access_token = access.clone();
    }
    drop(data);
    success(
        &state,
        token_data(
            &state,
            &access,
            ttl,
            rt,
            grant.expires_at - now,
            &grant.account,
            &grant.scope,
        ),
    )
}

async fn renew_refresh_token(
    State(state): State<S>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let p = collect(q.as_deref(), &headers, &body);
    if let Err(e) = check_app(&state, &p, false) {
        return e;
    }
    let Some(rt) = p.get("refresh_token") else {
        return error(&state, 10005, "missing refresh_token");
    };
    let now = state.now();
    let mut data = state.data();
    if data.no_renew_permission {
        return error(&state, 10004, "no permission: apply for renew_refresh_token");
    }
    let old = match data.douyin_refresh.get(rt) {
        Some(g) if g.expires_at > now => g.clone(),
        _ => return error(&state, 10010, "refresh_token is expired"),
    };
    if old.renewals >= 5 {
        return error(&state, 10020, "renew count exceeded");
    }
    data.douyin_refresh.remove(rt);
    let fresh = state.next_token(&mut data, "rft.");
    let ttl = state.app.douyin_refresh_ttl;
    data.douyin_refresh.insert(
        fresh.clone(),
        DouyinRefresh {
            expires_at: now + ttl,
            renewals: old.renewals + 1,
            ..old
        },
    );
    drop(data);
    success(
        &state,
        json!({"refresh_token": fresh, "expires_in": num(&state, ttl.num_seconds())}),
    )
}

async fn client_token(State(state): State<S>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let p = collect(q.as_deref(), &headers, &body);
    if let Err(e) = check_app(&state, &p, true) {
        return e;
    }
    if p.get("grant_type").map(String::as_str) != Some("client_credential") {
        return error(&state, 10002, "grant_type must be client_credential");
    }
    let now = state.now();
    let mut data = state.data();
    data.client_token_issues.retain(|t| *t > now - Duration::minutes(5));
    if data.client_token_issues.len() >= 500 {
        return error(&state, 10020, "too many client_token requests");
    }
    data.client_token_issues.push(now);
    // The previous newest token keeps working for a 5-minute grace; only the newest two live.
    for old in data.client_tokens.iter_mut().filter(|t| t.superseded_until.is_none()) {
        old.superseded_until = Some(now + Duration::minutes(5));
    }
    let keep_from = data.client_tokens.len().saturating_sub(1);
    data.client_tokens.drain(..keep_from);
    let token = state.next_token(&mut data, "clt.");
    let ttl = state.app.client_token_ttl;
    data.client_tokens.push(ClientToken {
        token: token.clone(),
        expires_at: now + ttl,
        superseded_until: None,
    });
    drop(data);
    success(
        &state,
        json!({"access_token": token, "expires_in": num(&state, ttl.num_seconds())}),
    )
}

pub fn client_token_valid(state: &SimState, token: &str) -> bool {
    let now = state.now();
    state
        .data()
        .client_tokens
        .iter()
        .any(|t| t.token == token && t.expires_at > now && t.superseded_until.is_none_or(|until| until > now))
}
