//! The manager's HTTP API on axum: the router, built from the route table ([`super::routes`])
//! with authentication ([`super::auth`]), and serving it. Handlers are thin: decode the typed
//! request, call the [`Manager`], encode the typed response. Errors are JSON [`ApiError`]s with a
//! 4xx/5xx status; bad input never panics and never gets a 500.
//!
//! Serving any router is [`super::serve`]'s; a worker's own endpoint is
//! [`super::worker_endpoint`]'s (both re-exported here, where they were first).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use orkestrator_core::api::{ApiError, ErrorKind};
use orkestrator_core::manager::Manager;

use super::error::{ErrorResponse, MAX_BODY_BYTES, method_not_allowed, not_found};
pub use super::serve::{
    BODY_READ_TIMEOUT, BODY_TIMEOUT, HEADER_READ_TIMEOUT, OverTls, ServeOptions, serve_app,
    serve_router, serve_router_with,
};
pub use super::worker_endpoint::{worker_router, worker_router_with_metrics};

/// The API router for `manager`, with authentication ([`super::auth`]) and the default
/// per-credential limits. Wrap it with more layers (tracing, metrics) as needed.
pub fn router(manager: Manager) -> Router {
    router_with_limits(manager, super::auth::Limits::default())
}

/// [`router`] with per-credential `limits`.
pub fn router_with_limits(manager: Manager, limits: super::auth::Limits) -> Router {
    let auth = super::auth::AuthState {
        manager: manager.clone(),
        usage: Arc::new(super::auth::Usage::new(limits)),
        routes: super::routes::policies(),
    };
    let api = super::prom::ApiMetrics::default();
    let registry = Arc::new(super::prom::registry(manager.clone(), &api));
    super::routes::table()
        .router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(registry))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            super::auth::layer,
        ))
        .layer(axum::middleware::from_fn(refuse_cross_origin_changes))
        .layer(axum::middleware::from_fn_with_state(
            api,
            super::prom::time_request,
        ))
        .with_state(manager)
}

/// Serves the API on `listener` until `shutdown` resolves, with the default [`ServeOptions`].
/// Followed logs and event streams end then (a graceful shutdown does not wait for them).
pub async fn serve(
    listener: tokio::net::TcpListener,
    manager: Manager,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, manager, shutdown, ServeOptions::default()).await
}

/// [`serve`] with the read timeouts of `options`. On `shutdown` it stops accepting, ends endless
/// answers, lets every connection finish the request it is answering and returns once all are
/// closed.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    manager: Manager,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    serve_app(listener, router(manager), shutdown, options).await
}

/// Refuses a request that changes state when a browser says it comes from a page of another
/// origin (`Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` that is not this
/// server's): any web page could otherwise submit jobs to a manager on the operator's machine
/// (a plain-text body needs no CORS preflight). Clients that are not browsers send neither header.
async fn refuse_cross_origin_changes(req: Request, next: axum::middleware::Next) -> Response {
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe && let Some(why) = cross_origin(req.headers()) {
        return ErrorResponse(ApiError::new(
            ErrorKind::Forbidden,
            "cross_origin",
            format!(
                "a request that changes state from a web page of another origin is refused ({why}); use the CLI or the API directly"
            ),
        ))
        .into_response();
    }
    next.run(req).await
}

/// Why the headers say a request comes from another origin, if they do.
fn cross_origin(h: &HeaderMap) -> Option<String> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    let origin = text("origin")?;
    let host = text("host").unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin_host != host).then(|| format!("Origin: {origin}, Host: {host}"))
}
