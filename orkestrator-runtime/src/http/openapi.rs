//! The API's contract: an OpenAPI 3.1 document of every endpoint, served at `/v1/openapi.json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The OpenAPI document, as served.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /v1/openapi.json`: [`OPENAPI_JSON`].
pub(crate) async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
