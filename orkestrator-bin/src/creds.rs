//! Where tokens are kept on disk and how commands find them.
//!
//! `server` keeps its tokens in files of mode 0600 in its credentials directory (its data
//! directory, or for `--in-memory` and `dev` a directory under the runtime directory):
//! `operator.token`, `join.token` and `manager.token` (the manager's credential for workers'
//! endpoints). It also writes a pointer, `RUNTIME/manager-PORT`, naming that directory, so that
//! a client on the same host that talks to `127.0.0.1:PORT` finds the operator token (and a
//! worker the join token) by itself, if the user can read it: the quick start and the original
//! command lines need no configuration.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use orkestrator_core::auth::Role;
use orkestrator_core::manager::Manager;

use crate::cli::{JoinArgs, ManagerAddr};

/// The operator token's file in a credentials directory.
pub const OPERATOR_FILE: &str = "operator.token";
/// The join token's file.
pub const JOIN_FILE: &str = "join.token";
/// The manager's own credential for workers' endpoints.
pub const MANAGER_FILE: &str = "manager.token";
/// A worker's credential in its data directory.
pub const CREDENTIAL_FILE: &str = "credential";

/// `$XDG_RUNTIME_DIR/orkestrator`, else `TMP/orkestrator-UID`: this user's, mode 0700.
pub fn runtime_dir() -> Result<PathBuf> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("orkestrator"),
        None => std::env::temp_dir().join(format!("orkestrator-{uid}")),
    };
    private_dir(&dir)?;
    let meta = std::fs::metadata(&dir)?;
    if meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} is not this user's private directory (owner {}, mode {:o}): remove it",
            dir.display(),
            meta.uid(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(dir)
}

/// Creates `dir` (and its parents) with mode 0700 for what it creates.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `text` to `path` with mode 0600, replacing it whole (a new file renamed over it).
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The token in a file (its first line), if it can be read.
pub fn read_token(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        bail!("{} holds no token", path.display());
    }
    Ok(token)
}

/// Makes sure the server's operator, join and manager tokens exist and that their files hold
/// them, writing new ones where a file is missing or stale; logs where they are, never what.
/// The join token carries `ca_digest` (a TLS manager's cluster CA); the manager token becomes the
/// manager's credential for workers' endpoints.
pub async fn bootstrap(manager: &Manager, dir: &Path, ca_digest: Option<[u8; 32]>) -> Result<()> {
    private_dir(dir)?;
    for (role, file, name) in [
        (Role::Operator, OPERATOR_FILE, "operator (operator.token)"),
        (Role::Join, JOIN_FILE, "join (join.token)"),
        (Role::Manager, MANAGER_FILE, "manager (manager.token)"),
    ] {
        let path = dir.join(file);
        let existing = read_token(&path).ok();
        let current = existing.as_deref().map(|t| {
            orkestrator_core::auth::TokenParts::parse(t).map_or(t.to_owned(), |p| p.credential())
        });
        let fresh = manager
            .tokens()
            .bootstrap(role.clone(), name, current.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the {role} token: {e}"))?;
        let token = fresh.clone().or(current).unwrap_or_default();
        // The join token carries the CA's digest, so a worker verifies the manager with it alone.
        let text = match (&role, ca_digest) {
            (Role::Join, Some(ca)) => orkestrator_core::auth::with_ca_digest(&token, &ca),
            _ => token.clone(),
        };
        if fresh.is_some() || existing.as_deref() != Some(text.as_str()) {
            write_secret(&path, &text)?;
            tracing::info!(file = %path.display(), "{role} token written (mode 0600)");
        } else {
            tracing::info!(file = %path.display(), "{role} token");
        }
        if role == Role::Manager {
            manager.tokens().set_endpoint(Some(token));
        }
    }
    Ok(())
}

/// [`bootstrap`] for one of several managers on one store (etcd), once it leads: the operator
/// and join tokens are created in one commit by whichever manager leads first, and their files
/// written only on its host; a later leader never makes its own (on its host, copy them from the
/// first, or `orkestrator token create`). The manager token, its credential towards workers'
/// endpoints, is each manager's own (`manager NAME`).
pub async fn bootstrap_shared(
    manager: &Manager,
    dir: &Path,
    ca_digest: Option<[u8; 32]>,
    own_name: &str,
) -> Result<()> {
    private_dir(dir)?;
    let shared = [
        (Role::Operator, OPERATOR_FILE, "operator (operator.token)"),
        (Role::Join, JOIN_FILE, "join (join.token)"),
    ];
    let wanted: Vec<(Role, &str)> = shared.iter().map(|(r, _, n)| (r.clone(), *n)).collect();
    let made = manager
        .tokens()
        .bootstrap_once(&wanted)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the cluster's tokens: {e}"))?;
    for ((role, file, _), fresh) in shared.iter().zip(made) {
        let path = dir.join(file);
        match fresh {
            Some(token) => {
                let text = match (role, ca_digest) {
                    (Role::Join, Some(ca)) => orkestrator_core::auth::with_ca_digest(&token, &ca),
                    _ => token,
                };
                write_secret(&path, &text)?;
                tracing::info!(file = %path.display(), "{role} token created for the cluster and written (mode 0600)");
            }
            None if read_token(&path).is_ok() => {
                tracing::info!(file = %path.display(), "{role} token");
            }
            None => tracing::info!(
                "the cluster's {role} token was created by the manager that led first; it is in \
                 {file} in that manager's data directory (or create another: orkestrator token \
                 create)"
            ),
        }
    }
    let path = dir.join(MANAGER_FILE);
    let name = format!("manager {own_name}");
    let existing = read_token(&path).ok();
    let current = existing.as_deref().map(|t| {
        orkestrator_core::auth::TokenParts::parse(t).map_or(t.to_owned(), |p| p.credential())
    });
    let fresh = manager
        .tokens()
        .bootstrap(Role::Manager, &name, current.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot create this manager's token: {e}"))?;
    if let Some(t) = &fresh {
        write_secret(&path, t)?;
        tracing::info!(file = %path.display(), "manager token written (mode 0600)");
    }
    manager.tokens().set_endpoint(fresh.or(current));
    Ok(())
}

/// Records that the manager on `port` keeps its tokens in `dir`.
pub fn publish(port: u16, dir: &Path) -> Result<()> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let pointer = runtime_dir()?.join(format!("manager-{port}"));
    write_secret(&pointer, &dir.to_string_lossy())
}

/// The credentials directory of the manager on this host's `port`, if one is known.
fn find_dir(port: u16) -> Option<PathBuf> {
    let pointer = runtime_dir().ok()?.join(format!("manager-{port}"));
    if let Ok(text) = std::fs::read_to_string(pointer) {
        let dir = PathBuf::from(text.trim());
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let default = crate::dirs::default_data_dir(port);
    default.is_dir().then_some(default)
}

/// The port of `url` if it names this host (loopback or `localhost`).
fn local_port(url: &str) -> Option<u16> {
    let base = orkestrator_runtime::http::client::normalize_addr(url).ok()?;
    let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    let hostport = rest.split('/').next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        return None;
    }
    port.parse().ok()
}

/// The token in `file` of the credentials directory of the first manager on this host in
/// `managers` (a comma-separated list of addresses) that has one the user can read.
fn local_token(managers: &str, file: &str) -> Option<String> {
    local_token_in(managers, file, find_dir)
}

/// [`local_token`], with `dir_of` finding the credentials directory of a port.
fn local_token_in(
    managers: &str,
    file: &str,
    dir_of: impl Fn(u16) -> Option<PathBuf>,
) -> Option<String> {
    managers
        .split(',')
        .filter_map(local_port)
        .filter_map(dir_of)
        .find_map(|d| read_token(&d.join(file)).ok())
}

/// The token a client presents: `--token`/`ORKESTRATOR_TOKEN`, `--token-file`, else the
/// operator token of a manager on this host (the first of the loopback addresses in
/// `--manager` whose token the user can read).
pub fn client_token(addr: &ManagerAddr) -> Result<Option<String>> {
    if let Some(t) = &addr.token {
        return Ok(Some(t.trim().to_owned()));
    }
    if let Some(f) = &addr.token_file {
        return read_token(f).map(Some).context("--token-file");
    }
    Ok(local_token(&addr.manager, OPERATOR_FILE))
}

/// The join token a worker or scheduler presents: `--join-token`/`ORKESTRATOR_JOIN_TOKEN`,
/// `--join-token-file`, else the join token of a manager on this host (as
/// [`client_token`] finds the operator token).
pub fn join_token(join: &JoinArgs, addr: &ManagerAddr) -> Result<Option<String>> {
    if let Some(t) = &join.join_token {
        return Ok(Some(t.trim().to_owned()));
    }
    if let Some(f) = &join.join_token_file {
        return read_token(f).map(Some).context("--join-token-file");
    }
    Ok(local_token(&addr.manager, JOIN_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_recognised() {
        assert_eq!(local_port("http://127.0.0.1:5555"), Some(5555));
        assert_eq!(local_port("localhost:6000"), Some(6000));
        assert_eq!(local_port("http://[::1]:7000/"), Some(7000));
        assert_eq!(local_port("http://10.0.0.2:5555"), None);
        assert_eq!(local_port("http://manager.example:5555"), None);
    }

    #[test]
    fn the_first_local_manager_with_a_token_gives_it() {
        let dirs = tempfile::tempdir().unwrap();
        let (no_token, with_token, other) = (
            dirs.path().join("7001"),
            dirs.path().join("7002"),
            dirs.path().join("7003"),
        );
        for d in [&no_token, &with_token, &other] {
            std::fs::create_dir(d).unwrap();
        }
        write_secret(&with_token.join(OPERATOR_FILE), "ork.second").unwrap();
        write_secret(&other.join(OPERATOR_FILE), "ork.third").unwrap();
        let dir_of = |port: u16| {
            let d = dirs.path().join(port.to_string());
            d.is_dir().then_some(d)
        };
        // A remote address, a port with no manager, one whose directory has no token: skipped.
        let list = "http://10.0.0.9:7003, 127.0.0.1:7000,localhost:7001,http://127.0.0.1:7002,127.0.0.1:7003";
        assert_eq!(
            local_token_in(list, OPERATOR_FILE, dir_of).as_deref(),
            Some("ork.second")
        );
        assert_eq!(
            local_token_in("127.0.0.1:7003", OPERATOR_FILE, dir_of).as_deref(),
            Some("ork.third")
        );
        assert_eq!(local_token_in("10.0.0.9:7002", OPERATOR_FILE, dir_of), None);
        assert_eq!(local_token_in(list, JOIN_FILE, dir_of), None);
    }

    #[test]
    fn secrets_are_written_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.token");
        write_secret(&p, "ork.x.y").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_token(&p).unwrap(), "ork.x.y");
        write_secret(&p, "ork.z").unwrap();
        assert_eq!(read_token(&p).unwrap(), "ork.z");
    }
}
