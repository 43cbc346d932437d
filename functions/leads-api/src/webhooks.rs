//! The tenant's outbound subscriptions: signed webhooks for integrators and group bots (企业微信,
//! 飞书, 钉钉), their delivery log, and a retry button. Admin scope only; a webhook that carries
//! phones also needs the phone scope. The signing secret of a webhook is shown once, at creation.

use crate::register::SCOPE_ADMIN;
use crate::{Api, SCOPE_PHONE, internal, json_body};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::http::{ApiError, Identity, ok};
use shared::outbound::deliver::{Deliverer, redacted_url};
use shared::outbound::signing::new_secret;
use shared::outbound::target::{Lookup, TargetPolicy};
use shared::outbound::{BOT_EVENT_TYPES, Delivery, EVENT_TYPES, HookKind, HookStatus, Subscription};
use shared::secret::Secret;
use std::collections::HashMap;
use std::sync::Arc;

const MAX_URL: usize = 2048;
const MAX_SECRET: usize = 256;
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;

/// What the webhook routes run on.
pub struct WebhookPorts {
    pub deliverer: Arc<Deliverer>,
    pub policy: TargetPolicy,
    pub lookup: Arc<dyn Lookup>,
    pub max_per_tenant: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default, deserialize_with = "non_null")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    events: Option<Vec<String>>,
    #[serde(default)]
    include_phone: bool,
    #[serde(default, deserialize_with = "non_null")]
    secret: Option<String>,
}

/// A field may be left out, but not sent as null: the document gives each one a type.
fn non_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn ports(api: &crate::LeadsApi) -> Result<&WebhookPorts, ApiError> {
    api.webhooks.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "WEBHOOKS_UNAVAILABLE",
            "webhooks are not configured in this deployment",
        )
    })
}

fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, field, message)
}

/// The hosts each bot platform serves its group webhooks from (docs/chat-bots.md).
fn bot_hosts(kind: HookKind) -> &'static [&'static str] {
    match kind {
        HookKind::Wecom => &["qyapi.weixin.qq.com"],
        HookKind::Feishu => &["open.feishu.cn", "open.larksuite.com"],
        HookKind::Dingtalk => &["oapi.dingtalk.com"],
        HookKind::Webhook => &[],
    }
}

/// The URL's shape, then where its name points now (checked again at every connection).
async fn checked_url(ports: &WebhookPorts, kind: HookKind, raw: &str) -> Result<String, ApiError> {
    if raw.len() > MAX_URL {
        return Err(invalid(
            "INVALID_WEBHOOK_URL",
            "url",
            format!("url may be at most {MAX_URL} characters"),
        ));
    }
    let url = ports
        .policy
        .check_url(raw)
        .map_err(|why| invalid("INVALID_WEBHOOK_URL", "url", format!("url is not allowed: {why}")))?;
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if kind.is_bot() && !ports.policy.allow_private && !bot_hosts(kind).contains(&host) {
        return Err(invalid(
            "INVALID_WEBHOOK_URL",
            "url",
            format!(
                "a {} bot URL must be on {}",
                kind.as_str(),
                bot_hosts(kind).join(" or ")
            ),
        ));
    }
    // Resolving only serves the public-address rule; where private targets are allowed (the
    // local run), a name is looked up when a delivery connects.
    if let Some(url::Host::Domain(name)) = url.host().filter(|_| !ports.policy.allow_private) {
        let addrs = ports.lookup.lookup(name).await.map_err(|_| {
            invalid(
                "INVALID_WEBHOOK_URL",
                "url",
                format!("the host {name} does not resolve"),
            )
        })?;
        ports
            .policy
            .check_addrs(&addrs)
            .map_err(|why| invalid("INVALID_WEBHOOK_URL", "url", format!("url is not allowed: {why}")))?;
    }
    Ok(url.to_string())
}

fn checked_events(kind: HookKind, events: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let allowed = if kind.is_bot() { BOT_EVENT_TYPES } else { EVENT_TYPES };
    let Some(mut events) = events else {
        return if kind.is_bot() {
            Ok(BOT_EVENT_TYPES.iter().map(|e| (*e).to_owned()).collect())
        } else {
            Err(invalid(
                "INVALID_EVENTS",
                "events",
                "events must list the event types to receive",
            ))
        };
    };
    if events.is_empty() || events.len() > allowed.len() * 2 {
        return Err(invalid(
            "INVALID_EVENTS",
            "events",
            "events must list 1 to twice as many event types as there are",
        ));
    }
    if let Some(bad) = events.iter().find(|e| !allowed.contains(&e.as_str())) {
        return Err(invalid(
            "INVALID_EVENTS",
            "events",
            format!("{bad:?} is not one of {}", allowed.join(", ")),
        ));
    }
    events.sort();
    events.dedup();
    Ok(events)
}

fn view(sub: &Subscription) -> Value {
    json!({
        "webhookId": sub.id, "kind": sub.kind.as_str(), "url": redacted_url(sub.kind, &sub.url),
        "events": sub.events, "includePhone": sub.include_phone, "status": sub.status,
        "createdAt": sub.created_at, "createdBy": sub.created_by, "failingSince": sub.failing_since,
        "disabledAt": sub.disabled_at, "disabledReason": sub.disabled_reason,
    })
}

/// `POST /webhooks`.
pub(crate) async fn create(State(api): Api, identity: Identity, body: Bytes) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let ports = ports(&api)?;
    let body: CreateBody = json_body(&body)?;
    let kind = match body.kind.as_deref() {
        None => HookKind::Webhook,
        Some(raw) => HookKind::parse(raw).ok_or_else(|| {
            invalid(
                "INVALID_KIND",
                "kind",
                "kind must be webhook, wecom, feishu or dingtalk",
            )
        })?,
    };
    if body.include_phone {
        if kind.is_bot() {
            return Err(invalid(
                "INVALID_FIELD",
                "includePhone",
                "group bots are always sent masked phones",
            ));
        }
        identity.require(SCOPE_PHONE)?;
    }
    let secret = match (kind, body.secret) {
        (HookKind::Webhook, None) => Some(new_secret()),
        (HookKind::Feishu | HookKind::Dingtalk, Some(s))
            if (1..=MAX_SECRET).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(s)
        }
        (HookKind::Feishu | HookKind::Dingtalk | HookKind::Wecom, None) => None,
        (HookKind::Webhook | HookKind::Wecom, Some(_)) => {
            return Err(invalid(
                "INVALID_FIELD",
                "secret",
                "only feishu and dingtalk bots take a signing secret; a webhook's secret is made for you",
            ));
        }
        _ => {
            return Err(invalid(
                "INVALID_FIELD",
                "secret",
                format!("secret must be 1 to {MAX_SECRET} printable ASCII characters"),
            ));
        }
    };
    let events = checked_events(kind, body.events)?;
    let url = checked_url(ports, kind, &body.url).await?;
    let store = &ports.deliverer.store;
    let existing = store
        .subscriptions(&identity.tenant)
        .await
        .map_err(|e| internal("list subscriptions", &e))?;
    if existing.len() >= ports.max_per_tenant {
        return Err(ApiError::conflict(
            "WEBHOOK_LIMIT",
            format!("a tenant may have at most {} subscriptions", ports.max_per_tenant),
        ));
    }
    let sub = Subscription {
        id: new_id(),
        tenant: identity.tenant.clone(),
        kind,
        url,
        events,
        include_phone: body.include_phone,
        secret: secret.clone().map(Secret::new),
        status: HookStatus::Active,
        created_at: api.clock.now(),
        created_by: crate::actor(&identity),
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
    };
    store
        .create_subscription(&sub)
        .await
        .map_err(|e| internal("create subscription", &e))?;
    let mut answer = view(&sub);
    if kind == HookKind::Webhook {
        // Shown this once: verify `X-Leads-Signature` with it.
        answer["secret"] = json!(secret);
    }
    let mut response = (StatusCode::CREATED, ok(answer)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

fn new_id() -> String {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).expect("OS randomness is available");
    format!("wh_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn plausible(id: &str, prefix: &str) -> bool {
    crate::plausible_id(id, prefix)
}

fn not_found() -> ApiError {
    ApiError::not_found("WEBHOOK_NOT_FOUND", "no such webhook for this tenant")
}

async fn owned(api: &crate::LeadsApi, identity: &Identity, id: &str) -> Result<Subscription, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let ports = ports(api)?;
    if !plausible(id, "wh_") {
        return Err(not_found());
    }
    ports
        .deliverer
        .store
        .subscription(&identity.tenant, id)
        .await
        .map_err(|e| internal("get subscription", &e))?
        .ok_or_else(not_found)
}

/// `GET /webhooks`.
pub(crate) async fn list(State(api): Api, identity: Identity) -> Result<Response, ApiError> {
    identity.require(SCOPE_ADMIN)?;
    let ports = ports(&api)?;
    let subs = ports
        .deliverer
        .store
        .subscriptions(&identity.tenant)
        .await
        .map_err(|e| internal("list subscriptions", &e))?;
    Ok(ok(subs.iter().map(view).collect::<Vec<_>>()))
}

/// `DELETE /webhooks/{id}`: nothing more is sent; queued deliveries end as DEAD.
pub(crate) async fn delete(State(api): Api, identity: Identity, Path(id): Path<String>) -> Result<Response, ApiError> {
    let sub = owned(&api, &identity, &id).await?;
    ports(&api)?
        .deliverer
        .store
        .delete_subscription(&identity.tenant, &sub.id)
        .await
        .map_err(|e| internal("delete subscription", &e))?;
    Ok(ok(json!({"webhookId": sub.id, "deleted": true})))
}

fn delivery_view(d: &Delivery) -> Value {
    json!({
        "deliveryId": d.delivery_id, "eventId": d.event_id, "eventType": d.event_type, "leadId": d.lead_id,
        "version": d.version, "status": d.status, "attempts": d.attempts, "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "nextAttemptAt": (d.status == shared::outbound::DeliveryStatus::Pending).then_some(d.next_attempt_at),
        "createdAt": d.created_at, "deliveredAt": d.delivered_at,
    })
}

/// A page's position as the cursor shows it: `<creation time in ms>.<delivery id>`.
fn cursor_out(position: &str) -> Option<String> {
    let (time, id) = position.split_once('#')?;
    let ms = chrono::DateTime::parse_from_rfc3339(time).ok()?.timestamp_millis();
    Some(format!("{ms:013}.{id}"))
}

fn cursor_in(raw: &str) -> Result<String, ApiError> {
    let bad = || invalid("INVALID_CURSOR", "cursor", "cursor is not one this route handed out");
    let (ms, id) = raw.split_once('.').ok_or_else(bad)?;
    let shaped = ms.len() == 13
        && ms.bytes().all(|b| b.is_ascii_digit())
        && id.len() == 26
        && id.starts_with("d_")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if !shaped {
        return Err(bad());
    }
    let time = ms
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    Ok(format!(
        "{}#{id}",
        time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ))
}

/// `GET /webhooks/{id}/deliveries?cursor&limit`: newest first.
pub(crate) async fn deliveries(
    State(api): Api,
    identity: Identity,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let sub = owned(&api, &identity, &id).await?;
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| invalid("INVALID_LIMIT", "limit", format!("limit must be 1 to {MAX_PAGE}")))?,
    };
    let from = q.get("cursor").map(|c| cursor_in(c)).transpose()?;
    let page = ports(&api)?
        .deliverer
        .store
        .deliveries(&sub.id, from.as_deref(), limit)
        .await
        .map_err(|e| internal("list deliveries", &e))?;
    Ok(ok(json!({
        "records": page.records.iter().map(delivery_view).collect::<Vec<_>>(),
        "nextCursor": page.next.as_deref().and_then(cursor_out),
    })))
}

/// `POST /webhooks/{id}/deliveries/{deliveryId}/retry`: sent again now, with a new retry window.
pub(crate) async fn retry(
    State(api): Api,
    identity: Identity,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sub = owned(&api, &identity, &id).await?;
    if sub.status != HookStatus::Active {
        return Err(ApiError::conflict(
            "WEBHOOK_DISABLED",
            "this subscription is disabled; create a new one to receive events again",
        ));
    }
    let missing = || ApiError::not_found("DELIVERY_NOT_FOUND", "no such delivery for this webhook");
    if !plausible(&delivery_id, "d_") {
        return Err(missing());
    }
    let deliverer = &ports(&api)?.deliverer;
    let delivery = deliverer
        .store
        .delivery(&sub.id, &delivery_id)
        .await
        .map_err(|e| internal("get delivery", &e))?
        .ok_or_else(missing)?;
    deliverer
        .retry(&delivery)
        .await
        .map_err(|e| internal("retry delivery", &e))?;
    Ok((
        StatusCode::ACCEPTED,
        ok(json!({"deliveryId": delivery.delivery_id, "status": "PENDING"})),
    )
        .into_response())
}
