//! `orkestrator worker`: runs assigned tasks on the local Docker engine.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use orkestrator_core::worker::{WorkerAgent, WorkerConfig};
use orkestrator_runtime::DockerRuntime;
use orkestrator_runtime::http::server::ServeOptions;
use orkestrator_runtime::http::worker_metrics::{
    EngineMetrics, InstrumentedRuntime, WorkerMetricsSource,
};

use crate::cli::WorkerArgs;
use crate::launch::SysProbe;

pub async fn run(a: WorkerArgs) -> Result<ExitCode> {
    // Before anything else: a bad command line changes nothing.
    if a.host_volumes.len() > orkestrator_core::manager::MAX_HOST_VOLUMES {
        anyhow::bail!(
            "{} host volumes offered; at most {} are allowed",
            a.host_volumes.len(),
            orkestrator_core::manager::MAX_HOST_VOLUMES
        );
    }
    for (name, _) in &a.host_volumes {
        if a.host_volumes.iter().filter(|(n, _)| n == name).count() > 1 {
            anyhow::bail!("--host-volume {name} is given twice: give each name once");
        }
    }
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), a.port));
    let data_dir = a
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::dirs::data_dir_named(&format!("worker-{name}")));
    crate::creds::private_dir(&data_dir)?;
    let credential_file = data_dir.join(crate::creds::CREDENTIAL_FILE);
    let credential = crate::creds::read_token(&credential_file).ok();
    let keep: orkestrator_runtime::http::client::OnCredential = {
        let file = credential_file.clone();
        Arc::new(move |c: &str| match crate::creds::write_secret(&file, c) {
            Ok(()) => tracing::info!(file = %file.display(), "credential kept (mode 0600)"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot keep the worker's credential: a restart will need the join token again")
            }
        })
    };
    let pin = data_dir.join("ca.sha256");
    let transport = Arc::new(crate::connect::component_client(
        &a.addr,
        &a.join,
        credential,
        Some(keep),
        Some(&pin),
    )?);
    let tls = crate::launch::serve_tls(&a.tls)?;
    let listener = tokio::net::TcpListener::bind((a.bind.as_str(), a.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (another worker there? pick another with --port)",
                a.bind, a.port
            )
        })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let local = format!("{scheme}://{}", listener.local_addr()?);
    let address = match &a.advertise {
        Some(host) => format!("{scheme}://{host}"),
        None => local.clone(),
    };
    let probe = Arc::new(SysProbe::new(&a)?);
    let engine = EngineMetrics::new();
    let runtime = Arc::new(InstrumentedRuntime::new(
        DockerRuntime::connect()?,
        engine.clone(),
    ));
    let mut config = WorkerConfig::new(name.clone());
    config.address = Some(address.clone());
    config.labels = a.labels.iter().cloned().collect();
    config.stop_grace = a.stop_grace;
    config.metrics_interval = a.metrics_interval;
    config.network_pool = a.network_pool;
    config.host_volumes = a.host_volumes.iter().cloned().collect();
    config.routes_file = Some("/proc/net/route".into());
    config.files_dir = Some(data_dir.join("files"));
    config.secrets_dir = Some(
        a.secrets_dir
            .clone()
            .unwrap_or_else(|| orkestrator_core::worker::secrets::default_dir(name.as_str())),
    );
    let manager = transport.addresses().join(",");
    let advertised = if address == local {
        String::new()
    } else {
        format!(" (the manager reaches it at {address})")
    };
    tracing::info!(
        "worker {name} serving on {local}{advertised}; its manager is at {manager} \
         (the seed's `-port` is the manager's port; the worker's own is --port)"
    );
    let agent = WorkerAgent::new(config, transport.clone(), runtime.clone(), probe);
    let metrics = WorkerMetricsSource {
        worker: name.clone().into(),
        latest: agent.metrics(),
        engine,
    };
    let verifier = Arc::new(orkestrator_runtime::http::auth::RemoteVerifier::new(
        transport.as_ref().clone(),
    ));
    let endpoint = orkestrator_runtime::http::server::worker_router_with_metrics(
        name.clone().into(),
        runtime,
        metrics,
        verifier,
    );
    let options = ServeOptions::default().with_tls(tls.map(|t| t.config));
    tokio::spawn(async move {
        let _ =
            orkestrator_runtime::http::server::serve_router_with(listener, endpoint, options).await;
    });
    // A refusal for good (a name taken, an unknown join token, not a manager there) ends the
    // worker with the manager's words and a non-zero exit code.
    agent
        .run(crate::signals::logged_shutdown("worker"))
        .await
        .with_context(|| format!("worker {name} stopped"))?;
    tracing::info!(
        "worker stopped; its containers keep running and are adopted when it comes back"
    );
    Ok(ExitCode::SUCCESS)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into())
        .to_ascii_lowercase()
}
