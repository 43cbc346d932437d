//! Small JSON request bodies, read the same way by every function.

use super::ApiError;

/// The largest JSON body any route takes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads a small JSON body; every problem is a 400 on `body`.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "BODY_TOO_LARGE",
            "body",
            format!("the body may be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", "body", format!("the body does not fit this route: {e}")))
}
