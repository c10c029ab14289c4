//! The handlers' extractors: JSON bodies, queries and paths whose rejections are JSON
//! [`ApiError`]s naming the problem (not axum's plain-text answers), and the caller's
//! [`Principal`].

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use orkestrator_core::api::{ApiError, ErrorKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{ErrorResponse, too_large};

/// A JSON body whose rejections are [`ApiError`]s naming the problem.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ErrorResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(r) => Err(ErrorResponse(json_rejection(r))),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid_body",
            format!("invalid request body: {}", e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            format!("malformed JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorKind::UnsupportedMedia,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// Long-poll parameters: `?index=N&wait=30s`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Return when the state passes this index.
    #[serde(default)]
    pub index: u64,
    /// How long to wait at most (e.g. `30s`, `500ms`). Default 30 s.
    #[serde(default)]
    pub wait: Option<String>,
}

impl WaitQuery {
    pub(crate) fn wait(&self) -> Result<Duration, ErrorResponse> {
        match &self.wait {
            None => Ok(Duration::from_secs(30)),
            Some(w) => orkestrator_core::units::parse_duration(w).map_err(|m| {
                ErrorResponse(ApiError::bad_request("invalid_query", format!("wait: {m}")))
            }),
        }
    }
}

/// Query parameters whose rejections are [`ApiError`]s.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ErrorResponse;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(ErrorResponse(ApiError::bad_request(
                "invalid_query",
                r.body_text(),
            ))),
        }
    }
}

/// Path parameters whose rejections are [`ApiError`]s (a segment that is not UTF-8 once
/// percent-decoded, say), not axum's plain-text answers.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ErrorResponse;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(ErrorResponse(ApiError::bad_request(
                "invalid_path",
                format!("{} (ids are UTF-8 text)", r.body_text()),
            ))),
        }
    }
}

/// Who made the request, as the authentication layer found (a 401 where it found no one).
pub struct Principal(pub orkestrator_core::auth::Principal);

impl std::ops::Deref for Principal {
    type Target = orkestrator_core::auth::Principal;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ErrorResponse;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<orkestrator_core::auth::Principal>()
            .cloned()
            .map(Principal)
            .ok_or_else(|| {
                ErrorResponse(orkestrator_core::manager::tokens::unauthenticated(
                    "this request needs a credential",
                ))
            })
    }
}
