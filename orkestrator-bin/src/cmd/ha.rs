//! `orkestrator server --store etcd://...`: one of several managers on one etcd.
//!
//! Each manager joins the election on a lease of `--leader-lease` and serves the API at once:
//! while it follows, it forwards every request to the leader (and answers 503 `no_leader` while
//! none is known); once elected, it fences its store on its leader key, loads the state, and
//! serves the API itself. A leader that loses its lease (paused, cut off from etcd) or whose
//! commit is refused by the fence steps down by starting itself again as a follower: nothing of
//! the old leader's memory survives, the way Kubernetes' controllers exit when they lose their
//! lease. Its fenced store has already made sure it committed nothing after losing.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use orkestrator_core::api::ManagerPeer;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::Scheduler;
use orkestrator_runtime::EtcdStore;
use orkestrator_runtime::etcd::{self, EtcdOptions, ManagerRecord, Member};
use orkestrator_runtime::http::forward::{Forwarder, Role, front};
use orkestrator_runtime::http::server::ServeOptions;
use tokio::sync::watch;

use crate::cli::{EtcdArgs, ServerArgs};
use crate::output::{exit, fail};

/// Everything `server` worked out before the store: passed on from `server::run`.
pub struct Prepared {
    pub config: ManagerConfig,
    pub algorithm: Option<Arc<dyn Scheduler>>,
    pub tls: Option<super::ServeTls>,
    pub listener: tokio::net::TcpListener,
    pub local: SocketAddr,
    pub scheme: &'static str,
}

/// The etcd options of `url` and `args`; `flag` names the URL's flag in errors.
pub fn etcd_options(url: &str, args: &EtcdArgs, flag: &str) -> Result<EtcdOptions> {
    let mut options = EtcdOptions::from_url(url)
        .map_err(|e| fail(exit::USAGE, format!("{flag}: {e}")))?
        .with_prefix(&args.etcd_prefix);
    options.ca_file = args.etcd_ca_file.clone();
    options.client_cert = args.etcd_cert.clone().zip(args.etcd_key.clone());
    options.user = args.etcd_user.clone().zip(args.etcd_password.clone());
    Ok(options)
}

pub async fn run(a: ServerArgs, url: &str, p: Prepared) -> Result<ExitCode> {
    let options = etcd_options(url, &a.etcd, "--store")?;
    let advertise = advertise_addr(&a, p.local, p.scheme)?;
    // The API answers from now on: refused while etcd cannot be reached, forwarded while
    // following, served once leading.
    let (role_tx, role) = watch::channel(Role::Down("etcd has not answered yet".into()));
    let tls_client = match &p.tls {
        Some(t) => {
            orkestrator_runtime::http::tls::ClientTls::CaCert(t.ca.clone()).client_config()?
        }
        None => orkestrator_runtime::http::tls::ClientTls::System.client_config()?,
    };
    // Job reads a follower answers itself, from its warm copy of the state (once it has one).
    let replica_source: Arc<std::sync::OnceLock<Arc<EtcdStore>>> = Arc::default();
    let replicas: orkestrator_runtime::http::forward::Replicas = {
        let source = replica_source.clone();
        Arc::new(move |min| source.get()?.replica(min))
    };
    let front = front(role, Forwarder::new(tls_client), Some(replicas));
    let serve_tls = p.tls.as_ref().map(|t| t.config.clone());
    let mut server = tokio::spawn(orkestrator_runtime::http::server::serve_app(
        p.listener,
        front,
        super::shutdown_signal(),
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
            let store = Arc::new(EtcdStore::connect(options.clone()).await?);
            let member = Member::join(
                store.client(),
                store.prefix(),
                record.clone(),
                a.leader_lease,
            )
            .await?;
            Ok::<_, orkestrator_core::Error>((store, member))
        };
        tokio::select! {
            r = joined => match r {
                Ok(joined) => break joined,
                Err(e) if is_setup_error(&e) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot join the managers in etcd; retrying");
                    let _ = role_tx.send(Role::Down(e.to_string()));
                }
            },
            r = &mut server => {
                r.context("the API server stopped")??;
                return Ok(ExitCode::SUCCESS);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // A warm copy of the state while following, so that it leads at once when elected.
    store.follow();
    let _ = replica_source.set(store.clone());
    let _ = role_tx.send(Role::Follower(None));
    tracing::info!(
        addr = %advertise,
        store = %url,
        prefix = store.prefix(),
        "manager started on etcd; following until elected"
    );
    let follow = tokio::spawn(follow_leader(
        store.clone(),
        advertise.clone(),
        role_tx.clone(),
    ));

    let mut lost = member.lost();
    let lead = tokio::select! {
        lead = member.campaign() => match lead {
            Ok(lead) => lead,
            Err(e) => step_down(&format!("the election failed ({e})")),
        },
        _ = lost.changed() => step_down("its lease ran out before it was elected"),
        r = &mut server => return finished(r, member).await,
    };
    follow.abort();
    let elected = std::time::Instant::now();
    tracing::info!(addr = %advertise, "elected leader; loading the state from etcd");
    store.fence(lead.key.clone(), lead.create_revision);
    let mut fenced = store.fenced_out();
    // Trouble now (etcd slow, or cut off from its members) is a reason to step down, not to
    // stop: starting again, this manager follows and is elected again if it should be.
    let manager = match Manager::new(p.config, store.clone()).await {
        Ok(m) => m,
        Err(e) => step_down(&format!("it could not take over the state ({e})")),
    };
    let creds = a
        .data_dir
        .clone()
        .unwrap_or_else(|| super::default_data_dir(a.port));
    let name = member.record().name.clone();
    if let Err(e) =
        crate::creds::bootstrap_shared(&manager, &creds, p.tls.as_ref().map(|t| t.ca_digest), &name)
            .await
    {
        step_down(&format!("it could not make the cluster's tokens ({e:#})"));
    }
    crate::creds::publish(a.port, &creds)?;
    super::server::start_background(&manager, p.algorithm);
    tokio::spawn(keep_peers(
        manager.clone(),
        store.clone(),
        advertise.clone(),
    ));
    let limits = orkestrator_runtime::http::auth::Limits {
        requests: a.max_requests_per_credential,
        streams: a.max_streams_per_credential,
    };
    let _ = role_tx.send(Role::Leader(
        orkestrator_runtime::http::server::router_with_limits(manager.clone(), limits),
    ));
    tracing::info!(
        addr = %advertise,
        index = manager.durable_index(),
        ready_ms = elected.elapsed().as_millis() as u64,
        "leading: serving the API"
    );
    tokio::select! {
        _ = lost.changed(), if !fault_ignore_lease_loss() => {
            step_down_after_answers("its lease ran out (was it paused, or cut off from etcd?)").await
        }
        _ = fenced.changed() => {
            step_down_after_answers("etcd refused its commit: another manager leads").await
        }
        r = &mut server => finished(r, member).await,
    }
}

async fn finished(
    r: std::result::Result<std::io::Result<()>, tokio::task::JoinError>,
    member: Member,
) -> Result<ExitCode> {
    // Shutting down: give the lease back so that another manager is elected at once.
    member.leave().await;
    r.context("the API server stopped")??;
    Ok(ExitCode::SUCCESS)
}

/// Fault injection for the fencing test: with `ORKESTRATOR_FAULT_IGNORE_LEASE_LOSS=1` a leader
/// does not step down when its lease runs out, so that only the fence on its commits stops it.
fn fault_ignore_lease_loss() -> bool {
    std::env::var("ORKESTRATOR_FAULT_IGNORE_LEASE_LOSS").is_ok_and(|v| v == "1")
}

/// [`step_down`], after a moment for the answers in flight (refusals, by now: the fence keeps
/// any commit from landing) to reach their clients.
async fn step_down_after_answers(why: &str) -> ! {
    tracing::error!("lost the leadership: {why}; stepping down");
    tokio::time::sleep(Duration::from_millis(250)).await;
    step_down(why)
}

/// Steps down by starting this process again (same arguments, same pid) as a follower.
fn step_down(why: &str) -> ! {
    tracing::error!("lost the leadership: {why}; starting again as a follower");
    let exe = std::env::current_exe();
    #[cfg(unix)]
    if let Ok(exe) = &exe {
        use std::os::unix::process::CommandExt;
        let e = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec();
        tracing::error!(error = %e, "cannot start again; exiting");
    }
    std::process::exit(exit::FAILED.into());
}

/// Whether connecting to etcd failed for a reason that waiting does not fix (its limits, the
/// stored format, TLS files, credentials): those stop the manager with the message.
fn is_setup_error(e: &orkestrator_core::Error) -> bool {
    let m = e.to_string();
    matches!(e, orkestrator_core::Error::Tls { .. })
        || m.contains("--max-txn-ops")
        || m.contains("--max-request-bytes")
        || m.contains("newer than this build")
        || m.contains("authentication failed")
        || m.contains("user name is empty")
        || m.contains("permission denied")
}

/// The address the others reach this manager at.
fn advertise_addr(a: &ServerArgs, local: SocketAddr, scheme: &str) -> Result<String> {
    if let Some(addr) = &a.advertise_addr {
        let addr = if addr.contains("://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("{scheme}://{addr}")
        };
        let rest = addr.split_once("://").map_or("", |(_, r)| r);
        let ok = (addr.starts_with("http://") || addr.starts_with("https://"))
            && rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(fail(
                exit::USAGE,
                format!("--advertise-addr {addr:?} is not an address: write http(s)://HOST:PORT"),
            ));
        }
        return Ok(addr);
    }
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    Ok(format!("{scheme}://{host}:{}", local.port()))
}

/// While following: keeps the leader's address current.
async fn follow_leader(store: Arc<EtcdStore>, own: String, role: watch::Sender<Role>) {
    let client = store.client();
    loop {
        let leader = match etcd::leader(&client, store.prefix()).await {
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
        if let Ok(all) = etcd::managers(&client, store.prefix()).await {
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
