use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The seed contract's envelope: `code` is 0 on success, the HTTP status on failure.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub code: u16,
    pub message: String,
    pub data: Option<T>,
}

pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        code: 0,
        message: "success".to_owned(),
        data: Some(data),
    })
    .into_response()
}
