//! Ocean Engine (巨量引擎) Marketing API OAuth. Every refresh rotates the refresh token.
//! Facts: platform-apis.md §3.1–3.2.

use super::douyin::join;
use super::http::{PlatformHttp, RawResponse, Replay};
use super::{ErrorKind, Platform, PlatformError};
use crate::config::{OceanEngineCodes, OceanEngineConfig};
use crate::lenient;
use crate::secret::Secret;
use chrono::Duration;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

pub fn error_kind(codes: &OceanEngineCodes, code: i64) -> ErrorKind {
    if codes.throttled.contains(&code) {
        ErrorKind::Throttled
    } else if codes.auth_code_invalid.contains(&code) {
        ErrorKind::AuthCodeInvalid
    } else if codes.token_invalid.contains(&code) {
        ErrorKind::AccessTokenInvalid
    } else if codes.bad_credentials.contains(&code) {
        ErrorKind::BadAppCredentials
    } else if (50000..51000).contains(&code) {
        ErrorKind::Transient
    } else {
        ErrorKind::Other
    }
}

/// Reads `{code, message, request_id, data}` and returns `data` when `code` is 0.
pub fn decode_envelope(codes: &OceanEngineCodes, raw: RawResponse) -> Result<Value, PlatformError> {
    let platform = Platform::OceanEngine;
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
    let code = match body.get("code") {
        Some(v) => lenient::value_to_int(v).map_err(|message| PlatformError::Decode { platform, message })?,
        None => {
            return Err(PlatformError::Decode {
                platform,
                message: "envelope has no code".into(),
            });
        }
    };
    if code != 0 {
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned();
        let log_id = body.get("request_id").and_then(Value::as_str).map(str::to_owned);
        return Err(PlatformError::Api {
            platform,
            code,
            message,
            log_id,
            kind: error_kind(codes, code),
        });
    }
    if !(200..300).contains(&raw.status) {
        return Err(PlatformError::Status {
            platform,
            status: raw.status,
        });
    }
    Ok(body.get("data").cloned().unwrap_or(Value::Null))
}

/// Tokens from `access_token` or `refresh_token`.
#[derive(Debug, Clone)]
pub struct OceanEngineGrant {
    pub access_token: Secret,
    pub expires_in: Duration,
    pub refresh_token: Secret,
    pub refresh_expires_in: Duration,
    /// The account that granted access; only the code exchange returns it.
    pub advertiser_id: Option<String>,
    pub advertiser_ids: Vec<String>,
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
    refresh_token_expires_in: i64,
    #[serde(default, deserialize_with = "lenient::id")]
    advertiser_id: String,
    #[serde(default, deserialize_with = "lenient::ids")]
    advertiser_ids: Vec<String>,
}

/// The consent page URL. `redirect_uri` must match the app's registered callback.
pub fn consent_url(config: &OceanEngineConfig, redirect_uri: &Url, state: &str) -> Url {
    let mut url = join(&config.auth_base_url, "/openapi/audit/oauth.html");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("app_id", &config.app_id).append_pair("state", state);
        if !config.scopes.is_empty() {
            q.append_pair("scope", &config.scopes);
        }
        q.append_pair("redirect_uri", redirect_uri.as_str());
    }
    url
}

#[derive(Clone)]
pub struct OceanEngineClient {
    http: PlatformHttp,
    api_base_url: Url,
    app_id: String,
    codes: OceanEngineCodes,
}

impl OceanEngineClient {
    pub fn new(http: PlatformHttp, config: &OceanEngineConfig) -> Self {
        Self {
            http,
            api_base_url: config.api_base_url.clone(),
            app_id: config.app_id.clone(),
            codes: config.codes.clone(),
        }
    }

    /// The docs show `app_id` as a number; send it as one when it is numeric.
    fn app_id_json(&self) -> Value {
        self.app_id
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(self.app_id.clone()))
    }

    async fn token_call(&self, path: &str, body: Value) -> Result<OceanEngineGrant, PlatformError> {
        let url = join(&self.api_base_url, path);
        let data = self
            .http
            .call(
                Platform::OceanEngine,
                // Both calls consume something single-use (a code, or the refresh token it rotates).
                Replay::OnlyIfNotProcessed,
                |c| c.post(url.clone()).json(&body),
                |raw| decode_envelope(&self.codes, raw),
            )
            .await?;
        let data: TokenData = serde_json::from_value(data).map_err(|e| PlatformError::Decode {
            platform: Platform::OceanEngine,
            message: format!("unexpected data: {e}"),
        })?;
        if data.access_token.is_empty() || data.refresh_token.is_empty() || data.expires_in <= 0 {
            return Err(PlatformError::Decode {
                platform: Platform::OceanEngine,
                message: "token response lacks access_token, refresh_token or expires_in".into(),
            });
        }
        Ok(OceanEngineGrant {
            access_token: Secret::new(data.access_token),
            expires_in: Duration::seconds(data.expires_in),
            refresh_token: Secret::new(data.refresh_token),
            refresh_expires_in: Duration::seconds(data.refresh_token_expires_in.max(0)),
            advertiser_id: Some(data.advertiser_id).filter(|s| !s.is_empty()),
            advertiser_ids: data.advertiser_ids,
        })
    }

    /// `POST /open_api/oauth2/access_token/` with the `auth_code` from the callback.
    pub async fn exchange_code(&self, secret: &Secret, auth_code: &str) -> Result<OceanEngineGrant, PlatformError> {
        let body = serde_json::json!({
            "app_id": self.app_id_json(), "secret": secret.expose(),
            "grant_type": "auth_code", "auth_code": auth_code,
        });
        self.token_call("/open_api/oauth2/access_token/", body).await
    }

    /// `POST /open_api/oauth2/refresh_token/`. The returned refresh token replaces the old one,
    /// which stops working: store it before using the new access token.
    pub async fn refresh(&self, secret: &Secret, refresh_token: &Secret) -> Result<OceanEngineGrant, PlatformError> {
        let body = serde_json::json!({
            "app_id": self.app_id_json(), "secret": secret.expose(),
            "grant_type": "refresh_token", "refresh_token": refresh_token.expose(),
        });
        self.token_call("/open_api/oauth2/refresh_token/", body)
            .await
            .map_err(|e| match e {
                // On the refresh endpoint a token-invalid code means the refresh token, hence the grant, is gone.
                PlatformError::Api {
                    platform,
                    code,
                    message,
                    log_id,
                    kind: ErrorKind::AccessTokenInvalid,
                } => PlatformError::Api {
                    platform,
                    code,
                    message,
                    log_id,
                    kind: ErrorKind::GrantRevoked,
                },
                other => other,
            })
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
    fn error_codes_follow_the_configured_sets() {
        let codes = OceanEngineCodes::default();
        let err = decode_envelope(
            &codes,
            raw(200, r#"{"code":40100,"message":"too frequent","request_id":"R1"}"#),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Throttled);
        assert_eq!(err.detail().log_id.as_deref(), Some("R1"));
        let err = decode_envelope(&codes, raw(200, r#"{"code":"40110","message":"bad code"}"#)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthCodeInvalid);
    }

    #[test]
    fn advertiser_ids_are_kept_as_strings() {
        let body = r#"{"code":0,"message":"OK","data":{"access_token":"a","expires_in":"86400","refresh_token":"r",
            "refresh_token_expires_in":2592000,"advertiser_id":1769665409798152,"advertiser_ids":[1769665409798152,"7"]}}"#;
        let data: TokenData =
            serde_json::from_value(decode_envelope(&OceanEngineCodes::default(), raw(200, body)).unwrap()).unwrap();
        assert_eq!(data.advertiser_id, "1769665409798152");
        assert_eq!(data.advertiser_ids, vec!["1769665409798152", "7"]);
        assert_eq!(data.expires_in, 86400);
    }
}
