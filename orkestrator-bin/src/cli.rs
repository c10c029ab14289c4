//! Command-line definitions (clap derive) and the translation of the original single-dash flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use orkestrator_core::events::{StreamStart, Topic};

/// Default manager port.
pub const DEFAULT_PORT: u16 = 5555;
/// Default address of the manager.
pub const DEFAULT_MANAGER: &str = "http://127.0.0.1:5555";

/// Orkestrator: a container orchestrator. Run a manager, workers and schedulers; submit jobs.
#[derive(Debug, Parser)]
#[command(name = "orkestrator", version, about, long_about = None, after_help = after_help())]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How to write logs (on standard error): `text` for people, `json` for one JSON object a
    /// line (for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "ORKESTRATOR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// The top-level `--help` epilogue: the original flags and the exit codes.
fn after_help() -> String {
    format!("{SEED_HELP}\n\n{}", crate::output::EXIT_CODES_HELP)
}

const SEED_HELP: &str = "\
The original flags work too:
  orkestrator -server -port 5555               (= server --port 5555)
  orkestrator -worker -port 5555               (= worker --manager http://127.0.0.1:5555)
  orkestrator -client -file job.yaml -port 5555 (= run -f job.yaml --manager http://127.0.0.1:5555)";

/// The subcommands.
// Parsed once per process: the size of the largest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the manager (the API server), with an embedded scheduler.
    Server(ServerArgs),
    /// Run a worker: runs assigned tasks on the local Docker engine.
    Worker(WorkerArgs),
    /// Run a scheduler as its own process.
    Scheduler(SchedulerArgs),
    /// Run manager, scheduler and one worker in one process (a local cluster for trying things).
    Dev(DevArgs),
    /// Submit a job file.
    Run(RunArgs),
    /// Show jobs, or one job in detail.
    Status(StatusArgs),
    /// Stop a job: its containers are stopped and removed.
    Stop(StopArgs),
    /// Show the last lines a job's task wrote (stdout and stderr), read from its worker.
    Logs(LogsArgs),
    /// List workers and their resources.
    Workers(OutputArgs),
    /// Show the health of every component and job.
    Health(OutputArgs),
    /// Collect garbage now: remove jobs, instances and workers that ended longer ago than the
    /// manager's --gc-after.
    Gc(OutputArgs),
    /// Check a job file without submitting it.
    Validate(ValidateArgs),
    /// Follow the manager's events (jobs, tasks, workers, schedulers) as they happen.
    Events(EventsArgs),
    /// Create, list and revoke the manager's tokens (operators only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// A live view of the jobs' tasks (or the workers') with their CPU and memory use.
    Top(TopArgs),
    /// Create the cluster's TLS certificates (a CA and the manager's), or issue more from its CA.
    Tls(TlsArgs),
    /// Work on a manager's stored state: `store copy` moves a cluster from redb onto etcd.
    Store(StoreArgs),
}

/// Where the manager is, the token to present, and how to verify it over `https://`.
#[derive(Debug, Args, Clone)]
pub struct ManagerAddr {
    /// The manager's address (`https://...` when it serves TLS), or a comma-separated list of
    /// the addresses of a highly available manager (`http://a:5555,http://b:5555,c:5555`):
    /// requests go to one at a time, move to the next when it cannot be reached, and to the
    /// leader when a follower names it.
    #[arg(
        long,
        env = "ORKESTRATOR_ADDR",
        default_value = DEFAULT_MANAGER,
        value_name = "URL[,URL...]"
    )]
    pub manager: String,
    /// The token to present (an operator or read token). On the manager's own host the
    /// operator token the server wrote is found by itself.
    #[arg(
        long,
        env = "ORKESTRATOR_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A file holding the token to present.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Verify an `https://` manager against the CA certificates in this PEM file: the cluster's
    /// `DIR/ca.pem` from `orkestrator tls init DIR`. Default: the system's trusted roots.
    #[arg(long, env = "ORKESTRATOR_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Verify an `https://` manager by the SHA-256 digest of the cluster CA (64 hex digits, as
    /// `orkestrator tls init` prints it), with no CA file: the manager must present that CA after
    /// its certificate, and its certificate must be valid for the address's host.
    #[arg(
        long,
        env = "ORKESTRATOR_CA_DIGEST",
        value_name = "SHA256",
        value_parser = ca_digest,
        conflicts_with = "ca_file"
    )]
    pub ca_digest: Option<[u8; 32]>,
}

/// How a worker or scheduler joins.
#[derive(Debug, Args, Clone)]
pub struct JoinArgs {
    /// The join token (`orkestrator server` writes one to `DATA_DIR/join.token`; on the
    /// manager's own host it is found by itself). Presented once, at registration: the
    /// component then gets a credential of its own.
    #[arg(
        long,
        env = "ORKESTRATOR_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub join_token: Option<String>,
    /// A file holding the join token.
    #[arg(long, value_name = "FILE", conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,
}

/// The certificate and key a server (the manager, a worker's endpoint) serves TLS with.
#[derive(Debug, Args, Clone)]
pub struct TlsFiles {
    /// Serve TLS with this PEM certificate chain: the certificate first, the cluster CA last
    /// (`DIR/manager.pem` from `orkestrator tls init DIR`; for a worker,
    /// `orkestrator tls cert DIR --name NAME`). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (`DIR/NAME-key.pem`). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Human-readable tables.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Output options.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
}

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
    /// A job file to run once the cluster is up.
    #[arg(long, value_name = "FILE")]
    pub run: Option<PathBuf>,
    /// Stop the job and exit once it is Running (or Completed), instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub stop_grace: Duration,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
    /// The job file (`.yaml`, `.yml`, `.toml`, `.json`; `-` for standard input).
    #[arg(short, long, value_name = "FILE", required_unless_present = "path")]
    pub file: Option<PathBuf>,
    /// The job file, as a positional argument.
    #[arg(value_name = "FILE", conflicts_with = "file")]
    pub path: Option<PathBuf>,
    /// Wait until the job is Running or Completed (exit 1 if it fails).
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A job to show in detail; all jobs if left out.
    pub job: Option<String>,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The job.
    pub job: String,
    /// Wait until its containers are gone.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "2m", value_parser = duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job.
    pub job: String,
    /// The task (may be left out when the job has one task).
    #[arg(short, long)]
    pub task: Option<String>,
    /// Which copy of the job (0-based).
    #[arg(short, long, default_value_t = 0)]
    pub index: u32,
    /// How many of the last lines (1 to 10000).
    #[arg(short = 'n', long, default_value_t = 100)]
    pub tail: usize,
    /// Only output written since then: a duration ago (10m, 1h30m) or a time
    /// (2024-05-01T12:00:00Z, or Unix seconds).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Keep printing the output as it is written, on into the task's next container when it is
    /// restarted or replaced, until the job stops (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Output format (`json` only without --follow).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The job file (`.yaml`, `.yml`, `.toml`, `.json`; `-` for standard input).
    #[arg(short, long, value_name = "FILE", required_unless_present = "path")]
    pub file: Option<PathBuf>,
    /// The job file, as a positional argument.
    #[arg(value_name = "FILE", conflicts_with = "file")]
    pub path: Option<PathBuf>,
    /// Print the job as Orkestrator reads it (defaults filled in), in this format.
    #[arg(long, value_enum, conflicts_with = "output")]
    pub print: Option<PrintFormat>,
    /// Output format of the verdict (`json`: valid, the job's name, needs, or the problems).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this job's events (its job and task topics).
    #[arg(long, conflicts_with = "key", value_name = "JOB")]
    pub job: Option<String>,
    /// Only these topics: job, task, worker, scheduler, manager (comma-separated, repeatable).
    #[arg(long = "topic", value_delimiter = ',', value_name = "TOPIC")]
    pub topics: Vec<Topic>,
    /// Only events about this key: a job name, a worker id or a scheduler id.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Start with the events of this commit index (`N`), or after this event id (`N.S`), instead
    /// of with the next event. Events the manager no longer holds are reported as a reset.
    #[arg(long, value_name = "N|N.S")]
    pub from_index: Option<StreamStart>,
    /// Output format (`json`: one JSON object per line).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Only this job's tasks.
    #[arg(conflicts_with = "workers")]
    pub job: Option<String>,
    /// Show the workers (host CPU and memory) instead of the tasks.
    #[arg(long)]
    pub workers: bool,
    /// How often to refresh.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub interval: Duration,
    /// Print one snapshot and exit (also what happens when standard output is not a terminal).
    #[arg(long)]
    pub once: bool,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once (standard output) and never shown again.
    Create(TokenCreateArgs),
    /// List tokens and component credentials (never their secrets).
    List(OutputArgs),
    /// Revoke a token or credential by its id: it stops working at once.
    Revoke(TokenRevokeArgs),
}

/// `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What it may do: `operator` (everything), `read` (every GET, /metrics too) or `join`
    /// (register workers and schedulers).
    #[arg(long, value_parser = role)]
    pub role: orkestrator_core::auth::Role,
    /// A description: who or what it is for.
    #[arg(long)]
    pub name: Option<String>,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (the first column of `token list`).
    pub id: String,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

fn role(s: &str) -> Result<orkestrator_core::auth::Role, String> {
    let r: orkestrator_core::auth::Role = s.parse()?;
    if r.is_user_role() {
        Ok(r)
    } else {
        Err(format!(
            "{s}: use operator, read or join (component credentials are issued at registration)"
        ))
    }
}

/// `tls`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// What to create.
    #[command(subcommand)]
    pub command: TlsCommand,
}

/// The `tls` subcommands.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Create a cluster CA (DIR/ca.pem, DIR/ca-key.pem) and the manager's certificate
    /// (DIR/NAME.pem: the certificate then the CA; DIR/NAME-key.pem), and print the CA's digest.
    /// Refuses to replace an existing CA.
    Init(TlsInitArgs),
    /// Issue one more certificate from the CA in DIR (for a worker's endpoint, or a manager on
    /// another host): DIR/NAME.pem and DIR/NAME-key.pem.
    Cert(TlsCertArgs),
}

/// `tls init`.
#[derive(Debug, Args)]
pub struct TlsInitArgs {
    /// The directory to write into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The certificate's name: its file names and common name.
    #[arg(long, default_value = "manager")]
    pub name: String,
    /// A host name or IP address clients reach the server by, besides localhost and 127.0.0.1
    /// (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// How many days the certificate is valid (the CA: ten years).
    #[arg(long, default_value_t = 825, value_name = "N")]
    pub days: u32,
}

/// `tls cert`.
#[derive(Debug, Args)]
pub struct TlsCertArgs {
    /// The directory that holds the CA (`ca.pem`, `ca-key.pem`) from `orkestrator tls init`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The certificate's name: its file names and common name (e.g. worker-1).
    #[arg(long)]
    pub name: String,
    /// A host name or IP address clients reach the server by, besides localhost and 127.0.0.1
    /// (repeatable). A worker's must include the host of the address it registers.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// How many days the certificate is valid.
    #[arg(long, default_value_t = 825, value_name = "N")]
    pub days: u32,
}

/// A format to print a job in.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PrintFormat {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    orkestrator_core::units::parse_duration(s)
}

fn ca_digest(s: &str) -> Result<[u8; 32], String> {
    orkestrator_runtime::http::tls::parse_digest(s).map_err(|e| match e {
        orkestrator_core::Error::Tls { message, .. } => message,
        other => other.to_string(),
    })
}

fn label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not a label (use key=value, e.g. zone=a)")),
    }
}

/// Rewrites the original single-dash flags (`-server`, `-worker`, `-client`, `-scheduler`,
/// `-file F`, `-port N`) into subcommands and long flags. `-port` means the port to listen on for
/// `-server`, and the manager's port on localhost for `-worker`, `-client` and `-scheduler`.
/// Arguments without seed flags pass through unchanged.
pub fn translate_seed_args(args: Vec<String>) -> Vec<String> {
    let mut mode: Option<&str> = None;
    let mut file: Option<String> = None;
    let mut port: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    let mut saw_seed = false;
    let mut it = args.into_iter();
    let program = it.next().unwrap_or_else(|| "orkestrator".into());
    let mut items: Vec<String> = it.collect();
    items.reverse();
    while let Some(a) = items.pop() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') && !f.starts_with("--") => {
                (f.to_owned(), Some(v.to_owned()))
            }
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "-server" | "-worker" | "-client" | "-scheduler" if inline.is_none() => {
                saw_seed = true;
                mode = Some(match flag.as_str() {
                    "-server" => "server",
                    "-worker" => "worker",
                    "-client" => "client",
                    _ => "scheduler",
                });
            }
            "-file" | "-port" => {
                let value = inline.or_else(|| items.pop());
                match value {
                    Some(v) => {
                        saw_seed = true;
                        if flag == "-file" {
                            file = Some(v);
                        } else {
                            port = Some(v);
                        }
                    }
                    None => rest.push(a),
                }
            }
            _ => rest.push(a),
        }
    }
    if !saw_seed {
        let mut out = vec![program];
        out.extend(rest);
        return out;
    }
    let mut out = vec![program];
    match mode {
        Some("server") => {
            out.push("server".into());
            if let Some(p) = port {
                out.extend(["--port".into(), p]);
            }
        }
        Some(m @ ("worker" | "scheduler")) => {
            out.push(m.into());
            if let Some(p) = port {
                out.extend(["--manager".into(), format!("http://127.0.0.1:{p}")]);
            }
        }
        Some("client") | None => {
            out.push("run".into());
            if let Some(p) = port {
                out.extend(["--manager".into(), format!("http://127.0.0.1:{p}")]);
            }
        }
        Some(_) => unreachable!("modes are fixed above"),
    }
    if let Some(f) = file {
        out.extend(["--file".into(), f]);
    }
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        translate_seed_args(v).join(" ")
    }

    #[test]
    fn seed_forms_translate() {
        assert_eq!(t("ork -server -port 5555"), "ork server --port 5555");
        assert_eq!(
            t("ork -worker -port 5555"),
            "ork worker --manager http://127.0.0.1:5555"
        );
        assert_eq!(
            t("ork -client -file job.yaml -port 5555"),
            "ork run --manager http://127.0.0.1:5555 --file job.yaml"
        );
        assert_eq!(t("ork -port=6000 -server"), "ork server --port 6000");
        assert_eq!(t("ork -client -file=j.toml"), "ork run --file j.toml");
        assert_eq!(
            t("ork -scheduler -port 7"),
            "ork scheduler --manager http://127.0.0.1:7"
        );
    }

    #[test]
    fn modern_forms_pass_through() {
        assert_eq!(
            t("ork run -f job.yaml --wait"),
            "ork run -f job.yaml --wait"
        );
        assert_eq!(t("ork status web -o json"), "ork status web -o json");
        assert_eq!(t("ork server -p 5555"), "ork server -p 5555");
    }

    #[test]
    fn every_translation_parses() {
        for line in [
            "orkestrator -server -port 5555",
            "orkestrator -worker -port 5555",
            "orkestrator -client -file job.yaml -port 5555",
        ] {
            let args = translate_seed_args(line.split_whitespace().map(String::from).collect());
            Cli::try_parse_from(args).unwrap();
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// `store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped manager's state (its --data-dir) into etcd, so that managers started with
    /// `--store etcd://...` carry on with it: jobs, instances, workers, tokens and the state
    /// index. Refuses an etcd prefix that already holds anything unless --replace.
    Copy(StoreCopyArgs),
}

/// `store copy`.
#[derive(Debug, Args)]
pub struct StoreCopyArgs {
    /// The manager's data directory (redb), or its state file.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The etcd to copy into: `etcd://HOST:PORT[,HOST:PORT...]`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Delete what the prefix holds first (another cluster's state, or an interrupted copy).
    #[arg(long)]
    pub replace: bool,
}
