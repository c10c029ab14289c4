//! What many commands share: where the manager is and how to reach it, how a component joins,
//! the TLS files a server serves with, the output format, and the parsers of flag values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Default manager port.
pub const DEFAULT_PORT: u16 = 5555;
/// Default address of the manager.
pub const DEFAULT_MANAGER: &str = "http://127.0.0.1:5555";

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

pub(super) fn duration(s: &str) -> Result<Duration, String> {
    orkestrator_core::units::parse_duration(s)
}

fn ca_digest(s: &str) -> Result<[u8; 32], String> {
    orkestrator_runtime::http::tls::parse_digest(s).map_err(|e| match e {
        orkestrator_core::Error::Tls { message, .. } => message,
        other => other.to_string(),
    })
}

pub(super) fn label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not a label (use key=value, e.g. zone=a)")),
    }
}
