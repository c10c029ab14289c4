//! Connecting: the HTTP client a command or a component talks to the manager with (its token,
//! and how it verifies an `https://` manager), and the etcd options of the flags.

use anyhow::Result;
use orkestrator_runtime::HttpTransport;
use orkestrator_runtime::etcd::EtcdOptions;
use orkestrator_runtime::http::tls::ClientTls;

use crate::cli::{EtcdArgs, JoinArgs, ManagerAddr};
use crate::output::{exit, fail};

/// The HTTP client for the manager at `addr`, presenting its token (see
/// [`crate::creds::client_token`]).
pub fn client(addr: &ManagerAddr) -> Result<HttpTransport> {
    let token =
        crate::creds::client_token(addr).map_err(|e| fail(exit::USAGE, format!("{e:#}")))?;
    Ok(bare_client(addr)?.with_token(token))
}

/// The HTTP client for the manager at `addr`, presenting nothing yet, verifying an `https://`
/// manager as [`client_tls`] says.
fn bare_client(addr: &ManagerAddr) -> Result<HttpTransport> {
    let http = HttpTransport::new(&addr.manager)
        .map_err(|e| fail(exit::USAGE, format!("--manager: {e}")))?;
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
        .map_err(|e| fail(exit::USAGE, e.to_string()))
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

/// A worker's or scheduler's client: its own credential if it has one (`credential`), else it
/// joins with the join token and keeps what it is issued (`keep`).
///
/// `pin`, a file in the component's data directory, keeps the cluster CA's digest a join token
/// carried, so that a restart with its credential and no join token still verifies the manager.
pub fn component_client(
    addr: &ManagerAddr,
    join: &JoinArgs,
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
            .map_err(|e| fail(exit::USAGE, e.to_string()))?;
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
                    .map_err(|e| fail(exit::USAGE, e.to_string()))?;
            }
            t = t.with_join_token(j, keep);
        }
        None if token.is_none() => {
            if !t.addresses().iter().any(|a| answers(a)) {
                return Err(fail(
                    exit::UNREACHABLE,
                    format!(
                        "nothing answers at {}: is the manager running there? (start one with `orkestrator server`)",
                        t.addresses().join(", ")
                    ),
                ));
            }
            return Err(fail(
                exit::USAGE,
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

/// Whether something accepts a connection at `base` (`http://HOST:PORT`) within 2 s: without a
/// join token, what is wrong is told apart from the manager not running at all.
fn answers(base: &str) -> bool {
    use std::net::ToSocketAddrs;
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    let Ok(addrs) = host_port.to_socket_addrs() else {
        return false;
    };
    addrs.into_iter().any(|a| {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
    })
}

/// The etcd options of `url` and `args`; `flag` names the URL's flag in errors.
pub fn etcd_options(url: &str, args: &EtcdArgs, flag: &str) -> Result<EtcdOptions> {
    let mut options = EtcdOptions::from_url(url)
        .map_err(|e| fail(exit::USAGE, format!("{flag}: {e}")))?
        .with_prefix(&args.etcd_prefix);
    options.ca_file = args.etcd_ca_file.clone();
    options.client_cert = args.etcd_cert.clone().zip(args.etcd_key.clone());
    options.user = args.etcd_user.clone().zip(args.etcd_password.clone());
    Ok(options)
}
