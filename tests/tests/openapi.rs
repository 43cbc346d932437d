//! docs/openapi.yaml, template.yaml and the routers agree: the same routes, methods and scopes,
//! and the list's query parameters are the ones the handler accepts.

use axum::body::{Body, to_bytes};
use devkit::app::{self, StoreSet};
use devkit::local_auth::{ALL_SCOPES, LocalJwt};
use serde_yaml::Value;
use shared::clock::SystemClock;
use shared::domain::AppCredentials;
use shared::secret::Secret;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).expect("readable");
    serde_yaml::from_str(&text).expect("valid YAML")
}

/// (METHOD, path) → scope ("" for public routes), from the OpenAPI document.
fn documented() -> BTreeMap<(String, String), String> {
    let doc = yaml("docs/openapi.yaml");
    let mut routes = BTreeMap::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let scope = op.get("x-scope").and_then(Value::as_str).unwrap_or("").to_owned();
                routes.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()), scope);
            }
        }
    }
    routes
}

/// The same from the HttpApi events of template.yaml.
fn deployed() -> BTreeMap<(String, String), String> {
    let template = devkit::moto::template();
    let mut routes = BTreeMap::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for (_, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            let scope = p["Auth"]
                .get("AuthorizationScopes")
                .and_then(Value::as_sequence)
                .and_then(|s| s.first())
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            routes.insert(
                (
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap().to_owned(),
                ),
                scope,
            );
        }
    }
    routes
}

#[test]
fn the_document_and_the_template_list_the_same_routes_and_scopes() {
    assert_eq!(documented(), deployed());
}

#[test]
fn the_list_parameters_are_the_ones_the_handler_accepts() {
    let doc = yaml("docs/openapi.yaml");
    let params = &doc["components"]["parameters"];
    let names: BTreeSet<String> = doc["paths"]["/api/v1/lead/douyin/leads"]["get"]["parameters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            let reference = p["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            params[reference]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    let accepted: BTreeSet<String> = leads_api::params::KNOWN.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(names, accepted);
}

#[tokio::test]
async fn the_routers_serve_exactly_the_documented_methods() {
    let env: std::collections::HashMap<String, String> = app::simulator_env(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &devkit::sim::SimApp::default(),
    );
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let stores = StoreSet::embedded(AppCredentials {
        douyin_client_secret: Secret::new("d"),
        oceanengine_secret: Secret::new("o"),
    });
    let jwt = LocalJwt::new("openapi-test", &config.tenant_claim);
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(&config, &stores, requests, Arc::new(SystemClock), jwt.clone())
        .fallback(shared::http::route_not_found);
    let token = jwt.mint("openapi-tenant", ALL_SCOPES, chrono::Duration::hours(1));
    let documented = documented();
    let paths: BTreeSet<&String> = documented.keys().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path
            .replace("{leadId}", "l_0123456789abcdef01234567")
            .replace("{taskId}", "t_1")
            .replace("{connectionId}", "c_0123456789abcdef01234567");
        for method in METHODS.map(str::to_uppercase) {
            let request = axum::http::Request::builder()
                .method(method.as_str())
                .uri(&concrete)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = String::from_utf8_lossy(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).into_owned();
            let served = status != 405 && !body.contains("ROUTE_NOT_FOUND");
            let listed = documented.contains_key(&(method.clone(), path.clone()));
            assert_eq!(
                served, listed,
                "{method} {path}: served {served}, documented {listed} ({status} {body})"
            );
        }
    }
}
