//! The handlers of secrets: operators create, update, list and remove them. Answers never
//! carry a value; a value is refused over plain HTTP from off the manager's host.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use orkestrator_core::api::ApiError;
use orkestrator_core::manager::Manager;
use orkestrator_core::secrets::{CreateSecret, SecretInfo, SecretValue, UpdateSecret};

use super::error::ApiResult;
use super::extract::{Body, Path};
use super::serve::OverTls;

/// How a request came: over TLS, and from where (absent when served in-process, as in tests).
type Transport = (
    Option<axum::Extension<OverTls>>,
    Option<axum::Extension<ConnectInfo<SocketAddr>>>,
);

/// Refuses a secret value sent in plain text over the network: only TLS or loopback carry one.
fn check_transport((tls, peer): &Transport) -> Result<(), ApiError> {
    let Some(axum::Extension(ConnectInfo(peer))) = peer else {
        return Ok(());
    };
    if tls.is_some() || peer.ip().is_loopback() {
        return Ok(());
    }
    Err(orkestrator_core::manager::tokens::forbidden(
        "plain_http",
        format!(
            "secret values are not taken over plain HTTP from {}: serve the manager with TLS (`orkestrator tls init DIR`, then `server --tls-cert ... --tls-key ...`), or send it from the manager's host",
            peer.ip()
        ),
    ))
}

pub(crate) async fn list(State(m): State<Manager>) -> ApiResult<Vec<SecretInfo>> {
    Ok(Json(m.secrets().list().await?))
}

pub(crate) async fn get_one(
    State(m): State<Manager>,
    Path(name): Path<String>,
) -> ApiResult<SecretInfo> {
    Ok(Json(m.secrets().get(&name).await?))
}

pub(crate) async fn create(
    State(m): State<Manager>,
    tls: Option<axum::Extension<OverTls>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Body(req): Body<CreateSecret>,
) -> ApiResult<SecretInfo> {
    check_transport(&(tls, peer))?;
    let value = SecretValue::from_base64("value_base64", &req.value_base64)?;
    Ok(Json(m.secrets().create(&req.name, value).await?))
}

pub(crate) async fn update(
    State(m): State<Manager>,
    Path(name): Path<String>,
    tls: Option<axum::Extension<OverTls>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Body(req): Body<UpdateSecret>,
) -> ApiResult<SecretInfo> {
    check_transport(&(tls, peer))?;
    let value = SecretValue::from_base64("value_base64", &req.value_base64)?;
    Ok(Json(m.secrets().update(&name, value).await?))
}

pub(crate) async fn remove(
    State(m): State<Manager>,
    Path(name): Path<String>,
) -> ApiResult<SecretInfo> {
    Ok(Json(m.secrets().remove(&name).await?))
}
