//! The Docker runtime: [`Runtime`] over the Docker Engine API, with bollard.
//!
//! ```no_run
//! use orkestrator_core::runtime::Runtime;
//! use orkestrator_runtime::DockerRuntime;
//!
//! # async fn demo() -> orkestrator_core::Result<()> {
//! let docker = DockerRuntime::connect()?; // honours DOCKER_HOST
//! docker.ping().await?;
//! docker.ensure_image("busybox:1.36").await?;
//! # Ok(())
//! # }
//! ```
//!
//! The client speaks the newest API version bollard knows and negotiates down to the engine's on
//! first use, so older engines (Docker 20.10 speaks API 1.41) work unchanged.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerStatsResponse, HostConfig, PortBinding, PortMap,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use orkestrator_core::error::{Error, Result, RuntimeErrorKind};
use orkestrator_core::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStats, LogOptions, LogStream, Runtime,
};
use orkestrator_core::spec::{MIN_CPU, PortMapping, Probe};
use orkestrator_core::units::Cpu;
use tokio::sync::OnceCell;

/// Where the engine is when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The request timeout of [`DockerRuntime::connect`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Extra time allowed to a stop request beyond its grace period.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// The Docker implementation of [`Runtime`].
///
/// Cheap to clone: clones share one connection pool and one negotiated API version.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    host: String,
    negotiated: std::sync::Arc<OnceCell<()>>,
}

impl DockerRuntime {
    /// Connects to the local engine: `DOCKER_HOST` if set (`unix://` or `tcp://`/`http://`),
    /// otherwise [`DEFAULT_DOCKER_HOST`], with a [`DEFAULT_TIMEOUT`] per request.
    ///
    /// Nothing is sent yet; a missing socket is reported here as
    /// [`RuntimeErrorKind::Unavailable`], an engine that does not answer on the first call.
    pub fn connect() -> Result<Self> {
        Self::connect_with_timeout(DEFAULT_TIMEOUT)
    }

    /// Like [`connect`](Self::connect), with a request timeout of `timeout` (whole seconds,
    /// at least one).
    pub fn connect_with_timeout(timeout: Duration) -> Result<Self> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        Self::connect_to(&host, timeout)
    }

    /// Connects to the engine at `host` (`unix:///path` or `tcp://host:port`/`http://host:port`).
    pub fn connect_to(host: &str, timeout: Duration) -> Result<Self> {
        let secs = timeout.as_secs().max(1);
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if host.starts_with("unix://") {
            Docker::connect_with_unix(host, secs, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, secs, version)
        } else {
            return Err(Error::runtime(
                RuntimeErrorKind::Unavailable,
                format!(
                    "cannot reach the Docker engine at {host}: unsupported address \
                     (use unix:///path/to/docker.sock or tcp://host:port in DOCKER_HOST)"
                ),
            ));
        };
        let docker = docker.map_err(|e| unavailable(host, &e))?;
        Ok(Self::with_client(docker, host))
    }

    /// Wraps an existing bollard client; `host` is only used in messages.
    pub fn with_client(docker: Docker, host: impl Into<String>) -> Self {
        DockerRuntime {
            docker,
            host: host.into(),
            negotiated: Default::default(),
        }
    }

    /// The engine address, as used in messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying bollard client, with the API version negotiated with the engine (for
    /// callers that need an engine feature the [`Runtime`] trait does not cover, and for
    /// baselines in benchmarks).
    pub async fn client(&self) -> Result<&Docker> {
        self.negotiated
            .get_or_try_init(|| async {
                self.docker
                    .clone()
                    .negotiate_version()
                    .await
                    .map(drop)
                    .map_err(|e| self.error(e, "negotiate the API version"))
            })
            .await?;
        Ok(&self.docker)
    }

    /// Turns a bollard error into a runtime error, `what` saying what was being done.
    fn error(&self, e: BollardError, what: &str) -> Error {
        classify(&self.host, e, what)
    }
}

/// The error for an engine that cannot be reached.
fn unavailable(host: &str, e: &dyn std::fmt::Display) -> Error {
    Error::runtime(
        RuntimeErrorKind::Unavailable,
        format!("cannot reach the Docker engine at {host}: {e} (is dockerd running?)"),
    )
}

/// Sorts a bollard error into a [`RuntimeErrorKind`].
fn classify(host: &str, e: BollardError, what: &str) -> Error {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => RuntimeErrorKind::NotFound,
                400 | 403 | 409 => RuntimeErrorKind::Rejected,
                // Port clashes surface as 500 when the container starts.
                _ if is_port_clash(&message) => RuntimeErrorKind::Rejected,
                _ => RuntimeErrorKind::Other,
            };
            Error::runtime(kind, format!("cannot {what}: {}", message.trim()))
        }
        BollardError::SocketNotFoundError(path) => {
            unavailable(host, &format!("socket {path} does not exist"))
        }
        BollardError::RequestTimeoutError => unavailable(
            host,
            &format!("no answer in time while trying to {what} (request timed out)"),
        ),
        e @ (BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }) => {
            // bollard's own wrapper ("Error in the hyper legacy client") adds nothing.
            let cause = match std::error::Error::source(&e) {
                Some(inner) => error_chain(inner),
                None => e.to_string(),
            };
            unavailable(host, &cause)
        }
        BollardError::DockerStreamError { error } => Error::runtime(
            RuntimeErrorKind::Other,
            format!("cannot {what}: {}", error.trim()),
        ),
        e => Error::runtime(
            RuntimeErrorKind::Other,
            format!("cannot {what}: {}", error_chain(&e)),
        ),
    }
}

/// An error and its sources, joined with `: ` (hyper hides the useful part in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Whether `e` means the engine could not be reached at all.
fn is_connection_error(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
    )
}

/// What the engine said, without bollard's wrapping.
fn engine_text(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        BollardError::DockerStreamError { error } => error.trim().to_string(),
        e => error_chain(e),
    }
}

fn is_port_clash(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("port is already allocated") || m.contains("address already in use")
}

fn is_status(e: &BollardError, code: u16) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// How to make `image` available when it is neither present nor pullable.
fn image_hint(image: &str) -> String {
    format!(
        "pull it on this worker's engine (`docker pull {image}`) or build it there \
         (`docker build -t {image} .`)"
    )
}

/// The image reference to pull: a reference without tag or digest means `:latest` (the engine
/// would otherwise pull every tag).
fn pull_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The security option every container is created with.
const NO_NEW_PRIVILEGES: &str = "no-new-privileges:true";

/// The engine's request body for `spec`.
fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let memory = spec.resources.memory.bytes();
    let host_config = HostConfig {
        nano_cpus: nano_cpus(spec.resources.cpu),
        memory: (memory > 0).then(|| to_i64(memory)),
        // Memory + swap = memory: no swap at all.
        memory_swap: (memory > 0).then(|| to_i64(memory)),
        port_bindings: Some(port_bindings(&spec.ports)).filter(|p| !p.is_empty()),
        // Safe by default: never privileged, and no process may gain privileges it was not
        // started with (setuid binaries, file capabilities).
        privileged: Some(false),
        security_opt: Some(vec![NO_NEW_PRIVILEGES.to_owned()]),
        pids_limit: (spec.pids_limit > 0).then(|| i64::from(spec.pids_limit)),
        readonly_rootfs: Some(spec.read_only),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        exposed_ports: (!spec.ports.is_empty()).then(|| exposed_ports(&spec.ports)),
        user: spec.user.clone(),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The engine's CPU limit for `cpu`: none for zero, and never under [`MIN_CPU`], which the kernel
/// refuses (its smallest CFS quota is 1 ms per 100 ms period, and the container would never start).
/// New submissions cannot ask for less; a spec stored before that rule existed can.
fn nano_cpus(cpu: Cpu) -> Option<i64> {
    let millis = cpu.millis();
    (millis > 0).then(|| to_i64(millis.max(MIN_CPU.millis()).saturating_mul(1_000_000)))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn port_key(p: &PortMapping) -> String {
    format!("{}/{}", p.container, p.protocol.as_str())
}

fn exposed_ports(ports: &[PortMapping]) -> Vec<String> {
    let mut keys: Vec<String> = ports.iter().map(port_key).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Published ports: `container/proto` → host ports on every IPv4 address.
fn port_bindings(ports: &[PortMapping]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        let Some(host) = p.host else { continue };
        let bindings = map.entry(port_key(p)).or_insert_with(|| Some(Vec::new()));
        bindings.get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: Some("0.0.0.0".to_string()),
            host_port: Some(host.to_string()),
        });
    }
    map
}

/// The [`ContainerInfo`] of an inspect answer.
fn container_info(r: ContainerInspectResponse, fallback_id: &str) -> ContainerInfo {
    let state = match r.state {
        Some(s) => {
            let status = s.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
            match status {
                ContainerStateStatusEnum::CREATED => ContainerState::Created,
                ContainerStateStatusEnum::RUNNING => ContainerState::Running,
                ContainerStateStatusEnum::EXITED => {
                    let reason = if s.oom_killed == Some(true) {
                        Some("OOMKilled".to_string())
                    } else {
                        s.error.filter(|e| !e.trim().is_empty())
                    };
                    ContainerState::Exited {
                        code: s.exit_code.unwrap_or(-1),
                        reason,
                    }
                }
                other => ContainerState::Other(other.to_string()),
            }
        }
        None => ContainerState::Other("unknown".to_string()),
    };
    ContainerInfo {
        id: r.id.unwrap_or_else(|| fallback_id.to_string()),
        name: r
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        labels: r
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        state,
    }
}

/// Every figure of one stats sample. CPU in cores is computed as the Docker CLI does, from the
/// sample's pre-sample; a one-shot sample has none, so its `cpu_cores` is 0 (the worker computes
/// it from `cpu_seconds_total` deltas instead). Memory is the working set: usage minus inactive
/// file cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2). Network sums every
/// interface; block I/O sums the `Read` and `Write` entries of `io_service_bytes_recursive` (v1
/// spells them capitalised and adds `Total`, `Sync`, ... entries; v2 writes `read`, `write`).
fn container_stats(s: &ContainerStatsResponse) -> ContainerStats {
    let total = |c: &Option<bollard::models::ContainerCpuStats>| {
        c.as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let system = |c: &Option<bollard::models::ContainerCpuStats>| {
        c.as_ref().and_then(|c| c.system_cpu_usage).unwrap_or(0)
    };
    let cpu_delta = total(&s.cpu_stats).saturating_sub(total(&s.precpu_stats));
    let system_delta = system(&s.cpu_stats).saturating_sub(system(&s.precpu_stats));
    let online = s
        .cpu_stats
        .as_ref()
        .and_then(|c| {
            c.online_cpus.map(u64::from).filter(|n| *n > 0).or_else(|| {
                c.cpu_usage
                    .as_ref()
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|p| p.len() as u64)
            })
        })
        .filter(|n| *n > 0)
        .unwrap_or(1);
    // A one-shot sample's pre-sample is empty: no figure rather than an average since boot.
    let presampled = system(&s.precpu_stats) > 0;
    let cpu_cores = if presampled && cpu_delta > 0 && system_delta > 0 {
        cpu_delta as f64 / system_delta as f64 * online as f64
    } else {
        0.0
    };

    let (memory_bytes, memory_limit_bytes) = match &s.memory_stats {
        Some(m) => {
            let usage = m.usage.unwrap_or(0);
            // Page cache that can be reclaimed is not "in use" (cgroup v1 key first, then v2).
            let cache = m.stats.as_ref().and_then(|st| {
                st.get("total_inactive_file")
                    .or_else(|| st.get("inactive_file"))
                    .copied()
            });
            let used = match cache {
                Some(c) if c < usage => usage - c,
                _ => usage,
            };
            (used, m.limit.unwrap_or(0))
        }
        None => (0, 0),
    };
    let (network_rx_bytes, network_tx_bytes) =
        s.networks
            .iter()
            .flat_map(|n| n.values())
            .fold((0u64, 0u64), |(rx, tx), n| {
                (
                    rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                    tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                )
            });
    let (mut block_read_bytes, mut block_write_bytes) = (0u64, 0u64);
    let entries = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref());
    for e in entries.into_iter().flatten() {
        let v = e.value.unwrap_or(0);
        match e.op.as_deref() {
            Some(op) if op.eq_ignore_ascii_case("read") => {
                block_read_bytes = block_read_bytes.saturating_add(v);
            }
            Some(op) if op.eq_ignore_ascii_case("write") => {
                block_write_bytes = block_write_bytes.saturating_add(v);
            }
            _ => {}
        }
    }
    ContainerStats {
        cpu_cores,
        memory_bytes,
        memory_limit_bytes,
        cpu_seconds_total: total(&s.cpu_stats) as f64 / 1e9,
        network_rx_bytes,
        network_tx_bytes,
        block_read_bytes,
        block_write_bytes,
    }
}

impl DockerRuntime {
    /// The container's address on its Docker network.
    async fn container_ip(&self, id: &str) -> std::result::Result<String, String> {
        let docker = self.client().await.map_err(|e| e.to_string())?;
        let r = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| format!("inspect {id}: {e}"))?;
        r.network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| {
                nets.into_values()
                    .filter_map(|e| e.ip_address)
                    .find(|ip| !ip.is_empty())
            })
            .ok_or_else(|| {
                format!("container {id} has no network address (network mode host or none?)")
            })
    }

    /// Runs `cmd` in the container; healthy when it exits 0.
    async fn exec_probe(&self, id: &str, cmd: &[String]) -> std::result::Result<(), String> {
        let docker = self.client().await.map_err(|e| e.to_string())?;
        let config = bollard::models::ExecConfig {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            ..Default::default()
        };
        let exec = docker
            .create_exec(id, config)
            .await
            .map_err(|e| format!("exec in {id}: {e}"))?;
        docker
            .start_exec(
                &exec.id,
                Some(bollard::exec::StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| format!("exec in {id}: {e}"))?;
        loop {
            let r = docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| format!("exec in {id}: {e}"))?;
            if r.running != Some(true) {
                return match r.exit_code {
                    Some(0) => Ok(()),
                    Some(code) => Err(format!("`{}` exited with code {code}", cmd.join(" "))),
                    None => Err(format!("`{}` did not report an exit code", cmd.join(" "))),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An HTTP/1.0 GET: healthy on a 2xx or 3xx status.
async fn http_probe(ip: &str, port: u16, path: &str) -> std::result::Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let what = format!("http://{ip}:{port}{path}");
    let mut s = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: orkestrator-health\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < 12 {
        match s
            .read(&mut buf[n..])
            .await
            .map_err(|e| format!("{what}: {e}"))?
        {
            0 => break,
            k => n += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let code: Option<u16> = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match code {
        Some(c) if (200..400).contains(&c) => Ok(()),
        Some(c) => Err(format!("{what} answered {c}")),
        None => Err(format!("{what}: not an HTTP answer")),
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn ping(&self) -> Result<()> {
        let docker = self.client().await?;
        docker
            .ping()
            .await
            .map(drop)
            .map_err(|e| self.error(e, "ping the engine"))
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        let docker = self.client().await?;
        match docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(self.error(e, &format!("inspect image {image}"))),
        }

        tracing::info!(image, "image not present locally; pulling");
        let options = CreateImageOptions {
            from_image: Some(pull_reference(image)),
            ..Default::default()
        };
        let mut pull = docker.create_image(Some(options), None, None);
        let mut failure = None;
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                failure = Some(e);
                break;
            }
        }
        let Some(e) = failure else {
            return Ok(());
        };
        if is_connection_error(&e) {
            return Err(self.error(e, &format!("pull {image}")));
        }
        Err(Error::runtime(
            RuntimeErrorKind::ImageNotFound,
            format!(
                "image {image} is not present locally and could not be pulled ({}); {}",
                engine_text(&e),
                image_hint(image)
            ),
        ))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let docker = self.client().await?;
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match docker
            .create_container(Some(options), create_body(spec))
            .await
        {
            Ok(created) => {
                for warning in &created.warnings {
                    tracing::warn!(container = %spec.name, "engine warning: {warning}");
                }
                Ok(created.id)
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.to_ascii_lowercase().contains("no such image") => Err(Error::runtime(
                RuntimeErrorKind::ImageNotFound,
                format!(
                    "image {} is not present locally: {}; {}",
                    spec.image,
                    message.trim(),
                    image_hint(&spec.image)
                ),
            )),
            Err(e) => Err(self.error(e, &format!("create container {}", spec.name))),
        }
    }

    async fn start(&self, id: &str) -> Result<()> {
        let docker = self.client().await?;
        docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error(e, &format!("start container {id}")))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        // The engine counts in whole seconds; round up so the container gets at least `grace`.
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let options = StopContainerOptions {
            t: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
            signal: None,
        };
        // The engine answers only once the container is gone: give the request time for that.
        let docker = self.client().await?;
        let needed = grace + STOP_SLACK;
        let result = if docker.timeout() < needed {
            docker
                .clone()
                .with_timeout(needed)
                .stop_container(id, Some(options))
                .await
        } else {
            docker.stop_container(id, Some(options)).await
        };
        // 304 (already stopped) is a success for bollard.
        result.map_err(|e| self.error(e, &format!("stop container {id}")))
    }

    async fn probe(
        &self,
        id: &str,
        probe: &Probe,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        let run = async {
            match probe {
                Probe::Http { port, path } => {
                    let ip = self.container_ip(id).await?;
                    http_probe(&ip, *port, path).await
                }
                Probe::Tcp { port } => {
                    let ip = self.container_ip(id).await?;
                    tokio::net::TcpStream::connect((ip.as_str(), *port))
                        .await
                        .map(drop)
                        .map_err(|e| format!("tcp {ip}:{port}: {e}"))
                }
                Probe::Exec(cmd) => self.exec_probe(id, cmd).await,
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("{probe}: no answer within {timeout:?}")),
        }
    }

    async fn wait(&self, id: &str) -> Result<()> {
        use futures_util::StreamExt;
        let docker = self.client().await?;
        let options = bollard::query_parameters::WaitContainerOptions {
            condition: "not-running".into(),
        };
        // The engine answers when the container stops; a non-zero exit comes back as an error,
        // and so does the request timeout: either way the caller re-checks the state.
        let mut stream = docker.wait_container(id, Some(options));
        match stream.next().await {
            Some(Err(e)) if is_status(&e, 404) => Ok(()),
            Some(Err(BollardError::RequestTimeoutError)) => Ok(()),
            Some(Err(BollardError::DockerContainerWaitError { .. })) => Ok(()),
            Some(Err(e)) => Err(self.error(e, &format!("wait for container {id}"))),
            _ => Ok(()),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let docker = self.client().await?;
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(self.error(e, &format!("remove container {id}"))),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let docker = self.client().await?;
        let r = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(e, &format!("inspect container {id}")))?;
        Ok(container_info(r, id))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let docker = self.client().await?;
        let mut filters = HashMap::new();
        if !labels.is_empty() {
            filters.insert(
                "label".to_string(),
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            );
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let summaries = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(e, "list containers"))?;

        // The summary has no exit code or error: inspect each one (a container removed in
        // between is simply left out).
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected = futures_util::future::join_all(ids.iter().map(|id| self.inspect(id))).await;
        let mut out = Vec::with_capacity(ids.len());
        for r in inspected {
            match r {
                Ok(info) => out.push(info),
                Err(Error::Runtime {
                    kind: RuntimeErrorKind::NotFound,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let docker = self.client().await?;
        // One-shot (API 1.41): one read of the cgroup, answered at once. Without it the engine
        // waits for a second sample about a second later, only to compute a CPU figure that the
        // worker computes itself from consecutive `cpu_seconds_total` readings (see
        // BENCHMARKS.md, "Worker metrics sampling"). So `cpu_cores` is 0 here.
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = docker.stats(id, Some(options));
        match stream.next().await {
            Some(Ok(sample)) => Ok(container_stats(&sample)),
            Some(Err(e)) => Err(self.error(e, &format!("read stats of container {id}"))),
            None => Err(Error::runtime(
                RuntimeErrorKind::Other,
                format!("cannot read stats of container {id}: the engine sent none"),
            )),
        }
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String> {
        let docker = self.client().await?;
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let mut stream = docker.logs(id, Some(options));
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| self.error(e, &format!("read logs of container {id}")))?;
            bytes.extend_from_slice(chunk.as_ref());
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The engine's log stream (`follow` ends when the container stops). Without a tail, all of
    /// the output; `since` is whole seconds, as the engine takes it.
    async fn stream_logs(&self, id: &str, options: &LogOptions) -> Result<LogStream> {
        let docker = self.client().await?;
        // Ask once, so that an unknown container is an error now rather than inside the stream.
        docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(e, &format!("read logs of container {id}")))?;
        let since = options
            .since
            .map_or(0, |s| s.clamp(0, i64::from(i32::MAX)) as i32);
        let bollard_options = LogsOptions {
            stdout: true,
            stderr: true,
            follow: options.follow,
            since,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let me = self.clone();
        let id = id.to_owned();
        let stream = docker.logs(&id, Some(bollard_options)).map(move |chunk| {
            chunk
                .map(|c| c.into_bytes().to_vec())
                .map_err(|e| me.error(e, &format!("read logs of container {id}")))
        });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bollard::models::{
        ContainerConfig, ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats,
        ContainerState as DockerState,
    };
    use orkestrator_core::spec::{Protocol, Resources};
    use orkestrator_core::units::{ByteSize, Cpu};

    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web-1".into(),
            image: "busybox:1.36".into(),
            command: vec!["sleep".into(), "10".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            ports: vec![
                PortMapping {
                    container: 80,
                    host: Some(8080),
                    protocol: Protocol::Tcp,
                },
                PortMapping {
                    container: 80,
                    host: Some(8081),
                    protocol: Protocol::Tcp,
                },
                PortMapping {
                    container: 53,
                    host: Some(5353),
                    protocol: Protocol::Udp,
                },
                PortMapping {
                    container: 9000,
                    host: None,
                    protocol: Protocol::Tcp,
                },
            ],
            resources: Resources {
                cpu: Cpu::from_millis(250),
                memory: ByteSize::mib(64),
                disk: ByteSize::mib(10),
            },
            labels: BTreeMap::from([("orkestrator.job".into(), "web".into())]),
            pids_limit: 4096,
            user: None,
            read_only: false,
        }
    }

    #[test]
    fn create_body_is_unprivileged_with_a_pid_limit() {
        let body = create_body(&spec());
        assert!(body.user.is_none());
        let hc = body.host_config.unwrap();
        assert_eq!(hc.privileged, Some(false));
        assert_eq!(hc.security_opt.unwrap(), ["no-new-privileges:true"]);
        assert_eq!(hc.pids_limit, Some(4096));
        assert_eq!(hc.readonly_rootfs, Some(false));

        let mut s = spec();
        s.pids_limit = 50;
        s.user = Some("1000:1000".into());
        s.read_only = true;
        let body = create_body(&s);
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.pids_limit, Some(50));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.security_opt.unwrap(), ["no-new-privileges:true"]);
    }

    #[test]
    fn create_body_applies_limits_ports_env_labels() {
        let body = create_body(&spec());
        let hc = body.host_config.unwrap();
        assert_eq!(hc.nano_cpus, Some(250_000_000));
        assert_eq!(hc.memory, Some(64 * 1024 * 1024));
        assert_eq!(hc.memory_swap, hc.memory);
        let pb = hc.port_bindings.unwrap();
        let tcp80 = pb["80/tcp"].as_ref().unwrap();
        assert_eq!(tcp80.len(), 2);
        assert_eq!(tcp80[0].host_ip.as_deref(), Some("0.0.0.0"));
        assert_eq!(tcp80[1].host_port.as_deref(), Some("8081"));
        assert_eq!(
            pb["53/udp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("5353")
        );
        assert!(
            !pb.contains_key("9000/tcp"),
            "unpublished ports are not bound"
        );
        assert_eq!(
            body.exposed_ports.unwrap(),
            vec!["53/udp", "80/tcp", "9000/tcp"]
        );
        assert_eq!(body.env.unwrap(), vec!["A=1"]);
        assert_eq!(body.labels.unwrap()["orkestrator.job"], "web");
        assert_eq!(body.cmd.unwrap(), vec!["sleep", "10"]);
    }

    #[test]
    fn cpu_limits_are_never_below_what_the_kernel_accepts() {
        // Regression: a stored spec with cpu 1m became NanoCpus 1_000_000, and runc refused it
        // (`cpu.cfs_quota_us: invalid argument`): the smallest limit is 0.01 CPU.
        assert_eq!(nano_cpus(Cpu::ZERO), None, "zero is no limit");
        for millis in [1, 5, 9] {
            assert_eq!(
                nano_cpus(Cpu::from_millis(millis)),
                Some(10_000_000),
                "{millis}m"
            );
        }
        assert_eq!(nano_cpus(Cpu::from_millis(10)), Some(10_000_000));
        assert_eq!(nano_cpus(Cpu::from_millis(11)), Some(11_000_000));
        assert_eq!(nano_cpus(Cpu::from_cores(2)), Some(2_000_000_000));
        assert_eq!(nano_cpus(Cpu::from_millis(u64::MAX)), Some(i64::MAX));
        let mut s = spec();
        s.resources.cpu = Cpu::from_millis(1);
        assert_eq!(
            create_body(&s).host_config.unwrap().nano_cpus,
            Some(10_000_000)
        );
    }

    #[test]
    fn create_body_without_limits_or_command() {
        let mut s = spec();
        s.command.clear();
        s.ports.clear();
        s.resources = Resources::ZERO;
        let body = create_body(&s);
        assert!(body.cmd.is_none());
        assert!(body.exposed_ports.is_none());
        let hc = body.host_config.unwrap();
        assert!(hc.nano_cpus.is_none() && hc.memory.is_none() && hc.memory_swap.is_none());
        assert!(hc.port_bindings.is_none());
    }

    #[test]
    fn pull_reference_defaults_to_latest() {
        assert_eq!(pull_reference("busybox"), "busybox:latest");
        assert_eq!(pull_reference("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            pull_reference("registry:5000/app"),
            "registry:5000/app:latest"
        );
        assert_eq!(
            pull_reference("registry:5000/app:v1"),
            "registry:5000/app:v1"
        );
        assert_eq!(pull_reference("app@sha256:abc"), "app@sha256:abc");
    }

    fn inspected(state: DockerState) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/web-1".into()),
            state: Some(state),
            config: Some(ContainerConfig {
                labels: Some(HashMap::from([("k".to_string(), "v".to_string())])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn inspect_maps_states() {
        let running = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::RUNNING),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(running.state, ContainerState::Running);
        assert_eq!(running.name, "web-1");
        assert_eq!(running.label("k"), Some("v"));

        let exited = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(3),
                error: Some(String::new()),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(
            exited.state,
            ContainerState::Exited {
                code: 3,
                reason: None
            }
        );

        let oom = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(137),
                oom_killed: Some(true),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(
            oom.state,
            ContainerState::Exited {
                code: 137,
                reason: Some("OOMKilled".into())
            }
        );

        let failed = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(127),
                error: Some("exec: \"nope\": executable file not found".into()),
                ..Default::default()
            }),
            "x",
        );
        assert!(matches!(
            failed.state,
            ContainerState::Exited { code: 127, reason: Some(ref r) } if r.contains("nope")
        ));

        let paused = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::PAUSED),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(paused.state, ContainerState::Other("paused".into()));
    }

    #[test]
    fn stats_compute_cores_and_memory_without_cache() {
        let cpu = |total, system| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(4),
            ..Default::default()
        };
        let sample = ContainerStatsResponse {
            precpu_stats: Some(cpu(1_000, 10_000)),
            cpu_stats: Some(cpu(1_500, 12_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10_000),
                limit: Some(64_000),
                stats: Some(HashMap::from([("inactive_file".to_string(), 4_000)])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = container_stats(&sample);
        assert!((s.cpu_cores - 1.0).abs() < 1e-9, "{}", s.cpu_cores);
        assert_eq!(s.memory_bytes, 6_000);
        assert_eq!(s.memory_limit_bytes, 64_000);

        assert_eq!(
            container_stats(&ContainerStatsResponse::default()),
            ContainerStats::default()
        );
    }

    /// A one-shot sample as cgroup v1 (`v2 = false`) or v2 engines send it: no pre-sample, two
    /// interfaces, block I/O entries in that version's spelling.
    fn one_shot(v2: bool) -> ContainerStatsResponse {
        use bollard::models::{
            ContainerBlkioStatEntry, ContainerBlkioStats, ContainerNetworkStats,
        };
        let entry = |op: &str, value| ContainerBlkioStatEntry {
            major: Some(8),
            minor: Some(0),
            op: Some(op.into()),
            value: Some(value),
        };
        let io = if v2 {
            vec![entry("read", 4096), entry("write", 8192), entry("read", 1)]
        } else {
            vec![
                entry("Read", 4096),
                entry("Write", 8192),
                entry("Sync", 12288),
                entry("Async", 0),
                entry("Discard", 0),
                entry("Total", 12288),
                entry("Read", 1),
            ]
        };
        let net = |rx, tx| ContainerNetworkStats {
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
            ..Default::default()
        };
        let (cache_key, other_key) = if v2 {
            ("inactive_file", "active_file")
        } else {
            ("total_inactive_file", "inactive_file")
        };
        ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(2_500_000_000),
                    ..Default::default()
                }),
                system_cpu_usage: Some(9_000_000_000),
                online_cpus: Some(2),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(100 << 20),
                limit: Some(256 << 20),
                stats: Some(HashMap::from([
                    (cache_key.to_string(), 30 << 20),
                    (other_key.to_string(), 5 << 20),
                ])),
                ..Default::default()
            }),
            networks: Some(HashMap::from([
                ("eth0".to_string(), net(1000, 200)),
                ("eth1".to_string(), net(24, 3)),
            ])),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(io),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_shot_stats_fill_every_figure_on_cgroup_v1_and_v2() {
        for v2 in [false, true] {
            let s = container_stats(&one_shot(v2));
            assert_eq!(s.cpu_cores, 0.0, "no pre-sample, no CPU figure (v2: {v2})");
            assert!((s.cpu_seconds_total - 2.5).abs() < 1e-9, "{s:?}");
            assert_eq!(
                s.memory_bytes,
                70 << 20,
                "usage minus inactive file (v2: {v2})"
            );
            assert_eq!(s.memory_limit_bytes, 256 << 20);
            assert_eq!((s.network_rx_bytes, s.network_tx_bytes), (1024, 203));
            assert_eq!(
                (s.block_read_bytes, s.block_write_bytes),
                (4097, 8192),
                "v2: {v2}"
            );
        }
    }

    #[test]
    fn errors_are_classified() {
        let server = |status_code, message: &str| BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        let kind = |e: Error| match e {
            Error::Runtime { kind, .. } => kind,
            other => panic!("{other}"),
        };
        let h = DEFAULT_DOCKER_HOST;
        assert_eq!(
            kind(classify(h, server(404, "No such container: x"), "inspect")),
            RuntimeErrorKind::NotFound
        );
        assert_eq!(
            kind(classify(
                h,
                server(409, "Conflict. The container name"),
                "create"
            )),
            RuntimeErrorKind::Rejected
        );
        assert_eq!(
            kind(classify(
                h,
                server(500, "Bind for 0.0.0.0:80 failed: port is already allocated"),
                "start"
            )),
            RuntimeErrorKind::Rejected
        );
        assert_eq!(
            kind(classify(h, server(500, "boom"), "start")),
            RuntimeErrorKind::Other
        );
        let missing = classify(
            h,
            BollardError::SocketNotFoundError("/var/run/docker.sock".into()),
            "ping",
        );
        let text = missing.to_string();
        assert!(text.contains("cannot reach the Docker engine at unix:///var/run/docker.sock"));
        assert!(text.contains("is dockerd running?"), "{text}");
        assert_eq!(kind(missing), RuntimeErrorKind::Unavailable);
    }

    #[test]
    fn connect_to_a_missing_socket_is_unavailable() {
        let err = DockerRuntime::connect_to("unix:///nonexistent/docker.sock", DEFAULT_TIMEOUT)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Runtime {
                kind: RuntimeErrorKind::Unavailable,
                ..
            }
        ));
        assert!(
            err.to_string().contains("/nonexistent/docker.sock"),
            "{err}"
        );
        assert!(
            DockerRuntime::connect_to("ftp://x", DEFAULT_TIMEOUT)
                .unwrap_err()
                .to_string()
                .contains("DOCKER_HOST")
        );
    }
}
