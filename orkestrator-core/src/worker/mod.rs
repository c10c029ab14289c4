//! The worker agent: registers with the manager, heartbeats its resources and health, watches its
//! assignments and reconciles them with the containers its [`Runtime`] runs — creating, restarting
//! (per the task's restart policy) and stopping containers, and reporting every state change.
//!
//! Containers carry labels with the worker, job, task and instance, so a restarted agent adopts
//! what is already running instead of starting duplicates.
//!
//! Inside, by concern: `agent` (the loops, and carrying out actions with the runtime and the
//! transport), `plan` (the pure decision: assignments × containers × trackers × now → actions),
//! `checks` (which health checks are due, and running them: their own loop, outside the
//! reconcile pass), `tracks` (what the agent remembers of every task), `restart` (the restart
//! tracker: backoff, jitter, attempts, reset), `health` (the health-check tracker: due times and
//! verdict), `container` (container names and labels), `order` (start order, stop order and
//! sidecars), `network` (each instance's network: made, adopted, removed) with `subnets` (the
//! pool), `files` (config files), `secrets` (secret files on a tmpfs) and `config` (the worker's settings and its host's resources).

use std::sync::Arc;

use crate::error::Result;
use crate::runtime::Runtime;
use crate::transport::WorkerApi;

mod agent;
mod checks;
mod config;
mod container;
mod files;
mod health;
pub mod host_volumes;
pub mod metrics;
mod network;
mod order;
mod plan;
mod restart;
pub mod secrets;
pub mod subnets;
#[cfg(test)]
mod tests;
mod tracks;
pub mod volumes;

pub use config::{ENGINE_ID_LABEL, ResourceProbe, StaticProbe, WorkerConfig};
pub use container::container_spec;
pub use metrics::LatestMetrics;

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
    ///
    /// # Errors
    /// The manager's refusal, when it refuses this worker for good (its name is taken by a
    /// worker with a credential of its own, its join token or credential is unknown, what
    /// answers is not a manager): trying again could not change that. An unreachable manager
    /// or one that cannot take the worker yet (`503`) is retried until `shutdown`.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        self.agent.run(shutdown).await
    }
}
