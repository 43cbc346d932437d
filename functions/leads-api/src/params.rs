//! The list query (`GET /leads`): every parameter checked, each problem a 400 naming its field.

use chrono::{DateTime, Duration, Utc};
use shared::domain::ConnectionId;
use shared::http::{ApiError, QueryParams};
use shared::lead::{LeadSource, LeadStatus};
use shared::lead_query::LeadFilter;

pub const MAX_SPAN_DAYS: i64 = 366;
pub const MAX_KEYWORD_CHARS: usize = 64;
pub const MAX_SIZE: u32 = 100;
/// Page numbers reach the first 100 pages (10,000 leads at the largest size); cursors reach
/// anywhere. A limit on the number alone, so the OpenAPI document can state it exactly.
pub const MAX_PAGE: u32 = 100;
pub const KNOWN: &[&str] = &[
    "startTime",
    "endTime",
    "keyword",
    "status",
    "source",
    "connectionId",
    "page",
    "size",
    "cursor",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: LeadFilter,
    /// A cursor as given; checked against the caller and filter by the handler.
    pub cursor: Option<String>,
    pub size: u32,
    /// The page number (`current`); 0 when a cursor is used.
    pub current: u32,
}

fn time(q: &QueryParams, field: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
    q.get(field)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(
                        "INVALID_TIME",
                        field,
                        format!("{field} must be ISO 8601 with an offset, e.g. 2025-06-01T00:00:00+08:00"),
                    )
                })
        })
        .transpose()
}

fn number(
    q: &QueryParams,
    field: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ApiError> {
    match q.get(field) {
        None => Ok(default),
        Some(raw) => raw.parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_PAGING",
                field,
                format!("{field} must be an integer in {}..={}", range.start(), range.end()),
            )
        }),
    }
}

/// A connection id as this API issues them (`c_` and up to 62 letters, digits or `_`): anything
/// else cannot name a connection, and must not reach an index key.
fn connection_id(q: &QueryParams) -> Result<Option<ConnectionId>, ApiError> {
    q.get("connectionId")
        .map(|raw| {
            let plausible =
                raw.starts_with("c_") && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            plausible.then(|| ConnectionId::from_stored(raw)).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_CONNECTION_ID",
                    "connectionId",
                    "connectionId must be an id from GET /accounts (c_…)",
                )
            })
        })
        .transpose()
}

fn page_number(q: &QueryParams) -> Result<u32, ApiError> {
    match q.get("page").map(|raw| raw.parse::<u32>()) {
        None => Ok(1),
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(Ok(n)) if n > MAX_PAGE => Err(ApiError::bad_request(
            "PAGE_TOO_DEEP",
            "page",
            format!("page numbers reach page {MAX_PAGE}; page on with nextCursor beyond"),
        )),
        Some(_) => Err(ApiError::bad_request(
            "INVALID_PAGING",
            "page",
            format!("page must be an integer in 1..={MAX_PAGE}"),
        )),
    }
}

/// A lead status named by the caller, in a query or a body.
pub fn parse_status(raw: &str) -> Result<LeadStatus, ApiError> {
    LeadStatus::parse(raw).ok_or_else(|| {
        ApiError::bad_request(
            "INVALID_STATUS",
            "status",
            "status must be NEW, CONTACTED, CONVERTED or INVALID",
        )
    })
}

impl ListQuery {
    pub fn parse(q: &QueryParams) -> Result<Self, ApiError> {
        if let Some(unknown) = q.names().find(|n| !KNOWN.contains(n)) {
            return Err(ApiError::bad_request(
                "UNKNOWN_PARAMETER",
                "query",
                format!("unknown parameter {unknown:?}; known: {}", KNOWN.join(", ")),
            ));
        }
        let start = time(q, "startTime")?;
        let end = time(q, "endTime")?;
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                return Err(ApiError::bad_request(
                    "INVALID_TIME_RANGE",
                    "endTime",
                    "endTime must not be before startTime",
                ));
            }
            if e - s > Duration::days(MAX_SPAN_DAYS) {
                return Err(ApiError::bad_request(
                    "INVALID_TIME_RANGE",
                    "endTime",
                    format!("the span may be at most {MAX_SPAN_DAYS} days"),
                ));
            }
        }
        let keyword = q
            .get("keyword")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        if keyword.as_ref().is_some_and(|k| k.chars().count() > MAX_KEYWORD_CHARS) {
            return Err(ApiError::bad_request(
                "INVALID_KEYWORD",
                "keyword",
                format!("keyword may be at most {MAX_KEYWORD_CHARS} characters"),
            ));
        }
        let status = q.get("status").map(parse_status).transpose()?;
        let source = q
            .get("source")
            .map(|s| {
                LeadSource::parse(s).ok_or_else(|| {
                    ApiError::bad_request(
                        "INVALID_SOURCE",
                        "source",
                        "source must be laike, oceanengine_clue, oceanengine_life, feiyu or douyin_fans",
                    )
                })
            })
            .transpose()?;
        let size = number(q, "size", 10, 1..=MAX_SIZE)?;
        let (cursor, current) = match (q.get("cursor"), q.get("page")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "INVALID_PAGING",
                    "cursor",
                    "give either page or cursor, not both",
                ));
            }
            (Some(raw), None) if raw.is_empty() || raw.len() > 512 => {
                return Err(ApiError::bad_request(
                    "INVALID_CURSOR",
                    "cursor",
                    "cursor is not one this API issued",
                ));
            }
            (Some(raw), None) => (Some(raw.to_owned()), 0),
            (None, _) => (None, page_number(q)?),
        };
        Ok(Self {
            filter: LeadFilter {
                start,
                end,
                keyword,
                status,
                source,
                connection_id: connection_id(q)?,
            },
            cursor,
            size,
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<ListQuery, ApiError> {
        ListQuery::parse(&QueryParams::parse(Some(raw)).unwrap())
    }

    #[test]
    fn defaults_and_filters() {
        let q = parse("").unwrap();
        assert_eq!((q.size, q.current, q.cursor), (10, 1, None));
        let q = parse("startTime=2025-06-01T00:00:00%2B08:00&endTime=2025-06-30T00:00:00Z&status=NEW&source=feiyu&keyword=138&size=100&page=3").unwrap();
        assert_eq!(q.filter.status, Some(LeadStatus::New));
        assert_eq!(q.filter.source, Some(LeadSource::Feiyu));
        assert_eq!(q.filter.start.unwrap().to_rfc3339(), "2025-05-31T16:00:00+00:00");
        assert_eq!((q.size, q.current), (100, 3));
    }

    #[test]
    fn every_bad_input_names_its_field() {
        for (raw, field) in [
            ("startTime=yesterday", "startTime"),
            ("startTime=2025-06-01T00:00:00", "startTime"),
            ("startTime=2025-06-02T00:00:00Z&endTime=2025-06-01T00:00:00Z", "endTime"),
            ("startTime=2024-01-01T00:00:00Z&endTime=2025-06-01T00:00:00Z", "endTime"),
            ("status=DONE", "status"),
            ("source=weibo", "source"),
            ("size=0", "size"),
            ("size=101", "size"),
            ("page=0", "page"),
            ("page=x", "page"),
            ("cursor=abc&page=2", "cursor"),
            ("sort=asc", "query"),
            ("connectionId=x", "connectionId"),
        ] {
            let err = parse(raw).expect_err(raw);
            assert_eq!((err.status.as_u16(), err.field), (400, Some(field)), "{raw}");
        }
        let long = format!("keyword={}", "字".repeat(65));
        assert_eq!(parse(&long).unwrap_err().field, Some("keyword"));
    }
}
