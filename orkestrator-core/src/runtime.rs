//! The container runtime plug point. Docker (bollard) is the default implementation, in
//! `orkestrator-runtime`; [`FakeRuntime`](crate::fake::FakeRuntime) scripts exits and failures
//! for tests.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, RuntimeErrorKind};
use crate::spec::{HealthCheck, PortMapping, Probe, Resources};
use crate::units::ByteSize;

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
    /// On a network: the subnet it was made with (so that a restarted worker knows its pool's
    /// taken subnets without asking the engine's IPAM).
    pub const SUBNET: &str = "orkestrator.subnet";
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerNetwork {
    /// The engine's default network (Docker's default bridge): what containers made before
    /// networks per instance have, and what a runtime without networks gives.
    #[default]
    Default,
    /// No network: loopback only.
    None,
    /// A network made with [`Runtime::create_network`], reachable under `aliases`.
    Named {
        /// The network's name.
        name: String,
        /// The names the container answers to on it (its task name).
        aliases: Vec<String>,
    },
}

/// Something mounted into a container: a directory or file of the worker's own, a named volume,
/// or a tmpfs. Only the worker makes these (config files, volumes it manages): a job file never
/// names a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What is mounted.
    pub source: MountSource,
    /// Where it appears in the container (absolute).
    pub target: String,
    /// Whether the container may only read it.
    pub read_only: bool,
}

impl Mount {
    /// A bind mount of the worker's own `source` at `target`.
    pub fn bind(
        source: impl Into<std::path::PathBuf>,
        target: impl Into<String>,
        read_only: bool,
    ) -> Self {
        Mount {
            source: MountSource::Bind(source.into()),
            target: target.into(),
            read_only,
        }
    }
}

/// What a [`Mount`] puts in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSource {
    /// A host path the worker chose and owns (under its data directory, or a host volume its
    /// operator offered).
    Bind(std::path::PathBuf),
    /// A named volume made with [`Runtime::create_volume`].
    Volume(String),
    /// A tmpfs of at most `size_bytes`, private to the container and gone with it.
    Tmpfs {
        /// Its size bound, in bytes (the engine charges its pages to the container's memory).
        size_bytes: u64,
        /// The permission bits of its root (e.g. `0o1777`); none keeps the engine's default.
        mode: Option<u32>,
    },
}

/// A named volume to create (the engine's local driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Its name (unique on the engine).
    pub name: String,
    /// Labels (see [`labels`]): the worker, the job, the instance index, the volume's name.
    pub labels: BTreeMap<String, String>,
}

/// What the runtime knows about one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Where its data lives on the engine's host, when the runtime says.
    pub mountpoint: Option<std::path::PathBuf>,
}

impl VolumeInfo {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A network to create for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Its name (unique on the engine).
    pub name: String,
    /// Its IPv4 subnet in CIDR notation (`10.91.0.8/29`), from the worker's pool.
    pub subnet: String,
    /// Labels (see [`labels`]): the worker, the instance, the subnet.
    pub labels: BTreeMap<String, String>,
}

/// What the runtime knows about one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The engine's network id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its IPv4 subnets, in CIDR notation.
    pub subnets: Vec<String>,
}

impl NetworkInfo {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// Everything needed to create one task's container.
///
/// A runtime creates every container unprivileged and with `no-new-privileges`: there is no way
/// to ask for anything else.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// The most processes the container may have at once (0: no limit of Orkestrator's).
    pub pids_limit: u32,
    /// The user to run as; none runs as the image's user.
    pub user: Option<String>,
    /// Whether the root filesystem is read-only.
    pub read_only: bool,
    /// The entrypoint: `None` keeps the image's; an empty list clears it.
    pub entrypoint: Option<Vec<String>>,
    /// The working directory; none keeps the image's.
    pub working_dir: Option<String>,
    /// Whether a minimal init runs as PID 1 (Docker's `--init`).
    pub init: bool,
    /// The signal that asks the container to stop (`SIGTERM` when none); [`Runtime::stop`]
    /// sends it.
    pub stop_signal: Option<String>,
    /// Its network.
    pub network: ContainerNetwork,
    /// Bind mounts of the worker's own files and directories.
    pub mounts: Vec<Mount>,
    /// The size of `/dev/shm`; none keeps the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    /// Extra `/etc/hosts` entries: host name → IP address, or `host-gateway` for the engine
    /// host's address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_hosts: BTreeMap<String, String>,
    /// The engine's own health check, for a task whose check is the image's `HEALTHCHECK`
    /// ([`Probe::Image`]): the image's test with this timing. None leaves the image's check as
    /// the image has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_health_check: Option<EngineHealthCheck>,
}

/// The timing of the image's own `HEALTHCHECK` as the engine runs it (see
/// [`ContainerSpec::engine_health_check`]); the test is the image's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineHealthCheck {
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Failures in a row before the engine says the container is unhealthy.
    pub retries: u32,
    /// Time to boot, during which failures do not count (zero keeps the image's).
    pub start_period: Duration,
}

impl EngineHealthCheck {
    /// The engine's timing for `check`, when its probe is [`Probe::Image`].
    pub fn of(check: &HealthCheck) -> Option<Self> {
        (check.probe == Probe::Image).then_some(EngineHealthCheck {
            interval: check.interval,
            timeout: check.timeout,
            retries: check.failures,
            start_period: check.start_period,
        })
    }
}

/// The engine's health status of a container that has a health check ([`ContainerInfo::health`]).
pub mod health {
    /// The check has not passed yet (and the start period may still run).
    pub const STARTING: &str = "starting";
    /// The last check passed.
    pub const HEALTHY: &str = "healthy";
    /// The check failed as many times in a row as it allows.
    pub const UNHEALTHY: &str = "unhealthy";
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
    /// The engine's health status (see [`health`]) when the container has a health check of
    /// the engine's (an image's `HEALTHCHECK`); none without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
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
    /// CPU use, in cores (1.0 = one core busy), if the runtime measured it over an interval;
    /// 0 from a single reading (see [`Runtime::stats`]).
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

/// What [`Runtime::stream_logs`] reads of a container's output (stdout and stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only output written at or after this Unix time, in seconds.
    pub since: Option<i64>,
    /// Only the last `tail` lines of what was written before the call; `None` for all of it.
    pub tail: Option<usize>,
    /// Keep the stream open and pass new output on as it is written, until the container stops.
    pub follow: bool,
}

/// A container's output as it arrives, in chunks of bytes (not necessarily whole lines).
pub type LogStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<u8>>> + Send + 'static>>;

/// A container runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<()>;
    /// The engine's own ID (Docker's `docker info` ID), which the worker offers as its
    /// built-in label `engine.id`; none for a runtime that has none (the default).
    async fn engine_id(&self) -> Result<Option<String>> {
        Ok(None)
    }
    /// Makes sure the image is present, pulling it if it can.
    async fn ensure_image(&self, image: &str) -> Result<()>;
    /// Creates a container (the image must be present). Returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String>;
    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<()>;
    /// Stops a container: its stop signal (SIGTERM unless [`ContainerSpec::stop_signal`] says
    /// otherwise), then SIGKILL after `grace`. Stopping a stopped container is fine.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    /// Removes a container (force). Removing a missing container is fine.
    async fn remove(&self, id: &str) -> Result<()>;
    /// Inspects one container.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;
    /// Lists containers (running or not) carrying every one of `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>>;
    /// Samples resource usage: one cheap reading, no waiting. The counters
    /// ([`ContainerStats::cpu_seconds_total`], network, block I/O) are what matter;
    /// [`ContainerStats::cpu_cores`] may be 0 when the runtime takes a single reading (Docker's
    /// one-shot stats do), so callers compute CPU from the delta of `cpu_seconds_total` between
    /// two samples, as the worker's metrics loop does.
    async fn stats(&self, id: &str) -> Result<ContainerStats>;
    /// The last `tail` lines of the container's output (stdout and stderr).
    async fn logs(&self, id: &str, tail: usize) -> Result<String>;

    /// The container's output as a stream: what `options` selects of what is there, then (with
    /// [`LogOptions::follow`]) what it writes next, ending once the container stops. The default,
    /// for runtimes that cannot stream, reads [`Runtime::logs`] once: it neither follows nor
    /// filters by time.
    async fn stream_logs(&self, id: &str, options: &LogOptions) -> Result<LogStream> {
        let tail = options.tail.unwrap_or(crate::api::LogsQuery::MAX_TAIL);
        let text = self.logs(id, tail).await?;
        Ok(Box::pin(futures_util::stream::iter([
            Ok(text.into_bytes()),
        ])))
    }

    /// Creates a bridge network. The engine refusing `spec.subnet` because it overlaps a network
    /// it has is [`RuntimeErrorKind::SubnetTaken`], so that the caller moves on to another
    /// subnet. A runtime without networks refuses with [`RuntimeErrorKind::Rejected`].
    async fn create_network(&self, spec: &NetworkSpec) -> Result<String>;

    /// Removes a network (by id or name). Removing a missing network is fine.
    async fn remove_network(&self, id: &str) -> Result<()>;

    /// Lists networks carrying every one of `labels` (all networks for none).
    async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkInfo>>;

    /// Creates a named volume; creating one that exists (by name) returns it as it is.
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<VolumeInfo>;

    /// Removes a named volume. Removing a missing volume is fine; one that a container still
    /// uses is refused ([`RuntimeErrorKind::Rejected`]). Callers remove volumes only when told
    /// to: data is never deleted on a guess.
    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// Lists volumes carrying every one of `labels` (all volumes for none).
    async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<VolumeInfo>>;

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
