//! The arguments of the administration commands: `token`, `tls` and `store`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::common::OutputArgs;
use super::daemons::EtcdArgs;

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

/// `secret`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret (version 1) from a file, a literal or standard input.
    Create(SecretWriteArgs),
    /// List secrets: names, versions, sizes and times, never values.
    List(OutputArgs),
    /// Give a secret a new version, from a file, a literal or standard input.
    Update(SecretWriteArgs),
    /// Remove a secret and all its versions (refused while a job uses it).
    Rm(SecretRmArgs),
    /// Re-encrypt every secret under a new key, in a stopped manager's redb data directory.
    RotateKey(SecretRotateKeyArgs),
}

/// `volume`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List named volumes: job, index, volume, worker and state.
    #[command(visible_alias = "ls")]
    List(VolumeListArgs),
    /// Remove a named volume and its data: its worker is told to remove it (refused while its
    /// job runs or wants it; stop the job first).
    Rm(VolumeRmArgs),
}

/// `volume list` (and `volumes`).
#[derive(Debug, Args)]
pub struct VolumeListArgs {
    /// Only this job's volumes.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `volume rm JOB INDEX VOLUME`.
#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// The job.
    pub job: String,
    /// The instance index (the INDEX column of `volume list`).
    pub index: u32,
    /// The volume's name in the job's `volumes`.
    pub volume: String,
    /// The worker holding the copy to remove, when more than one holds one (an orphan).
    #[arg(long, value_name = "WORKER")]
    pub worker: Option<String>,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `secret rotate-key`: works on the store itself, with its manager stopped (redb only; a
/// store on etcd is refused).
#[derive(Debug, Args)]
pub struct SecretRotateKeyArgs {
    /// The stopped manager's data directory.
    #[arg(long, value_name = "DIR", env = "ORKESTRATOR_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The key the secrets are sealed with now. Default: `secret.key` in the data directory.
    #[arg(long, value_name = "PATH", requires = "new_key_file")]
    pub secret_key_file: Option<PathBuf>,
    /// The new key (32 bytes: raw, base64 or hex). Default: a new random key, which replaces
    /// `secret.key` in the data directory (the old one is kept as `secret.key.old`). Required
    /// with --secret-key-file.
    #[arg(long, value_name = "PATH")]
    pub new_key_file: Option<PathBuf>,
}

/// `secret create` and `secret update`: the name and where the value comes from (exactly one
/// of `-f FILE`, `--from-literal V` and `-`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)
    .args(["file", "from_literal", "stdin"])))]
pub struct SecretWriteArgs {
    /// The secret's name: lowercase letters, digits, `-`, `_` and `.`, at most 253 bytes.
    pub name: String,
    /// `-`: read the value from standard input (to its end, as bytes).
    #[arg(value_parser = dash)]
    pub stdin: Option<String>,
    /// Read the value from FILE (its bytes as they are, at most 512 KiB).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The value itself. It shows in the shell's history and the process list: prefer -f or -.
    #[arg(long = "from-literal", value_name = "V")]
    pub from_literal: Option<String>,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `secret rm`.
#[derive(Debug, Args)]
pub struct SecretRmArgs {
    /// The secret's name.
    pub name: String,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

fn dash(s: &str) -> Result<String, String> {
    if s == "-" {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s}: give the value with -f FILE, --from-literal V or - (standard input)"
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
    /// `--store etcd://...` carry on with it: jobs, instances, workers, tokens, secrets and the
    /// state index. Secrets are copied as they are stored, sealed (never opened), with the
    /// store's key check: give the managers on etcd the key file the redb manager used
    /// (`secret.key` in its data directory) with --secret-key-file. Refuses an etcd prefix that
    /// already holds anything unless --replace.
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
