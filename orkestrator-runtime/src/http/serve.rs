//! Serving a router: the accept loop, each connection over plain HTTP or TLS, the read timeouts
//! of a request's headers and body, and a graceful shutdown that ends endless answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use orkestrator_core::api::{ApiError, ErrorKind};
use orkestrator_core::runtime::LogStream;

pub use super::error::BODY_TIMEOUT;
use super::error::{ErrorResponse, MAX_BODY_BYTES, too_large};

/// How long the manager waits for a request's headers, from the connection's first byte (or the
/// end of its previous answer) to the blank line that ends them: a client that sends half a
/// request's headers, or keeps an idle connection open, is cut off then.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the manager waits for a request's whole body once its headers have come: a body that
/// stalls is answered `408 body_timeout`. Answers may take as long as they need (long-polls,
/// event streams, followed logs): only reading the request is timed.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How [`serve_app`] (and the manager's `serve_with`) read requests, and whether they speak TLS.
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
pub(crate) struct Closing(pub(crate) tokio::sync::watch::Receiver<bool>);

/// `stream`, broken off (with an error, so the client does not take it for the end of the job)
/// once the server shuts down.
pub(crate) fn until_closing(stream: LogStream, closing: Option<Closing>) -> LogStream {
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
