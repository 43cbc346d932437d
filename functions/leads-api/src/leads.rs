//! Leads: the list (any filter, bounded requests per call), the detail with the first page of
//! its history, and the operator's status work.

use crate::{Api, LeadsApi, MAX_BODY_BYTES, MAX_NOTES_CHARS, SCOPE_EDIT, SCOPE_PHONE, SCOPE_VIEW};
use crate::{actor, internal, json_body, params, plausible_id, view};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use shared::domain::TenantId;
use shared::http::{ApiError, Identity, QueryParams, ok};
use shared::lead::{HistoryEntry, LeadId, LeadStatus, StoredLead};
use shared::lead_query::{CursorError, PageStart, QueryError};
use shared::store::{HISTORY_PAGE, LeadUpdateError, OperatorChange};

pub(crate) fn lead_not_found() -> ApiError {
    ApiError::not_found("LEAD_NOT_FOUND", "no such lead")
}

pub(crate) fn cursor_error(e: CursorError) -> ApiError {
    match e {
        CursorError::Malformed => ApiError::bad_request("INVALID_CURSOR", "cursor", e.to_string()),
        CursorError::Mismatch => ApiError::bad_request(
            "CURSOR_MISMATCH",
            "cursor",
            "the cursor belongs to another filter or time range; start again without it",
        ),
    }
}

pub(crate) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::PageTooDeep { .. } => ApiError::bad_request("PAGE_TOO_DEEP", "page", e.to_string()),
        QueryError::Store(e) => internal("list leads", &e),
    }
}

/// The parsed list query with its cursor checked against the caller's tenant and filter.
pub(crate) fn page_start(
    api: &LeadsApi,
    identity: &Identity,
    query: &params::ListQuery,
) -> Result<PageStart, ApiError> {
    match &query.cursor {
        Some(raw) => api
            .cursors()
            .decode(&identity.tenant, &query.filter, raw)
            .map(PageStart::After)
            .map_err(cursor_error),
        None => Ok(PageStart::Number(query.current.max(1))),
    }
}

pub(crate) async fn list_leads(
    State(api): Api,
    identity: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_VIEW)?;
    let query = params::ListQuery::parse(&QueryParams::parse(raw.as_deref())?)?;
    let start = page_start(&api, &identity, &query)?;
    let reveal = identity.scopes.contains(SCOPE_PHONE);
    let page = shared::lead_query::list(
        api.leads.as_ref(),
        &identity.tenant,
        &query.filter,
        &start,
        query.size,
        reveal,
        api.read.limits,
    )
    .await
    .map_err(query_error)?;
    let pages = page.total_exact.then(|| page.total.div_ceil(u64::from(query.size)));
    let records: Vec<_> = page.records.iter().map(|l| view::lead(l, false)).collect();
    let cursor = page
        .next
        .map(|c| api.cursors().encode(&identity.tenant, &query.filter, &c));
    Ok(ok(json!({
        "records": records, "total": page.total, "totalExact": page.total_exact, "size": query.size,
        "current": query.current, "pages": pages, "nextCursor": cursor,
    })))
}

pub(crate) async fn find(api: &LeadsApi, tenant: &TenantId, id: &str) -> Result<StoredLead, ApiError> {
    if !plausible_id(id, "l_") {
        return Err(lead_not_found());
    }
    api.leads
        .get(tenant, &LeadId::from_stored(id))
        .await
        .map_err(|e| internal("get lead", &e))?
        .ok_or_else(lead_not_found)
}

/// The lead as the detail shows it: the first page of its history beside it.
async fn detail(api: &LeadsApi, lead: &StoredLead, reveal: bool) -> Result<Response, ApiError> {
    let history = api
        .leads
        .history(&lead.tenant, &lead.lead_id, None, HISTORY_PAGE)
        .await
        .map_err(|e| internal("read history", &e))?;
    Ok(ok(view::lead_detail(lead, &history, reveal)))
}

pub(crate) async fn get_lead(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_VIEW)?;
    let lead = find(&api, &identity.tenant, &id).await?;
    let reveal = identity.scopes.contains(SCOPE_PHONE) && lead.fields.phone.is_some();
    if reveal {
        // Every reveal is on the record, without bumping the version an editor may hold.
        let entry = HistoryEntry {
            at: api.clock.now(),
            actor: actor(&identity),
            action: "PHONE_REVEALED".into(),
            from: None,
            to: None,
        };
        match api
            .leads
            .append_history(&identity.tenant, &lead.lead_id, std::slice::from_ref(&entry))
            .await
        {
            Ok(()) => {}
            Err(LeadUpdateError::NotFound) => return Err(lead_not_found()),
            Err(e) => return Err(internal("record phone reveal", &e)),
        }
    }
    detail(&api, &lead, reveal).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    status: Option<String>,
    notes: Option<String>,
    version: Option<u64>,
    /// With a move to INVALID: why, from the platform's list (本地推 write-back needs it).
    #[serde(rename = "invalidReason")]
    invalid_reason: Option<String>,
}

/// The invalid reason a PATCH may carry: only with status INVALID, one of the platform's reason
/// codes (`WRITEBACK_LIFE_INVALID_REASONS`); required for 本地推 leads whose connection writes
/// back (the platform refuses INVALID_EVENT without one).
async fn checked_reason(
    api: &crate::LeadsApi,
    current: &shared::lead::StoredLead,
    to: Option<LeadStatus>,
    reason: Option<String>,
) -> Result<Option<String>, ApiError> {
    let moving_to_invalid = to == Some(LeadStatus::Invalid) && current.status != LeadStatus::Invalid;
    let Some(reason) = reason else {
        if moving_to_invalid && api.writeback.needs_reason(current.source, LeadStatus::Invalid) {
            let write_back = api
                .ledger
                .sync_info(&current.tenant, &current.connection_id)
                .await
                .map_err(|e| internal("read sync info", &e))?
                .write_back;
            if write_back {
                return Err(ApiError::bad_request(
                    "INVALID_REASON_REQUIRED",
                    "invalidReason",
                    format!(
                        "this lead's status is written back to 本地推, which needs a reason for INVALID: one of {}",
                        api.writeback.life_invalid_reasons.join(", ")
                    ),
                ));
            }
        }
        return Ok(None);
    };
    if to != Some(LeadStatus::Invalid) {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            "invalidReason",
            "invalidReason goes with status INVALID",
        ));
    }
    if !api.writeback.life_invalid_reasons.contains(&reason) {
        return Err(ApiError::bad_request(
            "INVALID_REASON",
            "invalidReason",
            format!(
                "invalidReason must be one of the platform's reason codes: {}",
                api.writeback.life_invalid_reasons.join(", ")
            ),
        ));
    }
    // Already INVALID: the move, and with it the reason, was made before.
    Ok(moving_to_invalid.then_some(reason))
}

pub(crate) async fn patch_lead(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    identity.require(SCOPE_EDIT)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "BODY_TOO_LARGE",
            "body",
            format!("the body may be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let patch: PatchBody = json_body(&body)?;
    let version = patch.version.ok_or_else(|| {
        ApiError::bad_request(
            "VERSION_REQUIRED",
            "version",
            "version (from the lead you read) is required",
        )
    })?;
    let status = patch.status.as_deref().map(params::parse_status).transpose()?;
    if patch
        .notes
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS)
    {
        return Err(ApiError::bad_request(
            "INVALID_NOTES",
            "notes",
            format!("notes may be at most {MAX_NOTES_CHARS} characters"),
        ));
    }
    if status.is_none() && patch.notes.is_none() {
        return Err(ApiError::bad_request(
            "NOTHING_TO_CHANGE",
            "body",
            "give status and/or notes",
        ));
    }
    let current = find(&api, &identity.tenant, &id).await?;
    if current.version != version {
        return Err(version_conflict(current.version));
    }
    let invalid_reason = checked_reason(&api, &current, status, patch.invalid_reason).await?;
    let now = api.clock.now();
    let mut history = Vec::new();
    if let Some(to) = status.filter(|s| *s != current.status) {
        if !current.status.can_move_to(to) {
            return Err(ApiError::conflict(
                "ILLEGAL_STATUS_MOVE",
                format!("a lead cannot move from {} to {}", current.status.as_str(), to.as_str()),
            ));
        }
        history.push(HistoryEntry {
            at: now,
            actor: actor(&identity),
            action: "STATUS".into(),
            from: Some(current.status.as_str().into()),
            to: Some(to.as_str().into()),
        });
    }
    if patch.notes.as_ref().is_some_and(|n| *n != current.notes) {
        history.push(HistoryEntry {
            at: now,
            actor: actor(&identity),
            action: "NOTES".into(),
            from: None,
            to: None,
        });
    }
    if history.is_empty() {
        return detail(&api, &current, false).await;
    }
    let change = OperatorChange {
        status: status.filter(|s| *s != current.status),
        notes: patch.notes,
        invalid_reason,
        expected_version: version,
        history,
        at: now,
    };
    match api
        .leads
        .update_operator_fields(&identity.tenant, &current.lead_id, &change)
        .await
    {
        Ok(updated) => detail(&api, &updated, false).await,
        Err(LeadUpdateError::NotFound) => Err(lead_not_found()),
        Err(LeadUpdateError::VersionConflict { current }) => Err(version_conflict(current)),
        Err(LeadUpdateError::Store(e)) => Err(internal("update lead", &e)),
    }
}

fn version_conflict(current: u64) -> ApiError {
    ApiError::conflict(
        "VERSION_CONFLICT",
        format!("the lead changed meanwhile (now version {current}); read it again"),
    )
}
