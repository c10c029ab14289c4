//! How the HTTP layer answers errors: an [`ApiError`] as JSON with its HTTP status
//! ([`ErrorResponse`]), the status of each error kind and back ([`status_of`], [`kind_of`]), and
//! the answers to requests no route takes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orkestrator_core::api::{ApiError, ErrorKind};

/// Largest request body the server accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The code of the error answered when a request's body does not come in time (a 408).
pub const BODY_TIMEOUT: &str = "body_timeout";

/// The HTTP status for an error of `kind`.
pub fn status_of(e: &ApiError) -> StatusCode {
    match e.kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::LimitExceeded if e.code == BODY_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::LimitExceeded if e.code == BODY_TIMEOUT => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        // Not the leader: the client should ask another manager (the error names it).
        ErrorKind::NotLeader => StatusCode::MISDIRECTED_REQUEST,
        ErrorKind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error kind an HTTP status stands for (for answers that carry no JSON error).
pub fn kind_of(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 => ErrorKind::Invalid,
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        405 => ErrorKind::MethodNotAllowed,
        409 => ErrorKind::Conflict,
        408 | 413 | 429 => ErrorKind::LimitExceeded,
        415 => ErrorKind::UnsupportedMedia,
        421 => ErrorKind::NotLeader,
        502 | 504 => ErrorKind::Upstream,
        503 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// The code of the error answered when a request's body is larger than [`MAX_BODY_BYTES`] (a
/// 413).
pub const BODY_TOO_LARGE: &str = "body_too_large";

/// An [`ApiError`] as an HTTP response.
pub struct ErrorResponse(pub ApiError);

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        // The body carries the HTTP status too, as it always has: scripts read it.
        let mut body = serde_json::to_value(&self.0).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.insert("status".into(), status.as_u16().into());
        }
        (status, Json(body)).into_response()
    }
}

impl From<ApiError> for ErrorResponse {
    fn from(e: ApiError) -> Self {
        ErrorResponse(e)
    }
}

/// What a JSON handler answers: its value, or an error answer.
pub(crate) type ApiResult<T> = Result<Json<T>, ErrorResponse>;

/// The error of a body larger than [`MAX_BODY_BYTES`].
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        ErrorKind::LimitExceeded,
        BODY_TOO_LARGE,
        format!("request body is larger than the {MAX_BODY_BYTES} bytes allowed"),
    )
}

/// The answer to a request no route takes: `404 no_route`.
pub(crate) async fn not_found() -> ErrorResponse {
    ErrorResponse(ApiError::new(
        ErrorKind::NotFound,
        "no_route",
        "no such endpoint; the API lives under /v1/ (e.g. GET /v1/health, GET /v1/jobs)",
    ))
}

/// The answer to a method a route does not take: `405 method_not_allowed`.
pub(crate) async fn method_not_allowed() -> ErrorResponse {
    ErrorResponse(ApiError::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        "this endpoint does not accept that method",
    ))
}
