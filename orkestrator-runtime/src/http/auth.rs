//! Authentication and authorization of the HTTP API, as one layer around the router (handlers
//! stay thin and know nothing of tokens).
//!
//! Every request but `/v1/health`, the dashboard's static files and signing in needs a
//! credential: `Authorization: Bearer TOKEN`, or the dashboard's `ork_session` cookie. What a
//! role may do:
//!
//! | request | who |
//! |---|---|
//! | `GET` (jobs, workers, events, logs, metrics, `/metrics`) | operator, read |
//! | `POST /v1/workers`, `POST /v1/schedulers` | join, operator, the component's own credential |
//! | `/v1/workers/{id}/heartbeat`, `status`, `assignments`, `POST metrics` | worker `id`, operator |
//! | `/v1/schedulers/{id}/...` | scheduler `id`, operator |
//! | `GET /v1/auth/whoami` | any valid credential |
//! | everything else (submit, stop, gc, tokens) | operator |
//!
//! Each credential may hold at most [`Limits::requests`] requests and [`Limits::streams`]
//! long-lived answers (long-polls, event streams, followed logs) at once; more get `429`.
//!
//! A worker's own endpoint uses [`worker_layer`]: its logs answer only the manager's credential
//! (and operators), its `/metrics` read tokens too, each checked with the manager
//! ([`Verifier`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use orkestrator_core::api::{ApiError, ErrorKind};
use orkestrator_core::auth::{CreateToken, Principal, Role, TokenInfo};
use orkestrator_core::manager::Manager;
use orkestrator_core::manager::tokens::{forbidden, unauthenticated};
use serde::Deserialize;
use tokio::time::Instant;

use super::server::{Body, ErrorResponse, Path};

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "ork_session";

/// Per-credential limits on what one credential holds at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests being answered at once. Default [`Limits::DEFAULT_REQUESTS`].
    pub requests: usize,
    /// Long-lived answers (long-polls, event streams, followed logs) open at once. Default
    /// [`Limits::DEFAULT_STREAMS`].
    pub streams: usize,
}

impl Limits {
    /// The default of [`Limits::requests`]: far above what one CLI, worker or scheduler needs
    /// (a worker holds two or three), low enough that one credential cannot take the manager.
    pub const DEFAULT_REQUESTS: usize = 1024;
    /// The default of [`Limits::streams`].
    pub const DEFAULT_STREAMS: usize = 128;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: Self::DEFAULT_REQUESTS,
            streams: Self::DEFAULT_STREAMS,
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    Public,
    AnyCredential,
    Read,
    Operator,
    /// Registering: join, operator or the component's own credential (the manager decides).
    Register,
    Worker(String),
    Scheduler(String),
}

/// The rules of the table in the module's docs.
fn need(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = matches!(*method, Method::GET | Method::HEAD);
    match segs.as_slice() {
        [""] | ["ui", ..] if read => Need::Public,
        ["v1", "health"] if read => Need::Public,
        ["v1", "session"] => Need::Public,
        ["v1", "auth", "whoami"] => Need::AnyCredential,
        ["v1", "workers"] | ["v1", "schedulers"] if *method == Method::POST => Need::Register,
        ["v1", "workers", id, "heartbeat" | "status" | "assignments"] => Need::Worker(decode(id)),
        ["v1", "workers", id, "metrics"] if !read => Need::Worker(decode(id)),
        ["v1", "schedulers", id, ..] => Need::Scheduler(decode(id)),
        ["v1", "tokens", ..] => Need::Operator,
        _ if read => Need::Read,
        _ => Need::Operator,
    }
}

/// Whether a request holds its answer open (a long-poll or a stream).
fn is_stream(path: &str) -> bool {
    path == "/v1/events"
        || path.ends_with("/logs")
        || path.ends_with("/assignments")
        || (path.starts_with("/v1/schedulers/") && path.ends_with("/work"))
}

/// Percent-decodes a path segment (`w%201` is worker `w 1`); one that does not decode names no
/// component.
fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| "\u{fffd}".into())
}

/// The credential a request presents: a bearer token, else a session cookie.
enum Presented {
    Bearer(String),
    Session(String),
}

fn presented(h: &HeaderMap) -> Result<Option<Presented>, ApiError> {
    if let Some(v) = h.get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header is not text"))?;
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer TOKEN`"))?;
        return Ok(Some(Presented::Bearer(token.trim().to_owned())));
    }
    Ok(session_cookie(h).map(Presented::Session))
}

fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn resolve(m: &Manager, p: &Presented) -> Result<Principal, ApiError> {
    match p {
        Presented::Bearer(t) => m.tokens().authenticate(t),
        Presented::Session(s) => m.tokens().authenticate_session(s),
    }
}

/// Whether `p` may do what `need` asks; the 403 if not.
fn permit(p: &Principal, need: &Need, method: &Method, path: &str) -> Result<(), ApiError> {
    let ok = match need {
        Need::Public | Need::AnyCredential => true,
        _ if p.role == Role::Operator => true,
        Need::Read => p.role == Role::Read,
        Need::Operator => false,
        Need::Register => matches!(p.role, Role::Join | Role::Worker | Role::Scheduler),
        Need::Worker(id) => p.is_worker(&id.as_str().into()),
        Need::Scheduler(id) => p.is_scheduler(&id.as_str().into()),
    };
    if ok {
        return Ok(());
    }
    let what = match need {
        Need::Read => "a read or operator token".to_owned(),
        Need::Worker(id) => format!("worker \"{id}\"'s own credential (or an operator token)"),
        Need::Scheduler(id) => {
            format!("scheduler \"{id}\"'s own credential (or an operator token)")
        }
        Need::Register => "the join token".to_owned(),
        _ => "an operator token".to_owned(),
    };
    let who = match &p.subject {
        Some(orkestrator_core::auth::Subject::Worker(w)) => format!("worker \"{w}\"'s credential"),
        Some(orkestrator_core::auth::Subject::Scheduler(s)) => {
            format!("scheduler \"{s}\"'s credential")
        }
        None => format!("a {} token", p.role),
    };
    Err(forbidden(
        "forbidden",
        format!("{method} {path} needs {what}; this is {who}"),
    ))
}

/// Counts what each credential holds.
#[derive(Debug, Default)]
pub struct Usage {
    limits: Limits,
    held: Mutex<HashMap<String, Arc<Held>>>,
}

#[derive(Debug, Default)]
struct Held {
    requests: AtomicUsize,
    streams: AtomicUsize,
}

/// Gives back what one request held when it (and its answer's body) is done.
#[derive(Debug)]
struct Guard {
    held: Arc<Held>,
    stream: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.held.requests.fetch_sub(1, Ordering::AcqRel);
        if self.stream {
            self.held.streams.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Usage {
    /// Counting against `limits`.
    pub fn new(limits: Limits) -> Self {
        Usage {
            limits,
            held: Mutex::default(),
        }
    }

    fn take(&self, token: &str, stream: bool) -> Result<Guard, ApiError> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(token.to_owned())
            .or_default()
            .clone();
        let over = |what: &str, limit: usize| {
            ApiError::new(
                ErrorKind::LimitExceeded,
                "limit_exceeded",
                format!(
                    "this credential already holds {limit} {what} at once (the limit); wait for some to finish, or use another credential"
                ),
            )
        };
        if held.requests.fetch_add(1, Ordering::AcqRel) >= self.limits.requests {
            held.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(over("requests", self.limits.requests));
        }
        if stream && held.streams.fetch_add(1, Ordering::AcqRel) >= self.limits.streams {
            held.streams.fetch_sub(1, Ordering::AcqRel);
            held.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(over("long-polls and streams", self.limits.streams));
        }
        Ok(Guard { held, stream })
    }
}

/// The state of [`layer`].
#[derive(Clone)]
pub struct AuthState {
    /// Who checks credentials.
    pub manager: Manager,
    /// What each credential holds.
    pub usage: Arc<Usage>,
}

/// The manager API's authentication layer (see the module's docs): resolves the credential,
/// checks the rule, counts it against its limits and hands the [`Principal`] to the handler as
/// an extension.
pub async fn layer(
    State(s): State<AuthState>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let need = need(&method, &path);
    let principal = match presented(req.headers()) {
        Ok(Some(p)) => match resolve(&s.manager, &p) {
            Ok(p) => Some(p),
            // A session that ended (expired, revoked, a restarted manager) is no one on a public
            // endpoint: the browser holding its cookie must still load the page and sign in again.
            Err(_) if need == Need::Public && matches!(p, Presented::Session(_)) => None,
            // A bad bearer token is refused even there: the caller meant to use it.
            Err(e) => return ErrorResponse(e).into_response(),
        },
        Ok(None) => None,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    let Some(principal) = principal else {
        if need == Need::Public {
            return next.run(req).await;
        }
        return ErrorResponse(unauthenticated(&format!("{method} {path} needs a token")))
            .into_response();
    };
    if let Err(e) = permit(&principal, &need, &method, &path) {
        return ErrorResponse(e).into_response();
    }
    let stream = is_stream(&path);
    let guard = match s.usage.take(&principal.token, stream) {
        Ok(g) => g,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    req.extensions_mut().insert(principal.clone());
    let resp = next.run(req).await;
    if !stream {
        // The answer is whole: what the request held is given back now.
        drop(guard);
        return resp;
    }
    // A stream holds its guard as long as its body lasts, and ends at its next chunk (an event
    // or a keep-alive) once its token is revoked.
    let (parts, body) = resp.into_parts();
    let manager = s.manager.clone();
    let body = axum::body::Body::from_stream(body.into_data_stream().take_while(move |_| {
        let _held = &guard;
        std::future::ready(manager.tokens().still_valid(&principal))
    }));
    Response::from_parts(parts, body)
}

/// The routes of tokens, sessions and `whoami`.
pub fn routes() -> Router<Manager> {
    Router::new()
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/v1/auth/whoami", get(whoami))
        .route("/v1/session", post(sign_in).delete(sign_out))
}

type ApiResult<T> = Result<Json<T>, ErrorResponse>;

async fn list_tokens(State(m): State<Manager>) -> ApiResult<Vec<TokenInfo>> {
    Ok(Json(m.tokens().list().await?))
}

async fn create_token(
    State(m): State<Manager>,
    Body(req): Body<CreateToken>,
) -> ApiResult<orkestrator_core::auth::IssuedToken> {
    Ok(Json(m.tokens().create(req).await?))
}

async fn revoke_token(State(m): State<Manager>, Path(id): Path<String>) -> ApiResult<TokenInfo> {
    Ok(Json(m.tokens().revoke(&id).await?))
}

async fn whoami(
    State(m): State<Manager>,
    p: Option<axum::Extension<Principal>>,
) -> ApiResult<TokenInfo> {
    let p = p.ok_or_else(|| unauthenticated("whoami needs a credential"))?;
    Ok(Json(m.tokens().info(&p)?))
}

/// `POST /v1/session`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(m): State<Manager>,
    Body(req): Body<SignIn>,
) -> Result<Response, ErrorResponse> {
    let (session, info) = m.tokens().open_session(&req.token)?;
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        orkestrator_core::manager::tokens::SESSION_TTL.as_secs()
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(info)).into_response())
}

async fn sign_out(State(m): State<Manager>, headers: HeaderMap) -> Response {
    if let Some(s) = session_cookie(&headers) {
        m.tokens().close_session(&s);
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Json(serde_json::json!({}))).into_response()
}

// ---------------------------------------------------------------------------------------------
// Workers' endpoints

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
    manager: super::client::HttpTransport,
    seen: Mutex<HashMap<[u8; 32], (Role, Instant)>>,
}

impl RemoteVerifier {
    /// How long a token checked before is taken while the manager does not answer.
    pub const STALE: Duration = Duration::from_secs(600);
    /// The most answers remembered.
    const MAX_SEEN: usize = 10_000;

    /// Checks with the manager at `manager` (its credentials are not used: the token checked
    /// is the one presented).
    pub fn new(manager: super::client::HttpTransport) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_hold() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(need(&g, "/v1/health"), Need::Public);
        assert_eq!(need(&g, "/"), Need::Public);
        assert_eq!(need(&g, "/ui/app.js"), Need::Public);
        assert_eq!(need(&p, "/v1/session"), Need::Public);
        assert_eq!(need(&p, "/v1/health"), Need::Operator);
        assert_eq!(need(&g, "/v1/jobs"), Need::Read);
        assert_eq!(need(&g, "/metrics"), Need::Read);
        assert_eq!(need(&p, "/v1/jobs"), Need::Operator);
        assert_eq!(need(&Method::DELETE, "/v1/jobs/a"), Need::Operator);
        assert_eq!(need(&p, "/v1/workers"), Need::Register);
        assert_eq!(need(&p, "/v1/schedulers"), Need::Register);
        assert_eq!(
            need(&p, "/v1/workers/w%201/heartbeat"),
            Need::Worker("w 1".into())
        );
        assert_eq!(
            need(&g, "/v1/workers/w/assignments"),
            Need::Worker("w".into())
        );
        assert_eq!(need(&p, "/v1/workers/w/metrics"), Need::Worker("w".into()));
        assert_eq!(need(&g, "/v1/workers/w/metrics"), Need::Read);
        assert_eq!(
            need(&g, "/v1/schedulers/s/work"),
            Need::Scheduler("s".into())
        );
        assert_eq!(need(&g, "/v1/tokens"), Need::Operator);
        assert_eq!(need(&g, "/v1/auth/whoami"), Need::AnyCredential);
        assert!(is_stream("/v1/events"));
        assert!(is_stream("/v1/jobs/a/logs"));
        assert!(!is_stream("/v1/jobs"));
    }

    #[test]
    fn segments_decode() {
        assert_eq!(decode("a%2Fb"), "a/b");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("end%"), "end%");
    }

    #[test]
    fn limits_count_and_give_back() {
        let u = Usage::new(Limits {
            requests: 2,
            streams: 1,
        });
        let a = u.take("t", true).unwrap();
        assert_eq!(
            u.take("t", true).unwrap_err().kind,
            ErrorKind::LimitExceeded
        );
        let b = u.take("t", false).unwrap();
        assert!(u.take("t", false).is_err(), "two requests held");
        assert!(u.take("other", true).is_ok(), "limits are per credential");
        drop(a);
        drop(b);
        assert!(u.take("t", true).is_ok());
    }
}
