//! Webhooks and bots end to end: subscriptions made through the API (DynamoDB Local), events fanned
//! out to deliveries, delivered over real HTTP to a loopback receiver, retried through a day of
//! simulated time, disabled after three, folded into bot digests over the rate; the SQS path
//! through lead-events' Lambda handler on moto.

use chrono::{DateTime, Duration, Utc};
use devkit::app::{self, StoreSet};
use devkit::local_auth::LocalJwt;
use devkit::moto;
use devkit::outbound::{Receiver, drain};
use serde_json::{Value, json};
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::domain::TenantId;
use shared::events::OutboundEvent;
use shared::events::bus::MemoryEvents;
use shared::lead::{LeadSource, LeadStatus, StoredLead};
use shared::outbound::deliver::{Deliverer, Step};
use shared::outbound::queue::MemoryDeliveryQueue;
use shared::outbound::sender::{HttpTransport, Transport};
use shared::outbound::signing::verify_webhook;
use shared::outbound::target::{Lookup, TargetPolicy};
use shared::outbound::{DeliveryRules, DeliveryStatus};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const ADMIN: &str = "lead:douyin:admin";
const PHONE: &str = "lead:douyin:leads:phone";

struct Harness {
    config: shared::Config,
    stores: StoreSet,
    router: axum::Router,
    jwt: LocalJwt,
}

async fn harness_with(extra: &[(&str, &str)]) -> Harness {
    let aws = moto::aws().await;
    let tables = moto::create_tables(&aws.dynamodb).await;
    let sim = devkit::sim::SimApp::default();
    let mut env: HashMap<String, String> = app::simulator_env("http://127.0.0.1:9", "http://127.0.0.1:9", &sim);
    env.extend(tables.env());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).expect("valid config");
    let mut stores = StoreSet::aws(&aws, &config);
    // Offline: public names resolve to a public address, as they would.
    stores.lookup = Arc::new(PublicDns);
    let jwt = LocalJwt::new("webhook-test-key", "sub");
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(&config, &stores, requests, Arc::new(SystemClock), jwt.clone())
        .fallback(shared::http::route_not_found);
    Harness {
        config,
        stores,
        router,
        jwt,
    }
}

async fn harness() -> Harness {
    harness_with(&[]).await
}

impl Harness {
    async fn call(&self, tenant: &str, scopes: &[&str], method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.jwt.mint(tenant, scopes, Duration::hours(1));
        app::call(
            &self.router,
            &token,
            method,
            &format!("/api/v1/lead/douyin{path}"),
            body,
        )
        .await
    }

    async fn subscribe(&self, tenant: &str, body: Value) -> Value {
        let (status, answer) = self
            .call(tenant, &[ADMIN, PHONE], "POST", "/webhooks", Some(body))
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["data"].clone()
    }

    /// The delivery rules on the harness's store, with a clock and queue the test moves.
    fn deliverer(
        &self,
        clock: Arc<ManualClock>,
        transport: Arc<dyn Transport>,
    ) -> (Deliverer, Arc<MemoryDeliveryQueue>, Arc<MemoryEvents>) {
        let queue = Arc::new(MemoryDeliveryQueue::new(clock.clone()));
        let bus = Arc::new(MemoryEvents::default());
        let deliverer = Deliverer {
            store: self.stores.deliveries.clone(),
            queue: queue.clone(),
            transport,
            publisher: bus.clone(),
            clock,
            rules: DeliveryRules::from_config(&self.config.outbound),
            max_hop: self.config.outbound.max_queue_delay,
        };
        (deliverer, queue, bus)
    }

    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(HttpTransport::from_config(&self.config.outbound))
    }
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc()
}

fn lead(tenant: &str, n: usize, at: DateTime<Utc>) -> StoredLead {
    devkit::sync_fixtures::stored_lead(tenant, n, LeadSource::OceanEngineLife, at)
}

fn created(tenant: &str, range: std::ops::Range<usize>, at: DateTime<Utc>) -> Vec<OutboundEvent> {
    range
        .flat_map(|n| shared::events::lead_events(None, Some(&lead(tenant, n, at))))
        .collect()
}

/// Moves the clock to each due message and handles it, until `until` or nothing is left.
async fn run_until(
    clock: &ManualClock,
    queue: &MemoryDeliveryQueue,
    deliverer: &Deliverer,
    until: DateTime<Utc>,
) -> Vec<Step> {
    let mut steps = drain(queue, deliverer).await;
    while let Some(due) = queue.next_due() {
        if due > until {
            break;
        }
        let now = clock.now();
        if due > now {
            clock.advance(due - now);
        }
        steps.extend(drain(queue, deliverer).await);
    }
    let now = clock.now();
    if until > now {
        clock.advance(until - now);
    }
    steps
}

#[tokio::test]
async fn an_event_reaches_a_signed_webhook_once_however_often_it_is_replayed() {
    let h = harness().await;
    let receiver = Receiver::start().await;
    let masked = h
        .subscribe("t1", json!({"url": receiver.url, "events": ["LeadCreated"]}))
        .await;
    let revealed = h
        .subscribe(
            "t1",
            json!({"url": format!("{}?phones=1", receiver.url), "events": ["LeadCreated"], "includePhone": true}),
        )
        .await;
    let secret = masked["secret"].as_str().expect("the secret is shown once").to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = h.call("t1", &[ADMIN], "GET", "/webhooks", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(
        listed.to_string().find("whsec_").is_none(),
        "the secret is never shown again"
    );

    let clock = Arc::new(ManualClock::new(start()));
    let (deliverer, queue, _) = h.deliverer(clock.clone(), h.transport());
    let events = created("t1", 0..3, start());
    assert_eq!(deliverer.fan_out(&events).await.unwrap(), 6);
    drain(&queue, &deliverer).await;
    // The stream record is replayed (Lambda retried its batch): nothing goes twice.
    deliverer.fan_out(&events).await.unwrap();
    deliverer.fan_out(&created("t2", 0..3, start())).await.unwrap();
    drain(&queue, &deliverer).await;

    let got = receiver.received();
    assert_eq!(
        got.len(),
        6,
        "three events for each subscription, once each, none of t2's"
    );
    for r in &got {
        let signature = r.header("x-leads-signature").unwrap();
        let body = r.json();
        assert_eq!(r.header("x-leads-event-id"), body["eventId"].as_str());
        if r.path_and_query.contains("phones=1") {
            assert_eq!(
                body["lead"]["phone"].as_str().unwrap().len(),
                11,
                "includePhone shows the phone"
            );
        } else {
            assert!(verify_webhook(&secret, signature, &r.body), "signed over the raw body");
            assert!(body["lead"]["phone"].as_str().unwrap().contains('*'));
        }
    }
    let (status, page) = h
        .call(
            "t1",
            &[ADMIN],
            "GET",
            &format!("/webhooks/{}/deliveries?limit=2", masked["webhookId"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let records = page["data"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r["status"] == "DELIVERED" && r["attempts"] == 1 && r["lastStatusCode"] == 200)
    );
    let cursor = page["data"]["nextCursor"].as_str().expect("a third delivery follows");
    let (_, rest) = h
        .call(
            "t1",
            &[ADMIN],
            "GET",
            &format!(
                "/webhooks/{}/deliveries?cursor={cursor}",
                masked["webhookId"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(rest["data"]["records"].as_array().unwrap().len(), 1);
    let _ = revealed;
}

#[tokio::test]
async fn a_receiver_down_for_a_day_gets_everything_once_when_it_is_back() {
    let h = harness().await;
    let receiver = Receiver::start().await;
    let sub = h
        .subscribe(
            "t1",
            json!({"url": receiver.url, "events": ["LeadCreated", "LeadStatusChanged"]}),
        )
        .await;
    let hook = sub["webhookId"].as_str().unwrap().to_owned();
    let clock = Arc::new(ManualClock::new(start()));
    let (deliverer, queue, _) = h.deliverer(clock.clone(), h.transport());
    receiver.answer(503);
    let mut events = created("t1", 0..20, start());
    // Two moves of one lead: version 3 may only reach the receiver after (or instead of) version 2.
    let mut worked = lead("t1", 0, start());
    worked.status = LeadStatus::Contacted;
    worked.version = 2;
    let mut won = worked.clone();
    won.status = LeadStatus::Converted;
    won.version = 3;
    events.extend(shared::events::lead_events(
        Some(&lead("t1", 0, start())),
        Some(&worked),
    ));
    events.extend(shared::events::lead_events(Some(&worked), Some(&won)));
    deliverer.fan_out(&events).await.unwrap();
    let steps = run_until(&clock, &queue, &deliverer, start() + Duration::hours(23)).await;
    assert!(
        steps.iter().filter(|s| **s == Step::Retrying).count() >= 22 * 10,
        "retried all day"
    );
    let down = receiver.received().len();
    receiver.answer(200);
    // The wait scheduled before the receiver came back may be up to 6 h + 20 % long.
    run_until(&clock, &queue, &deliverer, start() + Duration::hours(23 + 8)).await;
    assert_eq!(queue.waiting(), 0, "nothing left to try");

    let delivered: Vec<Value> = receiver.received()[down..].iter().map(|r| r.json()).collect();
    let ids: HashSet<&str> = delivered.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), delivered.len(), "each event once once the receiver is up");
    let expected: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    // Only older versions of the lead whose version 3 went first may be skipped (superseded):
    // a consumer would drop them as stale anyway.
    for missing in expected.difference(&ids) {
        let event = events.iter().find(|e| e.id == *missing).unwrap();
        assert_eq!(event.detail["leadId"], "l_0000", "{missing} is lost");
        assert!(event.detail["version"].as_u64().unwrap() < 3);
    }
    let versions: Vec<u64> = delivered
        .iter()
        .filter(|e| e["leadId"] == "l_0000" && e["type"] == "LeadStatusChanged")
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "per-lead order by version: {versions:?}"
    );
    assert_eq!(versions.last(), Some(&3));
    let page = h.stores.deliveries.deliveries(&hook, None, 100).await.unwrap();
    assert!(
        page.records
            .iter()
            .all(|d| matches!(d.status, DeliveryStatus::Delivered | DeliveryStatus::Superseded))
    );
    assert!(page.records.iter().any(|d| d.attempts >= 10), "backoff kept trying");
    let sub = h
        .stores
        .deliveries
        .subscription(&TenantId::new("t1"), &hook)
        .await
        .unwrap()
        .unwrap();
    assert!(sub.failing_since.is_none(), "a success ends the failure run");
}

#[tokio::test]
async fn a_subscription_failing_for_three_days_is_disabled_and_says_so() {
    let h = harness().await;
    let dead = Receiver::start().await;
    let watcher = Receiver::start().await;
    let sub = h
        .subscribe("t1", json!({"url": dead.url, "events": ["LeadCreated"]}))
        .await;
    h.subscribe("t1", json!({"url": watcher.url, "events": ["WebhookDisabled"]}))
        .await;
    let clock = Arc::new(ManualClock::new(start()));
    let (deliverer, queue, bus) = h.deliverer(clock.clone(), h.transport());
    dead.answer(500);
    for day in 0..4 {
        let at = start() + Duration::hours(26 * day);
        deliverer
            .fan_out(&created("t1", day as usize..day as usize + 1, at))
            .await
            .unwrap();
        run_until(&clock, &queue, &deliverer, at + Duration::hours(26)).await;
    }
    let hook = sub["webhookId"].as_str().unwrap();
    let stored = h
        .stores
        .deliveries
        .subscription(&TenantId::new("t1"), hook)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, shared::outbound::HookStatus::Disabled);
    let first = h.stores.deliveries.deliveries(hook, None, 10).await.unwrap();
    assert!(
        first.records.iter().all(|d| d.status == DeliveryStatus::Dead),
        "{:?}",
        first.records
    );
    assert!(
        !queue.dead_letters().is_empty(),
        "given-up deliveries are dead-lettered for the alarm"
    );
    let told: Vec<Value> = watcher.received().iter().map(|r| r.json()).collect();
    assert_eq!(told.len(), 1, "WebhookDisabled once");
    assert_eq!(told[0]["type"], "WebhookDisabled");
    assert_eq!(told[0]["webhookId"], hook);
    assert_eq!(
        bus.all().iter().filter(|e| e.detail_type == "WebhookDisabled").count(),
        1
    );
    let (_, listed) = h.call("t1", &[ADMIN], "GET", "/webhooks", None).await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["status"] == "DISABLED" && s["disabledReason"].is_string())
    );
    let (status, answer) = h
        .call(
            "t1",
            &[ADMIN],
            "POST",
            &format!("/webhooks/{hook}/deliveries/{}/retry", first.records[0].delivery_id),
            None,
        )
        .await;
    assert_eq!((status, answer["errorCode"].as_str()), (409, Some("WEBHOOK_DISABLED")));
}

#[tokio::test]
async fn a_dead_delivery_retried_by_hand_is_sent_again() {
    let h = harness_with(&[("WEBHOOK_RETRY_HOURS", "24")]).await;
    let receiver = Receiver::start().await;
    let sub = h
        .subscribe("t1", json!({"url": receiver.url, "events": ["LeadCreated"]}))
        .await;
    let hook = sub["webhookId"].as_str().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let (deliverer, queue, _) = h.deliverer(clock.clone(), h.transport());
    receiver.answer(404);
    deliverer.fan_out(&created("t1", 0..1, start())).await.unwrap();
    // The last wait before the horizon may reach 6 h past it.
    run_until(&clock, &queue, &deliverer, start() + Duration::hours(31)).await;
    let d = h
        .stores
        .deliveries
        .deliveries(hook, None, 1)
        .await
        .unwrap()
        .records
        .remove(0);
    assert_eq!((d.status, d.last_status_code), (DeliveryStatus::Dead, Some(404)));
    assert!(d.last_error.as_deref().unwrap().starts_with("HTTP 404"));
    receiver.answer(200);
    assert!(deliverer.retry(&d).await.unwrap());
    drain(&queue, &deliverer).await;
    let again = h
        .stores
        .deliveries
        .delivery(hook, &d.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Delivered);
    // And through the route: unknown ids are 404, ids of another tenant's hook too.
    let (status, _) = h
        .call(
            "t1",
            &[ADMIN],
            "POST",
            &format!("/webhooks/{hook}/deliveries/d_000/retry"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = h
        .call(
            "t2",
            &[ADMIN],
            "POST",
            &format!("/webhooks/{hook}/deliveries/{}/retry", d.delivery_id),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = h
        .call(
            "t1",
            &[ADMIN],
            "POST",
            &format!("/webhooks/{hook}/deliveries/{}/retry", d.delivery_id),
            None,
        )
        .await;
    assert_eq!((status, answer["data"]["status"].as_str()), (202, Some("PENDING")));
}

#[tokio::test]
async fn subscriptions_check_their_input_scopes_and_targets() {
    let h = harness_with(&[
        ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "false"),
        ("WEBHOOK_ALLOW_HTTP", "false"),
    ])
    .await;
    let cases = [
        (
            json!({"url": "https://hooks.example.com/x", "events": ["LeadCreated"], "kind": "slack"}),
            "INVALID_KIND",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "events": []}),
            "INVALID_EVENTS",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "events": ["LeadDeleted"]}),
            "INVALID_EVENTS",
        ),
        (json!({"url": "https://hooks.example.com/x"}), "INVALID_EVENTS"),
        (
            json!({"url": "http://hooks.example.com/x", "events": ["LeadCreated"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://127.0.0.1/x", "events": ["LeadCreated"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "events": ["LeadCreated"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://localhost/x", "events": ["LeadCreated"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://hooks.example.com:22/x", "events": ["LeadCreated"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://evil.example.com/x", "kind": "wecom"}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "events": ["LeadCreated"], "secret": "mine"}),
            "INVALID_FIELD",
        ),
        (
            json!({"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "kind": "wecom", "includePhone": true}),
            "INVALID_FIELD",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "events": ["LeadCreated"], "extra": 1}),
            "INVALID_JSON",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = h
            .call("t1", &[ADMIN, PHONE], "POST", "/webhooks", Some(body.clone()))
            .await;
        assert_eq!(
            (status, answer["errorCode"].as_str()),
            (400, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, _) = h
        .call("t1", &["lead:douyin:leads:view"], "GET", "/webhooks", None)
        .await;
    assert_eq!(status, 403);
    let body = json!({"url": "https://1.1.1.1/hook", "events": ["LeadCreated"], "includePhone": true});
    let (status, answer) = h.call("t1", &[ADMIN], "POST", "/webhooks", Some(body)).await;
    assert_eq!(
        (status, answer["errorCode"].as_str()),
        (403, Some("MISSING_SCOPE")),
        "phones need the phone scope"
    );
    let (status, made) = h
        .call(
            "t1",
            &[ADMIN],
            "POST",
            "/webhooks",
            Some(json!({"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret-key", "kind": "wecom"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        made["data"]["url"],
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    );
    assert!(made["data"].get("secret").is_none());
    let id = made["data"]["webhookId"].as_str().unwrap();
    let (status, _) = h.call("t2", &[ADMIN], "DELETE", &format!("/webhooks/{id}"), None).await;
    assert_eq!(status, 404, "another tenant's subscription does not exist for it");
    let (status, _) = h.call("t1", &[ADMIN], "DELETE", &format!("/webhooks/{id}"), None).await;
    assert_eq!(status, 200);
    let (_, listed) = h.call("t1", &[ADMIN], "GET", "/webhooks", None).await;
    assert_eq!(listed["data"], json!([]));
}

/// Resolves every name but `localhost` to a public address.
struct PublicDns;

#[async_trait::async_trait]
impl Lookup for PublicDns {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let ip = if host == "localhost" {
            "127.0.0.1:0"
        } else {
            "93.184.216.34:0"
        };
        Ok(vec![ip.parse().unwrap()])
    }
}

/// Resolves every name to loopback, as a rebinding DNS server would after the check.
struct Rebinding;

#[async_trait::async_trait]
impl Lookup for Rebinding {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
        Ok(vec!["127.0.0.1:443".parse().unwrap()])
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_at_send_time_reaches_nothing() {
    let receiver = Receiver::start().await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let policy = TargetPolicy {
        allow_http: true,
        allow_private: false,
        ports: vec![port.parse().unwrap()],
    };
    let transport = HttpTransport::with_lookup(policy, std::time::Duration::from_secs(2), 1024, Arc::new(Rebinding));
    let answer = transport
        .post(
            &format!("http://hooks.example.com:{port}/hooks/leads"),
            &[],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(answer.status, None);
    assert!(
        answer.error.as_deref().unwrap().contains("target not allowed"),
        "{answer:?}"
    );
    assert!(receiver.received().is_empty(), "the request never left");
}

#[tokio::test]
async fn a_bot_over_its_rate_gets_a_digest_and_loses_nothing() {
    let h = harness_with(&[
        ("BOT_MESSAGES_PER_MINUTE", "3"),
        ("BOT_LEAD_LINK_TEMPLATE", "https://app.example.com/leads/{leadId}"),
    ])
    .await;
    let bot = Receiver::start().await;
    h.subscribe("t1", json!({"url": bot.url, "kind": "wecom"})).await;
    let clock = Arc::new(ManualClock::new(start()));
    let (deliverer, queue, _) = h.deliverer(clock.clone(), h.transport());
    bot.throttle_next(1, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#);
    deliverer.fan_out(&created("t1", 0..10, start())).await.unwrap();
    let steps = run_until(&clock, &queue, &deliverer, start() + Duration::minutes(3)).await;
    assert_eq!(steps.iter().filter(|s| **s == Step::Delivered).count(), 2, "{steps:?}");
    assert_eq!(steps.iter().filter(|s| **s == Step::DigestSent).count(), 1, "{steps:?}");
    let texts: Vec<String> = bot
        .received()
        .iter()
        .map(|r| r.json()["markdown"]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts.len(),
        4,
        "3 messages in the first minute (one throttled), then one digest"
    );
    let digest = texts.last().unwrap();
    assert!(digest.starts_with("【线索汇总】8 条通知"), "{digest}");
    for n in 0..10 {
        let name = format!("客户{n} ");
        assert!(texts.iter().any(|t| t.contains(&name)), "{name} was told");
    }
    assert!(texts[0].contains("138****"), "masked phones only");
    assert!(texts[0].contains("https://app.example.com/leads/l_"), "{}", texts[0]);
}

#[tokio::test]
async fn the_delivery_queue_drives_lead_events_through_sqs() {
    let aws = moto::aws().await;
    let queue_url = aws
        .sqs
        .create_queue()
        .queue_name(moto::unique("webhooks"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let h = harness_with(&[("WEBHOOK_QUEUE_URL", &queue_url), ("WEBHOOK_QUEUE_MAX_DELAY_SECS", "0")]).await;
    let receiver = Receiver::start().await;
    h.subscribe("t1", json!({"url": receiver.url, "events": ["LeadCreated"]}))
        .await;
    let outbound = h.stores.outbound(&h.config, Arc::new(SystemClock));
    outbound.fan_out(&created("t1", 0..12, Utc::now())).await.unwrap();
    let mut handled = 0;
    while handled < 12 {
        let out = aws
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let records: Vec<Value> = out
            .messages()
            .iter()
            .map(|m| json!({"messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs"}))
            .collect();
        assert!(!records.is_empty(), "the fan-out queued a message per delivery");
        handled += records.len();
        let event = json!({ "Records": records });
        assert!(lead_events::is_queue_batch(&event));
        let answer = lead_events::handle_deliveries(&outbound, &event).await;
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    let ids: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 12);
}
