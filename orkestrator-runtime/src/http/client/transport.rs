//! [`HttpTransport`] itself: its addresses, credentials and TLS, and how it is made.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orkestrator_core::api::{ErrorKind, Registered};
use orkestrator_core::{Error, Result};
use serde::Serialize;

use super::addr::{advance_from, is_https, normalize_addr, parse_addresses};
use crate::http::tls::{ClientConfig, ClientTls};

/// A response body as it arrives.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes>> + Send + 'static>>;

/// Largest response body the client reads.
pub(super) const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The connector of every client: plain TCP for `http://`, rustls over it for `https://`.
pub(super) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The header in which a follower names the leader's base address (`http://10.0.0.1:5555`) on
/// the answers it forwards; a client that knows that address sends its next requests there.
pub const LEADER_HEADER: &str = "orkestrator-leader";

/// What a client of a worker's own endpoint calls its peer in messages.
pub(super) const WORKER_PEER: &str = "orkestrator worker";

/// The header with which a worker's own endpoint marks its error answers (to a request it does
/// not take: unauthenticated, or for a path it does not serve), naming the worker, so that a
/// client sent to a worker's port instead of the manager's can say so.
pub const WORKER_HEADER: &str = "orkestrator-worker";

/// How long a request goes on trying while the managers have no leader (an election), by
/// default.
pub const DEFAULT_ELECTION_WAIT: Duration = Duration::from_secs(10);

/// The first pause before asking again when the managers have no leader; it doubles up to
/// [`NO_LEADER_BACKOFF_MAX`].
pub(super) const NO_LEADER_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two tries while the managers have no leader.
pub(super) const NO_LEADER_BACKOFF_MAX: Duration = Duration::from_millis(1000);

/// The manager's API over HTTP (or HTTPS), at one address or several.
///
/// Clones share the address they send to, so every loop of a worker moves together.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    /// The managers' base addresses, normalized, in the order given; never empty.
    pub(super) addrs: Arc<[String]>,
    /// The index in `addrs` requests go to.
    pub(super) current: Arc<AtomicUsize>,
    /// How long a request goes on trying while the managers have no leader.
    pub(super) election_wait: Duration,
    pub(super) client: Client<Connector, Full<Bytes>>,
    pub(super) timeout: Duration,
    /// The command that serves the addresses, for the hint when it cannot be reached.
    pub(super) peer: &'static str,
    /// What it presents: shared by clones, so that a credential a registration issued is used
    /// by every loop of the component.
    pub(super) credentials: Arc<Credentials>,
}

/// Called with a component's new credential, to keep it (a worker writes it to its data
/// directory).
pub type OnCredential = Arc<dyn Fn(&str) + Send + Sync>;

/// The tokens a client presents.
#[derive(Default)]
pub(super) struct Credentials {
    /// The bearer token of every request (an operator or read token, or the component's own
    /// credential).
    pub(super) token: RwLock<Option<String>>,
    /// The join token, presented to register when there is no credential yet or the manager
    /// no longer takes it.
    pub(super) join: Option<String>,
    pub(super) on_credential: Option<OnCredential>,
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
    pub(super) fn bearer(&self) -> Option<String> {
        self.token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How the manager verifies its workers' endpoints over `https://` (see [`set_worker_tls`]).
static WORKER_TLS: RwLock<Option<Arc<ClientConfig>>> = RwLock::new(None);

/// Sets how every [`HttpTransport::for_worker`] in this process verifies a worker's `https://`
/// endpoint: the manager calls it once at start with its own CA
/// ([`ClientTls::CaCert`] of [`tls::ca_of_chain`](crate::http::tls::ca_of_chain) of its `--tls-cert`).
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
            crate::http::tls::no_roots_config()
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

    /// Whether a bearer token is presented.
    pub fn has_token(&self) -> bool {
        self.credentials.bearer().is_some()
    }

    /// Registers with the credential it has, falling back to the join token when there is
    /// none or the manager refuses it as unknown (401); keeps a credential the answer issues.
    pub(super) async fn register<B: Serialize + ?Sized>(
        &self,
        path: &str,
        req: &B,
    ) -> Result<Registered> {
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
            peer: WORKER_PEER,
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
    pub(super) fn new_unverified(base: &str) -> Result<Self> {
        Ok(HttpTransport {
            addrs: Arc::from([normalize_addr(base)?]),
            current: Arc::default(),
            election_wait: DEFAULT_ELECTION_WAIT,
            client: build_client(crate::http::tls::no_roots_config()),
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

    pub(super) fn index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.addrs.len()
    }

    /// Moves from the address at `from` to the next one, unless another request has moved the
    /// client already.
    pub(super) fn advance(&self, from: usize) {
        advance_from(&self.current, from, self.addrs.len());
    }

    /// Moves to `leader` if it is one of the addresses; whether the client moved.
    pub(super) fn follow_leader(&self, leader: &str) -> bool {
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
}

/// A pooled client over [`Connector`] with `tls` for `https://` addresses.
pub(super) fn build_client(tls: Arc<ClientConfig>) -> Client<Connector, Full<Bytes>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
