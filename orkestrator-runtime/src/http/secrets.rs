//! The handlers of secrets: operators create, update, list and remove them, and a worker is
//! given the values of its own instances' secrets. Operators' answers never carry a value; a
//! value is refused over plain HTTP from off the manager's host, either way.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use orkestrator_core::api::ApiError;
use orkestrator_core::auth::Principal;
use orkestrator_core::ids::WorkerId;
use orkestrator_core::manager::Manager;
use orkestrator_core::secrets::{
    CreateSecret, InstanceSecrets, SecretInfo, SecretValue, UpdateSecret,
};

use super::error::ApiResult;
use super::extract::{Body, Path};
use super::serve::OverTls;

/// How a request came: over TLS, and from where (absent when served in-process, as in tests).
type Transport = (
    Option<axum::Extension<OverTls>>,
    Option<axum::Extension<ConnectInfo<SocketAddr>>>,
);

/// Refuses a secret value sent in plain text over the network: only TLS or loopback carry one.
/// (Served in-process, without a peer address, there is no network.)
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
            "secret values do not travel over plain HTTP to or from {}: serve the manager with TLS (`orkestrator tls init DIR`, then `server --tls-cert ... --tls-key ...`), or send it from the manager's host",
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

/// `GET /v1/workers/{id}/instances/{instance}/secrets`: the secret values of an instance's
/// tasks, for the worker it is assigned to and no one else (an operator token included: values
/// never go back to operators). A `403` for another worker's instance, as for a credential that
/// is not worker `{id}`'s own.
pub(crate) async fn instance_secrets(
    State(m): State<Manager>,
    Path((worker, instance)): Path<(String, String)>,
    tls: Option<axum::Extension<OverTls>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    principal: Option<axum::Extension<Principal>>,
) -> ApiResult<InstanceSecrets> {
    check_transport(&(tls, peer))?;
    let worker = WorkerId::new(worker);
    if let Some(axum::Extension(p)) = principal
        && !p.is_worker(&worker)
    {
        return Err(orkestrator_core::manager::tokens::forbidden(
            "not_your_instance",
            format!(
                "secret values go only to the worker an instance is assigned to: present worker \"{worker}\"'s own credential"
            ),
        )
        .into());
    }
    Ok(Json(m.secrets().for_instance(&worker, &instance).await?))
}
