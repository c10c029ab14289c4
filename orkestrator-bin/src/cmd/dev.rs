//! `orkestrator dev [--run FILE]`: manager, embedded scheduler and one Docker worker in one
//! process, serving the API like `server` does.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use orkestrator_core::api::JobPhase;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::runtime::Runtime;
use orkestrator_core::spec::load_job_file;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::worker::{WorkerAgent, WorkerConfig};
use orkestrator_runtime::DockerRuntime;
use orkestrator_runtime::http::worker_metrics::{
    EngineMetrics, InstrumentedRuntime, WorkerMetricsSource,
};

use crate::cli::{DevArgs, Output};
use crate::launch::SysProbe;

pub async fn run(a: DevArgs) -> Result<ExitCode> {
    // A Compose file runs as `compose up` would, its directory offered to the worker.
    let compose = a
        .run
        .as_ref()
        .filter(|p| crate::cmd::compose::is_compose_file(p))
        .cloned();
    let job = match &a.run {
        Some(path) if compose.is_none() => {
            Some(load_job_file(path).with_context(|| format!("{}", path.display()))?)
        }
        _ => None,
    };
    let engine = EngineMetrics::new();
    let runtime = Arc::new(InstrumentedRuntime::new(
        DockerRuntime::connect()?,
        engine.clone(),
    ));
    runtime
        .ping()
        .await
        .context("the dev cluster's worker needs a Docker engine")?;

    // Nothing outlives the process: secrets get a key of their own, never written.
    let raw = orkestrator_core::secrets::SecretKey::generate_file_bytes()?;
    let config = ManagerConfig {
        secret_key: Some(orkestrator_core::secrets::SecretKey::from_bytes(&raw)?),
        ..ManagerConfig::default()
    };
    let manager = Manager::new(config, Arc::new(MemoryStore::new())).await?;
    let listener = crate::launch::bind("127.0.0.1", a.port).await?;
    let creds = crate::creds::runtime_dir()?.join(format!("manager-{}.d", a.port));
    crate::creds::bootstrap(&manager, &creds, None).await?;
    crate::creds::publish(a.port, &creds)?;
    let addr = format!("http://{}", listener.local_addr()?);
    crate::launch::start_background(&manager, Some(crate::launch::scheduler_named("spread")?));
    let m = manager.clone();
    tokio::spawn(async move {
        let _ = orkestrator_runtime::http::server::serve(listener, m, std::future::pending()).await;
    });

    let transport = Arc::new(LocalTransport::new(manager.clone()));
    let mut config = WorkerConfig::new("dev-worker");
    config.stop_grace = a.stop_grace;
    if let Some(file) = &compose {
        let dir = std::fs::canonicalize(file)
            .with_context(|| format!("{}", file.display()))?
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| ".".into());
        config.host_volumes.insert(
            crate::cmd::compose::DEV_PROJECT_VOLUME.to_owned(),
            orkestrator_core::worker::host_volumes::HostVolume {
                path: dir,
                read_only: false,
            },
        );
    }
    config.routes_file = Some("/proc/net/route".into());
    config.files_dir = Some(creds.join("files"));
    config.secrets_dir = Some(orkestrator_core::worker::secrets::default_dir(&format!(
        "dev-{}",
        a.port
    )));
    // The worker's own endpoint (for `orkestrator logs`), on a free loopback port.
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    config.address = Some(format!("http://{}", endpoint.local_addr()?));
    let probe = Arc::new(SysProbe::with_caps(None, None, None)?);
    let id = config.id.clone();
    let worker = WorkerAgent::new(config, transport.clone(), runtime.clone(), probe);
    let metrics = WorkerMetricsSource {
        worker: id.clone(),
        latest: worker.metrics(),
        engine,
    };
    let router = orkestrator_runtime::http::server::worker_router_with_metrics(
        id,
        runtime,
        metrics,
        Arc::new(manager.clone()),
    );
    tokio::spawn(async move {
        let _ = orkestrator_runtime::http::server::serve_router(endpoint, router).await;
    });
    tokio::spawn(worker.run(std::future::pending()));

    outln!("dev cluster up: manager at {addr}, embedded scheduler, worker dev-worker (Docker)");
    outln!("  try: orkestrator status --manager {addr}");

    let mut code = ExitCode::SUCCESS;
    if let Some(file) = compose {
        let up = crate::cli::ComposeUpArgs {
            project: crate::cli::ProjectArgs {
                files: vec![file],
                project_name: None,
                env_file: None,
                profiles: Vec::new(),
                strict: false,
            },
            wait: true,
            timeout: Duration::from_secs(300),
            push: None,
            output: Output::Table,
            addr: crate::cli::ManagerAddr {
                manager: addr.clone(),
                token: None,
                token_file: None,
                ca_file: None,
                ca_digest: None,
            },
        };
        code =
            match crate::cmd::compose::up(up, Some(crate::cmd::compose::DEV_PROJECT_VOLUME.into()))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    errln!("error: {e:#}");
                    ExitCode::from(crate::output::exit::FAILED)
                }
            };
        if a.exit {
            stop_all(transport.as_ref(), a.stop_grace).await;
            return Ok(code);
        }
    }
    if let Some(job) = job {
        let r = transport.submit_job(&job).await?;
        outln!("job {} submitted (version {})", r.job, r.version);
        code = match crate::follow::wait(
            transport.as_ref(),
            &r.job,
            r.index,
            crate::follow::Goal::Running,
            Duration::from_secs(300),
            Output::Table,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                errln!("error: {e:#}");
                ExitCode::from(crate::output::exit::FAILED)
            }
        };
        if let Ok(v) = transport.get_job(&r.job).await {
            for i in &v.instances {
                for (name, t) in &i.tasks {
                    let c = t
                        .container_id
                        .as_deref()
                        .map(|c| &c[..c.len().min(12)])
                        .unwrap_or("-");
                    outln!("  task {name}: {} (container {c})", t.state);
                }
            }
        }
        if a.exit {
            stop_all(transport.as_ref(), a.stop_grace).await;
            return Ok(code);
        }
    }
    outln!("serving until Ctrl-C; jobs are stopped and their containers removed on exit");
    crate::signals::shutdown_signal().await;
    stop_all(transport.as_ref(), a.stop_grace).await;
    Ok(code)
}

/// Stops every job and waits (bounded) for their containers to go: dev state is in memory, so
/// leaving containers behind would orphan them.
async fn stop_all(t: &LocalTransport, grace: Duration) {
    let jobs = t.list_jobs().await.unwrap_or_default();
    for j in &jobs {
        let _ = t.stop_job(&j.name).await;
    }
    let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let all = t.list_jobs().await.unwrap_or_default();
        if all.iter().all(|j| j.phase == JobPhase::Stopped) {
            let _ = crate::output::write_out(format_args!("stopped {} job(s)\n", all.len()));
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    errln!("some containers may still be stopping");
}
