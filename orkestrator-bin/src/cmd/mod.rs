//! One module per command.

mod dev;
mod events;
mod follow;
mod gc;
mod ha;
mod health;
mod logs;
mod run;
mod scheduler;
mod server;
mod status;
mod stop;
mod store;
mod tls;
mod token;
mod top;
mod validate;
mod worker;
mod workers;

use std::process::ExitCode;

use anyhow::Result;
use std::sync::Arc;

use orkestrator_runtime::HttpTransport;
use orkestrator_runtime::http::tls::{CertificateDer, ClientTls, ServerConfig};

use crate::cli::{Command, ManagerAddr, TlsFiles};

/// Runs one command.
pub async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Server(a) => server::run(a).await,
        Command::Worker(a) => worker::run(a).await,
        Command::Scheduler(a) => scheduler::run(a).await,
        Command::Dev(a) => dev::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Status(a) => status::run(a).await,
        Command::Stop(a) => stop::run(a).await,
        Command::Logs(a) => logs::run(a).await,
        Command::Workers(a) => workers::run(a).await,
        Command::Health(a) => health::run(a).await,
        Command::Gc(a) => gc::run(a).await,
        Command::Validate(a) => validate::run(a),
        Command::Events(a) => events::run(a).await,
        Command::Top(a) => top::run(a).await,
        Command::Token(c) => token::run(c).await,
        Command::Tls(a) => tls::run(a),
        Command::Store(a) => store::run(a).await,
    }
}

/// The HTTP client for the manager at `addr`, presenting its token (see
/// [`crate::creds::client_token`]).
fn client(addr: &ManagerAddr) -> Result<HttpTransport> {
    let token = crate::creds::client_token(addr)
        .map_err(|e| crate::output::fail(crate::output::exit::USAGE, format!("{e:#}")))?;
    Ok(bare_client(addr)?.with_token(token))
}

/// The HTTP client for the manager at `addr`, presenting nothing yet, verifying an `https://`
/// manager as [`client_tls`] says.
fn bare_client(addr: &ManagerAddr) -> Result<HttpTransport> {
    let http = HttpTransport::new(&addr.manager)
        .map_err(|e| crate::output::fail(crate::output::exit::USAGE, format!("--manager: {e}")))?;
    let Some(tls) = client_tls(addr) else {
        return Ok(http);
    };
    if !http.uses_tls() {
        tracing::warn!(
            "--ca-file and --ca-digest only matter for an https:// manager; {} is plain HTTP",
            http.addresses().join(",")
        );
    }
    http.with_tls(tls)
        .map_err(|e| crate::output::fail(crate::output::exit::USAGE, e.to_string()))
}

/// How to verify an `https://` manager: against `--ca-file`, or the cluster CA of
/// `--ca-digest`; `None`: the system's trusted roots.
fn client_tls(addr: &ManagerAddr) -> Option<ClientTls> {
    match (&addr.ca_file, addr.ca_digest) {
        (Some(file), _) => Some(ClientTls::CaFile(file.clone())),
        (None, Some(digest)) => Some(ClientTls::CaDigest(digest)),
        (None, None) => None,
    }
}

/// What a server (the manager, a worker's endpoint) serves TLS with.
pub(crate) struct ServeTls {
    /// The certificate chain file (`--tls-cert`).
    pub(crate) cert: std::path::PathBuf,
    /// The rustls configuration.
    pub(crate) config: Arc<ServerConfig>,
    /// The CA that ends its chain: what the manager verifies its workers against.
    pub(crate) ca: CertificateDer<'static>,
    /// That CA's SHA-256 digest: what clients and joining workers can verify the server by.
    pub(crate) ca_digest: [u8; 32],
}

/// Loads `--tls-cert` and `--tls-key` (`None` when neither is given; clap requires both or
/// neither).
fn serve_tls(files: &TlsFiles) -> Result<Option<ServeTls>> {
    let (Some(cert), Some(key)) = (&files.tls_cert, &files.tls_key) else {
        return Ok(None);
    };
    let usage = |e: orkestrator_core::Error| {
        crate::output::fail(
            crate::output::exit::USAGE,
            format!("--tls-cert/--tls-key: {e}"),
        )
    };
    use orkestrator_runtime::http::tls as rt;
    let config = rt::server_config(cert, key).map_err(usage)?;
    let ca = rt::ca_of_chain(cert).map_err(usage)?;
    Ok(Some(ServeTls {
        cert: cert.clone(),
        config,
        ca_digest: rt::cert_digest(&ca),
        ca,
    }))
}

/// A worker's or scheduler's client: its own credential if it has one (`credential`), else it
/// joins with the join token and keeps what it is issued (`keep`).
///
/// `pin`, a file in the component's data directory, keeps the cluster CA's digest a join token
/// carried, so that a restart with its credential and no join token still verifies the manager.
fn component_client(
    addr: &ManagerAddr,
    join: &crate::cli::JoinArgs,
    credential: Option<String>,
    keep: Option<orkestrator_runtime::http::client::OnCredential>,
    pin: Option<&std::path::Path>,
) -> Result<HttpTransport> {
    let explicit = addr.token.is_some() || addr.token_file.is_some();
    let token = if explicit {
        crate::creds::client_token(addr)?
    } else {
        credential
    };
    let mut t = bare_client(addr)?.with_token(token.clone());
    let pinned = pin
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| orkestrator_core::auth::from_hex(text.trim()));
    let join_token = crate::creds::join_token(join, addr)?;
    if join_token.is_none()
        && let (Some(d), None, true) = (pinned, client_tls(addr), t.uses_tls())
    {
        t = t
            .with_tls(ClientTls::CaDigest(d))
            .map_err(|e| crate::output::fail(crate::output::exit::USAGE, e.to_string()))?;
    }
    match join_token {
        Some(j) => {
            // A join token that carries the cluster CA's digest verifies an https:// manager
            // by it, unless --ca-file or --ca-digest say otherwise.
            let digest = orkestrator_core::auth::TokenParts::parse(&j).and_then(|p| p.ca_digest);
            if let (Some(d), Some(p)) = (digest, pin)
                && pinned != Some(d)
                && let Err(e) = crate::creds::write_secret(p, &orkestrator_core::auth::to_hex(&d))
            {
                tracing::warn!(error = %format!("{e:#}"), "cannot keep the cluster CA's digest");
            }
            if let (Some(d), None, true) = (digest, client_tls(addr), t.uses_tls()) {
                t = t
                    .with_tls(ClientTls::CaDigest(d))
                    .map_err(|e| crate::output::fail(crate::output::exit::USAGE, e.to_string()))?;
            }
            t = t.with_join_token(j, keep);
        }
        None if token.is_none() => {
            return Err(crate::output::fail(
                crate::output::exit::USAGE,
                format!(
                    "no join token: pass --join-token-file FILE (the manager wrote it to DATA_DIR/{}), --join-token or ORKESTRATOR_JOIN_TOKEN; on the manager's own host it is found by itself",
                    crate::creds::JOIN_FILE
                ),
            ));
        }
        None => {}
    }
    Ok(t)
}

/// `$XDG_DATA_HOME/orkestrator/NAME`, else `~/.local/share/orkestrator/NAME`, else
/// `./.orkestrator/NAME`.
pub fn data_dir_named(name: &str) -> std::path::PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .map(|b| b.join("orkestrator"))
        .unwrap_or_else(|| std::path::PathBuf::from(".orkestrator"));
    base.join(name)
}

/// The manager's default data directory for `port`.
pub fn default_data_dir(port: u16) -> std::path::PathBuf {
    data_dir_named(&format!("manager-{port}"))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Prints a value as pretty JSON.
fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a value as JSON on one line.
fn print_json_line<T: serde::Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// "3s ago", "2m ago".
fn ago(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else {
        format!("{}h ago", s / 3600)
    }
}
