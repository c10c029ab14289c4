//! The worker agent: registers with the manager, heartbeats its resources and health, watches its
//! assignments and reconciles them with the containers its [`Runtime`] runs — creating, restarting
//! (per the task's restart policy) and stopping containers, and reporting every state change.
//!
//! Containers carry labels with the worker, job, task and instance, so a restarted agent adopts
//! what is already running instead of starting duplicates.
//!
//! Inside, by concern: `agent` (the loops, and carrying out actions with the runtime and the
//! transport), `plan` (the pure decision: assignments × containers × trackers × now → actions),
//! `restart` (the restart tracker: backoff, jitter, attempts, reset), `health` (health checks)
//! and `container` (container names and labels).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::ids::WorkerId;
use crate::runtime::Runtime;
use crate::spec::Resources;
use crate::transport::WorkerApi;

mod agent;
mod container;
mod health;
pub mod metrics;
mod plan;
mod restart;
#[cfg(test)]
mod tests;

pub use container::container_spec;
pub use metrics::LatestMetrics;

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
    /// How often task and host metrics are sampled and sent to the manager (see [`metrics`]).
    /// Default 5 s; zero turns metrics off.
    pub metrics_interval: Duration,
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
        }
    }
}

/// The worker agent.
pub struct WorkerAgent<T: WorkerApi, R: Runtime> {
    agent: Arc<agent::Agent<T, R>>,
}

impl<T: WorkerApi, R: Runtime> WorkerAgent<T, R> {
    /// A worker agent.
    pub fn new(
        config: WorkerConfig,
        transport: Arc<T>,
        runtime: Arc<R>,
        probe: Arc<dyn ResourceProbe>,
    ) -> Self {
        WorkerAgent {
            agent: Arc::new(agent::Agent::new(config, transport, runtime, probe)),
        }
    }

    /// The handle on the newest metrics the agent sampled (for the worker's own endpoint).
    pub fn metrics(&self) -> LatestMetrics {
        self.agent.latest_metrics()
    }

    /// Runs until `shutdown` resolves. Containers keep running when the agent stops.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        self.agent.run(shutdown).await;
        Ok(())
    }
}
