//! The auth-url router driven by real API Gateway HTTP API (v2) events with JWT authorizer data.

use axum::body::to_bytes;
use serde_json::Value;
use shared::clock::SystemClock;
use shared::http::identity::with_api_gateway_identity;
use shared::store::StateStore;
use shared::store::memory::MemoryStateStore;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("../../../tests/fixtures/events/apigw-v2-auth-url.json");

fn env() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("DOUYIN_CLIENT_KEY", "awfixturekey"),
        ("OCEANENGINE_APP_ID", "1700000000000001"),
        (
            "OAUTH_CALLBACK_URL",
            "https://api.example.com/api/v1/lead/douyin/auth/callback",
        ),
        ("ALLOWED_REDIRECT_ORIGINS", "https://app.example.com"),
    ])
}

struct Call {
    status: u16,
    body: Value,
}

async fn call(
    env: HashMap<&'static str, &'static str>,
    edit: impl FnOnce(&mut Value),
) -> (Call, Arc<MemoryStateStore>) {
    let config = shared::Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    let states = Arc::new(MemoryStateStore::default());
    let service = auth_url::service(&config, states.clone(), Arc::new(SystemClock));
    let app = with_api_gateway_identity(auth_url::router(Arc::new(service)), &config.tenant_claim);
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    edit(&mut event);
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    let response = app.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    (Call { status, body }, states)
}

fn set_query(event: &mut Value, raw: &str) {
    event["rawQueryString"] = Value::from(raw);
    let params: serde_json::Map<String, Value> = url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
        .collect();
    event["queryStringParameters"] = Value::Object(params);
}

#[tokio::test]
async fn issues_a_consent_link_bound_to_the_jwt_tenant() {
    let (resp, states) = call(env(), |_| {}).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["code"], 0);
    let data = &resp.body["data"];
    let url = url::Url::parse(data["authUrl"].as_str().unwrap()).unwrap();
    assert_eq!(url.host_str(), Some("open.douyin.com"));
    assert_eq!(url.path(), "/platform/oauth/connect/");
    let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_key"], "awfixturekey");
    assert_eq!(
        q["redirect_uri"],
        "https://api.example.com/api/v1/lead/douyin/auth/callback"
    );
    assert_eq!(q["state"], data["state"].as_str().unwrap());
    assert!(data["expiresAt"].as_str().unwrap().ends_with('Z'));

    let stored = states
        .consume(data["state"].as_str().unwrap(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(stored.tenant.as_str(), "tenant-42", "bound to the sub claim by default");
    assert_eq!(
        stored.redirect_url.as_deref(),
        Some("https://app.example.com/connected")
    );
}

#[tokio::test]
async fn the_tenant_claim_is_configurable() {
    let mut env = env();
    env.insert("TENANT_CLAIM", "tenant_id");
    let (resp, states) = call(env, |_| {}).await;
    let stored = states
        .consume(resp.body["data"]["state"].as_str().unwrap(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(stored.tenant.as_str(), "acme-co");
}

#[tokio::test]
async fn oceanengine_links_go_to_its_consent_page() {
    let (resp, _) = call(env(), |e| set_query(e, "provider=oceanengine")).await;
    assert_eq!(resp.status, 200);
    let url = url::Url::parse(resp.body["data"]["authUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        (url.host_str(), url.path()),
        (Some("ad.oceanengine.com"), "/openapi/audit/oauth.html")
    );
    assert!(url.query_pairs().any(|(k, v)| k == "app_id" && v == "1700000000000001"));
}

#[tokio::test]
async fn missing_identity_is_401_and_missing_scope_is_403() {
    let (resp, _) = call(env(), |e| {
        e["requestContext"].as_object_mut().unwrap().remove("authorizer");
    })
    .await;
    assert_eq!(
        (resp.status, resp.body["errorCode"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );

    let (resp, _) = call(env(), |e| {
        e["requestContext"]["authorizer"]["jwt"]["claims"]
            .as_object_mut()
            .unwrap()
            .remove("sub");
    })
    .await;
    assert_eq!(resp.status, 401, "a token without the tenant claim names no tenant");

    let (resp, states) = call(env(), |e| {
        e["requestContext"]["authorizer"]["jwt"]["scopes"] = serde_json::json!(["lead:douyin:leads:view"]);
    })
    .await;
    assert_eq!(
        (resp.status, resp.body["errorCode"].as_str()),
        (403, Some("MISSING_SCOPE"))
    );
    assert!(states.consume("anything", chrono::Utc::now()).await.is_err());
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    for (query, code, field) in [
        ("provider=feiyu", "INVALID_PROVIDER", "provider"),
        (
            "redirectUrl=https%3A%2F%2Fevil.example.com%2F",
            "REDIRECT_NOT_ALLOWED",
            "redirectUrl",
        ),
        (
            "redirectUrl=javascript%3Aalert(1)",
            "REDIRECT_NOT_ALLOWED",
            "redirectUrl",
        ),
        (
            "redirectUrl=%2F%2Fapp.example.com",
            "REDIRECT_NOT_ALLOWED",
            "redirectUrl",
        ),
        ("provider=douyin&provider=oceanengine", "DUPLICATE_PARAMETER", "query"),
    ] {
        let (resp, _) = call(env(), |e| set_query(e, query)).await;
        assert_eq!(resp.status, 400, "{query}: {}", resp.body);
        assert_eq!(resp.body["errorCode"], code, "{query}");
        assert_eq!(resp.body["field"], field, "{query}");
        assert_eq!(resp.body["code"], 400);
    }
}

#[tokio::test]
async fn unknown_routes_get_the_envelope() {
    let (resp, _) = call(env(), |e| e["rawPath"] = Value::from("/api/v1/lead/douyin/auth/nope")).await;
    assert_eq!(
        (resp.status, resp.body["errorCode"].as_str()),
        (404, Some("ROUTE_NOT_FOUND"))
    );
}
