//! [`HttpTransport`]: the manager's API over HTTP, on hyper. Workers, remote schedulers and the CLI
//! use it; it implements the same [`Transport`] trait as the in-process transport.
//!
//! A client may know several managers (a highly available manager: one leader, followers that
//! forward to it). It sends to one address at a time and moves on by itself: to the next address
//! when the current one cannot be reached, to the leader a follower names in
//! [`LEADER_HEADER`], and around the managers while they elect a leader (`no_leader`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
use orkestrator_core::transport::{ClientApi, EventStream, SchedulerApi, WorkerApi};
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

/// The header in which a follower names the leader's base address (`http://10.0.0.1:5555`) on
/// the answers it forwards; a client that knows that address sends its next requests there.
pub const LEADER_HEADER: &str = "orkestrator-leader";

/// How long a request goes on trying while the managers have no leader (an election), by
/// default.
pub const DEFAULT_ELECTION_WAIT: Duration = Duration::from_secs(10);

/// The first pause before asking again when the managers have no leader; it doubles up to
/// [`NO_LEADER_BACKOFF_MAX`].
const NO_LEADER_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two tries while the managers have no leader.
const NO_LEADER_BACKOFF_MAX: Duration = Duration::from_millis(1000);

/// The manager's API over HTTP (or HTTPS), at one address or several.
///
/// Clones share the address they send to, so every loop of a worker moves together.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    /// The managers' base addresses, normalized, in the order given; never empty.
    addrs: Arc<[String]>,
    /// The index in `addrs` requests go to.
    current: Arc<AtomicUsize>,
    /// How long a request goes on trying while the managers have no leader.
    election_wait: Duration,
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    /// The command that serves the addresses, for the hint when it cannot be reached.
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
    /// `http://`), or for the managers of a comma-separated list of such addresses
    /// (`http://a:5555,b:5555`; see [`HttpTransport::with_addresses`]). An `https://` base is
    /// verified against the system's roots until [`HttpTransport::with_tls`] says otherwise.
    pub fn new(base: &str) -> Result<Self> {
        Self::with_addresses(base.split(','))
    }

    /// A client for the managers at `addrs` (each normalized as [`normalize_addr`] does; one
    /// may be a comma-separated list; blanks are skipped, repeats kept once).
    ///
    /// Requests go to the first. When an address cannot be reached (refused, reset, no answer
    /// in time) the request is sent to the next, and so on once round the list; the client stays
    /// on the address that answered. A follower's [`LEADER_HEADER`] moves the client to the
    /// leader, if the client knows its address. While the managers have no leader (`no_leader`)
    /// the request is tried round the list with a short backoff for up to
    /// [`HttpTransport::with_election_wait`]. Any other error answer is returned as it is. TLS
    /// settings apply to every address.
    pub fn with_addresses<I, S>(addrs: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let addrs = parse_addresses(addrs)?;
        let config = if addrs.iter().any(|a| is_https(a)) {
            ClientTls::System.client_config()?
        } else {
            super::tls::no_roots_config()
        };
        Ok(HttpTransport {
            addrs: addrs.into(),
            current: Arc::default(),
            election_wait: DEFAULT_ELECTION_WAIT,
            client: build_client(config),
            timeout: Duration::from_secs(15),
            peer: "orkestrator server",
            credentials: Arc::default(),
        })
    }

    /// How long a request goes on trying while the managers answer that they have no leader
    /// (`503`, `no_leader`) or that they are not it (`421`); [`DEFAULT_ELECTION_WAIT`] unless
    /// set. `Duration::ZERO`: return such an answer at once.
    pub fn with_election_wait(self, wait: Duration) -> Self {
        HttpTransport {
            election_wait: wait,
            ..self
        }
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
        if !worker.uses_tls() {
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
            addrs: Arc::from([normalize_addr(base)?]),
            current: Arc::default(),
            election_wait: DEFAULT_ELECTION_WAIT,
            client: build_client(super::tls::no_roots_config()),
            timeout: Duration::from_secs(15),
            peer: "orkestrator server",
            credentials: Arc::default(),
        })
    }

    /// The base address requests go to now (with several managers, the one the client last
    /// moved to).
    pub fn base(&self) -> &str {
        &self.addrs[self.index()]
    }

    /// Every address the client knows, normalized, in the order given.
    pub fn addresses(&self) -> &[String] {
        &self.addrs
    }

    /// Whether any of its addresses is `https://`.
    pub fn uses_tls(&self) -> bool {
        self.addrs.iter().any(|a| is_https(a))
    }

    fn index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.addrs.len()
    }

    /// Moves from the address at `from` to the next one, unless another request has moved the
    /// client already.
    fn advance(&self, from: usize) {
        advance_from(&self.current, from, self.addrs.len());
    }

    /// Moves to `leader` if it is one of the addresses; whether the client moved.
    fn follow_leader(&self, leader: &str) -> bool {
        let Ok(leader) = normalize_addr(leader) else {
            return false;
        };
        let Some(i) = self.addrs.iter().position(|a| *a == leader) else {
            return false;
        };
        let was = self.current.swap(i, Ordering::Relaxed) % self.addrs.len();
        if was != i {
            tracing::debug!(leader = %leader, "moving to the leader");
        }
        was != i
    }

    async fn call_as<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        bearer: Option<String>,
    ) -> Result<R> {
        let body = Bytes::from(
            serde_json::to_vec(&body)
                .map_err(|e| self.unreachable(format!("cannot encode request: {e}")))?,
        );
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
            Some(b) => Bytes::from(
                serde_json::to_vec(b)
                    .map_err(|e| self.unreachable(format!("cannot encode request: {e}")))?,
            ),
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
        let out = Outgoing {
            method,
            path,
            content_type: Some(content_type),
            accept: "application/json",
            headers: &[],
            body,
            bearer,
            timeout: self.timeout + extra_wait,
            stream: false,
        };
        let (i, answer) = self.exchange(&out).await?;
        let Answer::Whole(status, bytes) = answer else {
            return Err(self.unreachable("a stream where a whole answer was expected".into()));
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            let uri = format!("{}{path}", self.addrs[i]);
            self.unreachable_at(
                i,
                format!(
                    "unexpected response from {uri} ({status}): {e}; is this an Orkestrator manager?"
                ),
            )
        })
    }

    /// Sends `out` to the current address, moving on as the type's documentation says: to the
    /// next address when this one cannot be reached (once round the list), to the leader a
    /// follower names, round the list with a backoff while there is no leader. Returns the index
    /// of the address that answered and its (successful) answer; an error answer that is not
    /// about the leader is returned as its [`ApiError`] at once.
    async fn exchange(&self, out: &Outgoing<'_>) -> Result<(usize, Answer)> {
        let n = self.addrs.len();
        let started = Instant::now();
        let mut unreachable_in_a_row = 0;
        let mut backoff = NO_LEADER_BACKOFF_MIN;
        loop {
            let i = self.index();
            let failed = match self.attempt(i, out).await {
                Ok((leader, answer)) => {
                    let moved = leader.is_some_and(|l| self.follow_leader(&l));
                    let (status, bytes) = match answer {
                        Answer::Whole(status, bytes) if !status.is_success() => (status, bytes),
                        answer => return Ok((i, answer)),
                    };
                    let e = self.api_error(status, &bytes);
                    let Error::Api(a) = &e else { return Err(e) };
                    if !about_the_leader(a) {
                        return Err(e);
                    }
                    unreachable_in_a_row = 0;
                    if started.elapsed() + backoff > self.election_wait {
                        return Err(e);
                    }
                    tracing::debug!(addr = %self.addrs[i], code = %a.code, "no leader there; trying again");
                    if !moved {
                        self.advance(i);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(NO_LEADER_BACKOFF_MAX);
                    continue;
                }
                Err(e) => e,
            };
            unreachable_in_a_row += 1;
            self.advance(i);
            if unreachable_in_a_row >= n {
                return Err(match failed {
                    Error::Unreachable { addr, message } if n > 1 => Error::Unreachable {
                        addr,
                        message: format!(
                            "{message}; no other manager answered either ({})",
                            self.addrs.join(", ")
                        ),
                    },
                    other => other,
                });
            }
            tracing::debug!(error = %failed, next = %self.base(), "manager unreachable; trying the next address");
        }
    }

    /// Sends `out` once to the address at `i`: the leader it names, if any, and its answer (an
    /// error answer read whole). Every error is the address failing to answer.
    async fn attempt(&self, i: usize, out: &Outgoing<'_>) -> Result<(Option<String>, Answer)> {
        let uri = format!("{}{}", self.addrs[i], out.path);
        let mut req = Request::builder()
            .method(out.method.clone())
            .uri(&uri)
            .header(header::ACCEPT, out.accept);
        if let Some(c) = out.content_type {
            req = req.header(header::CONTENT_TYPE, c);
        }
        if let Some(t) = &out.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in out.headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(out.body.clone()))
            .map_err(|e| self.unreachable_at(i, format!("bad request to {uri}: {e}")))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.unreachable_at(i, describe(&e, self.peer)))?;
            let status = resp.status();
            let leader = resp
                .headers()
                .get(LEADER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if out.stream && status.is_success() {
                return Ok((leader, Answer::Stream(resp.into_body())));
            }
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| self.unreachable_at(i, format!("reading the response: {e}")))?
                .to_bytes();
            Ok::<_, Error>((leader, Answer::Whole(status, bytes)))
        };
        tokio::time::timeout(out.timeout, fut)
            .await
            .map_err(|_| self.unreachable_at(i, format!("no answer within {:?}", out.timeout)))?
    }

    /// Opens a streaming `GET`: once the answer's head has come (within the timeout), its body
    /// as it arrives, with no deadline. An error answer is read whole and returned as its
    /// [`ApiError`]. Opening it moves between addresses as any request does; a stream that breaks
    /// moves the client to the next address, for the call that opens it again.
    pub async fn stream_get(
        &self,
        path: &str,
        accept: &str,
        headers: &[(&str, String)],
    ) -> Result<ByteStream> {
        let out = Outgoing {
            method: Method::GET,
            path,
            content_type: None,
            accept,
            headers,
            body: Bytes::new(),
            bearer: self.credentials.bearer(),
            timeout: self.timeout,
            stream: true,
        };
        let (i, answer) = self.exchange(&out).await?;
        let body = match answer {
            Answer::Stream(body) => body,
            // Not an error answer (those are errors by now): a body the server sent whole.
            Answer::Whole(_, bytes) => {
                return Ok(Box::pin(futures_util::stream::once(
                    async move { Ok(bytes) },
                )));
            }
        };
        let base = self.addrs[i].clone();
        let current = self.current.clone();
        let n = self.addrs.len();
        let body = http_body_util::BodyStream::new(body);
        Ok(Box::pin(body.filter_map(move |frame| {
            let base = base.clone();
            let current = current.clone();
            async move {
                match frame {
                    Ok(f) => f.into_data().ok().map(Ok),
                    Err(e) => {
                        advance_from(&current, i, n);
                        Some(Err(Error::Unreachable {
                            addr: base,
                            message: format!("the stream broke: {e}"),
                        }))
                    }
                }
            }
        })))
    }

    fn api_error(&self, status: hyper::StatusCode, bytes: &[u8]) -> Error {
        Error::Api(
            serde_json::from_slice::<ApiError>(bytes).unwrap_or_else(|_| {
                ApiError::new(
                    super::error::kind_of(status),
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

    /// An [`Error::Unreachable`] at the current address.
    fn unreachable(&self, message: String) -> Error {
        self.unreachable_at(self.index(), message)
    }

    /// An [`Error::Unreachable`] at the address at `i`.
    fn unreachable_at(&self, i: usize, message: String) -> Error {
        Error::Unreachable {
            addr: self.addrs[i].clone(),
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

/// One request, as it is sent to whichever address.
struct Outgoing<'a> {
    method: Method,
    path: &'a str,
    content_type: Option<&'a str>,
    accept: &'a str,
    headers: &'a [(&'a str, String)],
    body: Bytes,
    bearer: Option<String>,
    /// How long the answer may take to come: all of it, or for a stream its head.
    timeout: Duration,
    /// Whether a successful answer's body is handed on as it arrives.
    stream: bool,
}

/// An answer to an [`Outgoing`] request.
enum Answer {
    /// Its status and whole body.
    Whole(hyper::StatusCode, Bytes),
    /// A successful stream's body, as it arrives.
    Stream(hyper::body::Incoming),
}

/// Whether an error answer says to ask another manager: there is no leader yet (`no_leader`,
/// an election is on) or this one is not it (`421`).
fn about_the_leader(e: &ApiError) -> bool {
    e.code == "no_leader" || e.kind == ErrorKind::NotLeader
}

/// Moves `current` from `from` to the address after it, unless it has moved already.
fn advance_from(current: &AtomicUsize, from: usize, n: usize) {
    let _ = current.compare_exchange(from, (from + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
}

/// Each of `addrs` (and each of a comma-separated list in one of them) normalized, blanks
/// skipped, repeats dropped; an error if none is left.
fn parse_addresses<I, S>(addrs: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    let mut given = Vec::new();
    for a in addrs {
        for one in a.as_ref().split(',') {
            given.push(one.to_owned());
            if one.trim().is_empty() {
                continue;
            }
            let a = normalize_addr(one)?;
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Unreachable {
            addr: given.join(","),
            message:
                "no address given (use e.g. http://127.0.0.1:5555, or several separated by commas)"
                    .into(),
        });
    }
    Ok(out)
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
impl ClientApi for HttpTransport {
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
        let base = self.base().to_owned();
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
}

#[async_trait]
impl WorkerApi for HttpTransport {
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
}

#[async_trait]
impl SchedulerApi for HttpTransport {
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
    fn a_comma_separated_list_names_several_managers() {
        let t = HttpTransport::new("http://a:1, b:2,,https://c:3/,b:2").unwrap();
        assert_eq!(t.addresses(), ["http://a:1", "http://b:2", "https://c:3"]);
        assert_eq!(t.base(), "http://a:1");
        assert!(t.uses_tls());
        let one = HttpTransport::new("127.0.0.1:5555").unwrap();
        assert_eq!(one.addresses(), ["http://127.0.0.1:5555"]);
        assert_eq!(one.base(), "http://127.0.0.1:5555");
        assert!(!one.uses_tls());
        let listed = HttpTransport::with_addresses(["a:1", "b:2,c:3"]).unwrap();
        assert_eq!(
            listed.addresses(),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert!(HttpTransport::new("").is_err());
        assert!(HttpTransport::new(" , ").is_err());
        assert!(HttpTransport::new("a:1,ftp://b:2").is_err());
    }

    #[test]
    fn the_leader_header_moves_only_to_a_known_address_and_clones_move_together() {
        let t = HttpTransport::new("a:1,b:2,c:3").unwrap();
        let clone = t.clone();
        assert!(t.follow_leader("http://c:3/"));
        assert_eq!(clone.base(), "http://c:3");
        assert!(!t.follow_leader("c:3"), "already there");
        assert!(!t.follow_leader("http://d:4"));
        assert!(!t.follow_leader("not an address at all ::"));
        assert_eq!(t.base(), "http://c:3");
        t.advance(2);
        assert_eq!(
            clone.base(),
            "http://a:1",
            "the next after the last is the first"
        );
        // Another request moved the client already: a stale failure does not move it again.
        t.advance(2);
        assert_eq!(t.base(), "http://a:1");
    }

    #[test]
    fn only_leader_answers_send_a_request_elsewhere() {
        assert!(about_the_leader(&ApiError::unavailable(
            "no_leader",
            "election"
        )));
        assert!(about_the_leader(&ApiError::new(
            ErrorKind::NotLeader,
            "not_leader",
            "ask the leader"
        )));
        assert!(!about_the_leader(&ApiError::unavailable(
            "store",
            "commit failed"
        )));
        assert!(!about_the_leader(&ApiError::not_found("job", "web")));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("web-1"), "web-1");
        assert_eq!(seg("a/../b"), "a%2F..%2Fb");
    }
}
