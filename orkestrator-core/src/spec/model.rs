//! The job model's types: [`Job`], its [`Task`]s and their parts. Values are built only by
//! validation (see [`parse_job`](super::parse_job)), so they are always valid.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::storage::{Mount, SecretRef, Volume, VolumeKind};
use super::together::{Condition, ConfigFile, Network};
use super::tree;
use crate::ids::{JobId, TaskName};
use crate::units::{ByteSize, Cpu};

/// A job: one or more tasks that run together on one worker.
///
/// Deserializing a `Job` (as the manager's store and the API do) reads the file's shape and
/// checks every rule but the ones that only new submissions are held to ([`MIN_CPU`](super::MIN_CPU)), so that a
/// spec accepted once is never refused when it is read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "tree::At<tree::Plain>")]
pub struct Job {
    /// The job's name: a DNS label, unique in the cluster.
    pub name: JobId,
    /// How many instances to run (1 to 1000, default 1). Each instance is all the tasks, placed
    /// together on one worker; instances of one job spread across workers where they fit.
    pub count: u32,
    /// Conditions on worker labels that a worker must meet to run the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// The tasks, at least one, with distinct names.
    pub tasks: Vec<Task>,
    /// How the instance's tasks are networked (default: a bridge network of the instance's own).
    #[serde(default, skip_serializing_if = "Network::is_default")]
    pub network: Network,
    /// The job's volumes, by name: each instance has its own, which its tasks mount by name
    /// ([`Task::mounts`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
}

/// A condition on a worker label (`worker --label zone=a`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Constraint {
    /// The label key.
    pub label: String,
    /// The test.
    #[serde(flatten)]
    pub op: ConstraintOp,
}

/// How a [`Constraint`] tests its label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintOp {
    /// The label is present with this value.
    Equals(String),
    /// The label is absent, or has another value.
    NotEquals(String),
}

impl Constraint {
    /// Whether a worker with `labels` meets the constraint.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label);
        match &self.op {
            ConstraintOp::Equals(want) => v == Some(want),
            ConstraintOp::NotEquals(avoid) => v != Some(avoid),
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op {
            ConstraintOp::Equals(v) => write!(f, "{}={v}", self.label),
            ConstraintOp::NotEquals(v) => write!(f, "{}!={v}", self.label),
        }
    }
}

impl Job {
    /// What a worker must have free to run one instance of the job: its tasks' resources, each
    /// task's memory with the tmpfs it mounts (the engine charges tmpfs pages to the container),
    /// and the disk its named volumes say they take ([`Job::volume_disk`]).
    pub fn resources(&self) -> Resources {
        let tasks = self.tasks.iter().fold(Resources::ZERO, |acc, t| {
            let mut r = t.resources;
            r.memory = t.memory_with_tmpfs(self);
            acc.saturating_add(&r)
        });
        Resources {
            disk: tasks.disk.saturating_add(self.volume_disk()),
            ..tasks
        }
    }

    /// The host ports the job binds (a worker can run it only if all are free).
    pub fn host_ports(&self) -> impl Iterator<Item = (u16, Protocol)> + '_ {
        self.tasks.iter().flat_map(|t| {
            t.ports
                .iter()
                .filter_map(|p| p.host.map(|h| (h, p.protocol)))
        })
    }

    /// Looks up a task by name.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name.as_str() == name)
    }

    /// Looks up a volume by name.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.get(name)
    }

    /// The names of the job's `type: volume` volumes (named volumes, kept per instance index).
    pub fn named_volumes(&self) -> impl Iterator<Item = &str> {
        self.volumes
            .iter()
            .filter(|(_, v)| matches!(v.kind, VolumeKind::Volume { .. }))
            .map(|(n, _)| n.as_str())
    }

    /// The disk that one instance's `type: volume` volumes reserve on a worker: the sum of their
    /// `size`s (a volume without one reserves nothing). Reserved, not enforced.
    pub fn volume_disk(&self) -> ByteSize {
        self.volumes
            .values()
            .filter_map(|v| match v.kind {
                VolumeKind::Volume { size, .. } => size,
                _ => None,
            })
            .fold(ByteSize::ZERO, ByteSize::saturating_add)
    }

    /// The host volumes a worker must offer to run the job (`worker --host-volume NAME=...`),
    /// each once, with whether every mount of it is read-only (then a read-only offer will do).
    pub fn host_volumes(&self) -> BTreeMap<&str, bool> {
        let mut out: BTreeMap<&str, bool> = BTreeMap::new();
        for t in &self.tasks {
            for m in &t.mounts {
                let Some(v) = self.volumes.get(&m.volume) else {
                    continue;
                };
                if let VolumeKind::Host { source } = &v.kind {
                    let read_only = v.read_only || m.read_only;
                    let e = out.entry(source.as_str()).or_insert(true);
                    *e = *e && read_only;
                }
            }
        }
        out
    }

    /// The names of the secrets the job's tasks use (each once): `secret rm` asks it which jobs
    /// still use a secret.
    pub fn secret_names(&self) -> std::collections::BTreeSet<&str> {
        self.tasks
            .iter()
            .flat_map(|t| t.secrets.iter().map(|s| s.name.as_str()))
            .collect()
    }
}

/// One container.
///
/// Every container runs with `no-new-privileges` and is never privileged (there is no field to
/// ask for either). It serializes in the file's shape: [`Task::pids`] is written inside
/// `resources` (`resources: { pids: 4096 }`), although it is not part of the [`Resources`] that
/// placement adds up. It is read only as part of a [`Job`], which checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task's name: a DNS label, unique within its job.
    pub name: TaskName,
    /// The image reference, with a tag or digest (`busybox:1.36`, `registry:5000/app@sha256:…`).
    pub image: String,
    /// The command and its arguments; empty runs the image's default command.
    pub command: Vec<String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Ports the container listens on and, optionally, the host ports they are published on.
    pub ports: Vec<PortMapping>,
    /// What the task needs from its worker.
    pub resources: Resources,
    /// What to do when the container exits.
    pub restart: RestartPolicy,
    /// How to tell that the running container is healthy; none means running is healthy.
    pub health_check: Option<HealthCheck>,
    /// The most processes (threads included) the container may have at once: written as
    /// `resources.pids`, default [`Task::DEFAULT_PIDS`], enforced as the container's PID limit so
    /// that a fork bomb stays inside it. Not reserved on the worker.
    pub pids: u32,
    /// The user the container runs as (`1000`, `1000:1000`, `app` or `app:app`), never root;
    /// none runs as the image's user.
    pub user: Option<String>,
    /// Whether the container's root filesystem is read-only.
    pub read_only: bool,
    /// The entrypoint: `None` keeps the image's; an empty list clears it. [`Task::command`] is
    /// then its arguments (Docker's CMD).
    pub entrypoint: Option<Vec<String>>,
    /// The working directory (an absolute path); none keeps the image's.
    pub working_dir: Option<String>,
    /// Tasks of the same job this one waits for before its first start, with the condition.
    pub depends_on: BTreeMap<TaskName, Condition>,
    /// A sidecar does not keep its instance from completing: once every other task has
    /// completed, the sidecars are stopped and the instance is `Completed`.
    pub sidecar: bool,
    /// The signal that asks the container to stop (`SIGTERM` when none).
    pub stop_signal: Option<String>,
    /// How long the container has to stop before it is killed; none takes the worker's
    /// `--stop-grace`. At most [`MAX_STOP_GRACE`](super::MAX_STOP_GRACE).
    pub stop_grace: Option<Duration>,
    /// Whether a minimal init runs as PID 1 (Docker's `--init`), forwarding signals and reaping.
    pub init: bool,
    /// Config files written into the container, read-only.
    pub files: Vec<ConfigFile>,
    /// The job's volumes this task mounts, and where.
    pub mounts: Vec<Mount>,
    /// The secrets this task reads, each from a file.
    pub secrets: Vec<SecretRef>,
    /// More names the task answers to on its instance's network, besides its own name: each a
    /// DNS label, unique in the job (no other task's name or alias). Only with network mode
    /// `bridge`.
    pub aliases: Vec<String>,
    /// The size of the container's `/dev/shm` (Docker's `ShmSize`); none keeps the engine's
    /// default (64 MiB). At most [`MAX_SHM`](super::MAX_SHM). Its pages count against the
    /// container's memory limit, as Docker counts them; it is not reserved on the worker.
    pub shm_size: Option<ByteSize>,
    /// Labels put on the container besides Orkestrator's own (whose keys start with
    /// `orkestrator`, and which a task may not set).
    pub labels: BTreeMap<String, String>,
    /// Extra entries of the container's `/etc/hosts`: a host name and the IP address it
    /// resolves to, or `host-gateway` for the worker host's address (Docker's `ExtraHosts`).
    /// Addresses are kept in their canonical text.
    pub extra_hosts: BTreeMap<String, String>,
}

impl Task {
    /// Default process limit of a task that names none.
    pub const DEFAULT_PIDS: u32 = 4096;

    /// The signal that asks the container to stop: [`Task::stop_signal`] or `SIGTERM`.
    pub fn stop_signal(&self) -> &str {
        self.stop_signal.as_deref().unwrap_or("SIGTERM")
    }

    /// The memory of the task's tmpfs mounts: each mount of a `type: tmpfs` volume of `job` is
    /// a tmpfs of its own, whose pages the engine charges to the container's memory.
    pub fn tmpfs_memory(&self, job: &Job) -> ByteSize {
        self.mounts
            .iter()
            .filter_map(|m| job.volumes.get(&m.volume).and_then(Volume::tmpfs_size))
            .fold(ByteSize::ZERO, ByteSize::saturating_add)
    }

    /// The task's memory with its tmpfs mounts counted in ([`Task::tmpfs_memory`]): what its
    /// container's memory limit and reservation are to be.
    pub fn memory_with_tmpfs(&self, job: &Job) -> ByteSize {
        self.resources.memory.saturating_add(self.tmpfs_memory(job))
    }

    /// Whether another task depends on this one completing successfully (an init task).
    pub fn is_init_of(&self, job: &Job) -> bool {
        job.tasks
            .iter()
            .any(|t| t.depends_on.get(&self.name) == Some(&Condition::CompletedSuccessfully))
    }
}

impl Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// `resources` as the file writes it: what is reserved, and the process limit.
        #[derive(Serialize)]
        struct FileResources {
            cpu: Cpu,
            memory: ByteSize,
            disk: ByteSize,
            pids: u32,
        }
        /// The task as the file writes it.
        #[derive(Serialize)]
        struct FileTask<'a> {
            name: &'a TaskName,
            image: &'a str,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            command: &'a [String],
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            env: &'a BTreeMap<String, String>,
            #[serde(skip_serializing_if = "<[PortMapping]>::is_empty")]
            ports: &'a [PortMapping],
            resources: FileResources,
            restart: &'a RestartPolicy,
            #[serde(skip_serializing_if = "Option::is_none")]
            health_check: &'a Option<HealthCheck>,
            #[serde(skip_serializing_if = "Option::is_none")]
            user: &'a Option<String>,
            read_only: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            entrypoint: &'a Option<Vec<String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            working_dir: &'a Option<String>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            depends_on: BTreeMap<&'a TaskName, DependsOnEntry>,
            #[serde(skip_serializing_if = "is_false")]
            sidecar: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            stop_signal: &'a Option<String>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                serialize_with = "optional_duration"
            )]
            stop_grace: &'a Option<Duration>,
            #[serde(skip_serializing_if = "is_false")]
            init: bool,
            #[serde(skip_serializing_if = "<[ConfigFile]>::is_empty")]
            files: &'a [ConfigFile],
            #[serde(skip_serializing_if = "<[Mount]>::is_empty")]
            mounts: &'a [Mount],
            #[serde(skip_serializing_if = "<[SecretRef]>::is_empty")]
            secrets: &'a [SecretRef],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            aliases: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            shm_size: &'a Option<ByteSize>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            labels: &'a BTreeMap<String, String>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            extra_hosts: &'a BTreeMap<String, String>,
        }
        /// One `depends_on` entry as the file writes it: `{ condition: healthy }`.
        #[derive(Serialize)]
        struct DependsOnEntry {
            condition: Condition,
        }
        fn is_false(b: &bool) -> bool {
            !*b
        }
        fn optional_duration<S: serde::Serializer>(
            d: &&Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => crate::units::duration::serialize(d, s),
                None => s.serialize_none(),
            }
        }
        FileTask {
            name: &self.name,
            image: &self.image,
            command: &self.command,
            env: &self.env,
            ports: &self.ports,
            resources: FileResources {
                cpu: self.resources.cpu,
                memory: self.resources.memory,
                disk: self.resources.disk,
                pids: self.pids,
            },
            restart: &self.restart,
            health_check: &self.health_check,
            user: &self.user,
            read_only: self.read_only,
            entrypoint: &self.entrypoint,
            working_dir: &self.working_dir,
            depends_on: self
                .depends_on
                .iter()
                .map(|(k, c)| (k, DependsOnEntry { condition: *c }))
                .collect(),
            sidecar: self.sidecar,
            stop_signal: &self.stop_signal,
            stop_grace: &self.stop_grace,
            init: self.init,
            files: &self.files,
            mounts: &self.mounts,
            secrets: &self.secrets,
            aliases: &self.aliases,
            shm_size: &self.shm_size,
            labels: &self.labels,
            extra_hosts: &self.extra_hosts,
        }
        .serialize(s)
    }
}

/// A health check: run every `interval`; after `failures` failures in a row the task is
/// unhealthy and is restarted under its restart policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Time between checks. Default `10s`.
    #[serde(with = "crate::units::duration")]
    pub interval: Duration,
    /// How long one check may take. Default `2s`.
    #[serde(with = "crate::units::duration")]
    pub timeout: Duration,
    /// Failures in a row that make the task unhealthy. Default 3.
    pub failures: u32,
    /// Time to boot: failures during it do not count, and the first success ends it, as in
    /// Docker. Default `0s`.
    #[serde(
        default,
        with = "crate::units::duration",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub start_period: Duration,
    /// What to check.
    #[serde(flatten)]
    pub probe: Probe,
}

impl HealthCheck {
    /// Default time between checks.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// Default timeout of one check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default failures in a row before the task is unhealthy.
    pub const DEFAULT_FAILURES: u32 = 3;
}

/// What a health check checks.
///
/// It serializes in the file's shape: `{ http: { port, path } }`, `{ tcp: { port } }`,
/// `{ exec: [...] }` or `{ image: true }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "ProbeFile", try_from = "ProbeFile")]
pub enum Probe {
    /// An HTTP GET to the container's port answers 2xx or 3xx.
    Http {
        /// The container port.
        port: u16,
        /// The path (default `/`).
        path: String,
    },
    /// A TCP connection to the container's port succeeds.
    Tcp {
        /// The container port.
        port: u16,
    },
    /// A command run inside the container exits 0.
    Exec(Vec<String>),
    /// The image's own `HEALTHCHECK`, as the engine runs it (written `image: true`): the
    /// container is created with the check's interval, timeout, failures and start period, and
    /// the worker reads the engine's verdict rather than probing itself. A container whose image
    /// has no `HEALTHCHECK` fails the check.
    Image,
}

/// [`Probe`] as the file writes it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProbeFile {
    Http { port: u16, path: String },
    Tcp { port: u16 },
    Exec(Vec<String>),
    Image(bool),
}

impl From<Probe> for ProbeFile {
    fn from(p: Probe) -> Self {
        match p {
            Probe::Http { port, path } => ProbeFile::Http { port, path },
            Probe::Tcp { port } => ProbeFile::Tcp { port },
            Probe::Exec(cmd) => ProbeFile::Exec(cmd),
            Probe::Image => ProbeFile::Image(true),
        }
    }
}

impl TryFrom<ProbeFile> for Probe {
    type Error = &'static str;
    fn try_from(p: ProbeFile) -> Result<Self, Self::Error> {
        Ok(match p {
            ProbeFile::Http { port, path } => Probe::Http { port, path },
            ProbeFile::Tcp { port } => Probe::Tcp { port },
            ProbeFile::Exec(cmd) => Probe::Exec(cmd),
            ProbeFile::Image(true) => Probe::Image,
            ProbeFile::Image(false) => {
                return Err("image: false is not a probe (write image: true, or another probe)");
            }
        })
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Http { port, path } => write!(f, "http :{port}{path}"),
            Probe::Tcp { port } => write!(f, "tcp :{port}"),
            Probe::Exec(cmd) => write!(f, "exec {}", cmd.join(" ")),
            Probe::Image => f.write_str("the image's HEALTHCHECK"),
        }
    }
}

/// Compute resources: reserved on a worker when a task is placed, and enforced as limits where the
/// runtime can (CPU and memory on Docker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// CPU, in cores or millicores. Default `100m`.
    pub cpu: Cpu,
    /// Memory. Default `128Mi`.
    pub memory: ByteSize,
    /// Disk. Default `256Mi`.
    pub disk: ByteSize,
}

impl Resources {
    /// No resources at all.
    pub const ZERO: Resources = Resources {
        cpu: Cpu::ZERO,
        memory: ByteSize::ZERO,
        disk: ByteSize::ZERO,
    };

    /// Default CPU for a task that names none.
    pub const DEFAULT_CPU: Cpu = Cpu::from_millis(100);
    /// Default memory for a task that names none.
    pub const DEFAULT_MEMORY: ByteSize = ByteSize::mib(128);
    /// Default disk for a task that names none.
    pub const DEFAULT_DISK: ByteSize = ByteSize::mib(256);

    /// Component-wise saturating sum.
    pub fn saturating_add(&self, o: &Resources) -> Resources {
        Resources {
            cpu: self.cpu.saturating_add(o.cpu),
            memory: self.memory.saturating_add(o.memory),
            disk: self.disk.saturating_add(o.disk),
        }
    }

    /// Component-wise saturating difference.
    pub fn saturating_sub(&self, o: &Resources) -> Resources {
        Resources {
            cpu: self.cpu.saturating_sub(o.cpu),
            memory: self.memory.saturating_sub(o.memory),
            disk: self.disk.saturating_sub(o.disk),
        }
    }

    /// Whether `need` fits in `self` on every dimension.
    pub fn fits(&self, need: &Resources) -> bool {
        need.cpu <= self.cpu && need.memory <= self.memory && need.disk <= self.disk
    }
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: Self::DEFAULT_CPU,
            memory: Self::DEFAULT_MEMORY,
            disk: Self::DEFAULT_DISK,
        }
    }
}

/// A container port and where it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The port inside the container (1-65535).
    pub container: u16,
    /// The host port to publish it on; none keeps it private to the container network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<u16>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Protocol,
    /// The host address to publish on (Docker's `HostIp`), only with `host`; none publishes on
    /// every IPv4 address. Placement still treats the host port as taken on every address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<std::net::IpAddr>,
}

/// A transport protocol for a port mapping.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// When a task's container is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `never`, `on-failure` (default) or `always`.
    pub policy: RestartMode,
    /// Restarts allowed before the task is `Failed`. Default 5; ignored for `never`.
    /// [`RestartPolicy::UNLIMITED`] (written `unlimited`) never runs out.
    #[serde(with = "max_attempts")]
    pub max_attempts: u32,
    /// Delay between restarts.
    pub backoff: Backoff,
}

impl RestartPolicy {
    /// Default number of restart attempts.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    /// `max_attempts: unlimited`: restarts never run out.
    pub const UNLIMITED: u32 = u32::MAX;

    /// Whether restarts never run out (`max_attempts: unlimited`).
    pub fn is_unlimited(&self) -> bool {
        self.max_attempts == Self::UNLIMITED
    }

    /// A policy that never restarts.
    pub fn never() -> Self {
        RestartPolicy {
            policy: RestartMode::Never,
            ..Default::default()
        }
    }

    /// Whether an exit with `exit_code` should lead to a restart, given restarts done so far.
    pub fn should_restart(&self, exit_code: i64, attempts_so_far: u32) -> bool {
        let wants = match self.policy {
            RestartMode::Never => false,
            RestartMode::OnFailure => exit_code != 0,
            RestartMode::Always => true,
        };
        wants && attempts_so_far < self.max_attempts
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            policy: RestartMode::OnFailure,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
        }
    }
}

/// `max_attempts` as the file writes it: a number, or `"unlimited"` for
/// [`RestartPolicy::UNLIMITED`].
mod max_attempts {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::RestartPolicy;
    use crate::units::Scalar;

    pub fn serialize<S: Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
        if *n == RestartPolicy::UNLIMITED {
            s.serialize_str("unlimited")
        } else {
            s.serialize_u32(*n)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Str(t) if t == "unlimited" => Ok(RestartPolicy::UNLIMITED),
            Scalar::Int(i) => u32::try_from(i)
                .map_err(|_| serde::de::Error::custom(format!("{i} is not a number of attempts"))),
            _ => Err(serde::de::Error::custom(
                "expected a number of attempts or unlimited",
            )),
        }
    }
}

/// The restart mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Never restart; the task ends `Completed` or `Failed`.
    Never,
    /// Restart when the container exits non-zero (or cannot start).
    OnFailure,
    /// Restart whenever the container exits.
    Always,
}

impl RestartMode {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartMode::Never => "never",
            RestartMode::OnFailure => "on-failure",
            RestartMode::Always => "always",
        }
    }
}

/// Exponential backoff between restarts: `initial`, doubling up to `max`; the count resets after the
/// task has run healthy for `reset_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Backoff {
    /// First delay. Default `10s`.
    #[serde(with = "crate::units::duration")]
    pub initial: Duration,
    /// Largest delay. Default `5m`.
    #[serde(with = "crate::units::duration")]
    pub max: Duration,
    /// Healthy running time after which the attempt count resets. Default `10m`.
    #[serde(with = "crate::units::duration")]
    pub reset_after: Duration,
}

impl Backoff {
    /// The delay before restart number `attempt` (0-based), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}
