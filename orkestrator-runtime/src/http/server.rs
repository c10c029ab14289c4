//! The manager's HTTP API on axum. Handlers are thin: decode the typed request, call the
//! [`Manager`], encode the typed response. Errors are JSON [`ApiError`]s with a 4xx/5xx status;
//! bad input never panics and never gets a 500.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::StreamExt;
use orkestrator_core::api::*;
use orkestrator_core::error::RuntimeErrorKind;
use orkestrator_core::events::{EventFilter, StreamItem, StreamStart};
use orkestrator_core::ids::{JobId, SchedulerId, WorkerId};
use orkestrator_core::manager::Manager;
use orkestrator_core::metrics::{JobMetrics, MetricsAccepted, MetricsReport, WorkerMetrics};
use orkestrator_core::runtime::{LogOptions, LogStream, Runtime, labels};
use orkestrator_core::spec::{Format, parse_job};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::MAX_BODY_BYTES;
use super::client::HttpTransport;

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
    };
    let api = super::prom::ApiMetrics::default();
    let registry = std::sync::Arc::new(super::prom::registry(manager.clone(), &api));
    Router::new()
        .route("/metrics", get(super::prom::handler(registry)))
        .route("/v1/health", get(health))
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/{job}", get(get_job).delete(stop_job))
        .route("/v1/jobs/{job}/stop", post(stop_job))
        .route("/v1/jobs/{job}/logs", get(job_logs))
        .route("/v1/jobs/{job}/metrics", get(job_metrics))
        .route("/v1/events", get(events))
        .route("/v1/workers", get(list_workers).post(register_worker))
        .route("/v1/workers/{id}/heartbeat", post(worker_heartbeat))
        .route(
            "/v1/workers/{id}/metrics",
            get(worker_metrics).post(report_metrics),
        )
        .route("/v1/gc", post(collect_garbage))
        .route("/v1/workers/{id}/assignments", get(watch_assignments))
        .route("/v1/workers/{id}/status", post(report_status))
        .route("/v1/schedulers", post(register_scheduler))
        .route("/v1/schedulers/{id}/heartbeat", post(scheduler_heartbeat))
        .route("/v1/schedulers/{id}/work", get(scheduling_work))
        .route("/v1/schedulers/{id}/decisions", post(submit_decisions))
        .merge(super::dashboard::routes())
        .merge(super::openapi::routes())
        .merge(super::auth::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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

/// How long the manager waits for a request's headers, from the connection's first byte (or the
/// end of its previous answer) to the blank line that ends them: a client that sends half a
/// request's headers, or keeps an idle connection open, is cut off then.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the manager waits for a request's whole body once its headers have come: a body that
/// stalls is answered `408 body_timeout`. Answers may take as long as they need (long-polls,
/// event streams, followed logs): only reading the request is timed.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The code of the error answered when a request's body does not come in time (a 408).
pub const BODY_TIMEOUT: &str = "body_timeout";

/// How [`serve_with`] and [`serve_app`] read requests, and whether they speak TLS.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// See [`HEADER_READ_TIMEOUT`], the default. With TLS, the handshake must also be done
    /// within it: a client that opens a connection and never completes one is cut off then.
    pub header_read_timeout: Duration,
    /// See [`BODY_READ_TIMEOUT`], the default.
    pub body_read_timeout: Duration,
    /// TLS: every connection starts with a handshake on this configuration (see
    /// [`tls::server_config`](super::tls::server_config)). `None` (the default): plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            tls: None,
        }
    }
}

impl ServeOptions {
    /// These options, serving TLS with `config` (or plain HTTP with `None`).
    pub fn with_tls(self, config: Option<Arc<rustls::ServerConfig>>) -> Self {
        ServeOptions {
            tls: config,
            ..self
        }
    }
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

/// Serves any router (the manager's API, a worker's endpoint) on `listener` until `shutdown`
/// resolves, reading requests within the timeouts of `options`; endless answers end on shutdown.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let (closing, rx) = tokio::sync::watch::channel(false);
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            options.body_read_timeout,
            read_body_in_time,
        ))
        .layer(axum::Extension(Closing(rx.clone())));
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    // Every connection holds a sender; `recv` answers `None` once the last has closed.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: others may close soon. Errors of one
                    // connection (reset before it was accepted) need no pause.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            rx.clone(),
            open.clone(),
            options.header_read_timeout,
            acceptor.clone(),
        ));
    }
    drop(listener);
    let _ = closing.send(true);
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}

/// Serves one connection: the TLS handshake first when `tls` is given (within the header read
/// timeout), then HTTP/1.1 with the header read timeout, shut down gracefully (the answer in
/// progress is finished, then the connection closed) once `closing` turns `true`.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
    open: tokio::sync::mpsc::Sender<()>,
    header_read_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return serve_http(stream, peer, app, closing, open, header_read_timeout, false).await;
    };
    let handshake = tokio::time::timeout(header_read_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                // Port scanners and plain-HTTP clients end here: not worth more than debug.
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no TLS handshake within the header read timeout");
                return;
            }
        },
        // Shutting down: a connection that has not finished its handshake has no answer in
        // progress to finish.
        _ = closing.wait_for(|c| *c) => return,
    };
    serve_http(stream, peer, app, closing, open, header_read_timeout, true).await;
}

/// Marks a request that came over TLS (so a session cookie set in its answer is `Secure`).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// HTTP/1.1 on `io` (a TCP stream, or a TLS stream over one): see [`serve_connection`].
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
    _open: tokio::sync::mpsc::Sender<()>,
    header_read_timeout: Duration,
    over_tls: bool,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        if over_tls {
            req.extensions_mut().insert(OverTls);
        }
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { closing.wait_for(|c| *c).await.is_ok() } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Reads the request's body within `timeout` (and at most [`MAX_BODY_BYTES`] of it) before the
/// handler runs: a body that stalls is answered `408 body_timeout`, one too large `413`.
async fn read_body_in_time(
    State(timeout): State<Duration>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    use http_body_util::BodyExt as _;
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let bytes = match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return ErrorResponse(too_large()).into_response();
        }
        Ok(Err(e)) => {
            return ErrorResponse(ApiError::bad_request(
                "invalid_body",
                format!("cannot read the request body: {e}"),
            ))
            .into_response();
        }
        Err(_) => {
            let e = ApiError::new(
                ErrorKind::LimitExceeded,
                BODY_TIMEOUT,
                format!(
                    "the request body did not come within the body read timeout of {}",
                    orkestrator_core::units::format_duration(timeout)
                ),
            );
            let mut resp = ErrorResponse(e).into_response();
            // The rest of the body may still come: the connection cannot carry another request.
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return resp;
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Turns `true` when the server starts shutting down: endless answers end then.
#[derive(Clone)]
struct Closing(tokio::sync::watch::Receiver<bool>);

/// `stream`, broken off (with an error, so the client does not take it for the end of the job)
/// once the server shuts down.
fn until_closing(stream: LogStream, closing: Option<Closing>) -> LogStream {
    let Some(Closing(rx)) = closing else {
        return stream;
    };
    Box::pin(futures_util::stream::unfold(
        (stream, rx, false),
        |(mut stream, mut rx, closed)| async move {
            if closed {
                return None;
            }
            let next = tokio::select! {
                chunk = stream.next() => Ok(chunk),
                _ = rx.wait_for(|closing| *closing) => Err(()),
            };
            match next {
                Ok(chunk) => chunk.map(|c| (c, (stream, rx, false))),
                Err(()) => {
                    let e = ApiError::unavailable("shutting_down", "the manager is shutting down");
                    Some((Err(orkestrator_core::Error::Api(e)), (stream, rx, true)))
                }
            }
        },
    ))
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

const BODY_TOO_LARGE: &str = "body_too_large";

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

type ApiResult<T> = Result<Json<T>, ErrorResponse>;

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

fn too_large() -> ApiError {
    ApiError::new(
        ErrorKind::LimitExceeded,
        BODY_TOO_LARGE,
        format!("request body is larger than the {MAX_BODY_BYTES} bytes allowed"),
    )
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
    fn wait(&self) -> Result<Duration, ErrorResponse> {
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

async fn not_found() -> ErrorResponse {
    ErrorResponse(ApiError::new(
        ErrorKind::NotFound,
        "no_route",
        "no such endpoint; the API lives under /v1/ (e.g. GET /v1/health, GET /v1/jobs)",
    ))
}

async fn method_not_allowed() -> ErrorResponse {
    ErrorResponse(ApiError::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        "this endpoint does not accept that method",
    ))
}

/// `GET /v1/health`: without a credential only whether the manager is up; the whole report
/// for read and operator tokens.
async fn health(
    State(m): State<Manager>,
    who: Option<axum::Extension<orkestrator_core::auth::Principal>>,
) -> Result<Response, ErrorResponse> {
    use orkestrator_core::auth::Role;
    match who {
        Some(p) if matches!(p.role, Role::Operator | Role::Read) => {
            Ok(Json(m.cluster().health().await?).into_response())
        }
        _ => Ok(Json(serde_json::json!({ "status": "up" })).into_response()),
    }
}

/// `POST /v1/gc`: collects garbage now (what ended longer ago than the manager's `--gc-after`).
async fn collect_garbage(
    State(m): State<Manager>,
) -> ApiResult<orkestrator_core::manager::GcReport> {
    let after = m.config().gc_after;
    Ok(Json(m.cluster().gc(after).await?))
}

/// `POST /v1/jobs`: the body is a job spec — JSON by default, YAML or TOML by `Content-Type`
/// (`application/yaml`, `application/toml`). Invalid specs get the same field-path errors as
/// `orkestrator validate`.
async fn submit_job(
    State(m): State<Manager>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ErrorResponse(too_large()).into_response();
        }
        Err(r) => {
            return ErrorResponse(ApiError::bad_request("invalid_body", r.body_text()))
                .into_response();
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let format = if ctype.contains("yaml") {
        Format::Yaml
    } else if ctype.contains("toml") {
        Format::Toml
    } else {
        Format::Json
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return ErrorResponse(ApiError::bad_request(
            "malformed_spec",
            "the body is not UTF-8 text",
        ))
        .into_response();
    };
    let job = match parse_job(text, format) {
        Ok(j) => j,
        Err(e) => return ErrorResponse(ApiError::from(e)).into_response(),
    };
    match m.jobs().submit(job).await {
        Ok(r) => {
            let status = if r.outcome == SubmitOutcome::Created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(r)).into_response()
        }
        Err(e) => ErrorResponse(e).into_response(),
    }
}

/// `GET /v1/jobs?limit=N&continue=TOKEN`: one page of jobs, by name.
async fn list_jobs(
    State(m): State<Manager>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Page<JobSummary>> {
    Ok(Json(m.jobs().list(&q).await?))
}

async fn get_job(State(m): State<Manager>, Path(job): Path<String>) -> ApiResult<JobView> {
    Ok(Json(m.jobs().get(&JobId::new(job)).await?))
}

async fn stop_job(State(m): State<Manager>, Path(job): Path<String>) -> ApiResult<JobView> {
    Ok(Json(m.jobs().stop(&JobId::new(job)).await?))
}

/// `GET /v1/workers?limit=N&continue=TOKEN`: one page of workers, by id.
async fn list_workers(
    State(m): State<Manager>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Page<WorkerView>> {
    Ok(Json(m.workers().list(&q).await?))
}

async fn register_worker(
    State(m): State<Manager>,
    who: Principal,
    Body(req): Body<RegisterWorker>,
) -> ApiResult<Registered> {
    Ok(Json(m.workers().register_as(req, &who).await?))
}

async fn worker_heartbeat(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(hb): Body<WorkerHeartbeat>,
) -> ApiResult<()> {
    Ok(Json(m.workers().heartbeat(&WorkerId::new(id), hb).await?))
}

async fn watch_assignments(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Assignments> {
    let wait = q.wait()?;
    Ok(Json(
        m.workers().watch(&WorkerId::new(id), q.index, wait).await?,
    ))
}

async fn report_status(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(updates): Body<Vec<TaskUpdate>>,
) -> ApiResult<ReportResponse> {
    Ok(Json(m.workers().report(&WorkerId::new(id), updates).await?))
}

async fn register_scheduler(
    State(m): State<Manager>,
    who: Principal,
    Body(req): Body<RegisterScheduler>,
) -> ApiResult<Registered> {
    Ok(Json(m.schedulers().register_as(req, &who).await?))
}

async fn scheduler_heartbeat(State(m): State<Manager>, Path(id): Path<String>) -> ApiResult<()> {
    Ok(Json(m.schedulers().heartbeat(&SchedulerId::new(id)).await?))
}

async fn scheduling_work(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<SchedulingWork> {
    let wait = q.wait()?;
    Ok(Json(
        m.schedulers().work(&SchedulerId::new(id), wait).await?,
    ))
}

/// `?last=N`: only the newest N samples of each series.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    last: Option<usize>,
}

/// `GET /v1/jobs/{job}/metrics?last=N`: the rolling window of the job's tasks.
async fn job_metrics(
    State(m): State<Manager>,
    Path(job): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<JobMetrics> {
    Ok(Json(m.metrics().job(&JobId::new(job), q.last).await?))
}

/// `GET /v1/workers/{id}/metrics?last=N`: the rolling window of a worker's host and tasks.
async fn worker_metrics(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<WorkerMetrics> {
    Ok(Json(m.metrics().worker(&WorkerId::new(id), q.last).await?))
}

/// `POST /v1/workers/{id}/metrics`: a worker's report (kept in memory, never committed).
async fn report_metrics(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(r): Body<MetricsReport>,
) -> ApiResult<MetricsAccepted> {
    Ok(Json(m.metrics().report(&WorkerId::new(id), r).await?))
}

/// `GET /v1/events` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Start with the first event stamped with this index (`N`), or after this event
    /// (`INDEX.SEQ`). Left out: from now. A `Last-Event-ID` header wins over it.
    index: Option<String>,
    /// Topics to keep, comma-separated: job, task, worker, scheduler, manager.
    topic: Option<String>,
    /// The key to keep: a job name (job and task events), a worker or a scheduler id.
    key: Option<String>,
    /// Keep-alive interval (default 15s).
    keepalive: Option<String>,
}

/// `GET /v1/events`: the event stream as Server-Sent Events. Each event's `id` is
/// `INDEX.SEQ`, its data the event as JSON; a client that reconnects with `Last-Event-ID` misses
/// nothing and sees nothing twice. One that starts before the manager's window gets an `event:
/// reset` (re-list, then follow on).
async fn events(
    State(m): State<Manager>,
    headers: HeaderMap,
    closing: Option<axum::Extension<Closing>>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ErrorResponse> {
    let bad = |m: String| ErrorResponse(ApiError::bad_request("invalid_query", m));
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let start = match last_id.or(q.index.as_deref()) {
        None => StreamStart::Now,
        Some(s) => s
            .parse::<StreamStart>()
            .map_err(|e| bad(format!("index: {e}")))?,
    };
    let mut filter = EventFilter::default();
    if let Some(t) = &q.topic {
        for part in t.split(',').filter(|p| !p.trim().is_empty()) {
            filter
                .topics
                .push(part.parse().map_err(|e| bad(format!("topic: {e}")))?);
        }
    }
    filter.key = q.key.filter(|k| !k.is_empty());
    let keepalive = match &q.keepalive {
        None => Duration::from_secs(15),
        Some(k) => orkestrator_core::units::parse_duration(k)
            .map_err(|e| bad(format!("keepalive: {e}")))?
            .max(Duration::from_millis(100)),
    };
    let sub = m.events().stream(start, filter);
    // The stream ends when the server shuts down (a client resumes with `Last-Event-ID`).
    let closing = closing.map(|axum::Extension(Closing(rx))| rx);
    // A bookmark first (where the stream starts), then whenever a keep-alive interval passes
    // with the position moved but nothing sent (a quiet filtered stream).
    let state = Streaming {
        sub,
        closing,
        tick: tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive),
        sent: None,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        st.sent = Some(item.position());
        Some((Ok::<_, std::convert::Infallible>(sse_event(&item)), st))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keepalive))
        .into_response())
}

/// An event stream being served.
struct Streaming {
    sub: orkestrator_core::manager::EventSubscription,
    closing: Option<tokio::sync::watch::Receiver<bool>>,
    tick: tokio::time::Interval,
    /// The position of the last item sent.
    sent: Option<orkestrator_core::events::Position>,
}

impl Streaming {
    /// The next item to send; `None` ends the stream (the manager or the server going away).
    async fn next(&mut self) -> Option<StreamItem> {
        if self.sent.is_none() {
            return Some(StreamItem::Bookmark(self.sub.bookmark()));
        }
        loop {
            let closing = async {
                match &mut self.closing {
                    Some(rx) => {
                        let _ = rx.wait_for(|c| *c).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = self.sub.next() => return item,
                _ = closing => return None,
                _ = self.tick.tick() => {
                    let b = self.sub.bookmark();
                    if Some(b.position()) != self.sent {
                        return Some(StreamItem::Bookmark(b));
                    }
                }
            }
        }
    }
}

/// One stream item as Server-Sent Event: the id is its position, the data its JSON.
fn sse_event(item: &StreamItem) -> SseEvent {
    let ev = SseEvent::default().id(item.position().to_string());
    let ev = match item {
        StreamItem::Event(_) => ev,
        StreamItem::Reset(_) => ev.event("reset"),
        StreamItem::Bookmark(_) => ev.event("bookmark"),
    };
    match item {
        StreamItem::Event(e) => ev.json_data(e),
        StreamItem::Reset(r) => ev.json_data(r),
        StreamItem::Bookmark(b) => ev.json_data(b),
    }
    .unwrap_or_default()
}

async fn submit_decisions(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(d): Body<Vec<Decision>>,
) -> ApiResult<Vec<DecisionResult>> {
    Ok(Json(m.schedulers().decide(&SchedulerId::new(id), d).await?))
}

/// `GET /v1/jobs/{job}/logs?task=T&index=N&tail=100&since=10m`: the manager finds the task's
/// worker and container, and reads the output from the worker's own endpoint. With
/// `follow=true` the answer is the output as it comes (chunked `text/plain`), on into the task's
/// next containers (restarts, replacements) until the job ends; errors found before the stream
/// starts are JSON as usual.
async fn job_logs(
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
async fn open_container_logs(
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
fn text_stream(stream: LogStream) -> Response {
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
    worker_routes(worker, runtime).layer(axum::middleware::from_fn_with_state(
        super::auth::WorkerAuth(verifier),
        super::auth::worker_layer,
    ))
}

fn worker_routes(worker: WorkerId, runtime: Arc<dyn Runtime>) -> Router {
    Router::new()
        .route("/health", get(worker_health))
        .route("/v1/containers/{id}/logs", get(container_logs))
        .fallback(not_found)
        .with_state(WorkerEndpoint { worker, runtime })
}

/// [`worker_router`] plus `GET /metrics`: the worker's host, its tasks and its engine calls in
/// the OpenMetrics text format (see [`super::worker_metrics`]), for read tokens too.
pub fn worker_router_with_metrics(
    worker: WorkerId,
    runtime: Arc<dyn Runtime>,
    metrics: super::worker_metrics::WorkerMetricsSource,
    verifier: Arc<dyn super::auth::Verifier>,
) -> Router {
    worker_routes(worker, runtime)
        .merge(super::worker_metrics::router(metrics))
        .layer(axum::middleware::from_fn_with_state(
            super::auth::WorkerAuth(verifier),
            super::auth::worker_layer,
        ))
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

/// Serves any router on `listener` until the process ends, with the default [`ServeOptions`]
/// (a worker's own endpoint: a client that sends half a request is cut off here too).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
) -> std::io::Result<()> {
    serve_router_with(listener, router, ServeOptions::default()).await
}

/// [`serve_router`] with `options` (a worker's endpoint over TLS:
/// `ServeOptions::default().with_tls(..)`).
pub async fn serve_router_with(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
) -> std::io::Result<()> {
    serve_app(listener, router, std::future::pending(), options).await
}
