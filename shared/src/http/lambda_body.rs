//! What the Lambda adapter does to bodies, undone where it matters. `lambda_http` turns a
//! `text/*` body into a string on the way out and its UTF-8 decoder drops a leading byte-order
//! mark, which Excel needs to read a CSV's Chinese text. Behind this layer a CSV that starts
//! with a BOM carries a second one for the adapter to drop, so exactly one reaches the caller.
//! Only the deployed functions use it; the local run serves bodies as they are.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::Response;

const BOM: &[u8] = "\u{feff}".as_bytes();
/// Lambda's synchronous response limit: nothing larger could be returned anyway.
const MAX_BODY: usize = 6 * 1024 * 1024;

async fn keep_bom(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let is_csv = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if !is_csv {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if bytes.starts_with(BOM) {
        let mut doubled = Vec::with_capacity(bytes.len() + BOM.len());
        doubled.extend_from_slice(BOM);
        doubled.extend_from_slice(&bytes);
        return Response::from_parts(parts, Body::from(doubled));
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// `router` with CSV bodies prepared for `lambda_http::run`.
pub fn for_lambda(router: Router) -> Router {
    router.layer(middleware::from_fn(keep_bom))
}
