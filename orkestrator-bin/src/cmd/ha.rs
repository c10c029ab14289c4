//! `orkestrator server --store etcd://...`: one of several managers on one etcd.
//!
//! The manager's life among the others (following, the election, leading, when to step down)
//! is [`orkestrator_runtime::etcd::leader`]'s; this wires it: the flags, the cluster's tokens
//! and the embedded scheduler once elected, and stepping down by starting this process again.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use orkestrator_core::manager::ManagerConfig;
use orkestrator_core::scheduler::Scheduler;
use orkestrator_runtime::etcd::{Candidate, HaConfig, HaError, Step};
use orkestrator_runtime::http::tls::ClientTls;

use crate::cli::ServerArgs;
use crate::connect::etcd_options;
use crate::output::{exit, fail};

/// Everything `server` worked out before the store: passed on from `server::run`.
pub struct Prepared {
    pub config: ManagerConfig,
    pub algorithm: Option<Arc<dyn Scheduler>>,
    pub tls: Option<crate::launch::ServeTls>,
    pub listener: tokio::net::TcpListener,
    pub local: SocketAddr,
    pub scheme: &'static str,
}

pub async fn run(a: ServerArgs, url: &str, p: Prepared) -> Result<ExitCode> {
    let options = etcd_options(url, &a.etcd, "--store")?;
    let advertise = advertise_addr(&a, p.local, p.scheme)?;
    let forward_tls = match &p.tls {
        Some(t) => ClientTls::CaCert(t.ca.clone()).client_config()?,
        None => ClientTls::System.client_config()?,
    };
    let config = HaConfig {
        etcd: options,
        store_url: url.to_owned(),
        manager: p.config,
        lease: a.leader_lease,
        advertise,
        listener: p.listener,
        serve_tls: p.tls.as_ref().map(|t| t.config.clone()),
        forward_tls,
        limits: orkestrator_runtime::http::auth::Limits {
            requests: a.max_requests_per_credential,
            streams: a.max_streams_per_credential,
        },
        ignore_lease_loss: fault_ignore_lease_loss(),
    };
    let candidate = match Candidate::start(config, crate::signals::logged_shutdown("manager"))
        .await
        .map_err(ha_error)?
    {
        Step::Next(c) => c,
        Step::StepDown(why) => step_down(&why),
        Step::Stopped => return Ok(stopped()),
    };
    let leader = match candidate.campaign().await.map_err(ha_error)? {
        Step::Next(l) => l,
        Step::StepDown(why) => step_down(&why),
        Step::Stopped => return Ok(stopped()),
    };
    let creds = a
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::dirs::default_data_dir(a.port));
    if let Err(e) = crate::creds::bootstrap_shared(
        leader.manager(),
        &creds,
        p.tls.as_ref().map(|t| t.ca_digest),
        leader.name(),
    )
    .await
    {
        step_down(&format!("it could not make the cluster's tokens ({e:#})"));
    }
    crate::creds::publish(a.port, &creds)?;
    crate::launch::start_background(leader.manager(), p.algorithm);
    match leader.serve().await.map_err(ha_error)? {
        Step::Next(never) => match never {},
        Step::StepDown(why) => step_down(&why),
        Step::Stopped => Ok(stopped()),
    }
}

/// Says that the manager stopped (on a signal), as the single manager does.
fn stopped() -> ExitCode {
    tracing::info!("manager stopped");
    ExitCode::SUCCESS
}

/// `e` as the command reports it: etcd's errors as the [`orkestrator_core::Error`] they hold,
/// so that the exit code says what they are (TLS files: a usage error).
fn ha_error(e: HaError) -> anyhow::Error {
    match e {
        HaError::Etcd(e) => orkestrator_core::Error::from(e).into(),
        e => e.into(),
    }
}

/// Fault injection for the fencing test: with `ORKESTRATOR_FAULT_IGNORE_LEASE_LOSS=1` a leader
/// does not step down when its lease runs out, so that only the fence on its commits stops it.
fn fault_ignore_lease_loss() -> bool {
    std::env::var("ORKESTRATOR_FAULT_IGNORE_LEASE_LOSS").is_ok_and(|v| v == "1")
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
