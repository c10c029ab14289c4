//! Launching: the API's listener, the TLS a server serves with, what runs beside the manager's
//! API (the embedded scheduler, the liveness and garbage-collection loops), the built-in
//! schedulers by name, and the host's resources as a worker offers them.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use orkestrator_core::ids::SchedulerId;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::Manager;
use orkestrator_core::metrics::NodeSample;
use orkestrator_core::scheduler::{Registry, Scheduler, SchedulerAgent};
use orkestrator_core::spec::Resources;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::ResourceProbe;
use orkestrator_runtime::http::tls::{CertificateDer, ServerConfig};
use orkestrator_runtime::probe::HostProbe;

use crate::cli::{TlsFiles, WorkerArgs};
use crate::output::{exit, fail};

/// What a server (the manager, a worker's endpoint) serves TLS with.
pub struct ServeTls {
    /// The certificate chain file (`--tls-cert`).
    pub cert: std::path::PathBuf,
    /// The rustls configuration.
    pub config: Arc<ServerConfig>,
    /// The CA that ends its chain: what the manager verifies its workers against.
    pub ca: CertificateDer<'static>,
    /// That CA's SHA-256 digest: what clients and joining workers can verify the server by.
    pub ca_digest: [u8; 32],
}

/// Loads `--tls-cert` and `--tls-key` (`None` when neither is given; clap requires both or
/// neither).
pub fn serve_tls(files: &TlsFiles) -> Result<Option<ServeTls>> {
    let (Some(cert), Some(key)) = (&files.tls_cert, &files.tls_key) else {
        return Ok(None);
    };
    let usage =
        |e: orkestrator_core::Error| fail(exit::USAGE, format!("--tls-cert/--tls-key: {e}"));
    use orkestrator_runtime::http::tls as rt;
    let config = rt::server_config(cert, key).map_err(usage)?;
    let ca = rt::ca_of_chain(cert).map_err(usage)?;
    Ok(Some(ServeTls {
        cert: cert.clone(),
        config,
        ca_digest: rt::cert_digest(&ca),
        ca,
    }))
}

/// Binds the API's listener, with an error that says what to do.
pub async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} (is another manager running? pick another with --port)"))
}

/// Starts what runs beside the API: the embedded scheduler (over the in-process transport, like
/// any other scheduler) and the liveness and garbage-collection loops.
///
/// The embedded scheduler gets a thread (and a small tokio runtime) of its own: placing a batch is
/// CPU work that can take a good part of a second on a large cluster, and on the API's runtime it
/// would hold up heartbeats and watches queued behind it on the same thread.
pub fn start_background(manager: &Manager, embedded_scheduler: Option<Arc<dyn Scheduler>>) {
    if let Some(algorithm) = embedded_scheduler {
        let transport = Arc::new(LocalTransport::new(manager.clone()));
        let agent = SchedulerAgent::new(SchedulerId::new("embedded"), transport, algorithm);
        let spawned = std::thread::Builder::new()
            .name("embedded-scheduler".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        if let Err(e) = rt.block_on(agent.run(std::future::pending())) {
                            tracing::error!(error = %e, "the embedded scheduler stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the embedded scheduler"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the embedded scheduler's thread");
        }
    }
    tokio::spawn(manager.clone().cluster().run_liveness_checks());
    tokio::spawn(manager.clone().cluster().run_gc());
}

/// The built-in scheduler named `name`, or an error that lists the names.
pub fn scheduler_named(name: &str) -> Result<Arc<dyn Scheduler>> {
    let registry = Registry::builtin();
    registry.get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown scheduler {name:?} (use one of: {})",
            registry.names().join(", ")
        )
    })
}

/// The host's resources from sysinfo, capped by `--cpu`, `--memory`, `--disk`; host samples for
/// the metrics loop (uncapped: what the host really has and uses).
pub struct SysProbe {
    probe: Mutex<HostProbe>,
    /// A probe of its own, so that heartbeats and metrics each measure CPU over their own period.
    node: Mutex<HostProbe>,
    total: Resources,
}

impl SysProbe {
    pub fn new(a: &WorkerArgs) -> Result<Self> {
        Self::with_caps(a.cpu.as_deref(), a.memory.as_deref(), a.disk.as_deref())
    }

    pub fn with_caps(cpu: Option<&str>, memory: Option<&str>, disk: Option<&str>) -> Result<Self> {
        let mut probe = HostProbe::new();
        let mut total = probe.total();
        if let Some(c) = cpu {
            total.cpu = Cpu::parse(c).map_err(|e| anyhow::anyhow!("--cpu: {e}"))?;
        }
        if let Some(m) = memory {
            total.memory = ByteSize::parse(m).map_err(|e| anyhow::anyhow!("--memory: {e}"))?;
        }
        if let Some(d) = disk {
            total.disk = ByteSize::parse(d).map_err(|e| anyhow::anyhow!("--disk: {e}"))?;
        }
        Ok(SysProbe {
            probe: Mutex::new(probe),
            node: Mutex::new(HostProbe::new()),
            total,
        })
    }
}

impl ResourceProbe for SysProbe {
    fn total(&self) -> Resources {
        self.total
    }

    fn available(&self) -> Resources {
        let mut p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        let a = p.available();
        Resources {
            cpu: a.cpu.min(self.total.cpu),
            memory: a.memory.min(self.total.memory),
            disk: a.disk.min(self.total.disk),
        }
    }

    fn node(&self) -> NodeSample {
        self.node.lock().unwrap_or_else(|e| e.into_inner()).node()
    }
}
