//! A worker endpoint's authentication: tokens checked with the manager ([`Verifier`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use orkestrator_core::api::ApiError;
use orkestrator_core::auth::Role;
use orkestrator_core::manager::Manager;
use orkestrator_core::manager::tokens::{forbidden, unauthenticated};
use tokio::time::Instant;

use super::credential::{Presented, presented};
use crate::http::client::HttpTransport;
use crate::http::error::ErrorResponse;

/// Tells a worker's endpoint what role a presented token has.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// The role of `token`; a 401 for one that is not valid.
    async fn role_of(&self, token: &str) -> Result<Role, ApiError>;
}

#[async_trait]
impl Verifier for Manager {
    async fn role_of(&self, token: &str) -> Result<Role, ApiError> {
        self.tokens().authenticate(token).map(|p| p.role)
    }
}

/// Checks tokens with a remote manager (`GET /v1/auth/whoami`) on every request, so a revoked
/// token is refused at once; the answers are remembered only for when the manager cannot be
/// reached (for [`RemoteVerifier::STALE`]), so that a worker's metrics stay readable while the
/// manager is down.
pub struct RemoteVerifier {
    manager: HttpTransport,
    seen: Mutex<HashMap<[u8; 32], (Role, Instant)>>,
}

impl RemoteVerifier {
    /// How long a token checked before is taken while the manager does not answer.
    pub const STALE: Duration = Duration::from_secs(600);
    /// The most answers remembered.
    const MAX_SEEN: usize = 10_000;

    /// Checks with the manager at `manager` (its credentials are not used: the token checked
    /// is the one presented).
    pub fn new(manager: HttpTransport) -> Self {
        RemoteVerifier {
            manager: manager.with_token(None),
            seen: Mutex::default(),
        }
    }
}

#[async_trait]
impl Verifier for RemoteVerifier {
    async fn role_of(&self, token: &str) -> Result<Role, ApiError> {
        let key = orkestrator_core::auth::digest(token);
        let asker = self.manager.clone().with_token(Some(token.to_owned()));
        let answer = asker.whoami().await;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(info) => {
                if seen.len() >= Self::MAX_SEEN {
                    seen.clear();
                }
                seen.insert(key, (info.role.clone(), Instant::now()));
                Ok(info.role)
            }
            Err(orkestrator_core::Error::Api(e)) => {
                seen.remove(&key);
                Err(e)
            }
            Err(other) => match seen.get(&key) {
                Some((role, at)) if at.elapsed() < Self::STALE => Ok(role.clone()),
                _ => Err(ApiError::unavailable(
                    "manager_unreachable",
                    format!("cannot check the token with the manager: {other}"),
                )),
            },
        }
    }
}

/// The state of [`worker_layer`].
#[derive(Clone)]
pub struct WorkerAuth(pub Arc<dyn Verifier>);

/// A worker endpoint's authentication: `/health` is public; `/metrics` answers read and
/// operator tokens and the manager; everything else only the manager and operators.
pub async fn worker_layer(
    State(v): State<WorkerAuth>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    if path == "/health" {
        return next.run(req).await;
    }
    let token = match presented(req.headers()) {
        Ok(Some(Presented::Bearer(t))) => t,
        Ok(_) => {
            return ErrorResponse(unauthenticated(
                "a worker's endpoint answers only the manager (and read tokens on /metrics)",
            ))
            .into_response();
        }
        Err(e) => return ErrorResponse(e).into_response(),
    };
    let role = match v.0.role_of(&token).await {
        Ok(r) => r,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    let ok = match role {
        Role::Manager | Role::Operator => true,
        Role::Read => path == "/metrics",
        _ => false,
    };
    if !ok {
        return ErrorResponse(forbidden(
            "forbidden",
            format!("a {role} token cannot read {path} of a worker"),
        ))
        .into_response();
    }
    next.run(req).await
}
