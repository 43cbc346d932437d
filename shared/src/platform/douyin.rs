//! Douyin open platform (open.douyin.com): user OAuth and the app-level `client_token`.
//! Facts: platform-apis.md §1.

use super::http::{PlatformHttp, RawResponse, Replay};
use super::{ErrorKind, Platform, PlatformError};
use crate::config::DouyinConfig;
use crate::lenient;
use crate::secret::Secret;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

/// Which endpoint answered; one code (10020) means different things on different endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    AccessToken,
    RefreshToken,
    RenewRefreshToken,
    ClientToken,
    OpenApi,
}

/// Maps Douyin's error codes (platform-apis.md §1.7) to what they mean for us.
pub fn error_kind(endpoint: Endpoint, code: i64) -> ErrorKind {
    match code {
        10007 => ErrorKind::AuthCodeInvalid,
        10008 | 2190008 | 28001008 | 2190002 => ErrorKind::AccessTokenInvalid,
        10010 => ErrorKind::GrantRevoked,
        10020 if endpoint == Endpoint::RenewRefreshToken => ErrorKind::RenewLimitReached,
        10020 | 28003018 | 28001052 => ErrorKind::Throttled,
        10003 | 10013 | 29002002 => ErrorKind::BadAppCredentials,
        10004 | 2100007 | 28001012 | 28001014 | 28001018 => ErrorKind::NoPermission,
        2100004 | 28001005 | 28001006 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// Reads either Douyin envelope (`{data, message}` for OAuth, `{data, extra}` for OpenAPI) and
/// returns `data` when both `data.error_code` and `extra.error_code` are zero.
/// The platform's clock when it answered: `extra.now`, milliseconds since the epoch (a number or
/// a numeric string). Read from the raw body, so it works on any Douyin OpenAPI answer.
pub fn answered_at(raw: &RawResponse) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Extra {
        #[serde(default)]
        now: Option<Value>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        extra: Option<Extra>,
    }
    let envelope: Envelope = serde_json::from_slice(&raw.body).ok()?;
    let now = envelope.extra?.now?;
    lenient::value_to_int(&now).ok().filter(|ms| *ms > 0)
}

pub fn decode_envelope(endpoint: Endpoint, raw: RawResponse) -> Result<Value, PlatformError> {
    let platform = Platform::Douyin;
    if raw.status == 429 || raw.status >= 500 {
        return Err(PlatformError::Status {
            platform,
            status: raw.status,
        });
    }
    let body: Value = serde_json::from_slice(&raw.body).map_err(|e| {
        if (200..300).contains(&raw.status) {
            PlatformError::Decode {
                platform,
                message: format!("body is not JSON: {e}"),
            }
        } else {
            PlatformError::Status {
                platform,
                status: raw.status,
            }
        }
    })?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let extra = body.get("extra").cloned().unwrap_or(Value::Null);
    let code_of = |v: &Value| -> Result<i64, PlatformError> {
        v.get("error_code")
            .map(lenient::value_to_int)
            .transpose()
            .map(|c| c.unwrap_or(0))
            .map_err(|message| PlatformError::Decode { platform, message })
    };
    let mut code = code_of(&data)?;
    if code == 0 {
        code = code_of(&extra)?;
    }
    if code == 0 && body.get("message").and_then(Value::as_str) == Some("error") {
        code = -1;
    }
    if code == 0 && !(200..300).contains(&raw.status) {
        return Err(PlatformError::Status {
            platform,
            status: raw.status,
        });
    }
    if code != 0 {
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let message = text(&data, "description")
            .or_else(|| text(&extra, "description"))
            .or_else(|| text(&extra, "sub_description"))
            .unwrap_or_else(|| "no description".to_owned());
        let log_id = text(&data, "log_id")
            .or_else(|| text(&extra, "logid"))
            .or_else(|| text(&extra, "log_id"));
        return Err(PlatformError::Api {
            platform,
            code,
            message,
            log_id,
            kind: error_kind(endpoint, code),
        });
    }
    Ok(data)
}

fn decode_data<T: for<'de> Deserialize<'de>>(endpoint: Endpoint, raw: RawResponse) -> Result<T, PlatformError> {
    let data = decode_envelope(endpoint, raw)?;
    serde_json::from_value(data).map_err(|e| PlatformError::Decode {
        platform: Platform::Douyin,
        message: format!("unexpected data: {e}"),
    })
}

/// A user grant as Douyin returns it from `access_token` and `refresh_token`.
#[derive(Debug, Clone)]
pub struct UserGrant {
    pub access_token: Secret,
    pub expires_in: Duration,
    pub refresh_token: Secret,
    pub refresh_expires_in: Duration,
    pub open_id: String,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct TokenData {
    #[serde(default)]
    access_token: String,
    #[serde(default, deserialize_with = "lenient::int")]
    expires_in: i64,
    #[serde(default)]
    refresh_token: String,
    #[serde(default, deserialize_with = "lenient::int")]
    refresh_expires_in: i64,
    #[serde(default)]
    open_id: String,
    #[serde(default)]
    scope: String,
}

impl TokenData {
    fn into_grant(self) -> Result<UserGrant, PlatformError> {
        if self.access_token.is_empty() || self.expires_in <= 0 || self.open_id.is_empty() {
            return Err(PlatformError::Decode {
                platform: Platform::Douyin,
                message: "token response lacks access_token, expires_in or open_id".into(),
            });
        }
        Ok(UserGrant {
            access_token: Secret::new(self.access_token),
            expires_in: Duration::seconds(self.expires_in),
            refresh_token: Secret::new(self.refresh_token),
            refresh_expires_in: Duration::seconds(self.refresh_expires_in.max(0)),
            open_id: self.open_id,
            scopes: self
                .scope
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// A renewed refresh token (`renew_refresh_token`).
#[derive(Debug, Clone)]
pub struct RenewedRefreshToken {
    pub refresh_token: Secret,
    pub expires_in: Duration,
}

#[derive(Deserialize)]
struct RenewData {
    #[serde(default)]
    refresh_token: String,
    #[serde(default, deserialize_with = "lenient::int")]
    expires_in: i64,
}

#[derive(Deserialize)]
struct ClientTokenData {
    #[serde(default)]
    access_token: String,
    #[serde(default, deserialize_with = "lenient::int")]
    expires_in: i64,
}

struct CachedClientToken {
    token: Secret,
    expires_at: DateTime<Utc>,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedClientToken>>>;

/// The container's one `client_token` cache per app (platform host and client key). Every
/// client built in the process shares it: a newer token retires the previous one after 5
/// minutes (platform-apis.md §1.5), so two caches in one container would keep retiring each
/// other's tokens, and the one that did not renew would send a dead token.
fn shared_slot(base_url: &Url, client_key: &str) -> TokenSlot {
    static SLOTS: std::sync::OnceLock<std::sync::Mutex<HashMap<(String, String), TokenSlot>>> =
        std::sync::OnceLock::new();
    let mut slots = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    slots
        .entry((base_url.as_str().to_owned(), client_key.to_owned()))
        .or_default()
        .clone()
}

/// The consent page URL (a browser page, not an API call).
pub fn consent_url(config: &DouyinConfig, redirect_uri: &Url, state: &str) -> Url {
    let mut url = join(&config.base_url, "/platform/oauth/connect/");
    url.query_pairs_mut()
        .append_pair("client_key", &config.client_key)
        .append_pair("response_type", "code")
        .append_pair("scope", &config.scopes)
        .append_pair("redirect_uri", redirect_uri.as_str())
        .append_pair("state", state);
    url
}

/// Appends `path` to a base that may itself carry a path (a simulator mounted under a prefix).
pub(crate) fn join(base: &Url, path: &str) -> Url {
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&joined).expect("a valid base URL joined with a static path is valid")
}

#[derive(Clone)]
pub struct DouyinClient {
    http: PlatformHttp,
    base_url: Url,
    client_key: String,
    renew_before: Duration,
    client_token: TokenSlot,
}

impl DouyinClient {
    pub fn new(http: PlatformHttp, config: &DouyinConfig) -> Self {
        Self {
            http,
            base_url: config.base_url.clone(),
            client_key: config.client_key.clone(),
            renew_before: Duration::from_std(config.client_token_renew_before).unwrap_or(Duration::minutes(10)),
            client_token: shared_slot(&config.base_url, &config.client_key),
        }
    }

    /// `POST /oauth/access_token/` (form). Not replayed once it may have reached Douyin: a code
    /// works once, so a second try would only turn a lost answer into a misleading 10007.
    pub async fn exchange_code(&self, client_secret: &Secret, code: &str) -> Result<UserGrant, PlatformError> {
        let url = join(&self.base_url, "/oauth/access_token/");
        let data: TokenData = self
            .http
            .call(
                Platform::Douyin,
                Replay::OnlyIfNotProcessed,
                |c| {
                    c.post(url.clone()).form(&[
                        ("client_key", self.client_key.as_str()),
                        ("client_secret", client_secret.expose()),
                        ("code", code),
                        ("grant_type", "authorization_code"),
                    ])
                },
                |raw| decode_data(Endpoint::AccessToken, raw),
            )
            .await?;
        data.into_grant()
    }

    /// `POST /oauth/refresh_token/`: extends the access token; the refresh token is unchanged.
    pub async fn refresh_access_token(&self, refresh_token: &Secret) -> Result<UserGrant, PlatformError> {
        let url = join(&self.base_url, "/oauth/refresh_token/");
        let data: TokenData = self
            .http
            .call(
                Platform::Douyin,
                Replay::Safe,
                |c| {
                    c.post(url.clone()).form(&[
                        ("client_key", self.client_key.as_str()),
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh_token.expose()),
                    ])
                },
                |raw| decode_data(Endpoint::RefreshToken, raw),
            )
            .await?;
        data.into_grant()
    }

    /// `POST /oauth/renew_refresh_token/`: a new 30-day refresh token; the old one stops working.
    pub async fn renew_refresh_token(&self, refresh_token: &Secret) -> Result<RenewedRefreshToken, PlatformError> {
        let url = join(&self.base_url, "/oauth/renew_refresh_token/");
        let data: RenewData = self
            .http
            .call(
                Platform::Douyin,
                Replay::OnlyIfNotProcessed,
                |c| {
                    c.post(url.clone()).form(&[
                        ("client_key", self.client_key.as_str()),
                        ("refresh_token", refresh_token.expose()),
                    ])
                },
                |raw| decode_data(Endpoint::RenewRefreshToken, raw),
            )
            .await?;
        if data.refresh_token.is_empty() || data.expires_in <= 0 {
            return Err(PlatformError::Decode {
                platform: Platform::Douyin,
                message: "renew response lacks refresh_token or expires_in".into(),
            });
        }
        Ok(RenewedRefreshToken {
            refresh_token: Secret::new(data.refresh_token),
            expires_in: Duration::seconds(data.expires_in),
        })
    }

    /// The app-level `client_token`, cached until `renew_before` its expiry. The lock is held
    /// while fetching so concurrent callers wait for one renewal instead of each issuing a token
    /// (every issue starts the previous token's 5-minute grace and counts against 500 / 5 min).
    pub async fn client_token(&self, client_secret: &Secret, now: DateTime<Utc>) -> Result<Secret, PlatformError> {
        let mut slot = self.client_token.lock().await;
        if let Some(cached) = slot.as_ref()
            && cached.expires_at - self.renew_before > now
        {
            return Ok(cached.token.clone());
        }
        let url = join(&self.base_url, "/oauth/client_token/");
        let body = serde_json::json!({
            "client_key": self.client_key,
            "client_secret": client_secret.expose(),
            "grant_type": "client_credential",
        });
        let data: ClientTokenData = self
            .http
            .call(
                Platform::Douyin,
                Replay::Safe,
                |c| c.post(url.clone()).json(&body),
                |raw| decode_data(Endpoint::ClientToken, raw),
            )
            .await?;
        if data.access_token.is_empty() || data.expires_in <= 0 {
            return Err(PlatformError::Decode {
                platform: Platform::Douyin,
                message: "client_token response lacks access_token or expires_in".into(),
            });
        }
        let token = Secret::new(data.access_token);
        *slot = Some(CachedClientToken {
            token: token.clone(),
            expires_at: now + Duration::seconds(data.expires_in),
        });
        Ok(token)
    }

    /// Drops the cached client token if it is `rejected`, so the next call fetches a new one.
    pub async fn forget_client_token(&self, rejected: &Secret) {
        let mut slot = self.client_token.lock().await;
        if slot.as_ref().is_some_and(|c| &c.token == rejected) {
            *slot = None;
        }
    }

    /// Runs `call` with the app token; if the platform rejects the token as expired or retired
    /// (another container renewed it more than 5 minutes ago), renews it once and calls again.
    /// Every `client_token` caller goes through here.
    pub async fn with_client_token<T, E, F, Fut>(
        &self,
        client_secret: &Secret,
        now: DateTime<Utc>,
        rejected: impl Fn(&E) -> bool,
        call: F,
    ) -> Result<T, E>
    where
        E: From<PlatformError>,
        F: Fn(Secret) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let token = self.client_token(client_secret, now).await?;
        match call(token.clone()).await {
            Err(e) if rejected(&e) => {
                // Only exactly this token: concurrent callers that saw it rejected renew once.
                self.forget_client_token(&token).await;
                tracing::info!("client_token rejected; renewed once and retrying");
                let token = self.client_token(client_secret, now).await?;
                call(token).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn success_with_string_numbers_decodes() {
        let body = r#"{"data":{"access_token":"act.x","expires_in":"1296000","open_id":"o1","refresh_token":"rft.y",
            "refresh_expires_in":"2592000","scope":"user_info,fans.list","error_code":"0","description":""},"message":"success"}"#;
        let grant = decode_data::<TokenData>(Endpoint::AccessToken, raw(200, body))
            .unwrap()
            .into_grant()
            .unwrap();
        assert_eq!(grant.expires_in, Duration::days(15));
        assert_eq!(grant.refresh_expires_in, Duration::days(30));
        assert_eq!(grant.scopes, vec!["user_info", "fans.list"]);
    }

    #[test]
    fn both_error_envelopes_are_errors_with_code_and_log_id() {
        let current =
            r#"{"data":{"description":"code is expired","error_code":10007,"log_id":"L1"},"message":"error"}"#;
        let old = r#"{"data":{"description":"Parameter error","error_code":2100005},"extra":{"logid":"L2","now":1}}"#;
        let extra_only = r#"{"data":{},"extra":{"error_code":"2190008","description":"expired","log_id":"L3"}}"#;
        match decode_envelope(Endpoint::AccessToken, raw(200, current)).unwrap_err() {
            PlatformError::Api { code, log_id, kind, .. } => {
                assert_eq!(
                    (code, log_id.as_deref(), kind),
                    (10007, Some("L1"), ErrorKind::AuthCodeInvalid)
                )
            }
            other => panic!("{other:?}"),
        }
        match decode_envelope(Endpoint::OpenApi, raw(200, old)).unwrap_err() {
            PlatformError::Api { code, log_id, .. } => {
                assert_eq!((code, log_id.as_deref()), (2100005, Some("L2")))
            }
            other => panic!("{other:?}"),
        }
        let err = decode_envelope(Endpoint::OpenApi, raw(200, extra_only)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AccessTokenInvalid);
        assert_eq!(err.detail().log_id.as_deref(), Some("L3"));
    }

    #[test]
    fn code_10020_depends_on_the_endpoint() {
        assert_eq!(
            error_kind(Endpoint::RenewRefreshToken, 10020),
            ErrorKind::RenewLimitReached
        );
        assert_eq!(error_kind(Endpoint::ClientToken, 10020), ErrorKind::Throttled);
        assert_eq!(error_kind(Endpoint::RefreshToken, 10010), ErrorKind::GrantRevoked);
        assert_eq!(error_kind(Endpoint::AccessToken, 10013), ErrorKind::BadAppCredentials);
    }

    #[test]
    fn bad_json_and_server_errors_are_transient() {
        assert_eq!(
            decode_envelope(Endpoint::OpenApi, raw(200, "{not json"))
                .unwrap_err()
                .kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            decode_envelope(Endpoint::OpenApi, raw(503, "")).unwrap_err().kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            decode_envelope(Endpoint::OpenApi, raw(429, "")).unwrap_err().kind(),
            ErrorKind::Throttled
        );
    }

    #[test]
    fn consent_url_carries_every_parameter_encoded() {
        let config = DouyinConfig {
            base_url: Url::parse("http://127.0.0.1:9/sim/douyin").unwrap(),
            client_key: "awkey".into(),
            scopes: "user_info,fans.list".into(),
            client_token_renew_before: std::time::Duration::from_secs(600),
        };
        let cb = Url::parse("https://api.example.com/cb").unwrap();
        let url = consent_url(&config, &cb, "st");
        assert_eq!(url.path(), "/sim/douyin/platform/oauth/connect/");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_key"], "awkey");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "user_info,fans.list");
        assert_eq!(q["redirect_uri"], "https://api.example.com/cb");
        assert_eq!(q["state"], "st");
    }
}
