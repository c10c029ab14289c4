//! The manager's logs proxy: `GET /v1/jobs/{job}/logs` reads a task's output from its worker's
//! own endpoint (see [`super::worker_endpoint`]), once or as it comes.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use orkestrator_core::api::{ApiError, ErrorKind, LogSource, Logs, LogsQuery};
use orkestrator_core::ids::JobId;
use orkestrator_core::manager::Manager;
use orkestrator_core::runtime::{LogOptions, LogStream};

use super::client::HttpTransport;
use super::error::ErrorResponse;
use super::extract::{Path, Query};
use super::serve::{Closing, until_closing};

/// `GET /v1/jobs/{job}/logs?task=T&index=N&tail=100&since=10m`: the manager finds the task's
/// worker and container, and reads the output from the worker's own endpoint. With
/// `follow=true` the answer is the output as it comes (chunked `text/plain`), on into the task's
/// next containers (restarts, replacements) until the job ends; errors found before the stream
/// starts are JSON as usual.
pub(crate) async fn job_logs(
    State(m): State<Manager>,
    closing: Option<axum::Extension<Closing>>,
    Path(job): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ErrorResponse> {
    let tail = q.tail()?;
    let since = q.since_at(std::time::SystemTime::now())?;
    let job = JobId::new(job);
    let token = m.tokens().endpoint();
    if q.follow {
        let options = LogOptions {
            since,
            tail: Some(tail),
            follow: true,
        };
        let stream = m
            .jobs()
            .follow_logs(
                &job,
                q.task.as_deref(),
                q.index.unwrap_or(0),
                options,
                move |src, options| open_container_logs(src, options, token.clone()),
            )
            .await?;
        return Ok(text_stream(until_closing(stream, closing.map(|c| c.0))));
    }
    let src = m
        .jobs()
        .log_source(&job, q.task.as_deref(), q.index.unwrap_or(0))
        .await?;
    let worker = HttpTransport::for_worker(&src.address)
        .map_err(|e| worker_error(&src, e))?
        .with_token(token);
    let out = worker
        .container_logs(&src.container_id, tail, since)
        .await
        .map_err(|e| worker_error(&src, e))?;
    Ok(Json(Logs {
        instance: src.instance,
        index: src.index,
        task: src.task,
        worker: src.worker,
        text: out.text,
    })
    .into_response())
}

/// Opens one container's output on its worker's endpoint, for [`Jobs::follow_logs`](orkestrator_core::manager::Jobs::follow_logs).
pub(crate) async fn open_container_logs(
    src: LogSource,
    options: LogOptions,
    token: Option<String>,
) -> Result<LogStream, ApiError> {
    let worker = HttpTransport::for_worker(&src.address)
        .map_err(|e| worker_error(&src, e))?
        .with_token(token);
    let body = worker
        .container_log_stream(&src.container_id, &options)
        .await
        .map_err(|e| worker_error(&src, e))?;
    Ok(Box::pin(body.map(|chunk| chunk.map(Vec::from))))
}

/// A worker's failure to serve `src`'s output, as the manager reports it.
fn worker_error(src: &LogSource, e: orkestrator_core::Error) -> ApiError {
    match e {
        // The worker answered: keep a "not found", anything else is the gateway's failure.
        orkestrator_core::Error::Api(a) => ApiError::new(
            if a.kind == ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Upstream
            },
            "worker_error",
            format!("worker \"{}\": {}", src.worker, a.message),
        ),
        other => {
            // Not the client's "cannot reach manager" wording: this peer is the worker.
            let why = match other {
                orkestrator_core::Error::Unreachable { message, .. } => message,
                e => e.to_string(),
            };
            ApiError::new(
                ErrorKind::Upstream,
                "worker_unreachable",
                format!(
                    "worker \"{}\" at {} does not answer ({why}); its tasks' output can be read again once it is back",
                    src.worker, src.address
                ),
            )
        }
    }
}

/// A stream of output as a chunked `text/plain` answer, each chunk sent as it comes.
pub(crate) fn text_stream(stream: LogStream) -> Response {
    let body = axum::body::Body::from_stream(stream.map(|chunk| chunk.map(Bytes::from)));
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
