//! C1M with in-process agents (issue 9): a manager on the real redb store, its embedded `spread`
//! scheduler, and W light worker agents in the same process over the in-process transport —
//! registering, heartbeating every second, watching their assignments and reporting `Starting`
//! then `Running` in batches — then J jobs of count C, timed until every task is Running.
//!
//! ```text
//! cargo run --release -p orkestrator-benches --bin c1m-local -- [--workers 10000] [--jobs 1000] [--count 1000]
//! ```
//!
//! It measures the manager's core (state, group commit to redb, placement, watches) without HTTP;
//! the `scale c1m` scenario measures the same over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use orkestrator_benches::rss_bytes;
use orkestrator_core::api::*;
use orkestrator_core::ids::{InstanceId, SchedulerId, WorkerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::{Registry, SchedulerAgent};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::transport::WorkerApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_runtime::RedbStore;

#[derive(Debug, Parser)]
#[command(
    name = "c1m-local",
    about = "C1M with in-process agents on the real store"
)]
struct Opts {
    /// Simulated workers.
    #[arg(long, default_value_t = 10_000)]
    workers: usize,
    /// Jobs to submit.
    #[arg(long, default_value_t = 1_000)]
    jobs: usize,
    /// Instances per job.
    #[arg(long, default_value_t = 1_000)]
    count: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// One light agent: register, heartbeat, watch, report Starting then Running.
async fn agent(t: LocalTransport, id: WorkerId, reported: Arc<AtomicU64>) -> Result<()> {
    let total = Resources {
        cpu: Cpu::from_cores(1000),
        memory: ByteSize::gib(1024),
        disk: ByteSize::gib(10_000),
    };
    let resources = WorkerResources {
        total,
        allocated: Resources::ZERO,
        available: total,
    };
    t.register_worker(&RegisterWorker {
        id: id.clone(),
        address: None,
        labels: BTreeMap::new(),
        host_volumes: Default::default(),
        resources,
        version: "bench".into(),
    })
    .await?;
    {
        let (t, id) = (t.clone(), id.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let hb = WorkerHeartbeat {
                    resources,
                    healthy: true,
                    message: None,
                };
                let _ = t.worker_heartbeat(&id, &hb).await;
            }
        });
    }
    let mut held: BTreeMap<InstanceId, Assignment> = BTreeMap::new();
    let mut running: BTreeSet<InstanceId> = BTreeSet::new();
    let mut index = 0;
    loop {
        let a = t
            .watch_assignments(&id, index, Duration::from_secs(30))
            .await?;
        index = a.index;
        a.apply_to(&mut held);
        let new: Vec<&Assignment> = held
            .values()
            .filter(|a| a.desired == Desired::Run && !running.contains(&a.instance))
            .collect();
        if new.is_empty() {
            continue;
        }
        for state in [TaskState::Starting, TaskState::Running] {
            let updates: Vec<TaskUpdate> = new
                .iter()
                .flat_map(|a| {
                    a.job.tasks.iter().map(move |task| TaskUpdate {
                        instance: a.instance.clone(),
                        task: task.name.clone(),
                        state,
                        exit_code: None,
                        reason: None,
                        container_id: Some(format!("c-{}-{}", a.instance, task.name)),
                        restarts: 0,
                        next_start_at: None,
                        healthy: None,
                    })
                })
                .collect();
            let r = t.report_status(&id, &updates).await?;
            if !r.rejected.is_empty() {
                bail!("{id}: updates rejected: {:?}", &r.rejected[..1]);
            }
        }
        reported.fetch_add(new.len() as u64, Ordering::Relaxed);
        for a in new {
            running.insert(a.instance.clone());
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = Opts::parse();
    let dir = tempfile::tempdir().context("a temporary data directory")?;
    let store = Arc::new(RedbStore::open_dir(dir.path())?);
    let manager = Manager::new(ManagerConfig::default(), store).await?;
    let transport = LocalTransport::new(manager.clone());
    let scheduler = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        Arc::new(transport.link()),
        Registry::builtin().get("spread").context("spread")?,
    );
    tokio::spawn(scheduler.run(std::future::pending()));
    tokio::spawn(manager.clone().cluster().run_liveness_checks());
    let rss0 = rss_bytes();
    let reported = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    for w in 0..o.workers {
        let (t, r) = (transport.link(), reported.clone());
        let id = WorkerId::new(format!("w{w:05}"));
        tokio::spawn(async move {
            if let Err(e) = agent(t, id.clone(), r).await {
                eprintln!("agent {id}: {e}");
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = manager.cluster().health().await?;
        if h.worker_count() as usize == o.workers {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {} workers registered", h.worker_count());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{} workers registered in {:.2?}", o.workers, t0.elapsed());
    let total = o.jobs as u64 * u64::from(o.count);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for j in 0..o.jobs {
        let job = parse_job(
            &format!(
                "name: c1m-{j:04}\ncount: {}\ntasks: [{{name: t, image: busybox:1.36, resources: {{cpu: 10m, memory: 8Mi, disk: 8Mi}}}}]",
                o.count
            ),
            Format::Yaml,
        )?;
        manager.jobs().submit(job).await?;
    }
    let submitted = start.elapsed();
    println!(
        "{} jobs ({total} tasks) submitted in {submitted:.2?}",
        o.jobs
    );
    let deadline = Instant::now() + Duration::from_secs(o.timeout);
    let mut last_print = Instant::now();
    let mut peak = 0;
    loop {
        let h = manager.cluster().health().await?;
        let running = h.tasks_in(TaskState::Running);
        peak = peak.max(rss_bytes());
        if running >= total {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            println!(
                "{:>5.0}s: {running} of {total} Running; RSS {} MiB",
                start.elapsed().as_secs_f64(),
                rss_bytes() >> 20
            );
            last_print = Instant::now();
        }
        if Instant::now() > deadline {
            bail!("only {running} of {total} Running after {}s", o.timeout);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = start.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let h = manager.cluster().health().await?;
    println!();
    println!(
        "| workers | tasks | all Running in | tasks/s | process cores | RSS growth (peak) | commits | changes/commit |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {total} | {:.1} s | {:.0} | {:.2} | {} MiB ({} MiB) | {} | {:.1} |",
        o.workers,
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        cpu / took.as_secs_f64(),
        rss_bytes().saturating_sub(rss0) >> 20,
        peak >> 20,
        h.manager.store.commits,
        h.manager.store.changes as f64 / h.manager.store.commits.max(1) as f64,
    );
    let floor = Duration::from_secs(300);
    if total >= 1_000_000 && took > floor {
        println!("floor NOT met: {total} tasks took {took:.1?} (> 5 min)");
        std::process::exit(1);
    }
    Ok(())
}
