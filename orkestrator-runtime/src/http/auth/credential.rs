//! The credential a request presents: a bearer token, else the dashboard's session cookie.

use axum::http::{HeaderMap, header};
use orkestrator_core::api::ApiError;
use orkestrator_core::manager::tokens::unauthenticated;

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "ork_session";

/// The credential a request presents: a bearer token, else a session cookie.
pub(crate) enum Presented {
    Bearer(String),
    Session(String),
}

/// The credential `h` presents, if any; an error for an `Authorization` header that is not
/// `Bearer TOKEN`.
pub(crate) fn presented(h: &HeaderMap) -> Result<Option<Presented>, ApiError> {
    if let Some(v) = h.get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header is not text"))?;
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer TOKEN`"))?;
        return Ok(Some(Presented::Bearer(token.trim().to_owned())));
    }
    Ok(session_cookie(h).map(Presented::Session))
}

/// The dashboard's session cookie among `h`'s cookies.
pub(crate) fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}
