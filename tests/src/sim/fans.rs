//! Douyin fans (platform-apis.md §5.1): `GET /fans/list/` with the user's access token, cursor
//! paging while `has_more`, at most the 5,000 newest fans.

use super::SimState;
use super::lead_api::{gate, num, openapi_error, openapi_ok};
use super::leads::SimSource;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type S = Arc<SimState>;

const CAP: usize = 5000;

pub fn routes() -> Router<S> {
    Router::new().route("/fans/list/", get(fans_list))
}

async fn fans_list(State(state): State<S>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let open_id = q.get("open_id").cloned().unwrap_or_default();
    let token = headers.get("access-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = state.now();
    let owner = state
        .data()
        .douyin_access
        .get(token)
        .filter(|t| t.expires_at > now)
        .map(|t| t.account.clone());
    if owner.as_deref() != Some(open_id.as_str()) {
        return openapi_error(&state, 2190008, "access_token is invalid or expired");
    }
    let cursor: usize = q.get("cursor").and_then(|v| v.parse().ok()).unwrap_or(0);
    let count: usize = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(0);
    if !(1..=100).contains(&count) {
        return openapi_error(&state, 2100005, "Parameter error: 1 <= count <= 100");
    }
    // Pages count from 1 for the page-fault switch: cursor 0 is page 1.
    let everything = (chrono::DateTime::<chrono::Utc>::MIN_UTC, now);
    let page = (cursor / count) as u32 + 1;
    if let Some(fault) = gate(
        &state,
        SimSource::Fans,
        std::slice::from_ref(&open_id),
        page,
        everything,
    )
    .await
    {
        return fault;
    }
    let fans = state.data().leads.all(SimSource::Fans, &open_id);
    let visible = fans.len().min(CAP);
    let rows: Vec<Value> = fans
        .iter()
        .take(visible)
        .skip(cursor)
        .take(count)
        .map(|f| {
            json!({"open_id": f.clue_id, "union_id": format!("u-{}", f.clue_id), "nickname": f.name,
                "avatar": format!("https://example.com/avatar/{}.jpeg", f.clue_id),
                "city": "上海", "province": "上海", "country": "中国", "gender": num(&state, 0)})
        })
        .collect();
    let next = (cursor + rows.len()).min(visible);
    openapi_ok(
        &state,
        json!({"list": rows, "total": num(&state, visible as i64), "cursor": num(&state, next as i64), "has_more": next < visible}),
    )
}
