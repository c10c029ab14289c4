//! The arguments of the long-running commands: `server` (and how it reaches etcd), `worker`,
//! `scheduler` and `dev`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use orkestrator_core::worker::host_volumes::HostVolume;
use orkestrator_core::worker::subnets::Ipv4Net;

use super::common::{DEFAULT_PORT, JoinArgs, ManagerAddr, TlsFiles, duration, label};

/// `server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Port to listen on.
    #[arg(short, long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to bind (use 0.0.0.0 to accept workers from other hosts: that needs TLS,
    /// --tls-cert and --tls-key, or --insecure).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// TLS for the API.
    #[command(flatten)]
    pub tls: TlsFiles,
    /// Serve plain HTTP on an address other than loopback: anyone who can reach it can then read
    /// and change the cluster, and what clients send crosses the network in the clear. Without
    /// it, such a --bind without TLS refuses to start.
    #[arg(long)]
    pub insecure: bool,
    /// Do not run the embedded scheduler (placement then needs `orkestrator scheduler`).
    #[arg(long)]
    pub no_embedded_scheduler: bool,
    /// Where the manager keeps its state (a redb file). Default:
    /// `$XDG_DATA_HOME/orkestrator/manager-PORT` (or `~/.local/share/...`).
    #[arg(long, value_name = "DIR", env = "ORKESTRATOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep state in memory only: it is lost when the manager stops.
    #[arg(long, conflicts_with = "data_dir")]
    pub in_memory: bool,
    /// The key secrets are sealed with: a file of 32 bytes (raw, or base64 or hex text, as
    /// `openssl rand -base64 32` writes), readable only by the manager's user. Default with
    /// redb: `secret.key` in the data directory, made (mode 0600) on first start. With --store
    /// there is no default: give every manager the same file, or secrets are off (503).
    #[arg(long, value_name = "PATH", env = "ORKESTRATOR_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The embedded scheduler's algorithm: spread, binpack, round-robin or epvm.
    #[arg(long, default_value = "spread", value_name = "NAME")]
    pub scheduler: String,
    /// How often components heartbeat.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before a component is down.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub heartbeat_grace: Duration,
    /// How long stopped, completed and failed jobs, replaced instances, unused spec versions and
    /// workers that are down are kept before garbage collection removes them (`orkestrator gc`
    /// removes them at once).
    #[arg(long, default_value = "1h", value_parser = duration, value_name = "DURATION")]
    pub gc_after: Duration,
    /// How many recent events the manager keeps for event streams to resume from; a client
    /// asking for an older index gets a reset event (re-list).
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    pub event_window: usize,
    /// How many metrics samples the manager keeps per task and per worker (at the workers'
    /// default 5 s interval, 60 is five minutes; about 64 bytes a sample).
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub metrics_window: usize,
    /// The most tasks whose figures `GET /metrics` exposes (the rest are counted in
    /// `ork_metrics_series_dropped`), so that a large cluster cannot make a scrape unbounded.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub metrics_max_series: usize,
    /// The most requests one credential may have the manager answer at once (more get 429).
    #[arg(long, default_value_t = orkestrator_runtime::http::auth::Limits::DEFAULT_REQUESTS, value_name = "N")]
    pub max_requests_per_credential: usize,
    /// The most long-polls, event streams and followed logs one credential may hold open at
    /// once (more get 429).
    #[arg(long, default_value_t = orkestrator_runtime::http::auth::Limits::DEFAULT_STREAMS, value_name = "N")]
    pub max_streams_per_credential: usize,
    /// Keep the state in etcd, `etcd://HOST:PORT[,HOST:PORT...]`, instead of a redb file in
    /// --data-dir. Several managers on one etcd and prefix elect a leader; the others keep
    /// following and forward requests to it. The members must run with
    /// --max-txn-ops=4096 and --max-request-bytes=4194304 (or more).
    #[arg(
        long,
        value_name = "URL",
        env = "ORKESTRATOR_STORE",
        conflicts_with = "in_memory"
    )]
    pub store: Option<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The leader's lease: a leader that cannot renew it within this long steps down, and the
    /// others elect a new one.
    #[arg(long, default_value = "3s", value_parser = duration, value_name = "DURATION")]
    pub leader_lease: Duration,
    /// How long a newly elected leader waits before it judges any worker Down, so that the
    /// workers find it first (default: 15s with --store etcd; 0 on redb, where workers only get
    /// the heartbeat grace).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub failover_grace: Option<Duration>,
    /// Where the other managers (and the clients they point at the leader) reach this one:
    /// `http(s)://HOST:PORT`. Default: this manager's own scheme, bind address and port
    /// (127.0.0.1 for a wildcard bind, which suits one host only).
    #[arg(long, value_name = "URL")]
    pub advertise_addr: Option<String>,
}

/// How a manager reaches etcd (with `--store etcd://...`).
#[derive(Debug, Clone, Args)]
pub struct EtcdArgs {
    /// The key prefix the cluster's state lives under in etcd (several clusters can share one
    /// etcd with different prefixes).
    #[arg(long, default_value = "/orkestrator/", value_name = "PREFIX")]
    pub etcd_prefix: String,
    /// Verify the etcd members' certificates against this CA (PEM); talks TLS to etcd.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for etcd's client-certificate authentication.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// The key of --etcd-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// A user of etcd's own authentication (with --etcd-password).
    #[arg(
        long,
        value_name = "NAME",
        env = "ORKESTRATOR_ETCD_USER",
        requires = "etcd_password"
    )]
    pub etcd_user: Option<String>,
    /// The password of --etcd-user (better in the environment than on the command line).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "ORKESTRATOR_ETCD_PASSWORD",
        hide_env_values = true
    )]
    pub etcd_password: Option<String>,
}

/// `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
    /// How it joins.
    #[command(flatten)]
    pub join: JoinArgs,
    /// Where the worker keeps its credential (mode 0600), so that a restart comes back as
    /// itself. Default: `$XDG_DATA_HOME/orkestrator/worker-NAME` (or `~/.local/share/...`).
    #[arg(long, value_name = "DIR", env = "ORKESTRATOR_WORKER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Port of the worker's own endpoint (health).
    #[arg(short, long, default_value_t = 5556)]
    pub port: u16,
    /// Address the worker's endpoint binds.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Where the manager reaches the worker's endpoint, `HOST:PORT` (a name its certificate is
    /// valid for, over TLS). Default: the address it listens on, which is right on one host but
    /// not with `--bind 0.0.0.0` across hosts.
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// TLS for the worker's endpoint (where the manager reads logs from): a certificate issued
    /// by the manager's CA, which the manager verifies it against.
    #[command(flatten)]
    pub tls: TlsFiles,
    /// The worker's name (its id; keep it stable across restarts). Default: HOSTNAME-PORT.
    #[arg(long)]
    pub name: Option<String>,
    /// A label for placement constraints, `key=value` (repeatable).
    #[arg(long = "label", value_parser = label)]
    pub labels: Vec<(String, String)>,
    /// CPU to offer (default: all cores).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory to offer (default: all memory).
    #[arg(long)]
    pub memory: Option<String>,
    /// Disk to offer (default: the disk holding Docker's data).
    #[arg(long)]
    pub disk: Option<String>,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub stop_grace: Duration,
    /// How often task and host metrics are sampled and sent to the manager (0s: never).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub metrics_interval: Duration,
    /// The IPv4 pool the networks of instances take their subnets from (one small subnet per
    /// instance, skipping the host's routes and the engine's other networks).
    #[arg(long, value_name = "CIDR", default_value = orkestrator_core::worker::subnets::DEFAULT_POOL, value_parser = network_pool)]
    pub network_pool: Ipv4Net,
    /// A directory of this host offered to jobs by name, `NAME=/path` or `NAME=/path:ro`
    /// (repeatable; jobs name it, never the path; `workers` lists the names).
    #[arg(long = "host-volume", value_name = "NAME=/PATH[:ro]", value_parser = host_volume)]
    pub host_volumes: Vec<(String, HostVolume)>,
    /// Where tasks' secrets are written, on a tmpfs (values never touch a disk; a directory on
    /// another file system is refused when a task needs it). Default:
    /// `/dev/shm/orkestrator/NAME`.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
}

/// Parses `--host-volume`: a name, an existing directory, and `:ro` for read-only.
fn host_volume(s: &str) -> Result<(String, HostVolume), String> {
    orkestrator_core::worker::host_volumes::parse_offer(s)
}

/// Parses `--network-pool`: an IPv4 network no smaller than a /29.
fn network_pool(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s.parse()?;
    if net.prefix() > 29 {
        return Err(format!(
            "{net} is smaller than one instance's network (a /29): use a larger pool, e.g. 10.213.0.0/16"
        ));
    }
    Ok(net)
}

/// `scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
    /// How it joins.
    #[command(flatten)]
    pub join: JoinArgs,
    /// The scheduler's name.
    #[arg(long, default_value = "remote")]
    pub name: String,
    /// The algorithm: spread, binpack, round-robin or epvm.
    #[arg(long, default_value = "spread", value_name = "NAME")]
    pub algorithm: String,
}

/// `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port for the API.
    #[arg(short, long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// A job file to run once the cluster is up. A Compose file runs as `compose up` runs it,
    /// and the worker offers the file's directory as host volume `compose-project`, so that
    /// its services may bind-mount directories of the project.
    #[arg(long, value_name = "FILE")]
    pub run: Option<PathBuf>,
    /// Stop the job and exit once it is Running (or Completed), instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub stop_grace: Duration,
}
