//! [`HttpTransport`]: the manager's API over HTTP, on hyper. Workers, remote schedulers and the CLI
//! use it; it implements the same [`Transport`] trait as the in-process transport.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orkestrator_core::api::*;
use orkestrator_core::events::{EventFilter, StreamItem, StreamStart};
use orkestrator_core::ids::{JobId, SchedulerId, WorkerId};
use orkestrator_core::metrics::{JobMetrics, MetricsAccepted, MetricsReport, WorkerMetrics};
use orkestrator_core::runtime::LogOptions;
use orkestrator_core::spec::Job;
use orkestrator_core::transport::{EventStream, Transport};
use orkestrator_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::tls::{ClientConfig, ClientTls};

/// A response body as it arrives.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes>> + Send + 'static>>;

/// Largest response body the client reads.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The connector of every client: plain TCP for `http://`, rustls over it for `https://`.
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The manager's API over HTTP (or HTTPS).
#[derive(Clone, Debug)]
pub struct HttpTransport {
    base: String,
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    /// The command that serves `base`, for the hint when it cannot be reached.
    peer: &'static str,
    /// What it presents: shared by clones, so that a credential a registration issued is used
    /// by every loop of the component.
    credentials: Arc<Credentials>,
}

/// Called with a component's new credential, to keep it (a worker writes it to its data
/// directory).
pub type OnCredential = Arc<dyn Fn(&str) + Send + Sync>;

/// The tokens a client presents.
#[derive(Default)]
struct Credentials {
    /// The bearer token of every request (an operator or read token, or the component's own
    /// credential).
    token: RwLock<Option<String>>,
    /// The join token, presented to register when there is no credential yet or the manager
    /// no longer takes it.
    join: Option<String>,
    on_credential: Option<OnCredential>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Credentials")
            .field("token", &self.bearer().is_some())
            .field("join", &self.join.is_some())
            .finish()
    }
}

impl Credentials {
    fn bearer(&self) -> Option<String> {
        self.token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How the manager verifies its workers' endpoints over `https://` (see [`set_worker_tls`]).
static WORKER_TLS: RwLock<Option<Arc<ClientConfig>>> = RwLock::new(None);

/// Sets how every [`HttpTransport::for_worker`] in this process verifies a worker's `https://`
/// endpoint: the manager calls it once at start with its own CA
/// ([`ClientTls::CaCert`] of [`tls::ca_of_chain`](super::tls::ca_of_chain) of its `--tls-cert`).
/// Until then workers are verified against the system's roots.
pub fn set_worker_tls(tls: &ClientTls) -> Result<()> {
    let config = tls.client_config()?;
    *WORKER_TLS.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
    Ok(())
}

impl HttpTransport {
    /// A client for the manager at `base` (`http://127.0.0.1:5555`; a bare `host:port` gets
    /// `http://`). An `https://` base is verified against the system's roots until
    /// [`HttpTransport::with_tls`] says otherwise.
    pub fn new(base: &str) -> Result<Self> {
        let base = normalize_addr(base)?;
        let config = if is_https(&base) {
            ClientTls::System.client_config()?
        } else {
            super::tls::no_roots_config()
        };
        Ok(HttpTransport {
            base,
            client: build_client(config),
            timeout: Duration::from_secs(15),
            peer: "orkestrator server",
            credentials: Arc::default(),
        })
    }

    /// Presents `token` (`Authorization: Bearer`) on every request.
    pub fn with_token(self, token: Option<String>) -> Self {
        let join = self.credentials.join.clone();
        let on_credential = self.credentials.on_credential.clone();
        HttpTransport {
            credentials: Arc::new(Credentials {
                token: RwLock::new(token.map(|t| t.trim().to_owned())),
                join,
                on_credential,
            }),
            ..self
        }
    }

    /// For a worker or scheduler: registers with `join` when it has no credential of its own
    /// (or the manager no longer takes it), then presents the credential the registration
    /// issued, handing it to `on_credential` to keep. A CA digest the join token carries is not
    /// sent.
    pub fn with_join_token(self, join: String, on_credential: Option<OnCredential>) -> Self {
        let join = orkestrator_core::auth::TokenParts::parse(&join)
            .map_or_else(|| join.trim().to_owned(), |p| p.credential());
        HttpTransport {
            credentials: Arc::new(Credentials {
                token: RwLock::new(self.credentials.bearer()),
                join: Some(join),
                on_credential,
            }),
            ..self
        }
    }

    /// What the manager says of the token this client presents (`GET /v1/auth/whoami`).
    pub async fn whoami(&self) -> Result<orkestrator_core::auth::TokenInfo> {
        self.call(Method::GET, "/v1/auth/whoami", NONE, Duration::ZERO)
            .await
    }

    /// Every token and credential (`GET /v1/tokens`; operators only).
    pub async fn list_tokens(&self) -> Result<Vec<orkestrator_core::auth::TokenInfo>> {
        self.call(Method::GET, "/v1/tokens", NONE, Duration::ZERO)
            .await
    }

    /// Creates a token (`POST /v1/tokens`; operators only).
    pub async fn create_token(
        &self,
        req: &orkestrator_core::auth::CreateToken,
    ) -> Result<orkestrator_core::auth::IssuedToken> {
        self.call(Method::POST, "/v1/tokens", Some(req), Duration::ZERO)
            .await
    }

    /// Revokes a token (`DELETE /v1/tokens/ID`; operators only).
    pub async fn revoke_token(&self, id: &str) -> Result<orkestrator_core::auth::TokenInfo> {
        self.call(
            Method::DELETE,
            &format!("/v1/tokens/{}", seg(id)),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    /// Whether a bearer token is presented.
    pub fn has_token(&self) -> bool {
        self.credentials.bearer().is_some()
    }

    /// Registers with the credential it has, falling back to the join token when there is
    /// none or the manager refuses it as unknown (401); keeps a credential the answer issues.
    async fn register<B: Serialize + ?Sized>(&self, path: &str, req: &B) -> Result<Registered> {
        let own = self.credentials.bearer();
        let join = self.credentials.join.clone();
        let first = own.clone().or_else(|| join.clone());
        let mut answer = self.call_as(Method::POST, path, Some(req), first).await;
        if own.is_some()
            && join.is_some()
            && matches!(&answer, Err(Error::Api(a)) if a.kind == ErrorKind::Unauthenticated)
        {
            tracing::info!(
                "the manager does not take this component's credential; joining again with the join token"
            );
            answer = self.call_as(Method::POST, path, Some(req), join).await;
        }
        let registered: Registered = answer?;
        if let Some(c) = &registered.credential {
            *self
                .credentials
                .token
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
            if let Some(keep) = &self.credentials.on_credential {
                keep(c);
            }
        }
        Ok(registered)
    }

    /// This client, verifying an `https://` server as `tls` says (a CA file, the cluster CA's
    /// digest from a join token, ...). Errors if `tls` cannot be loaded (a missing CA file).
    pub fn with_tls(self, tls: ClientTls) -> Result<Self> {
        Ok(HttpTransport {
            client: build_client(tls.client_config()?),
            ..self
        })
    }

    /// A client for a worker's own endpoint at `base` (where the manager reads logs from); an
    /// `https://` endpoint is verified as [`set_worker_tls`] set.
    pub fn for_worker(base: &str) -> Result<Self> {
        let worker = HttpTransport {
            peer: "orkestrator worker",
            ..Self::new_unverified(base)?
        };
        if !is_https(&worker.base) {
            return Ok(worker);
        }
        let set = WORKER_TLS.read().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(match set {
            Some(config) => HttpTransport {
                client: build_client(config),
                ..worker
            },
            None => worker.with_tls(ClientTls::System)?,
        })
    }

    /// Like [`HttpTransport::new`], with a client that cannot verify any `https://` server yet.
    fn new_unverified(base: &str) -> Result<Self> {
        Ok(HttpTransport {
            base: normalize_addr(base)?,
            client: build_client(super::tls::no_roots_config()),
            timeout: Duration::from_secs(15),
            peer: "orkestrator server",
            credentials: Arc::default(),
        })
    }

    /// The manager's base address.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call_as<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        bearer: Option<String>,
    ) -> Result<R> {
        let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| Error::Unreachable {
            addr: self.base.clone(),
            message: format!("cannot encode request: {e}"),
        })?);
        self.send_as(
            method,
            path,
            "application/json",
            body,
            Duration::ZERO,
            bearer,
        )
        .await
    }

    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        extra_wait: Duration,
    ) -> Result<R> {
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|e| Error::Unreachable {
                addr: self.base.clone(),
                message: format!("cannot encode request: {e}"),
            })?),
            None => Bytes::new(),
        };
        self.send(method, path, "application/json", body, extra_wait)
            .await
    }

    async fn send<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
        extra_wait: Duration,
    ) -> Result<R> {
        let bearer = self.credentials.bearer();
        self.send_as(method, path, content_type, body, extra_wait, bearer)
            .await
    }

    async fn send_as<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
        extra_wait: Duration,
        bearer: Option<String>,
    ) -> Result<R> {
        let uri = format!("{}{}", self.base, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = &bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| self.unreachable(format!("bad request to {uri}: {e}")))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.unreachable(describe(&e, self.peer)))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| self.unreachable(format!("reading the response: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout + extra_wait, fut)
            .await
            .map_err(|_| {
                self.unreachable(format!("no answer within {:?}", self.timeout + extra_wait))
            })??;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                self.unreachable(format!("unexpected response from {uri} ({status}): {e}; is this an Orkestrator manager?"))
            });
        }
        Err(self.api_error(status, &bytes))
    }

    /// Opens a streaming `GET`: once the answer's head has come (within the timeout), its body
    /// as it arrives, with no deadline. An error answer is read whole and returned as its
    /// [`ApiError`].
    pub async fn stream_get(
        &self,
        path: &str,
        accept: &str,
        headers: &[(&str, String)],
    ) -> Result<ByteStream> {
        let uri = format!("{}{}", self.base, path);
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(&uri)
            .header(header::ACCEPT, accept);
        if let Some(t) = self.credentials.bearer() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| self.unreachable(format!("bad request to {uri}: {e}")))?;
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| self.unreachable(describe(&e, self.peer)))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| self.unreachable(format!("reading the response: {e}")))?
                .to_bytes();
            return Err(self.api_error(status, &bytes));
        }
        let base = self.base.clone();
        let body = http_body_util::BodyStream::new(resp.into_body());
        Ok(Box::pin(body.filter_map(move |frame| {
            let base = base.clone();
            async move {
                match frame {
                    Ok(f) => f.into_data().ok().map(Ok),
                    Err(e) => Some(Err(Error::Unreachable {
                        addr: base,
                        message: format!("the stream broke: {e}"),
                    })),
                }
            }
        })))
    }

    fn api_error(&self, status: hyper::StatusCode, bytes: &[u8]) -> Error {
        Error::Api(
            serde_json::from_slice::<ApiError>(bytes).unwrap_or_else(|_| {
                ApiError::new(
                    super::server::kind_of(status),
                    "http_error",
                    format!(
                        "{status}: {}",
                        String::from_utf8_lossy(bytes)
                            .chars()
                            .take(500)
                            .collect::<String>()
                    ),
                )
            }),
        )
    }

    fn unreachable(&self, message: String) -> Error {
        Error::Unreachable {
            addr: self.base.clone(),
            message,
        }
    }

    /// Submits a job spec as text in its own format (the manager parses and validates it, so
    /// errors carry the same field paths as `orkestrator validate`).
    pub async fn submit_spec_text(
        &self,
        text: String,
        format: orkestrator_core::spec::Format,
    ) -> Result<SubmitResponse> {
        let ctype = match format {
            orkestrator_core::spec::Format::Yaml => "application/yaml",
            orkestrator_core::spec::Format::Toml => "application/toml",
            orkestrator_core::spec::Format::Json => "application/json",
        };
        self.send(
            Method::POST,
            "/v1/jobs",
            ctype,
            Bytes::from(text),
            Duration::ZERO,
        )
        .await
    }
}

impl HttpTransport {
    /// The last lines of one task's output: `GET /v1/jobs/{job}/logs` (the manager reads them from
    /// the task's worker). `q.follow` is ignored: see [`HttpTransport::follow_logs`].
    pub async fn logs(&self, job: &JobId, q: &LogsQuery) -> Result<Logs> {
        let path = logs_path(job, q, false);
        self.call::<(), _>(Method::GET, &path, None, Duration::ZERO)
            .await
    }

    /// One task's output as it is written: `GET /v1/jobs/{job}/logs?follow=true`. The stream
    /// goes on into the task's next containers (restarts, replacements) and ends when the job
    /// does. Errors before it starts (unknown job or task, worker unreachable) are returned.
    pub async fn follow_logs(&self, job: &JobId, q: &LogsQuery) -> Result<ByteStream> {
        self.stream_get(&logs_path(job, q, true), "text/plain", &[])
            .await
    }

    /// One container's output from a worker's own endpoint: `GET /v1/containers/{id}/logs`, the
    /// last `tail` lines, since Unix time `since` (seconds) if given.
    pub async fn container_logs(
        &self,
        container: &str,
        tail: usize,
        since: Option<i64>,
    ) -> Result<ContainerLogs> {
        let mut path = format!("/v1/containers/{}/logs?tail={tail}", seg(container));
        if let Some(s) = since {
            path.push_str(&format!("&since={s}"));
        }
        self.call::<(), _>(Method::GET, &path, None, Duration::ZERO)
            .await
    }

    /// One container's output from a worker's own endpoint as a stream
    /// (`GET /v1/containers/{id}/logs?follow=true` when `options.follow`): it ends when the
    /// container stops.
    pub async fn container_log_stream(
        &self,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let mut path = format!(
            "/v1/containers/{}/logs?tail={tail}&follow={}",
            seg(container),
            options.follow
        );
        if let Some(s) = options.since {
            path.push_str(&format!("&since={s}"));
        }
        self.stream_get(&path, "text/plain", &[]).await
    }
}

/// `/v1/jobs/{job}/logs?...` for `q`, following or not.
fn logs_path(job: &JobId, q: &LogsQuery, follow: bool) -> String {
    let mut query = Vec::new();
    if let Some(t) = &q.task {
        query.push(format!("task={}", seg(t)));
    }
    if let Some(i) = q.index {
        query.push(format!("index={i}"));
    }
    if let Some(n) = q.tail {
        query.push(format!("tail={n}"));
    }
    if let Some(s) = &q.since {
        query.push(format!("since={}", seg(s)));
    }
    if follow {
        query.push("follow=true".to_owned());
    }
    format!("/v1/jobs/{}/logs?{}", seg(job.as_str()), query.join("&"))
}

fn describe(e: &hyper_util::client::legacy::Error, peer: &str) -> String {
    let mut msg = e.to_string();
    let mut tls = None;
    let mut not_http = false;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        tls = tls.or_else(|| rustls_error(s));
        not_http |= s
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse);
        match &tls {
            // The TLS error says all there is below it, in its own words.
            Some(t) => {
                msg = format!("{msg}: {}", tls_text(t));
                break;
            }
            None => msg = format!("{msg}: {s}"),
        }
        src = s.source();
    }
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) if peer == "orkestrator worker" => msg.push_str(
            " (the worker's certificate must be issued by the manager's CA for the address it \
             registered: `orkestrator tls cert DIR --name NAME --san HOST` with the manager's DIR)",
        ),
        Some(rustls::Error::InvalidCertificate(_)) => msg.push_str(
            " (verify the server with --ca-file DIR/ca.pem or --ca-digest SHA256, both from \
             `orkestrator tls init DIR`; the address's host must be one of the certificate's \
             --san names)",
        ),
        Some(rustls::Error::InvalidMessage(_)) => {
            msg.push_str(" (does it serve plain HTTP? then use http://)")
        }
        Some(_) => {}
        None if not_http => {
            msg.push_str(" (the answer is not HTTP: if it serves TLS, use https://)")
        }
        None if e.is_connect() => msg.push_str(&format!(" (is `{peer}` running there?)")),
        None => {}
    }
    msg
}

/// A TLS error for people: rustls shows a verifier's own reason as a debug dump.
fn tls_text(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            match other.0.downcast_ref::<Error>() {
                Some(Error::Tls { message, .. }) => format!("invalid peer certificate: {message}"),
                _ => format!("invalid peer certificate: {}", other.0),
            }
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "invalid peer certificate: it is not signed by a CA this client trusts".to_owned()
        }
        other => other.to_string(),
    }
}

/// The TLS layer's error in `e`: it comes wrapped in `io::Error`s (tokio-rustls', then
/// hyper-rustls'), whose `source` skips what they wrap.
fn rustls_error(mut e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    loop {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.clone());
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// `host:port` → `http://host:port`; trailing slashes removed; anything but `http://` and
/// `https://` refused.
pub fn normalize_addr(addr: &str) -> Result<String> {
    let a = addr.trim();
    let a = if a.contains("://") {
        a.to_owned()
    } else {
        format!("http://{a}")
    };
    let a = match a.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.trim_end_matches('/')),
        None => a,
    };
    if !a.starts_with("http://") && !is_https(&a) {
        return Err(Error::Unreachable {
            addr: addr.to_owned(),
            message:
                "only http:// and https:// addresses are supported (e.g. http://127.0.0.1:5555)"
                    .into(),
        });
    }
    match a.parse::<hyper::Uri>() {
        Ok(u) if u.host().is_some() => Ok(a),
        _ => Err(Error::Unreachable {
            addr: addr.to_owned(),
            message: "not a valid address (use e.g. http://127.0.0.1:5555)".into(),
        }),
    }
}

fn is_https(base: &str) -> bool {
    base.starts_with("https://")
}

/// A pooled client over [`Connector`] with `tls` for `https://` addresses.
fn build_client(tls: Arc<ClientConfig>) -> Client<Connector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    // The TLS layer takes `https://`; the TCP connector must let it through.
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnector::from((connector, tls));
    Client::builder(TokioExecutor::new())
        // Shorter than the server's header read timeout, which closes idle connections: the
        // client drops a connection before the server can close it under a new request.
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector)
}

fn seg(s: &str) -> String {
    // Ids are DNS-label-like, but escape anything else so a path can never be broken out of.
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn wait_query(index: u64, wait: Duration) -> String {
    format!("?index={index}&wait={}ms", wait.as_millis())
}

const NONE: Option<&()> = None;

/// `path?limit=N&continue=TOKEN` for a list request.
fn list_path(path: &str, q: &ListQuery) -> String {
    let mut out = path.to_owned();
    let mut sep = '?';
    if let Some(l) = q.limit {
        out.push_str(&format!("{sep}limit={l}"));
        sep = '&';
    }
    if let Some(t) = &q.after {
        out.push_str(&format!("{sep}continue={}", seg(t)));
    }
    out
}

#[async_trait]
impl Transport for HttpTransport {
    async fn submit_job(&self, job: &Job) -> Result<SubmitResponse> {
        self.call(Method::POST, "/v1/jobs", Some(job), Duration::ZERO)
            .await
    }

    async fn list_jobs_page(&self, q: &ListQuery) -> Result<Page<JobSummary>> {
        self.call(Method::GET, &list_path("/v1/jobs", q), NONE, Duration::ZERO)
            .await
    }

    async fn get_job(&self, job: &JobId) -> Result<JobView> {
        self.call(
            Method::GET,
            &format!("/v1/jobs/{}", seg(job.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn stop_job(&self, job: &JobId) -> Result<JobView> {
        self.call(
            Method::POST,
            &format!("/v1/jobs/{}/stop", seg(job.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn list_workers_page(&self, q: &ListQuery) -> Result<Page<WorkerView>> {
        self.call(
            Method::GET,
            &list_path("/v1/workers", q),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn gc(&self) -> Result<orkestrator_core::manager::GcReport> {
        self.call(Method::POST, "/v1/gc", NONE, Duration::ZERO)
            .await
    }

    async fn health(&self) -> Result<HealthReport> {
        self.call(Method::GET, "/v1/health", NONE, Duration::ZERO)
            .await
    }

    async fn events(&self, start: StreamStart, filter: &EventFilter) -> Result<EventStream> {
        let mut query = Vec::new();
        match start {
            StreamStart::Now => {}
            StreamStart::Index(i) => query.push(format!("index={i}")),
            StreamStart::After(p) => query.push(format!("index={p}")),
        }
        if !filter.topics.is_empty() {
            let t: Vec<&str> = filter.topics.iter().map(|t| t.as_str()).collect();
            query.push(format!("topic={}", t.join(",")));
        }
        if let Some(k) = &filter.key {
            query.push(format!("key={}", seg(k)));
        }
        let path = format!("/v1/events?{}", query.join("&"));
        let body = self.stream_get(&path, "text/event-stream", &[]).await?;
        let base = self.base.clone();
        let decoded = body
            .scan(super::sse::SseDecoder::new(), move |dec, chunk| {
                let out: Vec<Result<StreamItem>> = match chunk {
                    Err(e) => vec![Err(e)],
                    Ok(bytes) => match dec.feed(&bytes) {
                        Err(m) => vec![Err(Error::Unreachable {
                            addr: base.clone(),
                            message: m,
                        })],
                        Ok(msgs) => msgs
                            .into_iter()
                            .map(|m| {
                                let item = match m.event.as_str() {
                                    "reset" => serde_json::from_str(&m.data).map(StreamItem::Reset),
                                    "bookmark" => {
                                        serde_json::from_str(&m.data).map(StreamItem::Bookmark)
                                    }
                                    _ => serde_json::from_str(&m.data).map(StreamItem::Event),
                                };
                                item.map_err(|e| Error::Unreachable {
                                    addr: base.clone(),
                                    message: format!("an event the client cannot read: {e}"),
                                })
                            })
                            .collect(),
                    },
                };
                futures_util::future::ready(Some(futures_util::stream::iter(out)))
            })
            .flatten();
        Ok(Box::pin(decoded))
    }

    async fn job_metrics(&self, job: &JobId) -> Result<JobMetrics> {
        let path = format!("/v1/jobs/{}/metrics", seg(job.as_str()));
        self.call(Method::GET, &path, NONE, Duration::ZERO).await
    }

    async fn worker_metrics(&self, worker: &WorkerId) -> Result<WorkerMetrics> {
        let path = format!("/v1/workers/{}/metrics", seg(worker.as_str()));
        self.call(Method::GET, &path, NONE, Duration::ZERO).await
    }

    async fn report_metrics(
        &self,
        worker: &WorkerId,
        report: &MetricsReport,
    ) -> Result<MetricsAccepted> {
        let path = format!("/v1/workers/{}/metrics", seg(worker.as_str()));
        self.call(Method::POST, &path, Some(report), Duration::ZERO)
            .await
    }

    async fn register_worker(&self, req: &RegisterWorker) -> Result<Registered> {
        self.register("/v1/workers", req).await
    }

    async fn worker_heartbeat(&self, worker: &WorkerId, hb: &WorkerHeartbeat) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/v1/workers/{}/heartbeat", seg(worker.as_str())),
            Some(hb),
            Duration::ZERO,
        )
        .await
    }

    async fn watch_assignments(
        &self,
        worker: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> Result<Assignments> {
        let path = format!(
            "/v1/workers/{}/assignments{}",
            seg(worker.as_str()),
            wait_query(index, wait)
        );
        self.call(Method::GET, &path, NONE, wait).await
    }

    async fn report_status(
        &self,
        worker: &WorkerId,
        updates: &[TaskUpdate],
    ) -> Result<ReportResponse> {
        self.call(
            Method::POST,
            &format!("/v1/workers/{}/status", seg(worker.as_str())),
            Some(updates),
            Duration::ZERO,
        )
        .await
    }

    async fn register_scheduler(&self, req: &RegisterScheduler) -> Result<Registered> {
        self.register("/v1/schedulers", req).await
    }

    async fn scheduler_heartbeat(&self, scheduler: &SchedulerId) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/v1/schedulers/{}/heartbeat", seg(scheduler.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn scheduling_work(
        &self,
        scheduler: &SchedulerId,
        index: u64,
        wait: Duration,
    ) -> Result<SchedulingWork> {
        let path = format!(
            "/v1/schedulers/{}/work{}",
            seg(scheduler.as_str()),
            wait_query(index, wait)
        );
        self.call(Method::GET, &path, NONE, wait).await
    }

    async fn submit_decisions(
        &self,
        scheduler: &SchedulerId,
        decisions: &[Decision],
    ) -> Result<Vec<DecisionResult>> {
        self.call(
            Method::POST,
            &format!("/v1/schedulers/{}/decisions", seg(scheduler.as_str())),
            Some(decisions),
            Duration::ZERO,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            normalize_addr("127.0.0.1:5555").unwrap(),
            "http://127.0.0.1:5555"
        );
        assert_eq!(
            normalize_addr("http://localhost:5555/").unwrap(),
            "http://localhost:5555"
        );
        assert_eq!(normalize_addr("https://x:1/").unwrap(), "https://x:1");
        assert!(normalize_addr("ftp://x:1").is_err());
        assert!(normalize_addr("http://").is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("web-1"), "web-1");
        assert_eq!(seg("a/../b"), "a%2F..%2Fb");
    }
}
