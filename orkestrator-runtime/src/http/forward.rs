//! How a follower manager answers: it forwards each request, as it came (its token, cookie and
//! body included), to the leader and streams the leader's answer back, with the header
//! [`LEADER_HEADER`] naming the leader so that clients can move to it. Forwarding, not
//! redirecting, keeps clients' credentials where they sent them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response, Uri};
use axum::response::IntoResponse;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orkestrator_core::api::{ApiError, ListQuery};
use orkestrator_core::auth::Role as TokenRole;
use orkestrator_core::ids::JobId;
use orkestrator_core::manager::Replica;
use rustls::ClientConfig;
use tokio::sync::watch;
use tower::ServiceExt;

use super::error::ErrorResponse;
use super::table::FollowerRead;

/// The header a follower adds to forwarded answers: the leader's address (what the client
/// moves to).
pub use super::client::LEADER_HEADER;

/// Headers that belong to one connection and are not passed on (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Forwards requests to the leader. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<Connector, Body>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder that verifies an `https://` leader with `tls`.
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnector::from((connector, tls));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        Forwarder { client }
    }

    /// Sends `req` to the leader at `leader` (`http(s)://HOST:PORT`) and answers what it
    /// answers; a 503 `no_leader` when it cannot be reached.
    pub async fn forward(&self, leader: &str, mut req: Request<Body>) -> Response<Body> {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri: Uri = match format!("{}{pq}", leader.trim_end_matches('/')).parse() {
            Ok(u) => u,
            Err(e) => {
                return no_leader(format!(
                    "the leader's address {leader:?} is not usable ({e})"
                ));
            }
        };
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        for h in HOP_BY_HOP {
            headers.remove(h);
        }
        headers.remove(axum::http::header::HOST);
        let mut answer = match self.client.request(req).await {
            Ok(r) => r.map(Body::new),
            Err(e) => {
                return no_leader(format!(
                    "this manager follows the leader at {leader}, which does not answer ({e}); \
                     a new leader is elected within about a lease: retry"
                ));
            }
        };
        let headers = answer.headers_mut();
        for h in HOP_BY_HOP {
            headers.remove(h);
        }
        if let Ok(v) = HeaderValue::from_str(leader) {
            headers.insert(HeaderName::from_static(LEADER_HEADER), v);
        }
        answer
    }
}

/// The answer while no leader is known (an election is going on).
pub fn no_leader(message: impl Into<String>) -> Response<Body> {
    ErrorResponse(ApiError::unavailable("no_leader", message)).into_response()
}

/// What a manager among several does with a request now.
#[derive(Clone)]
pub enum Role {
    /// Forward it to the leader at this address (`None`: no leader known yet).
    Follower(Option<String>),
    /// Answer it with this router (the manager's API).
    Leader(Router),
    /// Refuse it with 503 `store_unavailable` and this reason (etcd cannot be reached).
    Down(String),
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Follower(l) => f.debug_tuple("Follower").field(l).finish(),
            Role::Leader(_) => f.write_str("Leader"),
            Role::Down(why) => f.debug_tuple("Down").field(why).finish(),
        }
    }
}

/// Where a follower finds a read-only copy of the state at an index or later (`None`: it has
/// none that recent).
pub type Replicas = Arc<dyn Fn(u64) -> Option<Arc<Replica>> + Send + Sync>;

/// A router that answers every request by the current `role`: served by the manager's API
/// while leading, forwarded to the leader while following, 503 `no_leader` while no leader is
/// known. With `replicas`, a follower answers job reads itself (see [`answer_locally`]).
pub fn front(
    role: watch::Receiver<Role>,
    forwarder: Forwarder,
    replicas: Option<Replicas>,
) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let watcher = role.clone();
        let replicas = replicas.clone();
        let role = role.borrow().clone();
        let forwarder = forwarder.clone();
        async move {
            match role {
                Role::Leader(router) => match router.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                Role::Follower(Some(leader)) => {
                    if let Some(r) = &replicas
                        && let Some(read) = LocalRead::of(&req)
                        && let Some(answer) = answer_locally(read, r, &leader).await
                    {
                        return answer;
                    }
                    // A leader that stops answering (paused, cut off) leaves the request hanging
                    // until another is known: then it is answered, and the client goes again.
                    let mut changes = watcher;
                    let moved =
                        changes.wait_for(|r| !matches!(r, Role::Follower(Some(l)) if *l == leader));
                    tokio::select! {
                        answer = forwarder.forward(&leader, req) => answer,
                        _ = moved => no_leader(format!(
                            "the leader changed while this request was with {leader}; if it was a \
                             change, its outcome is unknown: read it back, or send it again (a \
                             resubmitted spec is answered `unchanged` if it was kept)"
                        )),
                    }
                }
                Role::Follower(None) => {
                    no_leader("no manager leads yet (an election is going on); retry in a moment")
                }
                Role::Down(why) => ErrorResponse(ApiError::unavailable(
                    "store_unavailable",
                    format!("{why}; nothing can be read or changed until it is back: retry"),
                ))
                .into_response(),
            }
        }
    })
}

/// A read a follower may answer itself (the route table's [`FollowerRead`] reads: `GET /v1/jobs` and
/// `GET /v1/jobs/{job}`) with a bearer token, and the index it must have reached (`?index=N`, 0
/// for any).
pub struct LocalRead {
    what: What,
    token: String,
    index: u64,
}

enum What {
    List(ListQuery),
    Job(JobId),
}

/// The query of a read a follower answers: the list's paging and the index to wait for.
#[derive(serde::Deserialize)]
struct ReadQuery {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default, rename = "continue")]
    after: Option<String>,
}

impl LocalRead {
    /// The read `req` asks for, if a follower may answer it.
    pub fn of(req: &Request<Body>) -> Option<LocalRead> {
        if req.method() != axum::http::Method::GET {
            return None;
        }
        let q = axum::extract::Query::<ReadQuery>::try_from_uri(req.uri())
            .ok()?
            .0;
        let what = match super::routes::policies().follower_read(req.uri().path())? {
            (FollowerRead::JobList, _) => What::List(ListQuery {
                limit: q.limit,
                after: q.after.clone(),
                index: q.index,
            }),
            (FollowerRead::Job, params) => {
                let (_, name) = params.into_iter().find(|(n, _)| *n == "job")?;
                What::Job(JobId::new(name))
            }
        };
        let token = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim()
            .to_owned();
        Some(LocalRead {
            what,
            token,
            index: q.index.unwrap_or(0),
        })
    }
}

/// How long a read that names an index waits for the follower's copy to reach it before it is
/// forwarded to the leader instead.
pub const READ_INDEX_WAIT: Duration = Duration::from_secs(5);

/// A follower's own answer to `read` presenting a read or operator token: from its copy of the
/// state, once that holds the read's index (at most [`READ_INDEX_WAIT`]), so that a client always
/// reads its own writes. `None` (forward it) for any other credential, a token its copy does not
/// know (it may be newer than the copy), or a copy that is not there yet. The answer names the
/// leader ([`LEADER_HEADER`]) and the copy's index (`orkestrator-index`); a job's view carries
/// no live usage (metrics are the leader's).
pub async fn answer_locally(
    read: LocalRead,
    replicas: &Replicas,
    leader: &str,
) -> Option<Response<Body>> {
    let deadline = tokio::time::Instant::now() + READ_INDEX_WAIT;
    let replica = loop {
        match replicas(read.index) {
            Some(r) => break r,
            None if read.index > 0 && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None => return None,
        }
    };
    let p = replica.authenticate(&read.token).ok()?;
    if !matches!(p.role, TokenRole::Operator | TokenRole::Read) {
        return None;
    }
    let answer = match read.what {
        What::List(q) => replica.list_jobs(&q).map(|v| axum::Json(v).into_response()),
        // A job the copy does not hold may be newer than it: the leader answers.
        What::Job(name) => match replica.get_job(&name) {
            Ok(v) => Ok(axum::Json(v).into_response()),
            Err(_) => return None,
        },
    };
    let mut answer = answer.unwrap_or_else(|e| ErrorResponse(e).into_response());
    let headers = answer.headers_mut();
    if let Ok(v) = HeaderValue::from_str(leader) {
        headers.insert(HeaderName::from_static(LEADER_HEADER), v);
    }
    headers.insert(
        HeaderName::from_static("orkestrator-index"),
        HeaderValue::from(replica.index()),
    );
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(method: &str, path: &str) -> Option<String> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer t")
            .body(Body::empty())
            .unwrap();
        LocalRead::of(&req).map(|r| match r.what {
            What::List(q) => format!("list {:?} {:?} {}", q.limit, q.after, r.index),
            What::Job(j) => format!("job {j} {}", r.index),
        })
    }

    #[test]
    fn followers_answer_the_job_reads_the_table_names() {
        assert_eq!(
            read("GET", "/v1/jobs?limit=5&index=7").as_deref(),
            Some("list Some(5) None 7")
        );
        assert_eq!(read("GET", "/v1/jobs/web").as_deref(), Some("job web 0"));
        assert_eq!(
            read("GET", "//v1/jobs/w%20b").as_deref(),
            Some("job w%20b 0")
        );
        for (method, path) in [
            ("HEAD", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs/"),
            ("GET", "/v1/jobs/web/logs"),
            ("GET", "/v1/workers"),
            ("GET", "/v1/jobs?bad=1&index=x"),
        ] {
            assert_eq!(read(method, path), None, "{method} {path}");
        }
    }
}
