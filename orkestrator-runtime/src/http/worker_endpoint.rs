//! A worker's own small endpoint: its health, and the output of its containers for the manager's
//! logs proxy (and operators).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use orkestrator_core::api::{ApiError, ContainerLogs, LogsQuery};
use orkestrator_core::error::RuntimeErrorKind;
use orkestrator_core::ids::WorkerId;
use orkestrator_core::runtime::{LogOptions, Runtime, labels};
use serde::Deserialize;

use super::client::WORKER_HEADER;
use super::error::{ErrorResponse, not_found};
use super::extract::{Path, Query};
use super::logs::text_stream;

/// What a worker's endpoint serves from.
#[derive(Clone)]
struct WorkerEndpoint {
    worker: WorkerId,
    runtime: Arc<dyn Runtime>,
}

/// `?tail=N|all&since=UNIX_SECONDS&follow=true` of a worker endpoint's logs request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerLogsQuery {
    /// The last N lines (default [`LogsQuery::DEFAULT_TAIL`]); `all` (only when following) for
    /// everything.
    tail: Option<String>,
    /// Only output since then (as `LogsQuery::since`).
    since: Option<String>,
    /// Stream the output as it comes until the container stops.
    #[serde(default)]
    follow: bool,
}

/// A worker's own small endpoint: `GET /health`, and
/// `GET /v1/containers/{id}/logs?tail=N&since=T&follow=true` for the output of this worker's
/// containers (others' are not served): JSON [`ContainerLogs`], or with `follow=true` a chunked
/// `text/plain` stream that ends when the container stops. Only the manager (and operators)
/// may read logs, as `verifier` says ([`super::auth::worker_layer`]).
pub fn worker_router(
    worker: WorkerId,
    runtime: Arc<dyn Runtime>,
    verifier: Arc<dyn super::auth::Verifier>,
) -> Router {
    let name = worker.clone();
    worker_routes(worker, runtime)
        .layer(axum::middleware::from_fn_with_state(
            super::auth::WorkerAuth(verifier),
            super::auth::worker_layer,
        ))
        .layer(axum::middleware::map_response(move |r| {
            mark_refusals(name.clone(), r)
        }))
}

/// Marks an error answer of the worker's endpoint (a request without a credential it takes, a
/// path it does not serve, ...) with [`WORKER_HEADER`], so that a client that came here for the
/// manager can say where it is.
async fn mark_refusals(worker: WorkerId, mut r: Response) -> Response {
    if (r.status().is_client_error() || r.status().is_server_error())
        && let Ok(v) = HeaderValue::from_str(worker.as_str())
    {
        r.headers_mut().insert(WORKER_HEADER, v);
    }
    r
}

fn worker_routes(worker: WorkerId, runtime: Arc<dyn Runtime>) -> Router {
    Router::new()
        .route("/health", get(worker_health))
        .route("/v1/containers/{id}/logs", get(container_logs))
        .fallback(not_found)
        .with_state(WorkerEndpoint { worker, runtime })
}

/// [`worker_router`] plus `GET /metrics`: the worker's host, its tasks and its engine calls in
/// the OpenMetrics text format or Prometheus text 0.0.4, as `Accept` asks (see
/// [`super::worker_metrics`]), for read tokens too.
pub fn worker_router_with_metrics(
    worker: WorkerId,
    runtime: Arc<dyn Runtime>,
    metrics: super::worker_metrics::WorkerMetricsSource,
    verifier: Arc<dyn super::auth::Verifier>,
) -> Router {
    let name = worker.clone();
    worker_routes(worker, runtime)
        .merge(super::worker_metrics::router(metrics))
        .layer(axum::middleware::from_fn_with_state(
            super::auth::WorkerAuth(verifier),
            super::auth::worker_layer,
        ))
        .layer(axum::middleware::map_response(move |r| {
            mark_refusals(name.clone(), r)
        }))
}

async fn worker_health(State(w): State<WorkerEndpoint>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "worker": w.worker, "status": "ok" }))
}

async fn container_logs(
    State(w): State<WorkerEndpoint>,
    Path(id): Path<String>,
    Query(q): Query<ContainerLogsQuery>,
) -> Result<Response, ErrorResponse> {
    let tail = match q.tail.as_deref().map(str::trim) {
        Some("all") if q.follow => None,
        None => Some(LogsQuery::DEFAULT_TAIL),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n <= LogsQuery::MAX_TAIL => Some(n),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_tail",
                    format!(
                        "tail {t:?}: ask for 0 to {} lines (or `all` when following)",
                        LogsQuery::MAX_TAIL
                    ),
                )
                .into());
            }
        },
    };
    let since = LogsQuery {
        since: q.since,
        ..LogsQuery::default()
    }
    .since_at(std::time::SystemTime::now())?;
    let engine = |e: orkestrator_core::Error| match e {
        orkestrator_core::Error::Runtime {
            kind: RuntimeErrorKind::NotFound,
            ..
        } => ApiError::not_found("container", &id),
        other => ApiError::unavailable(
            "engine_error",
            format!("cannot read container {id}: {other}"),
        ),
    };
    let info = w.runtime.inspect(&id).await.map_err(engine)?;
    if info.label(labels::WORKER) != Some(w.worker.as_str()) {
        return Err(ApiError::not_found("container of this worker", &id).into());
    }
    let options = LogOptions {
        since,
        tail,
        follow: q.follow,
    };
    let mut stream = w.runtime.stream_logs(&id, &options).await.map_err(engine)?;
    if q.follow {
        return Ok(text_stream(stream));
    }
    // Even 10,000 lines can be large (an engine splits lines at 16 KiB): keep the last
    // MAX_LOG_READ bytes.
    let mut bytes = Vec::new();
    let mut cut = false;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(engine)?);
        if bytes.len() > 2 * MAX_LOG_READ {
            bytes.drain(..bytes.len() - MAX_LOG_READ);
            cut = true;
        }
    }
    if bytes.len() > MAX_LOG_READ {
        bytes.drain(..bytes.len() - MAX_LOG_READ);
        cut = true;
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if cut {
        text.insert_str(
            0,
            &format!(
                "[earlier output left out: only the last {} MiB are read at once; use --tail or --follow]\n",
                MAX_LOG_READ >> 20
            ),
        );
    }
    Ok(Json(ContainerLogs { text }).into_response())
}

/// The most output one plain (not followed) logs read holds: the last 16 MiB.
const MAX_LOG_READ: usize = 16 << 20;
