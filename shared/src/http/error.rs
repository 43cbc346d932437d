use crate::platform::PlatformError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error as the caller sees it: status, a stable machine-readable code, a message, and where it
/// applies the offending field or the platform's own error code and log id. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: &'static str,
    pub message: String,
    pub field: Option<&'static str>,
    pub platform: Option<PlatformDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformDetail {
    pub name: &'static str,
    pub error_code: Option<i64>,
    pub log_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    code: u16,
    message: &'a str,
    error_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a PlatformDetail>,
    data: Option<()>,
}

impl ApiError {
    /// An error of any other status (413, 503, …), without field or platform detail.
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
            field: None,
            platform: None,
        }
    }

    pub fn bad_request(error_code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::BAD_REQUEST, error_code, message)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "a valid token naming the tenant is required",
        )
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPE",
            format!("this route needs the scope {scope}"),
        )
    }

    pub fn not_found(error_code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error_code, message)
    }

    pub fn conflict(error_code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error_code, message)
    }

    /// The platform refused or failed; its code and log id help the operator ask ByteDance.
    pub fn platform(status: StatusCode, error_code: &'static str, err: &PlatformError) -> Self {
        Self {
            platform: Some(err.detail()),
            // Never our transport's or decoder's text: it can carry hosts or response fragments.
            ..Self::new(status, error_code, err.public_message())
        }
    }

    /// Infrastructure failures: logged in full here, answered without detail.
    pub fn internal(context: &str, err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %err, context, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.status.as_u16(),
            message: &self.message,
            error_code: self.error_code,
            field: self.field,
            platform: self.platform.as_ref(),
            data: None,
        };
        (self.status, Json(body)).into_response()
    }
}
