//! `GET /leads/export`: the list's filters, every matching lead as CSV (see
//! [`shared::export::csv`]), answered in the request for up to `LEADS_SYNC_EXPORT_ROWS` leads
//! (a Lambda response is buffered and capped at 6 MB); beyond that a 413 names the export job.
//! An export that shows phones is audited.

use crate::{Api, SCOPE_EXPORT, SCOPE_PHONE, actor, internal, params};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::export::csv;
use shared::http::{ApiError, Identity, QueryParams};
use shared::store::AuditRecord;

/// Leads read per request while exporting.
const BATCH: u32 = 500;

fn too_large(rows: u64, max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "EXPORT_TOO_LARGE",
        format!(
            "{rows} leads match; this route exports up to {max}. \
             Start an export job with POST /api/v1/lead/douyin/leads/exports, or narrow the filter"
        ),
    )
}

/// `GET /leads/export`: the list's filters (paging parameters are checked and ignored).
pub(crate) async fn export_leads(
    State(api): Api,
    identity: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_EXPORT)?;
    let query = params::ListQuery::parse(&QueryParams::parse(raw.as_deref())?)?;
    let reveal = identity.scopes.contains(SCOPE_PHONE);
    let max = api.read.sync_export_rows;
    // The leads the export reads: the filter's partition within its range (a keyword is then
    // applied to them), known from counters before a lead is read.
    let readable = shared::lead_query::readable(api.leads.as_ref(), &identity.tenant, &query.filter)
        .await
        .map_err(|e| internal("count leads", &e))?;
    if readable > max {
        return Err(too_large(readable, max));
    }
    let mut body = csv::header_line();
    let mut rows = 0u64;
    let mut reader = shared::lead_query::BatchReader::new(&query.filter, reveal);
    while let Some(leads) = reader
        .next_batch(api.leads.as_ref(), &identity.tenant, BATCH)
        .await
        .map_err(|e| internal("export leads", &e))?
    {
        rows += leads.len() as u64;
        body.extend(leads.iter().map(|l| csv::row(l, reveal)));
    }
    if reveal && rows > 0 {
        let record = AuditRecord::export_with_phones(
            identity.tenant.clone(),
            api.clock.now(),
            actor(&identity),
            raw.unwrap_or_default(),
            rows,
        );
        api.audit
            .record(&record)
            .await
            .map_err(|e| internal("record export", &e))?;
    }
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (
            axum::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"leads.csv\"",
        ),
    ];
    Ok((headers, body).into_response())
}
