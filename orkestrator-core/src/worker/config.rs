//! What a worker is given: its settings ([`WorkerConfig`]) and what its host has
//! ([`ResourceProbe`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::subnets::Ipv4Net;
use crate::ids::WorkerId;
use crate::spec::Resources;

/// Tells a worker what its host has.
pub trait ResourceProbe: Send + Sync + 'static {
    /// What the worker offers to tasks in all.
    fn total(&self) -> Resources;
    /// What the host has free right now.
    fn available(&self) -> Resources;
    /// A sample of the host for the metrics loop (its `at` is filled in by the caller). It may
    /// block briefly: the worker calls it off the async threads. The default derives CPU, memory
    /// and disk in use from [`total`](Self::total) minus [`available`](Self::available), with no
    /// load averages.
    fn node(&self) -> crate::metrics::NodeSample {
        let (total, free) = (self.total(), self.available());
        crate::metrics::NodeSample {
            at: 0,
            cpu_cores_used: total.cpu.saturating_sub(free.cpu).millis() as f64 / 1000.0,
            cpu_cores_total: total.cpu.millis() as f64 / 1000.0,
            memory_used_bytes: total.memory.bytes().saturating_sub(free.memory.bytes()),
            memory_total_bytes: total.memory.bytes(),
            disk_used_bytes: total.disk.bytes().saturating_sub(free.disk.bytes()),
            disk_total_bytes: total.disk.bytes(),
            ..crate::metrics::NodeSample::default()
        }
    }
}

/// A probe with fixed numbers (for tests and simulations, or to cap what a worker offers).
#[derive(Debug, Clone, Copy)]
pub struct StaticProbe(pub Resources);

impl ResourceProbe for StaticProbe {
    fn total(&self) -> Resources {
        self.0
    }
    fn available(&self) -> Resources {
        self.0
    }
}

/// The built-in worker label with the engine's ID ([`Runtime::engine_id`](crate::runtime::Runtime::engine_id),
/// e.g. Docker's `ABCD:EFGH:...`), so that a constraint `{ label: engine.id, equals: ... }` can
/// pin a job to one engine. It overrides an operator's `--label engine.id=...`.
pub const ENGINE_ID_LABEL: &str = "engine.id";

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker's id (stable across restarts: it is how containers are adopted).
    pub id: WorkerId,
    /// Where the worker's own endpoint listens, if any.
    pub address: Option<String>,
    /// Labels for placement constraints.
    pub labels: BTreeMap<String, String>,
    /// How long `stop` waits after SIGTERM before SIGKILL. Default 10 s.
    pub stop_grace: Duration,
    /// How often containers are checked even without news. Default 1 s.
    pub reconcile_interval: Duration,
    /// Longest long-poll for assignments. Default 30 s.
    pub watch_wait: Duration,
    /// Seed for the restart jitter (default: derived from the id).
    pub seed: u64,
    /// How often task and host metrics are sampled and sent to the manager (see
    /// [`metrics`](super::metrics)). Default 5 s; zero turns metrics off.
    pub metrics_interval: Duration,
    /// The pool the subnets of instance networks come from (`worker --network-pool`). Default
    /// [`DEFAULT_POOL`](super::subnets::DEFAULT_POOL), `10.213.0.0/16`.
    pub network_pool: Ipv4Net,
    /// A file in the format of Linux's `/proc/net/route` whose routes no instance subnet may
    /// overlap (none by default; the `orkestrator worker` binary reads the host's).
    pub routes_file: Option<PathBuf>,
    /// Where tasks' config files are written (a directory of the worker's own, under its data
    /// directory); none refuses tasks with files.
    pub files_dir: Option<PathBuf>,
    /// Where tasks' secrets are written (a directory of the worker's own on a tmpfs,
    /// `worker --secrets-dir`; the binary's default is `/dev/shm/orkestrator/WORKER`); none
    /// refuses tasks with secrets.
    pub secrets_dir: Option<PathBuf>,
    /// The host volumes this worker's operator offers to jobs, by name
    /// (`worker --host-volume NAME=/path[:ro]`).
    pub host_volumes: BTreeMap<String, super::host_volumes::HostVolume>,
}

impl WorkerConfig {
    /// Defaults for a worker named `id`.
    pub fn new(id: impl Into<WorkerId>) -> Self {
        let id: WorkerId = id.into();
        let seed = id.as_str().bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        WorkerConfig {
            seed,
            id,
            address: None,
            labels: BTreeMap::new(),
            stop_grace: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(1),
            watch_wait: Duration::from_secs(30),
            metrics_interval: Duration::from_secs(5),
            network_pool: super::subnets::DEFAULT_POOL
                .parse()
                .expect("the default pool is a network"),
            routes_file: None,
            files_dir: None,
            secrets_dir: None,
            host_volumes: BTreeMap::new(),
        }
    }
}
