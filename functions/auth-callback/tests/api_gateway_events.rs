//! The auth-callback router driven by real API Gateway HTTP API (v2) events: a public route, so
//! the events carry no authorizer. The full flow with a platform is in tests/tests/connect_flow.rs.

use axum::body::to_bytes;
use axum::response::Response;
use chrono::{Duration, Utc};
use serde_json::Value;
use shared::clock::SystemClock;
use shared::domain::{AppCredentials, OAuthState, Provider, TenantId};
use shared::secret::Secret;
use shared::store::memory::{MemoryConnectionStore, MemoryStateStore, MemoryTokenVault};
use shared::store::{ConnectionStore, StateStore};
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("../../../tests/fixtures/events/apigw-v2-auth-callback.json");

struct Setup {
    app: axum::Router,
    states: Arc<MemoryStateStore>,
    connections: Arc<MemoryConnectionStore>,
}

fn setup() -> Setup {
    // Nothing listens on port 1: any platform call fails before it is sent.
    let env = HashMap::from([
        ("DOUYIN_CLIENT_KEY", "awfixturekey"),
        ("OCEANENGINE_APP_ID", "1700000000000001"),
        (
            "OAUTH_CALLBACK_URL",
            "https://api.example.com/api/v1/lead/douyin/auth/callback",
        ),
        ("DOUYIN_BASE_URL", "http://127.0.0.1:1"),
        ("HTTP_RETRY_BASE_MS", "1"),
        ("HTTP_RETRY_MAX_MS", "2"),
    ]);
    let config = shared::Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    let states = Arc::new(MemoryStateStore::default());
    let connections = Arc::new(MemoryConnectionStore::default());
    let vault = Arc::new(MemoryTokenVault::new(AppCredentials {
        douyin_client_secret: Secret::new("s"),
        oceanengine_secret: Secret::new("o"),
    }));
    let stores = auth_callback::Stores {
        states: states.clone(),
        pending: states.clone(),
        vault: vault.clone(),
        credentials: vault,
        connections: connections.clone(),
    };
    let service = auth_callback::service(&config, stores, Arc::new(SystemClock));
    Setup {
        app: auth_callback::router(Arc::new(service)),
        states,
        connections,
    }
}

async fn issue_state(states: &MemoryStateStore, redirect: Option<&str>) -> String {
    let now = Utc::now();
    let state = OAuthState {
        state: format!("st-{}", now.timestamp_nanos_opt().unwrap()),
        tenant: TenantId::new("tenant-42"),
        provider: Provider::Douyin,
        redirect_url: redirect.map(str::to_owned),
        created_at: now,
        expires_at: now + Duration::minutes(10),
    };
    states.create(&state).await.unwrap();
    state.state
}

async fn send(app: axum::Router, raw_query: &str) -> Response {
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    event["rawQueryString"] = Value::from(raw_query);
    let params: serde_json::Map<String, Value> = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
        .collect();
    event["queryStringParameters"] = Value::Object(params);
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    app.oneshot(request).await.unwrap()
}

async fn json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn an_unknown_or_missing_state_is_a_400() {
    let s = setup();
    let (status, body) = json(send(s.app.clone(), "code=CODE&state=STATE").await).await;
    assert_eq!(
        (status, body["errorCode"].as_str(), body["field"].as_str()),
        (400, Some("STATE_INVALID"), Some("state"))
    );
    let (status, body) = json(send(s.app, "code=CODE").await).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("STATE_MISSING")));
}

#[tokio::test]
async fn a_platform_that_cannot_be_reached_is_a_502() {
    let s = setup();
    let state = issue_state(&s.states, None).await;
    let (status, body) = json(send(s.app, &format!("code=CODE&state={state}")).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorCode"], "PLATFORM_ERROR");
    assert_eq!(body["platform"]["name"], "douyin");
    assert_eq!(
        body["message"], "douyin could not be reached",
        "no transport text (hosts, addresses, OS errors) in the answer"
    );
    assert!(
        s.connections
            .list(&TenantId::new("tenant-42"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn no_code_means_the_user_declined_and_goes_back_with_the_reason() {
    let s = setup();
    let state = issue_state(&s.states, Some("https://app.example.com/connected")).await;
    let resp = send(s.app.clone(), &format!("error=access_denied&state={state}")).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://app.example.com/connected?status=error&reason=access_denied"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");

    let state = issue_state(&s.states, None).await;
    let (status, body) = json(send(s.app, &format!("state={state}")).await).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("CONSENT_DENIED")));
}
