//! The Douyin and Ocean Engine OAuth clients against the simulator: lifetimes, refresh, renewal
//! limits, client_token caching, rotation and fault handling.

use chrono::{Duration, Utc};
use devkit::sim::{Fault, Simulator};
use shared::config::Config;
use shared::platform::ErrorKind;
use shared::platform::douyin::DouyinClient;
use shared::platform::http::PlatformHttp;
use shared::platform::oceanengine::OceanEngineClient;
use shared::secret::Secret;

fn config(sim: &Simulator) -> Config {
    let env = devkit::app::simulator_env(&sim.base_url(), "https://api.example.com", sim.app());
    Config::from_lookup(|k| env.get(k).cloned()).expect("valid config")
}

fn douyin(sim: &Simulator) -> DouyinClient {
    let c = config(sim);
    DouyinClient::new(PlatformHttp::new(&c.http), &c.douyin)
}

fn oceanengine(sim: &Simulator) -> OceanEngineClient {
    let c = config(sim);
    OceanEngineClient::new(PlatformHttp::new(&c.http), &c.oceanengine)
}

/// Follows the simulator's consent page like a browser and returns the code it hands out.
async fn consent_code(sim: &Simulator, provider_path: &str, params: &str, code_param: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}{provider_path}?{params}", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == code_param)
        .map(|(_, v)| v.into_owned())
        .expect("code in redirect")
}

async fn douyin_code(sim: &Simulator) -> String {
    let params = format!(
        "client_key={}&response_type=code&scope=user_info&redirect_uri=https://api.example.com/cb&state=s",
        sim.app().douyin_client_key
    );
    consent_code(sim, "/platform/oauth/connect/", &params, "code").await
}

fn secret(sim: &Simulator) -> Secret {
    Secret::new(sim.app().douyin_client_secret.clone())
}

#[tokio::test]
async fn douyin_refresh_extends_the_same_access_token_and_renewal_stops_after_five() {
    let sim = Simulator::start().await;
    let client = douyin(&sim);
    let grant = client
        .exchange_code(&secret(&sim), &douyin_code(&sim).await)
        .await
        .unwrap();
    assert_eq!(grant.expires_in, Duration::days(15));

    let refreshed = client.refresh_access_token(&grant.refresh_token).await.unwrap();
    assert_eq!(
        refreshed.access_token, grant.access_token,
        "a live access token is extended, not replaced"
    );

    let mut refresh = grant.refresh_token.clone();
    for _ in 0..5 {
        let renewed = client.renew_refresh_token(&refresh).await.unwrap();
        assert_ne!(renewed.refresh_token, refresh);
        let old = refresh.clone();
        refresh = renewed.refresh_token;
        let err = client.refresh_access_token(&old).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::GrantRevoked,
            "a renewed-away refresh token stops working"
        );
    }
    let err = client.renew_refresh_token(&refresh).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RenewLimitReached);
}

#[tokio::test]
async fn douyin_expired_refresh_token_means_the_grant_is_gone() {
    let sim = Simulator::start().await;
    let client = douyin(&sim);
    let grant = client
        .exchange_code(&secret(&sim), &douyin_code(&sim).await)
        .await
        .unwrap();
    sim.advance(Duration::days(31));
    let err = client.refresh_access_token(&grant.refresh_token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GrantRevoked);
    assert_eq!(err.detail().error_code, Some(10010));
}

#[tokio::test]
async fn douyin_code_works_once_and_expires() {
    let sim = Simulator::start().await;
    let client = douyin(&sim);
    let code = douyin_code(&sim).await;
    client.exchange_code(&secret(&sim), &code).await.unwrap();
    let replay = client.exchange_code(&secret(&sim), &code).await.unwrap_err();
    assert_eq!(replay.kind(), ErrorKind::AuthCodeInvalid);

    let late = douyin_code(&sim).await;
    sim.advance(Duration::minutes(11));
    sim.set_old_error_envelope(true);
    let err = client.exchange_code(&secret(&sim), &late).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthCodeInvalid, "the old envelope is read too");
    assert!(err.detail().log_id.is_some());
}

#[tokio::test]
async fn wrong_client_secret_is_reported_without_echoing_it() {
    let sim = Simulator::start().await;
    let client = douyin(&sim);
    let err = client
        .exchange_code(&Secret::new("not-the-secret"), &douyin_code(&sim).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadAppCredentials);
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn client_token_is_cached_until_near_expiry_and_one_renewal_serves_concurrent_callers() {
    let sim = Simulator::start().await;
    let client = douyin(&sim);
    let now = Utc::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, secret) = (client.clone(), secret(&sim));
            tokio::spawn(async move { client.client_token(&secret, now).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "concurrent callers share one token"
    );
    assert_eq!(sim.api_requests(), 1, "one client_token request for eight callers");
    assert!(sim.client_token_valid(tokens[0].expose()));

    let before_renewal = now + Duration::minutes(105);
    assert_eq!(
        client.client_token(&secret(&sim), before_renewal).await.unwrap(),
        tokens[0]
    );
    let near_expiry = now + Duration::minutes(111);
    let renewed = client.client_token(&secret(&sim), near_expiry).await.unwrap();
    assert_ne!(renewed, tokens[0], "renewed 10 minutes before expiry");
    assert!(
        sim.client_token_valid(tokens[0].expose()),
        "the previous token keeps its 5-minute grace"
    );

    client.forget_client_token(&renewed).await;
    let after_forget = client.client_token(&secret(&sim), near_expiry).await.unwrap();
    assert_ne!(after_forget, renewed, "a rejected token is not served again");
}

#[tokio::test]
async fn client_token_requests_accept_string_numbers_and_retry_throttling_and_5xx() {
    let sim = Simulator::start().await;
    sim.set_string_numbers(true);
    sim.push_faults([Fault::Throttle, Fault::MalformedJson]);
    let token = douyin(&sim)
        .client_token(&secret(&sim), Utc::now())
        .await
        .expect("retried through two faults");
    assert!(sim.client_token_valid(token.expose()));
    assert_eq!(sim.api_requests(), 3);
    let other = douyin(&sim);
    assert_eq!(
        other.client_token(&secret(&sim), Utc::now()).await.unwrap(),
        token,
        "every client in the container shares the one cached token"
    );
    assert_eq!(sim.api_requests(), 3);

    // Three attempts by default: a third fault in a row is the caller's to handle.
    let fresh = douyin(&sim);
    fresh.forget_client_token(&token).await;
    sim.push_faults([Fault::Status(503), Fault::Status(502), Fault::Status(500)]);
    let err = fresh
        .client_token(&secret(&sim), Utc::now())
        .await
        .expect_err("attempts are bounded");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(sim.api_requests(), 6);
}

#[tokio::test]
async fn a_code_exchange_is_not_replayed_after_a_server_error() {
    let sim = Simulator::start().await;
    let code = douyin_code(&sim).await;
    sim.push_faults([Fault::Status(500)]);
    let err = douyin(&sim).exchange_code(&secret(&sim), &code).await.unwrap_err();
    assert_eq!(err.detail().error_code, Some(500));
    assert_eq!(
        sim.api_requests(),
        1,
        "a single-use code is not sent twice when the first may have landed"
    );
}

#[tokio::test]
async fn slow_platform_times_out_as_a_transient_error() {
    let sim = Simulator::start().await;
    sim.push_faults([Fault::Delay(std::time::Duration::from_secs(3))]);
    let err = douyin(&sim)
        .exchange_code(&secret(&sim), &douyin_code(&sim).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn oceanengine_refresh_rotates_and_the_old_refresh_token_stops_working() {
    let sim = Simulator::start().await;
    let client = oceanengine(&sim);
    let params = format!(
        "app_id={}&state=s&redirect_uri=https://api.example.com/cb&sim_account=42",
        sim.app().oceanengine_app_id
    );
    let code = consent_code(&sim, "/openapi/audit/oauth.html", &params, "auth_code").await;
    let oe_secret = Secret::new(sim.app().oceanengine_secret.clone());
    let grant = client.exchange_code(&oe_secret, &code).await.unwrap();
    assert_eq!(grant.advertiser_id.as_deref(), Some("42"));
    assert_eq!(grant.advertiser_ids, vec!["42"]);

    let rotated = client.refresh(&oe_secret, &grant.refresh_token).await.unwrap();
    assert_ne!(rotated.refresh_token, grant.refresh_token);
    assert!(sim.oceanengine_access_token_valid(rotated.access_token.expose()));
    assert!(!sim.oceanengine_access_token_valid(grant.access_token.expose()));
    let err = client.refresh(&oe_secret, &grant.refresh_token).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::GrantRevoked,
        "the rotated-away refresh token is dead: {err:?}"
    );
    assert!(sim.oceanengine_refresh_token_valid(rotated.refresh_token.expose()));
}
