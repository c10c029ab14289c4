//! The container runtime plug point. Docker (bollard) is the default implementation, in
//! `orkestrator-runtime`; [`FakeRuntime`](crate::fake::FakeRuntime) scripts exits and failures
//! for tests.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, RuntimeErrorKind};
use crate::spec::{PortMapping, Probe, Resources};

/// Label keys put on every container Orkestrator creates, so that a restarted worker can find and
/// adopt them.
pub mod labels {
    /// Marks a container as Orkestrator's; the value is the worker id.
    pub const WORKER: &str = "orkestrator.worker";
    /// The job's name.
    pub const JOB: &str = "orkestrator.job";
    /// The task's name.
    pub const TASK: &str = "orkestrator.task";
    /// The instance id.
    pub const INSTANCE: &str = "orkestrator.instance";
    /// The restart attempt that created this container.
    pub const ATTEMPT: &str = "orkestrator.attempt";
}

/// Everything needed to create one task's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The container's name (unique on the engine).
    pub name: String,
    /// The image reference.
    pub image: String,
    /// Command and arguments; empty keeps the image's default.
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Ports to expose and publish.
    pub ports: Vec<PortMapping>,
    /// Limits to apply (CPU and memory).
    pub resources: Resources,
    /// Labels (see [`labels`]).
    pub labels: BTreeMap<String, String>,
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited {
        /// The exit code.
        code: i64,
        /// The engine's error or reason, if any (e.g. `OOMKilled`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Any other engine state (paused, restarting, dead, removing).
    Other(String),
}

/// What the runtime knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The engine's container id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: ContainerState,
}

impl ContainerInfo {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A point-in-time resource usage sample of one container.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerStats {
    /// CPU use, in cores (1.0 = one core busy).
    pub cpu_cores: f64,
    /// Memory in use (the working set: usage minus inactive file cache), in bytes.
    pub memory_bytes: u64,
    /// Memory limit, in bytes.
    pub memory_limit_bytes: u64,
    /// CPU time used since the container started, in seconds.
    pub cpu_seconds_total: f64,
    /// Bytes received on the container's network interfaces.
    pub network_rx_bytes: u64,
    /// Bytes sent on the container's network interfaces.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
}

/// A container runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<()>;
    /// Makes sure the image is present, pulling it if it can.
    async fn ensure_image(&self, image: &str) -> Result<()>;
    /// Creates a container (the image must be present). Returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String>;
    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<()>;
    /// Stops a container: SIGTERM, then SIGKILL after `grace`. Stopping a stopped container is fine.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    /// Removes a container (force). Removing a missing container is fine.
    async fn remove(&self, id: &str) -> Result<()>;
    /// Inspects one container.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;
    /// Lists containers (running or not) carrying every one of `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>>;
    /// Samples resource usage.
    async fn stats(&self, id: &str) -> Result<ContainerStats>;
    /// The last `tail` lines of the container's output (stdout and stderr).
    async fn logs(&self, id: &str, tail: usize) -> Result<String>;

    /// Runs one health check against a running container: `Ok` when healthy, else why not.
    async fn probe(
        &self,
        id: &str,
        probe: &Probe,
        timeout: Duration,
    ) -> std::result::Result<(), String>;

    /// Returns once the container is not running (exited, removed, or gone), so that an exit is
    /// handled at once rather than on the next periodic check. It may also return early (a timeout);
    /// callers re-check the container's state. The default polls [`Runtime::inspect`] every 500 ms.
    async fn wait(&self, id: &str) -> Result<()> {
        loop {
            match self.inspect(id).await {
                Ok(c) if c.state == ContainerState::Running => {}
                Ok(_) => return Ok(()),
                Err(Error::Runtime {
                    kind: RuntimeErrorKind::NotFound,
                    ..
                }) => return Ok(()),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
