//! `GET /analytics/cost` and `/analytics/cost.csv`: spend, leads and their outcomes, grouped
//! one way over Beijing days. Two reads whatever the tenant's size beyond the range itself: the
//! spend rows of the range and the lead counters of the range (each one key range).

use crate::{Api, internal, plausible_id};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde_json::json;
use shared::analytics::{CostQuery, CostRow, GroupBy, report};
use shared::domain::ConnectionId;
use shared::export::csv;
use shared::http::{ApiError, Identity, QueryParams, ok};
use shared::lead::LeadSource;

pub const SCOPE_ANALYTICS: &str = "lead:douyin:analytics:view";
const KNOWN: &[&str] = &["startDate", "endDate", "groupBy", "connectionId", "source"];
pub const MAX_SPAN_DAYS: i64 = 366;

fn bad(code: &'static str, field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, field, message)
}

fn date(q: &QueryParams, field: &'static str) -> Result<NaiveDate, ApiError> {
    let raw = q.get(field).ok_or_else(|| {
        bad(
            "MISSING_FIELD",
            field,
            format!("{field} (YYYY-MM-DD, Beijing) is required"),
        )
    })?;
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .ok_or_else(|| bad("INVALID_DATE", field, format!("{field} must be a date as YYYY-MM-DD")))
}

fn parse(raw: Option<&str>) -> Result<CostQuery, ApiError> {
    let q = QueryParams::parse(raw)?;
    if let Some(unknown) = q.names().find(|n| !KNOWN.contains(n)) {
        return Err(bad(
            "UNKNOWN_PARAMETER",
            "query",
            format!("unknown parameter {unknown:?}; known: {}", KNOWN.join(", ")),
        ));
    }
    let (from, to) = (date(&q, "startDate")?, date(&q, "endDate")?);
    if to < from {
        return Err(bad("INVALID_RANGE", "endDate", "endDate is before startDate"));
    }
    if (to - from).num_days() >= MAX_SPAN_DAYS {
        return Err(bad(
            "RANGE_TOO_LONG",
            "endDate",
            format!("a report spans at most {MAX_SPAN_DAYS} days"),
        ));
    }
    let group_by = q.get("groupBy").and_then(GroupBy::parse).ok_or_else(|| {
        bad(
            "INVALID_GROUP_BY",
            "groupBy",
            format!("groupBy must be one of {}", GroupBy::NAMES.join(", ")),
        )
    })?;
    let connection = q
        .get("connectionId")
        .map(|c| {
            plausible_id(c, "c_")
                .then(|| ConnectionId::from_stored(c))
                .ok_or_else(|| {
                    bad(
                        "INVALID_CONNECTION_ID",
                        "connectionId",
                        "connectionId is not a connection id",
                    )
                })
        })
        .transpose()?;
    let source = q
        .get("source")
        .map(|s| LeadSource::parse(s).ok_or_else(|| bad("INVALID_SOURCE", "source", "source is not a lead source")))
        .transpose()?;
    Ok(CostQuery {
        from,
        to,
        group_by,
        connection,
        source,
    })
}

async fn table(
    api: &crate::LeadsApi,
    identity: &Identity,
    raw: Option<&str>,
) -> Result<(Vec<CostRow>, CostRow), ApiError> {
    identity.require(SCOPE_ANALYTICS)?;
    let q = parse(raw)?;
    let spend = api
        .spend
        .rows(&identity.tenant, q.from, q.to)
        .await
        .map_err(|e| internal("read spend", &e))?;
    let counters = api
        .leads
        .analytics_counters(&identity.tenant, q.from, q.to)
        .await
        .map_err(|e| internal("read lead counters", &e))?;
    Ok(report(&q, &spend, &counters))
}

pub(crate) async fn cost(State(api): Api, identity: Identity, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let (rows, totals) = table(&api, &identity, raw.as_deref()).await?;
    Ok(ok(json!({
        "records": rows.iter().map(CostRow::json).collect::<Vec<_>>(),
        "totals": totals.json(),
    })))
}

pub(crate) async fn cost_csv(
    State(api): Api,
    identity: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (rows, totals) = table(&api, &identity, raw.as_deref()).await?;
    let mut body = String::from(csv::BOM);
    body.push_str(
        "key,name,spend,shows,clicks,leads,contacted,converted,invalid,costPerLead,costPerConversion,conversionRate,provisional\r\n",
    );
    for row in rows.iter().chain(std::iter::once(&totals)) {
        let v = row.json();
        let text = |k: &str| match &v[k] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let cells = [
            csv::id(&row.key),
            csv::cell(row.name.as_deref().unwrap_or_default()),
            text("spend"),
            text("shows"),
            text("clicks"),
            text("leads"),
            text("contacted"),
            text("converted"),
            text("invalid"),
            text("costPerLead"),
            text("costPerConversion"),
            text("conversionRate"),
            text("provisional"),
        ];
        body.push_str(&cells.join(","));
        body.push_str("\r\n");
    }
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (
            axum::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"cost.csv\"",
        ),
    ];
    Ok((headers, body).into_response())
}
