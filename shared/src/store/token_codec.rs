//! The JSON a connection secret holds. Kept apart so both vaults store byte-identical values and
//! the only place a token is turned into text is here.

use super::StoreError;
use crate::domain::{Provider, TokenSet};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    version: u32,
    provider: Provider,
    access_token: String,
    access_expires_at: DateTime<Utc>,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_id: Option<String>,
    #[serde(default)]
    advertiser_ids: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    renewals_used: u32,
    issued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature_key: Option<String>,
}

pub fn encode(tokens: &TokenSet) -> String {
    let wire = Wire {
        version: 1,
        provider: tokens.provider,
        access_token: tokens.access_token.expose().to_owned(),
        access_expires_at: tokens.access_expires_at,
        refresh_token: tokens.refresh_token.expose().to_owned(),
        refresh_expires_at: tokens.refresh_expires_at,
        open_id: tokens.open_id.clone(),
        advertiser_ids: tokens.advertiser_ids.clone(),
        scopes: tokens.scopes.clone(),
        renewals_used: tokens.renewals_used,
        issued_at: tokens.issued_at,
        signature_key: tokens.signature_key.as_ref().map(|k| k.expose().to_owned()),
    };
    serde_json::to_string(&wire).expect("token JSON always serializes")
}

pub fn decode(text: &str) -> Result<TokenSet, StoreError> {
    // serde's message names the field, never the value, so it is safe to pass on.
    let wire: Wire = serde_json::from_str(text).map_err(|e| StoreError::new("decode connection secret", e))?;
    Ok(TokenSet {
        provider: wire.provider,
        access_token: Secret::new(wire.access_token),
        access_expires_at: wire.access_expires_at,
        refresh_token: Secret::new(wire.refresh_token),
        refresh_expires_at: wire.refresh_expires_at,
        open_id: wire.open_id,
        advertiser_ids: wire.advertiser_ids,
        scopes: wire.scopes,
        renewals_used: wire.renewals_used,
        issued_at: wire.issued_at,
        signature_key: wire.signature_key.map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let now = Utc::now();
        let t = TokenSet {
            provider: Provider::OceanEngine,
            access_token: Secret::new("a"),
            access_expires_at: now,
            refresh_token: Secret::new("r"),
            refresh_expires_at: now,
            open_id: None,
            advertiser_ids: vec!["1".into()],
            scopes: vec![],
            renewals_used: 2,
            issued_at: now,
            signature_key: Some(Secret::new("k")),
        };
        assert_eq!(decode(&encode(&t)).unwrap(), t);
    }

    #[test]
    fn decode_errors_do_not_echo_the_secret() {
        let err = decode(r#"{"version":1,"accessToken":"act.SECRET"}"#).unwrap_err();
        assert!(!err.to_string().contains("act.SECRET"), "{err}");
    }
}
