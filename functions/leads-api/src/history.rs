//! A lead's history, newest first, page by page (the detail shows the first page).

use crate::leads::{find, lead_not_found};
use crate::{Api, SCOPE_VIEW, internal};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::json;
use shared::http::{ApiError, Identity, QueryParams, ok};
use shared::store::HISTORY_PAGE;

/// A history cursor is the key of the last entry shown: `<13 digits>.<3 digits>.<8 hex>`.
fn plausible_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    matches!(parts.as_slice(), [ms, seq, nonce]
        if ms.len() == 13 && ms.bytes().all(|b| b.is_ascii_digit())
            && seq.len() == 3 && seq.bytes().all(|b| b.is_ascii_digit())
            && nonce.len() == 8 && nonce.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) async fn lead_history(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_VIEW)?;
    let q = QueryParams::parse(raw.as_deref())?;
    if let Some(unknown) = q.names().find(|n| *n != "cursor") {
        return Err(ApiError::bad_request(
            "UNKNOWN_PARAMETER",
            "query",
            format!("unknown parameter {unknown:?}; known: cursor"),
        ));
    }
    let before = q.get("cursor");
    if before.is_some_and(|c| !plausible_key(c)) {
        return Err(ApiError::bad_request(
            "INVALID_CURSOR",
            "cursor",
            "cursor is not one this API issued",
        ));
    }
    let lead = find(&api, &identity.tenant, &id).await.map_err(|_| lead_not_found())?;
    let page = api
        .leads
        .history(&identity.tenant, &lead.lead_id, before, HISTORY_PAGE)
        .await
        .map_err(|e| internal("read history", &e))?;
    Ok(ok(json!({"records": page.entries, "nextCursor": page.next})))
}
