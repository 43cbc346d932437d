//! 抖音来客 leads: `GET /goodlife/v1/open_api/crm/clue/query/` with the app `client_token` and the
//! merchant's `account_id` (platform-apis.md §2.2), phones decrypted locally or by the batch
//! decrypt endpoint (§2.3). A phone that does not decrypt leaves the lead without a phone and
//! with the reason; the lead itself is always kept.

use super::phone_crypto::{self, ONLINE_PREFIX};
use super::record::{first_text, form_fields, id, int, joined, list, rows, text};
use super::{
    Page, PageRef, Paging, PhoneRetry, PullAuth, SourceClient, SourceError, Window, format_datetime,
    parse_platform_time,
};
use crate::clock::Clock;
use crate::lead::{LeadFields, LeadSource, PlatformLead, normalize_phone};
use crate::platform::douyin::{self, DouyinClient, Endpoint};
use crate::platform::http::{PlatformHttp, Replay};
use crate::platform::{ErrorKind, Platform, PlatformError};
use crate::secret::Secret;
use crate::store::AppCredentialsSource;
use async_trait::async_trait;
use chrono::Duration;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

/// The decrypt endpoint takes at most 50 ciphertexts per call.
const DECRYPT_BATCH: usize = 50;

pub struct LaikeSource {
    pub http: PlatformHttp,
    pub douyin: DouyinClient,
    pub credentials: Arc<dyn AppCredentialsSource>,
    pub clock: Arc<dyn Clock>,
    pub base_url: Url,
    pub page_size: u32,
    pub lag: Duration,
}

fn token_rejected(e: &SourceError) -> bool {
    e.kind() == Some(ErrorKind::AccessTokenInvalid)
}

impl LaikeSource {
    /// `call` with the app token and secret; a rejected token is renewed and the call made
    /// once more (see [`DouyinClient::with_client_token`]).
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, SourceError>
    where
        F: Fn(Secret, Secret) -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let credentials = self.credentials.app_credentials().await?;
        let secret = credentials.douyin_client_secret.clone();
        self.douyin
            .with_client_token(&secret, self.clock.now(), token_rejected, |token| {
                call(token, secret.clone())
            })
            .await
    }

    async fn decrypt_online(
        &self,
        token: &Secret,
        account_id: &str,
        ciphertexts: &[String],
    ) -> Result<HashMap<String, String>, PlatformError> {
        let url = douyin::join(&self.base_url, "/goodlife/v1/open/common_biz/crypto/decrypt/batch/");
        let mut plain = HashMap::new();
        for chunk in ciphertexts.chunks(DECRYPT_BATCH) {
            let body = json!({"account_id": account_id, "cipher_texts": chunk});
            let data = self
                .http
                .call(
                    Platform::Douyin,
                    // Each ciphertext costs daily quota; a lost answer is cheaper to redo than to lose the phones.
                    Replay::Safe,
                    |c| c.post(url.clone()).header("access-token", token.expose()).json(&body),
                    |raw| douyin::decode_envelope(Endpoint::OpenApi, raw),
                )
                .await?;
            for result in list(&data, "results") {
                let ok = result.get("is_success").and_then(Value::as_bool).unwrap_or(false);
                if let (true, Some(cipher), Some(text)) = (ok, text(result, "cipher_text"), text(result, "plain_text"))
                {
                    plain.insert(cipher, text);
                }
            }
        }
        Ok(plain)
    }

    /// Opens ciphertexts: local ones with the app secret, `Enc.` ones through the decrypt
    /// endpoint. A rejected token, or a fault that outlasted the retries, is an error (the page is
    /// pulled again next run); a refusal (quota, permission) would refuse again, so it is each
    /// phone's failure instead.
    async fn open(
        &self,
        token: &Secret,
        secret: &Secret,
        account_id: &str,
        ciphers: &[String],
    ) -> Result<HashMap<String, PhoneRetry>, SourceError> {
        let online: Vec<String> = ciphers
            .iter()
            .filter(|c| c.starts_with(ONLINE_PREFIX))
            .cloned()
            .collect();
        let (opened, online_error) = if online.is_empty() {
            (HashMap::new(), None)
        } else {
            match self.decrypt_online(token, account_id, &online).await {
                Ok(map) => (map, None),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::AccessTokenInvalid | ErrorKind::Transient | ErrorKind::Throttled
                    ) =>
                {
                    return Err(e.into());
                }
                Err(e) => (HashMap::new(), Some(format!("decrypt endpoint failed: {e}"))),
            }
        };
        let mut results = HashMap::new();
        for cipher in ciphers {
            let result = if cipher.starts_with(ONLINE_PREFIX) {
                opened.get(cipher.as_str()).cloned().ok_or_else(|| {
                    let reason = online_error
                        .clone()
                        .unwrap_or_else(|| "the decrypt endpoint did not open this phone".to_owned());
                    (reason, false)
                })
            } else {
                // A local ciphertext that does not open never will (same secret, same bytes).
                phone_crypto::decrypt_local(cipher, secret.expose()).map_err(|e| (e.to_owned(), true))
            };
            let outcome = match result.map(|p| normalize_phone(&p)) {
                Ok(Some(phone)) => PhoneRetry::Opened(phone),
                Ok(None) => PhoneRetry::Failed {
                    reason: "decrypted phone is not a number".to_owned(),
                    permanent: true,
                },
                Err((reason, permanent)) => PhoneRetry::Failed { reason, permanent },
            };
            results.insert(cipher.clone(), outcome);
        }
        Ok(results)
    }

    /// Fills each lead's phone from its ciphertext, or records why it could not (and keeps the
    /// ciphertext for a retry).
    async fn decrypt_phones(
        &self,
        token: &Secret,
        secret: &Secret,
        account_id: &str,
        leads: &mut [(PlatformLead, Option<String>)],
    ) -> Result<(), SourceError> {
        let ciphers: Vec<String> = leads.iter().filter_map(|(_, c)| c.clone()).collect();
        if ciphers.is_empty() {
            return Ok(());
        }
        let results = self.open(token, secret, account_id, &ciphers).await?;
        for (lead, cipher) in leads.iter_mut() {
            let Some(cipher) = cipher else { continue };
            match results.get(cipher.as_str()) {
                Some(PhoneRetry::Opened(phone)) => lead.fields.phone = Some(phone.clone()),
                Some(PhoneRetry::Failed { reason, .. }) => {
                    lead.fields.phone_error = Some(reason.clone());
                    lead.phone_cipher = Some(cipher.clone());
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Normalizes one `clue_data` record; returns the phone ciphertext beside it.
pub fn normalize(record: &Value) -> Option<(PlatformLead, Option<String>)> {
    let clue_id = id(record, "clue_id")?;
    let cipher = first_text(record, &["telephone", "enc_telephone"]);
    let fields = LeadFields {
        name: text(record, "name"),
        clue_type: "OTHER".to_owned(),
        advertiser_id: id(record, "advertiser_id"),
        ad_id: id(record, "ad_id"),
        promotion_id: id(record, "promotion_id"),
        store: first_text(record, &["follow_life_account_name", "intention_life_account_name"]),
        location: joined(record, &["province_name", "city_name", "county_name"]),
        remark: text(record, "remark"),
        form_fields: form_fields(record, "remark_dict"),
        created_at: text(record, "create_time_detail").and_then(|t| parse_platform_time(&t)),
        modified_at: text(record, "modify_time").and_then(|t| parse_platform_time(&t)),
        // The numeric enums have no published table; keep the number as text (raw keeps the rest).
        platform_status: int(record, "effective_state").map(|s| s.to_string()),
        ..LeadFields::default()
    };
    Some((
        PlatformLead {
            source: LeadSource::Laike,
            source_lead_id: clue_id,
            fields,
            raw: record.clone(),
            phone_cipher: None,
        },
        cipher,
    ))
}

#[async_trait]
impl SourceClient for LaikeSource {
    fn source(&self) -> LeadSource {
        LeadSource::Laike
    }

    fn platform(&self) -> Platform {
        Platform::Douyin
    }

    fn paging(&self) -> Paging {
        Paging::Windowed {
            lag: self.lag,
            max_span: Duration::days(365),
            page_size: self.page_size,
        }
    }

    fn uses_app_token(&self) -> bool {
        true
    }

    /// Every answer carries `extra.now` (platform-apis.md §2.1).
    fn clocked(&self) -> bool {
        true
    }

    async fn retry_phones(
        &self,
        auth: &PullAuth<'_>,
        ciphers: &[String],
    ) -> Result<HashMap<String, PhoneRetry>, SourceError> {
        let account_id = auth.connection.external_account_id.as_str();
        self.with_token(|token, secret| async move { self.open(&token, &secret, account_id, ciphers).await })
            .await
    }

    async fn fetch(&self, auth: &PullAuth<'_>, window: &Window, page: PageRef) -> Result<Page, SourceError> {
        let PageRef::Number(number) = page else {
            return Err(SourceError::Unusable("来客 leads are paged by number".into()));
        };
        self.with_token(|token, secret| async move { self.fetch_with(&token, &secret, auth, window, number).await })
            .await
    }
}

impl LaikeSource {
    async fn fetch_with(
        &self,
        token: &Secret,
        secret: &Secret,
        auth: &PullAuth<'_>,
        window: &Window,
        number: u32,
    ) -> Result<Page, SourceError> {
        let account_id = auth.connection.external_account_id.as_str();
        let url = douyin::join(&self.base_url, "/goodlife/v1/open_api/crm/clue/query/");
        let query = [
            ("account_id", account_id.to_owned()),
            ("start_time", format_datetime(window.start)),
            ("end_time", format_datetime(window.end)),
            ("page", number.to_string()),
            ("page_size", self.page_size.to_string()),
        ];
        let (data, answered_at) = self
            .http
            .call(
                Platform::Douyin,
                Replay::Safe,
                |c| {
                    c.get(url.clone())
                        .header("access-token", token.expose())
                        .header("content-type", "application/json")
                        .query(&query)
                },
                |raw| {
                    let at = douyin::answered_at(&raw);
                    douyin::decode_envelope(Endpoint::OpenApi, raw).map(|data| (data, at))
                },
            )
            .await?;
        let mut leads: Vec<(PlatformLead, Option<String>)> = rows(&data, "clue_data", Platform::Douyin)?
            .iter()
            .filter_map(normalize)
            .collect();
        self.decrypt_phones(token, secret, account_id, &mut leads).await?;
        let paging = data.get("page").cloned().unwrap_or(Value::Null);
        let pages = int(&paging, "page_total").map(|p| p.max(0) as u32);
        let leads = leads.into_iter().map(|(lead, _)| lead).collect();
        Ok(
            Page::numbered(leads, int(&paging, "total").map(|t| t.max(0) as u64), pages, number)
                .answered_at(answered_at),
        )
    }
}
