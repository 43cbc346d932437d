//! Fault switches: a queue of one-shot faults, plus standing settings.

use super::{SimState, lock};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a non-JSON body.
    Status(u16),
    /// Answer 200 with the platform's "too many requests" business code.
    Throttle,
    /// Wait this long, then answer normally (clients with a shorter timeout give up first).
    Delay(Duration),
    /// Answer 200 with a body that is not JSON.
    MalformedJson,
    /// Answer normally: places a later fault at the k-th request.
    Pass,
    /// Answer with the platform's "token expired" error and invalidate the token presented.
    TokenExpired,
}

#[derive(Debug, Default)]
pub struct Faults {
    pub queue: VecDeque<Fault>,
    pub string_numbers: bool,
    pub old_error_envelope: bool,
    pub latency: Duration,
    pub served: u64,
    /// Requests served per path.
    pub per_path: HashMap<String, u64>,
    /// Lead endpoints: (requests still answered normally, requests then throttled).
    pub throttle_after: Option<(u64, u64)>,
    /// Lead endpoints: page number → (HTTP status, times left).
    pub fail_pages: HashMap<u32, (u16, u32)>,
    pub enc_phones: bool,
    pub decrypt_failures: bool,
    pub duplicate_across_pages: bool,
    pub insert_while_paging: Option<usize>,
    /// Page number → (delay, leads inserted after it), once.
    pub page_script: HashMap<u32, (Duration, usize)>,
    pub adversary: Option<super::adversary::Adversary>,
    /// 来客: this lead's remark is this many bytes long (an item over DynamoDB's limit).
    pub bloated: Option<(String, usize)>,
    /// Report rows count this many more conversions (a re-attribution).
    pub reattributed: i64,
    /// 本地推 reports: this many promotions spend every day, leads or not (benchmarks).
    pub dense_promotions: Option<u64>,
}

fn is_consent_page(path: &str) -> bool {
    path.ends_with("/platform/oauth/connect/") || path.ends_with("/openapi/audit/oauth.html")
}

pub async fn apply(State(state): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if is_consent_page(&path) {
        return next.run(req).await;
    }
    let (fault, latency) = {
        let mut faults = lock(&state.faults);
        faults.served += 1;
        *faults.per_path.entry(path.clone()).or_default() += 1;
        (faults.queue.pop_front(), faults.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None | Some(Fault::Pass) => next.run(req).await,
        Some(Fault::TokenExpired) => {
            let token = req
                .headers()
                .get("access-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            {
                let mut data = state.data();
                data.douyin_access.remove(&token);
                data.oceanengine_access.remove(&token);
                data.client_tokens.retain(|t| t.token != token);
            }
            token_expired(&state, &path)
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, "upstream fault injected by the simulator").into_response()
        }
        Some(Fault::MalformedJson) => Response::builder()
            .header("content-type", "application/json")
            .body(Body::from("{\"data\": {"))
            .expect("static response"),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::Throttle) => {
            if path.starts_with("/open_api/") {
                super::oceanengine::error(&state, 40100, "Too many requests. Please retry in some time.")
                    .into_response()
            } else {
                super::douyin::error(&state, 28003018, "request rate too high").into_response()
            }
        }
    }
}

/// Each platform's way of saying the token presented has expired.
fn token_expired(state: &SimState, path: &str) -> Response {
    // Ocean Engine paths start with /open_api/ and Feiyu's with /crm/; 来客 paths contain both.
    if path.starts_with("/open_api/") {
        super::oceanengine::error(state, 40105, "access token has expired").into_response()
    } else if path.starts_with("/crm/") {
        super::feiyu::fail("access token expired")
    } else if path.ends_with("/fans/list/") {
        super::lead_api::openapi_error(state, 2190008, "access_token has expired")
    } else {
        super::lead_api::openapi_error(state, 28001008, "access token has expired")
    }
}
