//! What every HTTP function shares: the `{code, message, data}` envelope, the error type that maps
//! onto it, the caller's identity from the JWT authorizer, and strict query parsing.

pub mod body;
pub mod deadline;
pub mod envelope;
pub mod error;
pub mod identity;
pub mod lambda_body;
pub mod query;

pub use body::json_body;
pub use envelope::ok;
pub use error::ApiError;
pub use identity::Identity;
pub use query::QueryParams;

/// Answers unknown routes with the envelope instead of axum's empty 404.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("ROUTE_NOT_FOUND", "no such route")
}
