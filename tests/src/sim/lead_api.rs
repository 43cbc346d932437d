//! What the simulator's lead endpoints share: Beijing-time parsing and formatting, the Douyin
//! OpenAPI envelope, number formatting, and the per-request fault gate (throttling, failing pages,
//! leads inserted while paging).

use super::leads::SimSource;
use super::{SimState, lock};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Value, json};

pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8")
}

pub fn format_bj(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing()).format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn date_bj(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing()).format("%Y-%m-%d").to_string()
}

/// `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` (the start of that day, or with `end_of_day` its last
/// second), or unix seconds; all Beijing time.
pub fn parse_bj(text: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Utc.timestamp_opt(secs, 0).single();
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            if end_of_day {
                day.and_hms_opt(23, 59, 59)
            } else {
                day.and_hms_opt(0, 0, 0)
            }
        })?;
    beijing()
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A number, or its decimal text when the string-numbers switch is on.
pub fn num(state: &SimState, n: i64) -> Value {
    if lock(&state.faults).string_numbers {
        Value::String(n.to_string())
    } else {
        Value::from(n)
    }
}

fn extra(state: &SimState, code: i64, description: &str) -> Value {
    json!({"error_code": num(state, code), "description": description, "sub_error_code": 0,
        "sub_description": "", "logid": format!("{}SIMLOG", state.now().format("%Y%m%d%H%M%S")),
        "now": state.now().timestamp_millis()})
}

/// Douyin OpenAPI success: `{data: {..., error_code: 0}, extra: {...}}`.
pub fn openapi_ok(state: &SimState, mut data: Value) -> Response {
    data["error_code"] = num(state, 0);
    data["description"] = Value::from("");
    Json(json!({"data": data, "extra": extra(state, 0, "")})).into_response()
}

/// Douyin OpenAPI failure, with the code in both `data` and `extra`.
pub fn openapi_error(state: &SimState, code: i64, description: &str) -> Response {
    Json(json!({
        "data": {"error_code": num(state, code), "description": description},
        "extra": extra(state, code, description),
    }))
    .into_response()
}

/// How each platform says "too many requests".
fn throttled(state: &SimState, source: SimSource) -> Response {
    match source {
        SimSource::Laike | SimSource::Fans => openapi_error(state, 28003018, "request rate too high"),
        SimSource::OceanEngineClue | SimSource::OceanEngineLife => {
            super::oceanengine::error(state, 40100, "Too many requests. Please retry in some time.").into_response()
        }
        SimSource::Feiyu => (StatusCode::TOO_MANY_REQUESTS, "too many requests").into_response(),
    }
}

/// The platform's own answer to a fault the adversary drew.
fn fault_answer(state: &SimState, source: SimSource, fault: &super::Fault) -> Response {
    match fault {
        super::Fault::Throttle => throttled(state, source),
        super::Fault::MalformedJson => Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{\"data\": {"))
            .expect("static response"),
        super::Fault::TokenExpired => {
            let mut data = state.data();
            data.douyin_access.clear();
            data.oceanengine_access.clear();
            data.client_tokens.clear();
            drop(data);
            match source {
                SimSource::OceanEngineClue | SimSource::OceanEngineLife => {
                    super::oceanengine::error(state, 40105, "access token has expired").into_response()
                }
                SimSource::Feiyu => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                SimSource::Fans => openapi_error(state, 2190008, "access_token has expired"),
                SimSource::Laike => openapi_error(state, 28001008, "access token has expired"),
            }
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream fault injected by the adversary",
        )
            .into_response(),
    }
}

/// The scripted page and the adversary: waits, changes the window's leads, maybe fails.
async fn adversary(
    state: &SimState,
    source: SimSource,
    accounts: &[String],
    page: u32,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Option<Response> {
    let (script, moved) = {
        let mut f = lock(&state.faults);
        let script = f.page_script.remove(&page);
        let now = state.now();
        let moved = f.adversary.as_mut().map(|a| a.draw(window.0, window.1, now));
        (script, moved)
    };
    if let Some((delay, insert)) = script {
        tokio::time::sleep(delay).await;
        let at = state.now() - chrono::Duration::minutes(15);
        let account = accounts.first().cloned().unwrap_or_default();
        state.data().leads.insert(source, &account, insert, at);
    }
    let moved = moved?;
    tokio::time::sleep(moved.delay).await;
    let account = {
        let mut f = lock(&state.faults);
        let pick = f.adversary.as_mut().map_or(0, |a| a.rng.below(accounts.len() as u64));
        if moved.switch_encoding {
            f.string_numbers = !f.string_numbers;
        }
        if moved.toggle_decrypt_refusal {
            f.decrypt_failures = !f.decrypt_failures;
        }
        accounts.get(pick as usize).cloned().unwrap_or_default()
    };
    if let Some(fault) = &moved.fault {
        return Some(fault_answer(state, source, fault));
    }
    let deleted = {
        let mut data = state.data();
        data.leads.insert_at(source, &account, &moved.inserts);
        moved
            .delete
            .and_then(|pick| data.leads.delete_in(source, &account, window.0, window.1, pick))
    };
    if std::env::var("ADVERSARY_TRACE").is_ok() {
        let total = state.data().leads.window_of(source, accounts, window.0, window.1).len();
        eprintln!(
            "sim: page {page} of {}..{}: +{} -{:?} → total {total}",
            window.0,
            window.1,
            moved.inserts.len(),
            deleted
        );
    }
    if let Some(id) = deleted
        && let Some(a) = lock(&state.faults).adversary.as_mut()
    {
        a.deleted.push(id);
    }
    None
}

/// Applies the lead-endpoint switches to a request for `page` of the window of (source,
/// accounts); `Some` is the answer to send instead.
pub async fn gate(
    state: &SimState,
    source: SimSource,
    accounts: &[String],
    page: u32,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Option<Response> {
    if let Some(answer) = adversary(state, source, accounts, page, window).await {
        return Some(answer);
    }
    let account = accounts.first().map(String::as_str).unwrap_or("");
    let mut insert = 0;
    {
        let mut f = lock(&state.faults);
        if let Some((before, count)) = f.throttle_after {
            if before > 0 {
                f.throttle_after = Some((before - 1, count));
            } else if count > 0 {
                f.throttle_after = (count > 1).then_some((0, count - 1));
                drop(f);
                return Some(throttled(state, source));
            }
        }
        if let Some((status, times)) = f.fail_pages.get_mut(&page)
            && *times > 0
        {
            *times -= 1;
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some((status, "page fault injected by the simulator").into_response());
        }
        if page >= 2
            && let Some(n) = f.insert_while_paging.take()
        {
            insert = n;
        }
    }
    if insert > 0 {
        let at = state.now() - chrono::Duration::minutes(20);
        state.data().leads.insert(source, account, insert, at);
    }
    None
}
