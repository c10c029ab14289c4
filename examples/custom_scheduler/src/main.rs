//! A custom scheduler built from Orkestrator's parts: one filter and one score of our own on top of
//! the standard filters, run in an in-process cluster of three fake workers.
//!
//! Run it: `cargo run -p custom-scheduler`

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{JobPhase, JobView, Liveness, WorkerSnapshot};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::{JobId, SchedulerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::{
    Filter, Pipeline, Rejection, Request, SchedulerAgent, Score, scores,
};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::{ClientApi, Transport};
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

/// How long the example waits for each state before it gives up.
const DEADLINE: Duration = Duration::from_secs(10);
/// How often it looks while it waits.
const POLL: Duration = Duration::from_millis(20);

/// Looks with `look` until it answers `Ok(value)`, at most [`DEADLINE`]; then fails naming `what`
/// was awaited and the state it was in (what `look` last answered with `Err`).
async fn wait_for<T, F, Fut>(what: &str, mut look: F) -> Result<T, Box<dyn Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, orkestrator_core::Error>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let state = match look().await? {
            Ok(value) => return Ok(value),
            Err(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("gave up waiting {DEADLINE:?} for {what}: {state}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `job` is in phase `want`.
async fn wait_for_phase(
    transport: &impl Transport,
    job: &JobId,
    want: JobPhase,
) -> Result<JobView, Box<dyn Error>> {
    wait_for(&format!("job {job} to be {want}"), move || async move {
        let v = transport.get_job(job).await?;
        Ok(if v.phase == want {
            Ok(v)
        } else {
            Err(format!("it is {}", v.phase))
        })
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
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
    let workers = transport.as_ref();
    wait_for("3 ready workers", move || async move {
        let ws = workers.list_workers().await?;
        let ready = ws.iter().filter(|w| w.status == Liveness::Ready).count();
        Ok(if ready == 3 {
            Ok(())
        } else {
            Err(format!(
                "{ready} of {} registered workers are ready",
                ws.len()
            ))
        })
    })
    .await?;

    // Three replicas: the two SSD workers first (one each), then the HDD one.
    let job = parse_job(
        "name: db\ncount: 3\ntasks:\n  - name: postgres\n    image: postgres:16\n    resources: { memory: 512Mi }\n",
        Format::Yaml,
    )?;
    transport.submit_job(&job).await?;
    let v = wait_for_phase(transport.as_ref(), &job.name, JobPhase::Running).await?;
    for i in &v.instances {
        println!(
            "db instance {} -> {}",
            i.index,
            i.worker.as_ref().map_or("-".into(), |w| w.to_string())
        );
    }

    // A fourth 512Mi job fits nowhere without breaking the headroom rule: it waits, and says why.
    let big = parse_job(
        "name: cache\ntasks:\n  - name: redis\n    image: redis:7\n    resources: { memory: 512Mi }\n",
        Format::Yaml,
    )?;
    transport.submit_job(&big).await?;
    let (cache, transport) = (&big.name, transport.as_ref());
    let (phase, reason) = wait_for(
        "job cache to be refused by the headroom filter",
        move || async move {
            let c = transport.get_job(cache).await?;
            let reason = c.instances.first().and_then(|i| i.pending_reason.clone());
            Ok(match reason {
                Some(r) if c.phase == JobPhase::Pending && r.contains("10% memory free") => {
                    Ok((c.phase, r))
                }
                r => Err(format!("it is {} ({})", c.phase, r.unwrap_or_default())),
            })
        },
    )
    .await?;
    println!("cache: {phase} ({reason})");
    Ok(())
}
