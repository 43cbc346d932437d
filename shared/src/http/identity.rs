use super::ApiError;
use crate::domain::TenantId;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Who is calling: the tenant and the scopes the JWT authorizer granted. Handlers take it as an
/// extractor; it exists only when a layer in front put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: TenantId,
    pub subject: Option<String>,
    pub scopes: BTreeSet<String>,
}

impl Identity {
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope))
        }
    }

    /// Builds an identity from JWT claims; `None` when the tenant claim is missing or empty.
    pub fn from_claims(
        tenant_claim: &str,
        claims: &std::collections::HashMap<String, String>,
        scopes: Option<&[String]>,
    ) -> Option<Self> {
        let tenant = claims.get(tenant_claim).map(|t| t.trim()).filter(|t| !t.is_empty())?;
        // API Gateway lists scopes separately; fall back to the raw `scope` claim when it does not.
        let scopes = match scopes {
            Some(list) => list.iter().cloned().collect(),
            None => claims
                .get("scope")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        Some(Self {
            tenant: TenantId::new(tenant),
            subject: claims.get("sub").cloned(),
            scopes,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Middleware for Lambda: reads `requestContext.authorizer.jwt` of an API Gateway HTTP API event.
pub async fn from_api_gateway(State(tenant_claim): State<Arc<str>>, mut req: Request, next: Next) -> Response {
    let identity = match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| Identity::from_claims(&tenant_claim, &jwt.claims, jwt.scopes.as_deref())),
        _ => None,
    };
    if let Some(identity) = identity {
        req.extensions_mut().insert(identity);
    }
    next.run(req).await
}

/// Puts the API Gateway identity layer in front of `router`, as every Lambda HTTP function does.
pub fn with_api_gateway_identity(router: Router, tenant_claim: &str) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::<str>::from(tenant_claim),
        from_api_gateway,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn tenant_comes_from_the_configured_claim() {
        let claims = HashMap::from([("sub".into(), "user-1".into()), ("tenant_id".into(), "t-9".into())]);
        let scopes = vec!["a".to_owned()];
        let id = Identity::from_claims("tenant_id", &claims, Some(&scopes)).unwrap();
        assert_eq!(id.tenant.as_str(), "t-9");
        assert!(id.require("a").is_ok());
        assert_eq!(id.require("b").unwrap_err().status, axum::http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn missing_or_blank_tenant_is_no_identity() {
        let claims = HashMap::from([("sub".into(), " ".into())]);
        assert!(Identity::from_claims("sub", &claims, None).is_none());
        assert!(Identity::from_claims("tenant_id", &claims, None).is_none());
    }

    #[test]
    fn scope_claim_is_used_when_the_authorizer_lists_none() {
        let claims = HashMap::from([("sub".into(), "t".into()), ("scope".into(), "x y".into())]);
        let id = Identity::from_claims("sub", &claims, None).unwrap();
        assert!(id.require("x").is_ok() && id.require("y").is_ok());
    }
}
