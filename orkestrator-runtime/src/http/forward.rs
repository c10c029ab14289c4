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
use orkestrator_core::api::ApiError;
use rustls::ClientConfig;
use tokio::sync::watch;
use tower::ServiceExt;

use super::server::ErrorResponse;

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

/// A router that answers every request by the current `role`: served by the manager's API
/// while leading, forwarded to the leader while following, 503 `no_leader` while no leader is
/// known.
pub fn front(role: watch::Receiver<Role>, forwarder: Forwarder) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let watcher = role.clone();
        let role = role.borrow().clone();
        let forwarder = forwarder.clone();
        async move {
            match role {
                Role::Leader(router) => match router.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                Role::Follower(Some(leader)) => {
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
