//! The handlers of tokens, sessions and `whoami`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use orkestrator_core::auth::{CreateToken, Principal, TokenInfo};
use orkestrator_core::manager::Manager;
use orkestrator_core::manager::tokens::unauthenticated;
use serde::Deserialize;

use super::auth::{SESSION_COOKIE, session_cookie};
use super::error::{ApiResult, ErrorResponse};
use super::extract::{Body, Path};

pub(crate) async fn list_tokens(State(m): State<Manager>) -> ApiResult<Vec<TokenInfo>> {
    Ok(Json(m.tokens().list().await?))
}

pub(crate) async fn create_token(
    State(m): State<Manager>,
    Body(req): Body<CreateToken>,
) -> ApiResult<orkestrator_core::auth::IssuedToken> {
    Ok(Json(m.tokens().create(req).await?))
}

pub(crate) async fn revoke_token(
    State(m): State<Manager>,
    Path(id): Path<String>,
) -> ApiResult<TokenInfo> {
    Ok(Json(m.tokens().revoke(&id).await?))
}

pub(crate) async fn whoami(
    State(m): State<Manager>,
    p: Option<axum::Extension<Principal>>,
) -> ApiResult<TokenInfo> {
    let p = p.ok_or_else(|| unauthenticated("whoami needs a credential"))?;
    Ok(Json(m.tokens().info(&p)?))
}

/// `POST /v1/session`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    token: String,
}

pub(crate) async fn sign_in(
    State(m): State<Manager>,
    Body(req): Body<SignIn>,
) -> Result<Response, ErrorResponse> {
    let (session, info) = m.tokens().open_session(&req.token)?;
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        orkestrator_core::manager::tokens::SESSION_TTL.as_secs()
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(info)).into_response())
}

pub(crate) async fn sign_out(State(m): State<Manager>, headers: HeaderMap) -> Response {
    if let Some(s) = session_cookie(&headers) {
        m.tokens().close_session(&s);
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Json(serde_json::json!({}))).into_response()
}
