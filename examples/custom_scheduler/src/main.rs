//! A custom scheduler built from Orkestrator's parts: one filter and one score of our own on top of
//! the standard filters, run in an in-process cluster of three fake workers.
//!
//! Run it: `cargo run -p custom-scheduler`

use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{JobPhase, WorkerSnapshot};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::SchedulerId;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::{
    Filter, Pipeline, Rejection, Request, SchedulerAgent, Score, scores,
};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::Transport;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};

/// Keeps a tenth of every worker's memory free: rejects a worker that the job would fill beyond 90%.
struct Headroom;

impl Filter for Headroom {
    fn name(&self) -> &str {
        "headroom"
    }

    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), Rejection> {
        let after = w.allocated.memory.saturating_add(req.need.memory).bytes();
        if after * 10 > w.total.memory.bytes() * 9 {
            return Err(Rejection::new("would leave less than 10% memory free"));
        }
        Ok(())
    }
}

/// Prefers workers labelled `disk=ssd`.
struct PreferSsd;

impl Score for PreferSsd {
    fn name(&self) -> &str {
        "prefer-ssd"
    }

    fn score(&self, _req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        if w.labels.get("disk").map(String::as_str) == Some("ssd") {
            100
        } else {
            0
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Pipeline::standard("ssd-first")
        .with_filter(Headroom)
        .with_score(PreferSsd, 3)
        .with_score(scores::JobSpread, 10)
        .with_score(scores::Spread, 1);
    println!(
        "scheduler: filters {:?}, scores {:?}",
        scheduler.filter_names(),
        scheduler.score_names()
    );

    let manager = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new())).await?;
    let transport = Arc::new(LocalTransport::new(manager));
    let agent = SchedulerAgent::new(
        SchedulerId::new("ssd-first"),
        transport.clone(),
        Arc::new(scheduler),
    );
    tokio::spawn(agent.run(std::future::pending()));

    for (name, disk) in [("hdd-1", "hdd"), ("ssd-1", "ssd"), ("ssd-2", "ssd")] {
        let mut config = WorkerConfig::new(name);
        config.labels.insert("disk".into(), disk.into());
        let size = Resources {
            cpu: Cpu::from_cores(2),
            memory: ByteSize::gib(1),
            disk: ByteSize::gib(10),
        };
        let worker = WorkerAgent::new(
            config,
            transport.clone(),
            Arc::new(FakeRuntime::new()),
            Arc::new(StaticProbe(size)),
        );
        tokio::spawn(worker.run(std::future::pending()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Three replicas: the two SSD workers first (one each), then the HDD one.
    let job = parse_job(
        "name: db\ncount: 3\ntasks:\n  - name: postgres\n    image: postgres:16\n    resources: { memory: 512Mi }\n",
        Format::Yaml,
    )?;
    transport.submit_job(&job).await?;
    // A fourth 512Mi job fits nowhere without breaking the headroom rule.
    let big = parse_job(
        "name: cache\ntasks:\n  - name: redis\n    image: redis:7\n    resources: { memory: 512Mi }\n",
        Format::Yaml,
    )?;
    transport.submit_job(&big).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let v = transport.get_job(&job.name).await?;
    assert_eq!(v.phase, JobPhase::Running);
    for i in &v.instances {
        println!(
            "db instance {} -> {}",
            i.index,
            i.worker.as_ref().map_or("-".into(), |w| w.to_string())
        );
    }
    let c = transport.get_job(&big.name).await?;
    println!(
        "cache: {} ({})",
        c.phase,
        c.instances[0].pending_reason.clone().unwrap_or_default()
    );
    Ok(())
}
