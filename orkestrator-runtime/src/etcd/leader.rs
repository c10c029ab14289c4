//! One of several managers on one etcd: the HA leader.
//!
//! Each manager joins the election on a lease and serves the API at once: while it follows, it
//! forwards every request to the leader (and answers 503 `no_leader` while none is known);
//! once elected, it fences its store on its leader key, loads the state, and serves the API
//! itself. A leader that loses its lease (paused, cut off from etcd) or whose commit is refused
//! by the fence steps down: it starts again as a follower, so that nothing of the old leader's
//! memory survives, the way Kubernetes' controllers exit when they lose their lease. Its fenced
//! store has already made sure it committed nothing after losing.
//!
//! A manager goes through three phases, and each says what comes next ([`Step`]):
//!
//! 1. [`Candidate::start`] serves the API and waits for etcd (answering 503 with the reason
//!    meanwhile), joins the managers and follows the leader, keeping a warm copy of the state.
//! 2. [`Candidate::campaign`] waits to be elected, fences the store and loads the state.
//! 3. [`Leader::serve`] serves the API as the leader, until it must step down or stops.
//!
//! Between the last two, the caller makes what the cluster needs from the loaded state
//! (tokens, the embedded scheduler); stepping down (starting the process again) is the
//! caller's too.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use orkestrator_core::api::ManagerPeer;
use orkestrator_core::manager::{Manager, ManagerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

use super::election::{ManagerRecord, Member, leader, managers};
use super::error::EtcdError;
use super::options::EtcdOptions;
use super::store::EtcdStore;
use crate::http::auth::Limits;
use crate::http::forward::{Forwarder, Replicas, Role, front};
use crate::http::server::{ServeOptions, router_with_limits, serve_app};

/// Why a manager on etcd stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HaError {
    /// etcd refused this manager for a reason that waiting does not fix (see
    /// [`EtcdError::waiting_helps`]).
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The API server failed.
    #[error(transparent)]
    Serve(std::io::Error),
    /// The API server's task ended without an answer (it panicked).
    #[error("the API server stopped")]
    ServerStopped(#[source] JoinError),
    /// The manager's secret key is not the one the store's secrets are sealed with: waiting
    /// or stepping down does not fix it.
    #[error("{0}")]
    SecretKey(orkestrator_core::Error),
}

/// What a manager among several on one etcd starts with, worked out before it reaches etcd.
pub struct HaConfig {
    /// How to reach etcd.
    pub etcd: EtcdOptions,
    /// How the store was named (`etcd://...`), for the logs.
    pub store_url: String,
    /// The manager's configuration, for when it is elected.
    pub manager: ManagerConfig,
    /// The lease it asks etcd for (`--leader-lease`): a leader that cannot renew it within that
    /// long steps down.
    pub lease: Duration,
    /// Where the others reach this manager, `http(s)://HOST:PORT`.
    pub advertise: String,
    /// The API's listener.
    pub listener: TcpListener,
    /// TLS the API is served with (`None`: plain HTTP).
    pub serve_tls: Option<Arc<rustls::ServerConfig>>,
    /// How a follower verifies the leader it forwards requests to.
    pub forward_tls: Arc<rustls::ClientConfig>,
    /// Each credential's limits on the leader's API.
    pub limits: Limits,
    /// Fault injection for the fencing test: a leader whose lease runs out does not step down,
    /// so that only the fence on its commits stops it.
    pub ignore_lease_loss: bool,
}

impl std::fmt::Debug for HaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaConfig")
            .field("store_url", &self.store_url)
            .field("advertise", &self.advertise)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// What a phase ended in.
#[derive(Debug)]
pub enum Step<T> {
    /// On to the next phase.
    Next(T),
    /// This manager must step down, for this reason: start again as a follower, with nothing of
    /// its memory.
    StepDown(String),
    /// The API server stopped (it was told to shut down): the manager is done.
    Stopped,
}

/// The API's server task.
type Server = JoinHandle<std::io::Result<()>>;

/// A manager that serves the API, follows the leader and waits to be elected.
pub struct Candidate {
    store: Arc<EtcdStore>,
    member: Member,
    role: watch::Sender<Role>,
    server: Server,
    follow: JoinHandle<()>,
    advertise: String,
    config: ManagerConfig,
    limits: Limits,
    ignore_lease_loss: bool,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("advertise", &self.advertise)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl Candidate {
    /// Serves the API on the listener until `shutdown` resolves, and joins the managers in
    /// etcd: while etcd cannot be reached (or is not up yet), it tries again every second and
    /// the API answers 503 with the reason. Once joined, it keeps a warm copy of the state and
    /// forwards requests to the leader.
    ///
    /// [`Step::Stopped`] when the server stopped before etcd answered; an error when etcd
    /// refused this manager for a reason that waiting does not fix, or the server failed.
    pub async fn start(
        config: HaConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Step<Candidate>, HaError> {
        let HaConfig {
            etcd,
            store_url,
            manager,
            lease,
            advertise,
            listener,
            serve_tls,
            forward_tls,
            limits,
            ignore_lease_loss,
        } = config;
        // The API answers from now on: refused while etcd cannot be reached, forwarded while
        // following, served once leading.
        let (role_tx, role) = watch::channel(Role::Down("etcd has not answered yet".into()));
        // Job reads a follower answers itself, from its warm copy of the state (once it has one).
        let replica_source: Arc<OnceLock<Arc<EtcdStore>>> = Arc::default();
        let replicas: Replicas = {
            let source = replica_source.clone();
            Arc::new(move |min| source.get()?.replica(min))
        };
        let front = front(role, Forwarder::new(forward_tls), Some(replicas));
        let mut server = tokio::spawn(serve_app(
            listener,
            front,
            shutdown,
            ServeOptions::default().with_tls(serve_tls),
        ));
        let record = ManagerRecord {
            name: advertise
                .split_once("://")
                .map_or(advertise.as_str(), |(_, rest)| rest)
                .to_string(),
            addr: advertise.clone(),
        };
        // etcd may be down (or not up yet): wait for it, answering 503 with the reason meanwhile.
        let (store, member) = loop {
            let joined = async {
                let store = Arc::new(EtcdStore::connect(etcd.clone()).await?);
                let member =
                    Member::join(store.client(), store.prefix(), record.clone(), lease).await?;
                Ok::<_, EtcdError>((store, member))
            };
            tokio::select! {
                r = joined => match r {
                    Ok(joined) => break joined,
                    Err(e) if !e.waiting_helps() => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot join the managers in etcd; retrying");
                        let _ = role_tx.send(Role::Down(e.to_string()));
                    }
                },
                r = &mut server => {
                    server_ended(r)?;
                    return Ok(Step::Stopped);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // A key that is not the store's is refused now, not only once elected.
        if let Some(key) = &manager.secret_key {
            match store.secret_key_check().await {
                Ok(Some(check)) if !key.matches_check(&check) => {
                    return Err(HaError::SecretKey(orkestrator_core::Error::SecretKey(
                        "the key given with --secret-key-file is not the key this store's secrets are sealed with: every manager on one etcd store needs the same key file".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the store's secret key check; it is checked again when elected")
                }
            }
        }
        // A warm copy of the state while following, so that it leads at once when elected.
        store.follow();
        let _ = replica_source.set(store.clone());
        let _ = role_tx.send(Role::Follower(None));
        tracing::info!(
            addr = %advertise,
            store = %store_url,
            prefix = store.prefix(),
            "manager started on etcd; following until elected"
        );
        let follow = tokio::spawn(follow_leader(
            store.clone(),
            advertise.clone(),
            role_tx.clone(),
        ));
        Ok(Step::Next(Candidate {
            store,
            member,
            role: role_tx,
            server,
            follow,
            advertise,
            config: manager,
            limits,
            ignore_lease_loss,
        }))
    }

    /// Waits to be elected; then fences the store on the leader key and loads the state.
    ///
    /// Steps down when the election fails, the lease runs out first, or the state cannot be
    /// taken over (etcd slow, or cut off from its members): starting again, this manager
    /// follows and is elected again if it should be. [`Step::Stopped`] (its lease given back)
    /// when the server stopped.
    pub async fn campaign(self) -> Result<Step<Leader>, HaError> {
        let Candidate {
            store,
            member,
            role,
            mut server,
            follow,
            advertise,
            config,
            limits,
            ignore_lease_loss,
        } = self;
        let mut lost = member.lost();
        let lead = tokio::select! {
            lead = member.campaign() => match lead {
                Ok(lead) => lead,
                Err(e) => return Ok(Step::StepDown(format!("the election failed ({e})"))),
            },
            _ = lost.changed() => {
                return Ok(Step::StepDown("its lease ran out before it was elected".into()));
            }
            r = &mut server => return finished(r, member).await.map(|()| Step::Stopped),
        };
        follow.abort();
        let elected = Instant::now();
        tracing::info!(addr = %advertise, "elected leader; loading the state from etcd");
        store.fence(lead.key.clone(), lead.create_revision);
        let fenced = store.fenced_out();
        let manager = match Manager::new(config, store.clone()).await {
            Ok(m) => m,
            Err(e @ orkestrator_core::Error::SecretKey(_)) => return Err(HaError::SecretKey(e)),
            Err(e) => {
                return Ok(Step::StepDown(format!(
                    "it could not take over the state ({e})"
                )));
            }
        };
        Ok(Step::Next(Leader {
            store,
            member,
            role,
            server,
            advertise,
            limits,
            ignore_lease_loss,
            manager,
            lost,
            fenced,
            elected,
        }))
    }
}

/// An elected manager with the state loaded, not yet serving the API.
pub struct Leader {
    store: Arc<EtcdStore>,
    member: Member,
    role: watch::Sender<Role>,
    server: Server,
    advertise: String,
    limits: Limits,
    ignore_lease_loss: bool,
    manager: Manager,
    lost: watch::Receiver<bool>,
    fenced: watch::Receiver<bool>,
    elected: Instant,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader")
            .field("advertise", &self.advertise)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl Leader {
    /// The manager, with the state loaded.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// This manager's name among the managers.
    pub fn name(&self) -> &str {
        &self.member.record().name
    }

    /// Serves the API as the leader (and keeps the manager told who the managers are), until
    /// its lease runs out or etcd refuses its commit (another manager leads): then, after a
    /// moment for the answers in flight (refusals, by now: the fence keeps any commit from
    /// landing) to reach their clients, it steps down. [`Step::Stopped`] (its lease given
    /// back) when the server stopped.
    pub async fn serve(self) -> Result<Step<Infallible>, HaError> {
        let Leader {
            store,
            member,
            role,
            mut server,
            advertise,
            limits,
            ignore_lease_loss,
            manager,
            mut lost,
            mut fenced,
            elected,
        } = self;
        tokio::spawn(keep_peers(manager.clone(), store, advertise.clone()));
        let _ = role.send(Role::Leader(router_with_limits(manager.clone(), limits)));
        tracing::info!(
            addr = %advertise,
            index = manager.durable_index(),
            ready_ms = elected.elapsed().as_millis() as u64,
            "leading: serving the API"
        );
        let why = tokio::select! {
            _ = lost.changed(), if !ignore_lease_loss => {
                "its lease ran out (was it paused, or cut off from etcd?)"
            }
            _ = fenced.changed() => "etcd refused its commit: another manager leads",
            r = &mut server => return finished(r, member).await.map(|()| Step::Stopped),
        };
        tracing::error!("lost the leadership: {why}; stepping down");
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok(Step::StepDown(why.to_owned()))
    }
}

/// How the server's task ended, as an error if it failed.
fn server_ended(r: Result<std::io::Result<()>, JoinError>) -> Result<(), HaError> {
    r.map_err(HaError::ServerStopped)?.map_err(HaError::Serve)
}

/// The server stopped: gives the lease back, so that another manager is elected at once.
async fn finished(
    r: Result<std::io::Result<()>, JoinError>,
    member: Member,
) -> Result<(), HaError> {
    member.leave().await;
    server_ended(r)
}

/// While following: keeps the leader's address current.
async fn follow_leader(store: Arc<EtcdStore>, own: String, role: watch::Sender<Role>) {
    let client = store.client();
    loop {
        let leader = match leader(&client, store.prefix()).await {
            Ok(l) => l.map(|r| r.addr).filter(|a| *a != own),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the leader");
                None
            }
        };
        role.send_if_modified(|r| match r {
            Role::Follower(current) if *current != leader => {
                tracing::info!(leader = ?leader, "following");
                *current = leader.clone();
                true
            }
            _ => false,
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// While leading: tells the manager who the managers are, for `/v1/health`.
async fn keep_peers(manager: Manager, store: Arc<EtcdStore>, own: String) {
    let client = store.client();
    loop {
        if let Ok(all) = managers(&client, store.prefix()).await {
            let peers = all
                .into_iter()
                .map(|m| ManagerPeer {
                    leader: m.addr == own,
                    name: m.name,
                    addr: m.addr,
                })
                .collect();
            manager.cluster().set_managers(peers);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
