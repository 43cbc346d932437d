//! Gives each Lambda HTTP request the invocation's deadline, less the time kept to answer, so
//! platform calls on the request path stop retrying before Lambda's timeout kills the answer.

use crate::deadline;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Duration;

async fn scope(State(reserve): State<Duration>, req: Request, next: Next) -> Response {
    let deadline = req
        .extensions()
        .get::<lambda_http::Context>()
        .and_then(|ctx| deadline::from_epoch_ms(ctx.deadline));
    match deadline {
        Some(at) => deadline::within(at.checked_sub(reserve).unwrap_or(at), next.run(req)).await,
        None => next.run(req).await,
    }
}

/// Wraps `router` so that every request runs within its invocation's deadline minus `reserve`.
pub fn with_lambda_deadline(router: Router, reserve: Duration) -> Router {
    router.layer(axum::middleware::from_fn_with_state(reserve, scope))
}
