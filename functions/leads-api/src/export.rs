//! `GET /leads/export`: the list's filters, every matching lead, as UTF-8 CSV with a BOM so Excel
//! reads Chinese text. Answered in the request for up to `LEADS_SYNC_EXPORT_ROWS` leads (the
//! Lambda response is buffered and capped at 6 MB); beyond that a 413 names the export job.
//! Ids are written as text (a tab in front) so Excel keeps all 19 digits; every cell that a
//! spreadsheet could read as a formula is defused. An export that shows phones is audited.

use crate::{Api, SCOPE_EXPORT, SCOPE_PHONE, actor, internal, params, view};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::http::{ApiError, Identity, QueryParams};
use shared::lead::{StoredLead, mask_phone};
use shared::store::AuditRecord;

pub const HEADER: [&str; 19] = [
    "leadId",
    "source",
    "sourceLeadId",
    "connectionId",
    "name",
    "nickname",
    "phone",
    "clueType",
    "channel",
    "advertiserId",
    "adId",
    "promotionId",
    "store",
    "location",
    "remark",
    "createdAt",
    "status",
    "notes",
    "duplicateOf",
];
pub const BOM: &str = "\u{feff}";
/// Leads read per request while exporting.
const BATCH: u32 = 500;

/// One CSV cell: quoted when it must be, and defused (OWASP CSV injection) when a spreadsheet
/// could take it for a formula: a leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'`.
pub fn cell(value: &str) -> String {
    let defused = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '＝' | '＋' | '－' | '＠') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// An id Excel must not turn into a number: digits get a tab in front (Excel keeps them as
/// text); anything else is an ordinary, defused cell.
pub fn id(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        format!("\t{value}")
    } else {
        cell(value)
    }
}

pub fn row(l: &StoredLead, reveal_phone: bool) -> String {
    let f = &l.fields;
    let text = |v: &Option<String>| cell(v.as_deref().unwrap_or_default());
    let phone = f
        .phone
        .as_deref()
        .map(|p| if reveal_phone { p.to_owned() } else { mask_phone(p) })
        .unwrap_or_default();
    let cells = [
        id(l.lead_id.as_str()),
        cell(l.source.as_str()),
        id(&l.source_lead_id),
        id(l.connection_id.as_str()),
        text(&f.name),
        text(&f.nickname),
        cell(&phone),
        cell(&f.clue_type),
        text(&f.channel),
        f.advertiser_id.as_deref().map(id).unwrap_or_default(),
        f.ad_id.as_deref().map(id).unwrap_or_default(),
        f.promotion_id.as_deref().map(id).unwrap_or_default(),
        text(&f.store),
        text(&f.location),
        cell(&view::text(f.remark.as_deref(), reveal_phone).unwrap_or_default()),
        cell(&l.sort_time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        cell(l.status.as_str()),
        cell(&l.notes),
        l.duplicate_of.as_ref().map(|d| id(d.as_str())).unwrap_or_default(),
    ];
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
}

pub fn header_line() -> String {
    format!("{BOM}{}\r\n", HEADER.join(","))
}

fn too_large(rows: u64, max: u64) -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        error_code: "EXPORT_TOO_LARGE",
        message: format!(
            "{rows} leads match; this route exports up to {max}. \
             Start an export job with POST /api/v1/lead/douyin/leads/exports, or narrow the filter"
        ),
        field: None,
        platform: None,
    }
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
    let plan = shared::lead_query::plan(&query.filter);
    let readable = shared::lead_query::count(api.leads.as_ref(), &identity.tenant, &plan.partition, &query.filter)
        .await
        .map_err(|e| internal("count leads", &e))?;
    if readable > max {
        return Err(too_large(readable, max));
    }
    let mut body = header_line();
    let mut rows = 0u64;
    let mut reader = shared::lead_query::BatchReader::new(&query.filter, reveal);
    while let Some(leads) = reader
        .next_batch(api.leads.as_ref(), &identity.tenant, BATCH)
        .await
        .map_err(|e| internal("export leads", &e))?
    {
        rows += leads.len() as u64;
        body.extend(leads.iter().map(|l| row(l, reveal)));
    }
    if reveal && rows > 0 {
        let record = AuditRecord {
            tenant: identity.tenant.clone(),
            at: api.clock.now(),
            actor: actor(&identity),
            action: "EXPORT_WITH_PHONES".into(),
            target: raw.unwrap_or_default(),
            rows,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(cell("张先生"), "张先生");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("\t=1+1"), "'\t=1+1");
        assert_eq!(cell("\r=1+1"), "\"'\r=1+1\"");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(id("7391234567890123456"), "\t7391234567890123456");
        assert_eq!(id("=cmd"), "'=cmd");
    }
}
