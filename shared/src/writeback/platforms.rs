//! The three write-back calls (platform-apis.md §9.1, §9.2). Each is idempotent on the
//! platform's side (setting a lead's state), so retries are safe.

use super::PlatformState;
use crate::config::OceanEngineCodes;
use crate::platform::douyin::join;
use crate::platform::http::{PlatformHttp, Replay};
use crate::platform::oceanengine::decode_envelope;
use crate::platform::{Platform, PlatformError};
use crate::secret::Secret;
use serde_json::{Value, json};
use url::Url;

pub const CLUE_CALLBACK: &str = "/open_api/2/tools/clue/callback/";
pub const LIFE_CALLBACK: &str = "/open_api/2/tools/clue/life/callback/";
pub const FEIYU_CALLBACK: &str = "/crm/v2/openapi/clue/callback/";

/// What one write-back needs to know of its lead.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub clue_id: &'a str,
    /// The advertiser (classic) or 本地推 account the lead came from.
    pub account_id: &'a str,
    pub state: &'a PlatformState,
    /// 本地推 INVALID_EVENT's reason code.
    pub reason: Option<&'a str>,
}

/// An id array as the SDKs type it: numbers where the id is numeric.
fn numeric_or_text(id: &str) -> Value {
    id.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(id))
}

pub struct WriteBackClient {
    pub http: PlatformHttp,
    pub oceanengine_base: Url,
    pub feiyu_base: Url,
    pub codes: OceanEngineCodes,
    pub clue_source: i64,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl WriteBackClient {
    /// Sends `target` with the connection's access token (Ocean Engine) or its key and token
    /// (Feiyu).
    pub async fn send(
        &self,
        target: &Target<'_>,
        access_token: &Secret,
        signature_key: Option<&Secret>,
    ) -> Result<(), PlatformError> {
        match target.state {
            PlatformState::Clue(state) => {
                let body = json!({
                    "advertiser_ids": [numeric_or_text(target.account_id)],
                    "clue_id": target.clue_id,
                    "clue_convert_state": state,
                    "source": self.clue_source,
                });
                self.oceanengine(CLUE_CALLBACK, access_token, body).await
            }
            PlatformState::Life(state) => {
                let mut body = json!({
                    // The official SDK types these as strings.
                    "local_account_ids": [target.account_id],
                    "clue_id": target.clue_id,
                    "clue_convert_state": state,
                });
                if let Some(reason) = target.reason {
                    body["event_data"] = json!({"reason_code": reason});
                }
                self.oceanengine(LIFE_CALLBACK, access_token, body).await
            }
            PlatformState::Feiyu(state) => {
                let key = signature_key.ok_or_else(|| PlatformError::Decode {
                    platform: Platform::Feiyu,
                    message: "the connection has no signature key".into(),
                })?;
                self.feiyu(target.clue_id, *state, access_token, key).await
            }
        }
    }

    async fn oceanengine(&self, path: &str, token: &Secret, body: Value) -> Result<(), PlatformError> {
        let url = join(&self.oceanengine_base, path);
        self.http
            .call(
                Platform::OceanEngine,
                Replay::Safe,
                |c| c.post(url.clone()).header("Access-Token", token.expose()).json(&body),
                |raw| decode_envelope(&self.codes, raw),
            )
            .await
            .map(|_| ())
    }

    async fn feiyu(&self, clue_id: &str, state: i64, token: &Secret, key: &Secret) -> Result<(), PlatformError> {
        let url = join(&self.feiyu_base, FEIYU_CALLBACK);
        let body = json!({"source": 0, "data": {"clue_id": clue_id, "clue_convert_state": state}});
        self.http
            .call(
                Platform::Feiyu,
                Replay::Safe,
                |c| {
                    let timestamp = self.clock.now().timestamp();
                    c.post(url.clone())
                        .header("Signature", feiyu_signature(key.expose(), timestamp))
                        .header("Timestamp", timestamp.to_string())
                        .header("Access-Token", token.expose())
                        .json(&body)
                },
                crate::sources::feiyu::decode,
            )
            .await
            .map(|_| ())
    }
}

/// Feiyu signs the path, a space and the timestamp; base64 of the lowercase hex HMAC (§9.2).
pub fn feiyu_signature(key: &str, timestamp: i64) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let data = format!("{FEIYU_CALLBACK} {timestamp}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    base64::engine::general_purpose::STANDARD.encode(hex)
}
