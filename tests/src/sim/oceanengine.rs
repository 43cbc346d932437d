//! Ocean Engine OAuth (platform-apis.md §3.2): consent page, access_token with `auth_code`, and a
//! refresh that rotates both tokens (the old refresh token stops working at once).

use super::params::collect;
use super::{Grant, Issued, SimState, lock};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type S = Arc<SimState>;

pub fn routes() -> Router<S> {
    Router::new()
        .route("/openapi/audit/oauth.html", get(consent))
        .route("/open_api/oauth2/access_token/", post(access_token))
        .route("/open_api/oauth2/refresh_token/", post(refresh_token))
}

fn num(state: &SimState, n: i64) -> Value {
    if lock(&state.faults).string_numbers {
        Value::String(n.to_string())
    } else {
        Value::from(n)
    }
}

fn request_id(state: &SimState) -> String {
    format!("{}SIMREQ", state.now().format("%Y%m%d%H%M%S%3f"))
}

pub fn error(state: &SimState, code: i64, message: &str) -> Json<Value> {
    Json(json!({"code": num(state, code), "message": message, "request_id": request_id(state), "data": {}}))
}

fn success(state: &SimState, data: Value) -> Json<Value> {
    Json(json!({"code": num(state, 0), "message": "OK", "request_id": request_id(state), "data": data}))
}

fn check_app(state: &SimState, p: &HashMap<String, String>) -> Result<(), Json<Value>> {
    if p.get("app_id") != Some(&state.app.oceanengine_app_id) || p.get("secret") != Some(&state.app.oceanengine_secret)
    {
        return Err(error(state, 40101, "app_id or secret is invalid"));
    }
    Ok(())
}

/// `sim_account` chooses the advertiser id that grants access; `sim_deny=1` refuses.
async fn consent(State(state): State<S>, RawQuery(raw): RawQuery) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    if q.get("app_id") != Some(&state.app.oceanengine_app_id) {
        return (StatusCode::BAD_REQUEST, "unknown app_id").into_response();
    }
    let Some(Ok(mut back)) = q.get("redirect_uri").map(|r| url::Url::parse(r)) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is missing or invalid").into_response();
    };
    let state_param = q.get("state").cloned().unwrap_or_default();
    if q.get("sim_deny").map(String::as_str) != Some("1") {
        let account = q
            .get("sim_account")
            .cloned()
            .unwrap_or_else(|| "1769665409798152".into());
        let expires_at = state.now() + state.app.code_ttl;
        let code = {
            let mut data = state.data();
            let code = state.next_token(&mut data, "");
            data.oceanengine_codes.insert(
                code.clone(),
                Grant {
                    account,
                    scope: String::new(),
                    expires_at,
                },
            );
            code
        };
        back.query_pairs_mut().append_pair("auth_code", &code);
    }
    back.query_pairs_mut().append_pair("state", &state_param);
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

fn issue(state: &SimState, account: &str, with_advertisers: bool) -> Value {
    let now = state.now();
    let (access_ttl, refresh_ttl) = (state.app.oceanengine_access_ttl, state.app.oceanengine_refresh_ttl);
    let mut data = state.data();
    let access = state.next_token(&mut data, "");
    let refresh = state.next_token(&mut data, "");
    data.oceanengine_access.insert(
        access.clone(),
        Issued {
            account: account.to_owned(),
            expires_at: now + access_ttl,
        },
    );
    data.oceanengine_refresh.insert(
        refresh.clone(),
        Issued {
            account: account.to_owned(),
            expires_at: now + refresh_ttl,
        },
    );
    drop(data);
    let mut body = json!({
        "access_token": access, "expires_in": num(state, access_ttl.num_seconds()),
        "refresh_token": refresh, "refresh_token_expires_in": num(state, refresh_ttl.num_seconds()),
    });
    if with_advertisers {
        let id: Value = account
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(account));
        body["advertiser_id"] = id.clone();
        body["advertiser_ids"] = json!([id]);
    }
    body
}

async fn access_token(State(state): State<S>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let p = collect(q.as_deref(), &headers, &body);
    if let Err(e) = check_app(&state, &p) {
        return e;
    }
    let Some(code) = p.get("auth_code") else {
        return error(&state, 40002, "auth_code is required");
    };
    let now = state.now();
    let grant = match state.data().oceanengine_codes.remove(code) {
        Some(g) if g.expires_at > now => g,
        _ => return error(&state, 40110, "auth_code is invalid or expired"),
    };
    success(&state, issue(&state, &grant.account, true))
}

async fn refresh_token(State(state): State<S>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let p = collect(q.as_deref(), &headers, &body);
    if let Err(e) = check_app(&state, &p) {
        return e;
    }
    let Some(rt) = p.get("refresh_token") else {
        return error(&state, 40002, "refresh_token is required");
    };
    let now = state.now();
    let old = {
        let mut data = state.data();
        match data.oceanengine_refresh.remove(rt) {
            Some(old) if old.expires_at > now => {
                // Rotation: the access token issued with it stops working too.
                data.oceanengine_access.retain(|_, t| t.account != old.account);
                old
            }
            _ => return error(&state, 40107, "refresh_token is invalid or expired"),
        }
    };
    success(&state, issue(&state, &old.account, false))
}
