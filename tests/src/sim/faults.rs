//! Fault switches: a queue of one-shot faults, plus standing settings.

use super::{SimState, lock};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
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
}

#[derive(Debug, Default)]
pub struct Faults {
    pub queue: VecDeque<Fault>,
    pub string_numbers: bool,
    pub old_error_envelope: bool,
    pub latency: Duration,
    pub served: u64,
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
        (faults.queue.pop_front(), faults.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => next.run(req).await,
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
            if path.contains("/open_api/") {
                super::oceanengine::error(&state, 40100, "Too many requests. Please retry in some time.")
                    .into_response()
            } else {
                super::douyin::error(&state, 28003018, "request rate too high").into_response()
            }
        }
    }
}
