//! Locally signed tokens (HS256 JWT) for the local run, standing in for the API Gateway JWT
//! authorizer: same claims, same scope checks, no identity provider needed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use shared::http::Identity;
use std::collections::HashMap;
use std::sync::Arc;

/// Every scope a route of this project checks, for a token that may do everything locally.
pub const ALL_SCOPES: &[&str] = &[
    "lead:douyin:auth:get_url",
    "lead:douyin:leads:view",
    "lead:douyin:leads:phone",
    "lead:douyin:leads:edit",
    "lead:douyin:leads:export",
    "lead:douyin:fans:sync",
    "lead:douyin:admin",
    "lead:douyin:accounts:delete",
    "lead:douyin:analytics:view",
];

#[derive(Clone)]
pub struct LocalJwt {
    key: Arc<[u8]>,
    tenant_claim: Arc<str>,
}

impl LocalJwt {
    pub fn new(secret: &str, tenant_claim: &str) -> Self {
        Self {
            key: Arc::from(secret.as_bytes()),
            tenant_claim: Arc::from(tenant_claim),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// A token for `tenant` with `scopes`, valid for `ttl`.
    pub fn mint(&self, tenant: &str, scopes: &[&str], ttl: chrono::Duration) -> String {
        let header = B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
        let exp = (chrono::Utc::now() + ttl).timestamp();
        let mut claims = json!({"sub": tenant, "scope": scopes.join(" "), "exp": exp, "iss": "douyin-leads-local"});
        claims[&*self.tenant_claim] = Value::from(tenant);
        let payload = B64.encode(claims.to_string());
        let mut mac = self.mac();
        mac.update(format!("{header}.{payload}").as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        format!("{header}.{payload}.{signature}")
    }

    /// The identity a valid, unexpired token carries.
    pub fn verify(&self, token: &str) -> Option<Identity> {
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header_json: Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        if header_json.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let mut mac = self.mac();
        mac.update(format!("{header}.{payload}").as_bytes());
        mac.verify_slice(&B64.decode(signature).ok()?).ok()?;
        let claims: serde_json::Map<String, Value> = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        if claims.get("exp")?.as_i64()? <= chrono::Utc::now().timestamp() {
            return None;
        }
        let flat: HashMap<String, String> = claims
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        Identity::from_claims(&self.tenant_claim, &flat, None)
    }
}

/// Middleware: a valid `Authorization: Bearer <token>` becomes the request's [`Identity`].
pub async fn layer(
    axum::extract::State(jwt): axum::extract::State<LocalJwt>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let identity = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| jwt.verify(token.trim()));
    if let Some(identity) = identity {
        req.extensions_mut().insert(identity);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_tampered_ones_do_not() {
        let jwt = LocalJwt::new("k", "sub");
        let token = jwt.mint("tenant-a", &["x", "y"], chrono::Duration::minutes(5));
        let id = jwt.verify(&token).unwrap();
        assert_eq!(id.tenant.as_str(), "tenant-a");
        assert!(id.require("x").is_ok() && id.require("z").is_err());
        assert!(LocalJwt::new("other", "sub").verify(&token).is_none());
        let expired = jwt.mint("tenant-a", &[], chrono::Duration::minutes(-1));
        assert!(jwt.verify(&expired).is_none());
        let (head, _) = token.split_once('.').unwrap();
        let forged_payload = B64.encode(r#"{"sub":"tenant-b","exp":99999999999}"#);
        let sig = token.rsplit('.').next().unwrap();
        assert!(jwt.verify(&format!("{head}.{forged_payload}.{sig}")).is_none());
    }
}
