//! The connect flow end to end over real HTTP: auth-url → the simulator's consent page → the
//! callback → tokens in Secrets Manager and the connection in DynamoDB (both on moto).

use chrono::{Duration, Utc};
use devkit::app::{self, StoreSet};
use devkit::local_auth::LocalJwt;
use devkit::moto;
use devkit::sim::{Fault, Simulator};
use serde_json::Value;
use shared::aws::AwsClients;
use shared::clock::{Clock, SystemClock};
use shared::domain::{ConnectionId, ConnectionStatus, OAuthState, Provider, TenantId};
use shared::http::route_not_found;
use std::sync::Arc;

const SCOPE: &str = "lead:douyin:auth:get_url";

struct Harness {
    sim: Simulator,
    base: String,
    jwt: LocalJwt,
    aws: AwsClients,
    stores: StoreSet,
    secret_prefix: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

async fn harness_with(adjust: impl FnOnce(&mut std::collections::HashMap<String, String>)) -> Harness {
    devkit::log_capture::captured_logs();
    let aws = moto::aws().await;
    let sim = Simulator::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let tables = moto::create_tables(&aws.dynamodb).await;
    let credentials_id = moto::unique("douyin-leads/app-credentials");
    moto::put_app_credentials(
        &aws.secrets,
        &credentials_id,
        &sim.app().douyin_client_secret,
        &sim.app().oceanengine_secret,
    )
    .await;
    let secret_prefix = format!("{}/connections/", moto::unique("stack"));
    let mut env = app::simulator_env(&sim.base_url(), &base, sim.app());
    env.insert("CONNECTIONS_TABLE".into(), tables.connections);
    env.insert("OAUTH_STATES_TABLE".into(), tables.oauth_states);
    env.insert("APP_CREDENTIALS_SECRET_ID".into(), credentials_id);
    env.insert("CONNECTION_SECRET_PREFIX".into(), secret_prefix.clone());
    adjust(&mut env);
    let config = shared::Config::from_lookup(|k| env.get(k).cloned()).expect("valid config");
    let stores = StoreSet::aws(&aws, &config);
    let jwt = LocalJwt::new("integration-test-key", "sub");
    let requests = Arc::new(devkit::sync_requests::RecordedSyncRequests::default());
    let router = app::routes(&config, &stores, requests, Arc::new(SystemClock), jwt.clone()).fallback(route_not_found);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        sim,
        base,
        jwt,
        aws,
        stores,
        secret_prefix,
        http,
        _server: server,
    }
}

impl Harness {
    async fn auth_url(&self, tenant: &str, query: &str) -> (u16, Value) {
        let token = self.jwt.mint(tenant, &[SCOPE], Duration::minutes(5));
        let resp = self
            .http
            .get(format!("{}{}?{query}", self.base, auth_url::ROUTE))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Plays the browser on the consent page; returns the callback URL the platform sends it to.
    async fn consent(&self, auth_url: &str, extra: &str) -> String {
        let resp = self.http.get(format!("{auth_url}&{extra}")).send().await.unwrap();
        assert_eq!(resp.status(), 302, "consent page redirects back");
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}{}", self.base, auth_callback::ROUTE)),
            "{location}"
        );
        location
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// auth-url + consent, ready for the callback.
    async fn start(&self, tenant: &str, provider: Provider, account: &str, redirect: Option<&str>) -> String {
        let mut query = format!("provider={provider}");
        if let Some(r) = redirect {
            query.push_str(&format!(
                "&redirectUrl={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            ));
        }
        let (status, body) = self.auth_url(tenant, &query).await;
        assert_eq!(status, 200, "{body}");
        self.consent(
            body["data"]["authUrl"].as_str().unwrap(),
            &format!("sim_account={account}"),
        )
        .await
    }

    /// The callback's own answer (JSON: no redirect target).
    async fn callback_json(&self, tenant: &str, provider: Provider, account: &str) -> (u16, Value) {
        let callback = self.start(tenant, provider, account, None).await;
        let resp = self.get(&callback).await;
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// The whole flow: callback, then the confirmation by the same tenant; the last answer.
    async fn connect_json(&self, tenant: &str, provider: Provider, account: &str) -> (u16, Value) {
        let (status, body) = self.callback_json(tenant, provider, account).await;
        if status != 200 {
            return (status, body);
        }
        assert_eq!(body["data"]["status"], "PENDING_CONFIRMATION", "{body}");
        self.confirm(tenant, body["data"]["ticket"].as_str().unwrap()).await
    }

    async fn confirm_with(&self, tenant: &str, scopes: &[&str], body: &str) -> (u16, Value) {
        let token = self.jwt.mint(tenant, scopes, Duration::minutes(5));
        let resp = self
            .http
            .post(format!("{}{}", self.base, auth_callback::CONFIRM_ROUTE))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn confirm(&self, tenant: &str, ticket: &str) -> (u16, Value) {
        self.confirm_with(tenant, &[SCOPE], &serde_json::json!({ "ticket": ticket }).to_string())
            .await
    }

    async fn disconnect(&self, tenant: &str, scopes: &[&str], id: &str) -> (u16, Value) {
        let token = self.jwt.mint(tenant, scopes, Duration::minutes(5));
        let resp = self
            .http
            .delete(format!("{}{}/accounts/{id}", self.base, leads_api::BASE))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Secrets under the pending prefix, as Secrets Manager lists them.
    async fn pending_secrets(&self) -> Vec<String> {
        let prefix = shared::connect::pending_secret_prefix(&self.secret_prefix);
        self.stores
            .vault
            .list_prefixed(&prefix, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.secret_id)
            .collect()
    }
}

fn redirect_params(resp: &reqwest::Response) -> std::collections::HashMap<String, String> {
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    location.query_pairs().into_owned().collect()
}

fn assert_no_secrets_logged(sim: &Simulator) {
    let logs = devkit::log_capture::logs();
    let app = sim.app();
    for secret in sim
        .issued_tokens()
        .iter()
        .chain([&app.douyin_client_secret, &app.oceanengine_secret])
    {
        assert!(!logs.contains(secret.as_str()), "a token or secret reached the logs");
    }
    assert!(!logs.contains("code."), "an authorization code reached the logs");
}

#[tokio::test]
async fn douyin_connect_flow_stores_tokens_and_the_connection() {
    let h = harness().await;
    let callback = h
        .start(
            "tenant-a",
            Provider::Douyin,
            "open-a1",
            Some("https://app.example.com/connected?tab=1"),
        )
        .await;
    let resp = h.get(&callback).await;
    let params = redirect_params(&resp);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://app.example.com/connected?tab=1&")
    );
    assert_eq!(params["status"], "pending_confirmation");
    assert_eq!(params["provider"], "douyin");
    let ticket = params["ticket"].clone();
    assert_eq!(ticket.len(), 64);
    let tenant = TenantId::new("tenant-a");
    let id = ConnectionId::derive(&tenant, Provider::Douyin, "open-a1");
    assert!(
        h.stores.connections.list(&tenant).await.unwrap().is_empty(),
        "nothing is connected before the confirmation"
    );
    assert_eq!(
        h.pending_secrets().await.len(),
        1,
        "the tokens wait in a pending secret"
    );

    let (status, body) = h.confirm("tenant-a", &ticket).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["connectionId"], id.as_str());
    assert_eq!(body["data"]["status"], "ACTIVE");
    assert_eq!(body["data"]["externalAccountId"], "open-a1");
    assert!(
        h.pending_secrets().await.is_empty(),
        "the pending secret is gone once confirmed"
    );
    let (status, again) = h.confirm("tenant-a", &ticket).await;
    assert_eq!(
        (status, &again["data"]),
        (200, &body["data"]),
        "a replayed confirmation answers the same"
    );

    let connection = h
        .stores
        .connections
        .get(&tenant, &id)
        .await
        .unwrap()
        .expect("connection row");
    assert_eq!(connection.status, ConnectionStatus::Active);
    assert_eq!(connection.external_account_id, "open-a1");
    assert_eq!(connection.scopes, vec!["user_info", "fans.list"]);
    assert_eq!(connection.secret_id, format!("{}{}", h.secret_prefix, id));
    let days = (connection.access_expires_at - Utc::now()).num_hours();
    assert!(
        (359..=360).contains(&days),
        "access token expiry is absolute, 15 days out: {days}h"
    );

    let tokens = h
        .stores
        .vault
        .get_tokens(&connection.secret_id)
        .await
        .unwrap()
        .expect("secret");
    assert!(
        h.sim.douyin_access_token_valid(tokens.access_token.expose()),
        "the stored token is the one issued"
    );
    assert_eq!(tokens.open_id.as_deref(), Some("open-a1"));
    assert_eq!(tokens.refresh_expires_at, connection.refresh_expires_at);

    let replay = h.get(&callback).await;
    assert_eq!(replay.status(), 400, "a replayed callback is refused");
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["errorCode"], "STATE_INVALID");
    assert_eq!(
        h.stores.connections.list(&tenant).await.unwrap().len(),
        1,
        "the replay created nothing"
    );
    assert_no_secrets_logged(&h.sim);
}

#[tokio::test]
async fn oceanengine_connect_flow_keeps_the_advertiser_ids() {
    let h = harness().await;
    let (status, pending) = h
        .callback_json("tenant-o", Provider::OceanEngine, "1769665409798152")
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["code"], 0);
    assert_eq!(pending["data"]["status"], "PENDING_CONFIRMATION");
    assert_eq!(pending["data"]["provider"], "oceanengine");
    assert!(pending["data"]["expiresAt"].is_string());
    let (status, body) = h.confirm("tenant-o", pending["data"]["ticket"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["externalAccountId"], "1769665409798152");
    assert_eq!(data["provider"], "oceanengine");

    let tenant = TenantId::new("tenant-o");
    let id = ConnectionId::from_stored(data["connectionId"].as_str().unwrap());
    let connection = h
        .stores
        .connections
        .get(&tenant, &id)
        .await
        .unwrap()
        .expect("connection row");
    assert_eq!(connection.advertiser_ids, vec!["1769665409798152"]);
    let tokens = h
        .stores
        .vault
        .get_tokens(&connection.secret_id)
        .await
        .unwrap()
        .expect("secret");
    assert!(h.sim.oceanengine_access_token_valid(tokens.access_token.expose()));
    assert!(h.sim.oceanengine_refresh_token_valid(tokens.refresh_token.expose()));
    assert_eq!(tokens.advertiser_ids, vec!["1769665409798152"]);
    assert!(
        !body.to_string().contains(tokens.access_token.expose())
            && !pending.to_string().contains(tokens.access_token.expose()),
        "no token in the responses"
    );
    assert_no_secrets_logged(&h.sim);
}

#[tokio::test]
async fn reauthorising_an_account_updates_it_in_place() {
    let h = harness().await;
    let (_, first) = h.connect_json("tenant-r", Provider::Douyin, "open-r").await;
    let (status, second) = h.connect_json("tenant-r", Provider::Douyin, "open-r").await;
    assert_eq!(status, 200);
    assert_eq!(
        first["data"]["connectionId"], second["data"]["connectionId"],
        "same connection"
    );

    let tenant = TenantId::new("tenant-r");
    let list = h.stores.connections.list(&tenant).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].updated_at > list[0].created_at, "updated, creation time kept");

    let current = h.stores.vault.get_tokens(&list[0].secret_id).await.unwrap().unwrap();
    let previous = h
        .aws
        .secrets
        .get_secret_value()
        .secret_id(&list[0].secret_id)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("the earlier tokens stay as AWSPREVIOUS");
    let previous = shared::store::token_codec::decode(previous.secret_string().unwrap()).unwrap();
    assert_ne!(current.access_token, previous.access_token, "new tokens are current");
}

#[tokio::test]
async fn an_expired_code_is_a_clear_client_error() {
    let h = harness().await;
    let callback = h.start("tenant-e", Provider::Douyin, "open-e", None).await;
    h.sim.advance(Duration::minutes(11));
    let resp = h.get(&callback).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorCode"], "AUTH_CODE_INVALID");
    assert_eq!(body["platform"]["name"], "douyin");
    assert_eq!(body["platform"]["errorCode"], 10007);
    assert!(body["platform"]["logId"].is_string());

    let callback = h
        .start(
            "tenant-e",
            Provider::OceanEngine,
            "77",
            Some("https://app.example.com/x"),
        )
        .await;
    h.sim.advance(Duration::minutes(11));
    let params = redirect_params(&h.get(&callback).await);
    assert_eq!(
        (params["status"].as_str(), params["reason"].as_str()),
        ("error", "code_invalid")
    );
    assert!(
        h.stores
            .connections
            .list(&TenantId::new("tenant-e"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn another_tenants_account_cannot_be_claimed() {
    let h = harness().await;
    let (status, _) = h.connect_json("tenant-1", Provider::Douyin, "open-shared").await;
    assert_eq!(status, 200);
    let (status, body) = h.connect_json("tenant-2", Provider::Douyin, "open-shared").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errorCode"], "ACCOUNT_CONFLICT");

    let intruder = TenantId::new("tenant-2");
    assert!(h.stores.connections.list(&intruder).await.unwrap().is_empty());
    let would_be = format!(
        "{}{}",
        h.secret_prefix,
        ConnectionId::derive(&intruder, Provider::Douyin, "open-shared")
    );
    assert!(
        h.stores.vault.get_tokens(&would_be).await.unwrap().is_none(),
        "no tokens stored for a refused claim"
    );
    assert!(
        h.pending_secrets().await.is_empty(),
        "the refused grant's tokens are discarded"
    );
    assert_eq!(
        h.stores
            .connections
            .list(&TenantId::new("tenant-1"))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The phishing the confirmation stops: tenant A sends its genuine consent link to a merchant
/// of tenant B. The merchant consents and lands on the frontend under B's login: B's
/// confirmation finds nothing, A holds no connection and no claim, and B can still connect
/// its own account.
#[tokio::test]
async fn a_consent_link_forwarded_to_another_tenant_connects_nothing() {
    let h = harness().await;
    let callback = h
        .start(
            "tenant-attacker",
            Provider::OceanEngine,
            "1700000000000777",
            Some("https://app.example.com/connected"),
        )
        .await;
    let params = redirect_params(&h.get(&callback).await);
    assert_eq!(params["status"], "pending_confirmation");
    let attacker = TenantId::new("tenant-attacker");
    assert!(
        h.stores.connections.list(&attacker).await.unwrap().is_empty(),
        "the callback alone connects nothing"
    );

    let (status, body) = h.confirm("tenant-victim", &params["ticket"]).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["errorCode"], "TICKET_NOT_FOUND");
    let (status, unknown) = h.confirm("tenant-victim", &"0".repeat(64)).await;
    assert_eq!(
        (status, &unknown["message"]),
        (404, &body["message"]),
        "another tenant's ticket looks exactly like an unknown one"
    );

    assert!(
        h.pending_secrets().await.is_empty(),
        "a ticket shown to another tenant is spent: its tokens are gone"
    );
    let (status, body) = h.confirm("tenant-attacker", &params["ticket"]).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("TICKET_NOT_FOUND")),
        "{body}"
    );

    let (status, body) = h
        .connect_json("tenant-victim", Provider::OceanEngine, "1700000000000777")
        .await;
    assert_eq!(status, 200, "the merchant's own tenant can connect it: {body}");
    assert!(h.stores.connections.list(&attacker).await.unwrap().is_empty());
}

/// A double click: two confirmations of one ticket at once both answer the same connection.
#[tokio::test]
async fn concurrent_confirmations_of_one_ticket_answer_the_same_connection() {
    let h = harness().await;
    for round in 0..5 {
        let account = format!("open-double-{round}");
        let (_, pending) = h.callback_json("tenant-dc", Provider::Douyin, &account).await;
        let ticket = pending["data"]["ticket"].as_str().unwrap().to_owned();
        let ((s1, b1), (s2, b2)) = tokio::join!(h.confirm("tenant-dc", &ticket), h.confirm("tenant-dc", &ticket));
        assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
        assert_eq!(b1["data"]["connectionId"], b2["data"]["connectionId"]);
    }
    assert_eq!(
        h.stores
            .connections
            .list(&TenantId::new("tenant-dc"))
            .await
            .unwrap()
            .len(),
        5
    );
    assert!(h.pending_secrets().await.is_empty());
}

/// A pending grant shares the states table; naming it as a state consumes nothing.
#[tokio::test]
async fn a_pending_grant_is_not_a_state() {
    let h = harness().await;
    let (_, pending) = h.callback_json("tenant-ps", Provider::Douyin, "open-ps").await;
    let ticket = pending["data"]["ticket"].as_str().unwrap().to_owned();
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(ticket.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let resp = h
        .get(&format!(
            "{}{}?code=x&state=pending%23{hash}",
            h.base,
            auth_callback::ROUTE
        ))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "STATE_INVALID");
    let (status, body) = h.confirm("tenant-ps", &ticket).await;
    assert_eq!(status, 200, "the grant is intact: {body}");
}

#[tokio::test]
async fn a_confirmation_needs_a_well_formed_ticket_and_the_scope() {
    let h = harness().await;
    for body in ["{}", "not json", r#"{"ticket":"abc"}"#, r#"{"ticket":"x","more":1}"#] {
        let (status, answer) = h.confirm_with("tenant-c", &[SCOPE], body).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, answer) = h
        .confirm_with("tenant-c", &["lead:douyin:leads:view"], r#"{"ticket":"x"}"#)
        .await;
    assert_eq!((status, answer["errorCode"].as_str()), (403, Some("MISSING_SCOPE")));
}

/// A grant nobody confirms in time is refused and its tokens deleted, by the confirmation
/// that comes too late or by the scheduler's sweep.
#[tokio::test]
async fn an_unconfirmed_grant_expires_and_its_secret_is_deleted() {
    let h = harness().await;
    let (_, late) = h.callback_json("tenant-x", Provider::Douyin, "open-x1").await;
    let (_, forgotten) = h.callback_json("tenant-x", Provider::Douyin, "open-x2").await;
    assert!(forgotten["data"]["ticket"].is_string());
    assert_eq!(h.pending_secrets().await.len(), 2);

    let later = Arc::new(shared::clock::ManualClock::new(Utc::now() + Duration::minutes(11)));
    let config = shared::Config::from_lookup(|k| {
        [
            ("DOUYIN_CLIENT_KEY", "k"),
            ("OCEANENGINE_APP_ID", "1"),
            ("OAUTH_CALLBACK_URL", "https://api.example.com/cb"),
            ("CONNECTION_SECRET_PREFIX", h.secret_prefix.as_str()),
        ]
        .iter()
        .find(|(name, _)| *name == k)
        .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let service = auth_callback::service(&config, h.stores.callback(), later.clone());
    let err = service
        .confirm
        .confirm(&TenantId::new("tenant-x"), late["data"]["ticket"].as_str().unwrap())
        .await
        .unwrap_err();
    assert_eq!(shared::http::ApiError::from(err).status.as_u16(), 410);
    assert_eq!(h.pending_secrets().await.len(), 1, "the late grant's secret is deleted");

    let ttl = Duration::from_std(config.oauth.pending_ttl).unwrap();
    let swept = shared::connect::sweep::sweep_pending(h.stores.vault.as_ref(), &h.secret_prefix, ttl, Utc::now())
        .await
        .unwrap();
    assert_eq!(swept, 0, "a grant within its time is kept");
    let swept = shared::connect::sweep::sweep_pending(h.stores.vault.as_ref(), &h.secret_prefix, ttl, later.now())
        .await
        .unwrap();
    assert_eq!(swept, 0, "a secret outlives its ticket by a grace period");
    later.advance(Duration::minutes(2));
    let swept = shared::connect::sweep::sweep_pending(h.stores.vault.as_ref(), &h.secret_prefix, ttl, later.now())
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert!(h.pending_secrets().await.is_empty());
    assert!(
        h.stores
            .connections
            .list(&TenantId::new("tenant-x"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Disconnecting gives the account up: another tenant may connect it afterwards. It needs the
/// scope of its own.
#[tokio::test]
async fn disconnecting_releases_the_account_for_another_tenant() {
    let h = harness().await;
    let (status, body) = h.connect_json("tenant-old", Provider::Douyin, "open-moving").await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["connectionId"].as_str().unwrap().to_owned();

    let (status, body) = h.disconnect("tenant-old", &[SCOPE], &id).await;
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("MISSING_SCOPE")));
    let (status, body) = h.disconnect("tenant-old", &["lead:douyin:accounts:delete"], &id).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = h.connect_json("tenant-new", Provider::Douyin, "open-moving").await;
    assert_eq!(status, 200, "the released account connects to another tenant: {body}");
    let (status, body) = h.connect_json("tenant-old", Provider::Douyin, "open-moving").await;
    assert_eq!(status, 409, "and is now that tenant's: {body}");
}

#[tokio::test]
async fn denied_consent_goes_back_with_the_reason() {
    let h = harness().await;
    let (_, body) = h
        .auth_url("tenant-d", "redirectUrl=https%3A%2F%2Fapp.example.com%2Fc")
        .await;
    let callback = h.consent(body["data"]["authUrl"].as_str().unwrap(), "sim_deny=1").await;
    let params = redirect_params(&h.get(&callback).await);
    assert_eq!(
        (params["status"].as_str(), params["reason"].as_str()),
        ("error", "access_denied")
    );
    assert!(
        h.stores
            .connections
            .list(&TenantId::new("tenant-d"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn state_problems_are_bad_requests() {
    let h = harness().await;
    let callback = format!("{}{}", h.base, auth_callback::ROUTE);
    for (query, code) in [("code=x", "STATE_MISSING"), ("code=x&state=forged", "STATE_INVALID")] {
        let resp = h.get(&format!("{callback}?{query}")).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], code);
    }
    let now = Utc::now();
    let stale = OAuthState {
        state: moto::unique("stale"),
        tenant: TenantId::new("tenant-s"),
        provider: Provider::Douyin,
        redirect_url: None,
        created_at: now - Duration::minutes(20),
        expires_at: now - Duration::minutes(10),
    };
    h.stores.states.create(&stale).await.unwrap();
    let resp = h.get(&format!("{callback}?code=x&state={}", stale.state)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "STATE_EXPIRED");
    assert_eq!(h.sim.api_requests(), 0, "no code was exchanged for a bad state");
}

#[tokio::test]
async fn platform_faults_end_in_a_retry_or_a_bad_gateway() {
    let h = harness().await;
    h.sim.set_string_numbers(true);
    h.sim.push_faults([Fault::Throttle]);
    let (status, body) = h.connect_json("tenant-f", Provider::Douyin, "open-f1").await;
    assert_eq!(status, 200, "a throttled exchange is retried: {body}");

    for fault in [
        Fault::Status(500),
        Fault::MalformedJson,
        Fault::Delay(std::time::Duration::from_secs(3)),
    ] {
        h.sim.push_faults([fault.clone()]);
        let (status, body) = h.connect_json("tenant-f", Provider::OceanEngine, "88").await;
        assert_eq!(status, 502, "{fault:?}: {body}");
        assert_eq!(body["errorCode"], "PLATFORM_ERROR");
        assert_eq!(body["platform"]["name"], "oceanengine");
    }
    assert_eq!(
        h.stores
            .connections
            .list(&TenantId::new("tenant-f"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_no_secrets_logged(&h.sim);
}

#[tokio::test]
async fn a_wrong_app_secret_is_a_bad_gateway_with_the_platform_code() {
    let h = harness_with(|_| {}).await;
    let wrong = moto::unique("douyin-leads/bad-credentials");
    moto::put_app_credentials(&h.aws.secrets, &wrong, "wrong-douyin-secret", "wrong-ocean-secret").await;
    let h2 = harness_with(|env| {
        env.insert("APP_CREDENTIALS_SECRET_ID".into(), wrong.clone());
    })
    .await;
    drop(h);
    let (status, body) = h2.connect_json("tenant-w", Provider::Douyin, "open-w").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["platform"]["errorCode"], 10013);
    assert!(!body.to_string().contains("wrong-douyin-secret"));
    let (status, body) = h2.connect_json("tenant-w", Provider::OceanEngine, "99").await;
    assert_eq!(status, 502);
    assert_eq!(body["platform"]["errorCode"], 40101);
    let logs = devkit::log_capture::logs();
    assert!(!logs.contains("wrong-douyin-secret") && !logs.contains("wrong-ocean-secret"));
}
