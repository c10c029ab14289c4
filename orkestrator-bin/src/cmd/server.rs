//! `orkestrator server`: the manager, serving the HTTP API, with an embedded scheduler.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use base64::Engine as _;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::secrets::SecretKey;
use orkestrator_core::store::{MemoryStore, Store};
use orkestrator_runtime::RedbStore;
use orkestrator_runtime::http::server::ServeOptions;
use orkestrator_runtime::http::tls::{ClientTls, digest_hex};
use std::os::unix::fs::PermissionsExt as _;
use zeroize::Zeroizing;

use crate::cli::ServerArgs;
use crate::launch::{bind, scheduler_named, start_background};
use crate::output::{exit, fail};

/// The default key file's name in the data directory.
pub(crate) const SECRET_KEY_FILE: &str = "secret.key";

pub async fn run(a: ServerArgs) -> Result<ExitCode> {
    let mut config = ManagerConfig {
        heartbeat_interval: a.heartbeat_interval,
        heartbeat_grace: a.heartbeat_grace,
        gc_after: a.gc_after,
        event_window: a.event_window,
        metrics_window: a.metrics_window,
        metrics_max_series: a.metrics_max_series,
        failover_grace: a.failover_grace.unwrap_or(if a.store.is_some() {
            std::time::Duration::from_secs(15)
        } else {
            std::time::Duration::ZERO
        }),
        ..ManagerConfig::default()
    };
    let algorithm = scheduler_named(&a.scheduler)?;
    let tls = crate::launch::serve_tls(&a.tls)?;
    let listener = bind(&a.bind, a.port).await?;
    let local = listener.local_addr()?;
    refuse_plain_http_off_loopback(local, tls.is_some(), a.insecure)?;
    let scheme = match &tls {
        Some(t) => {
            // Workers' endpoints are verified against the manager's own CA.
            orkestrator_runtime::http::client::set_worker_tls(&ClientTls::CaCert(t.ca.clone()))?;
            tracing::info!(
                "TLS with {}; cluster CA digest (SHA-256) {}",
                t.cert.display(),
                digest_hex(&t.ca_digest)
            );
            "https"
        }
        None if a.insecure && !local.ip().is_loopback() => {
            tracing::warn!(
                "--insecure: serving plain HTTP on {local}; anyone who can reach it can read and \
                 change the cluster"
            );
            "http"
        }
        None => "http",
    };
    if let Some(url) = a.store.clone() {
        config.secret_key = match &a.secret_key_file {
            Some(path) => Some(read_secret_key(path)?),
            None => {
                tracing::warn!(
                    "no --secret-key-file: secrets are off (503) on this manager; give every manager on this store the same key file"
                );
                None
            }
        };
        let prepared = super::ha::Prepared {
            config,
            algorithm: (!a.no_embedded_scheduler).then_some(algorithm),
            tls,
            listener,
            local,
            scheme,
        };
        return super::ha::run(a, &url, prepared).await;
    }
    let (store, creds): (Arc<dyn Store>, _) = if a.in_memory {
        tracing::warn!("--in-memory: state is lost when the manager stops");
        let creds = crate::creds::runtime_dir()?.join(format!("manager-{}.d", a.port));
        (Arc::new(MemoryStore::new()), creds)
    } else {
        let dir = a
            .data_dir
            .clone()
            .unwrap_or_else(|| crate::dirs::default_data_dir(a.port));
        let store = RedbStore::open_dir(&dir)?;
        tracing::info!("state in {}", store.path().display());
        (Arc::new(store), dir)
    };
    let key_path = match &a.secret_key_file {
        Some(path) => path.clone(),
        None if a.in_memory => creds.join(SECRET_KEY_FILE),
        None => {
            let path = creds.join(SECRET_KEY_FILE);
            if !path.exists() {
                let raw = SecretKey::generate_file_bytes()?;
                let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*raw));
                crate::creds::write_secret(&path, &text)?;
                tracing::info!(
                    "new secret key in {} (keep a copy: without it, the secrets cannot be read)",
                    path.display()
                );
            }
            path
        }
    };
    config.secret_key = if a.in_memory && a.secret_key_file.is_none() {
        // Nothing outlives the process: a key of its own, never written.
        let raw = SecretKey::generate_file_bytes()?;
        Some(SecretKey::from_bytes(&raw)?)
    } else {
        Some(read_secret_key(&key_path)?)
    };
    let manager = match Manager::new(config, store).await {
        Ok(m) => m,
        Err(e @ orkestrator_core::Error::SecretKey(_)) => {
            return Err(fail(exit::USAGE, format!("{}: {e}", key_path.display())));
        }
        Err(e) => return Err(e.into()),
    };
    // The join token carries the cluster CA's digest, so a worker verifies the manager by it.
    crate::creds::bootstrap(&manager, &creds, tls.as_ref().map(|t| t.ca_digest)).await?;
    crate::creds::publish(a.port, &creds)?;
    start_background(&manager, (!a.no_embedded_scheduler).then_some(algorithm));
    tracing::info!("manager listening on {scheme}://{local}");
    let limits = orkestrator_runtime::http::auth::Limits {
        requests: a.max_requests_per_credential,
        streams: a.max_streams_per_credential,
    };
    let app = orkestrator_runtime::http::server::router_with_limits(manager, limits);
    orkestrator_runtime::http::server::serve_app(
        listener,
        app,
        crate::signals::logged_shutdown("manager"),
        ServeOptions::default().with_tls(tls.map(|t| t.config)),
    )
    .await?;
    tracing::info!("manager stopped");
    Ok(ExitCode::SUCCESS)
}

/// Refuses to serve plain HTTP on an address other than loopback unless `--insecure` says so:
/// anyone who can reach it could read and change the cluster (Docker's engine refuses TCP
/// without TLS the same way).
/// The secret key in `path`, or a usage error naming the file and what is wrong.
pub(crate) fn read_secret_key(path: &std::path::Path) -> Result<SecretKey> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        fail(
            exit::USAGE,
            format!("--secret-key-file {}: {e}", path.display()),
        )
    })?);
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} can be read by other users (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    SecretKey::from_file_bytes(&bytes).map_err(|e| {
        fail(
            exit::USAGE,
            format!("--secret-key-file {}: {e}", path.display()),
        )
    })
}

fn refuse_plain_http_off_loopback(local: SocketAddr, tls: bool, insecure: bool) -> Result<()> {
    if tls || insecure || local.ip().is_loopback() {
        return Ok(());
    }
    Err(fail(
        exit::USAGE,
        format!(
            "refusing to serve the API on {local} without TLS: anyone who can reach that address \
             could read and change the cluster, and what clients send would cross the network in \
             the clear. Create certificates with `orkestrator tls init DIR [--san HOST]` and \
             pass --tls-cert DIR/manager.pem --tls-key DIR/manager-key.pem; or pass --insecure \
             to serve plain HTTP anyway (on a network you trust); or bind 127.0.0.1"
        ),
    ))
}
