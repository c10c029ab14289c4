//! A whole cluster in one process: manager, embedded scheduler and a worker, over the in-process
//! transport with the in-memory `FakeRuntime`. The same component code runs over HTTP and Docker in
//! the `orkestrator` binary.
//!
//! Run it: `cargo run -p orkestrator-examples --example in_process_cluster`

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::JobPhase;
use orkestrator_core::events::EventKind;
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::SchedulerId;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::{Registry, SchedulerAgent};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};

const JOB: &str = r#"
name: hello
tasks:
  - name: greeter
    image: busybox:1.36
    command: ["sh", "-c", "echo hello; sleep 3600"]
    resources: { cpu: 250m, memory: 32Mi }
  - name: batch
    image: busybox:1.36
    command: ["exit", "0"]
    restart: { policy: never }
"#;

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The manager, and a transport that calls it directly.
    let manager = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new())).await?;
    let mut events = manager.events().subscribe();
    let transport = Arc::new(LocalTransport::new(manager));

    // The embedded scheduler registers and heartbeats like any other component.
    let scheduler = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        transport.clone(),
        Registry::builtin().get("spread").unwrap(),
    );
    tokio::spawn(scheduler.run(std::future::pending()));

    // One worker with a fake runtime (FakeRuntime runs `["exit", "N"]` as an exit with code N).
    let size = Resources {
        cpu: Cpu::from_cores(2),
        memory: ByteSize::gib(2),
        disk: ByteSize::gib(20),
    };
    let worker = WorkerAgent::new(
        WorkerConfig::new("worker-1"),
        transport.clone(),
        Arc::new(FakeRuntime::new()),
        Arc::new(StaticProbe(size)),
    );
    tokio::spawn(worker.run(std::future::pending()));

    // Print every task state change from the event bus.
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            if let EventKind::TaskStateChanged {
                instance,
                task,
                from,
                to,
                ..
            } = e.kind
            {
                println!("[event {:>3}] {instance}/{task}: {from} -> {to}", e.index);
            }
        }
    });

    let job = parse_job(JOB, Format::Yaml)?;
    let r = transport.submit_job(&job).await?;
    println!("submitted job {} (version {})", r.job, r.version);

    let (job, transport) = (&r.job, transport.as_ref());
    let v = wait_for(
        "the greeter to run and the batch task to complete",
        move || async move {
            let v = transport.get_job(job).await?;
            let batch = v.instances.first().and_then(|i| i.tasks.get("batch"));
            Ok(match batch {
                Some(b) if v.phase == JobPhase::Running && b.state == TaskState::Completed => Ok(v),
                _ => Err(format!(
                    "the job is {}, its batch task {}",
                    v.phase,
                    batch.map_or("not reported yet".into(), |b| b.state.to_string())
                )),
            })
        },
    )
    .await?;
    println!("job {} is {}:", v.name, v.phase);
    for i in &v.instances {
        for (name, t) in &i.tasks {
            println!("  {name}: {} (exit code {:?})", t.state, t.exit_code);
        }
    }

    transport.stop_job(job).await?;
    let phase = wait_for("the job to stop", move || async move {
        let v = transport.get_job(job).await?;
        Ok(if v.phase == JobPhase::Stopped {
            Ok(v.phase)
        } else {
            Err(format!("it is {}", v.phase))
        })
    })
    .await?;
    println!("after stop: {phase}");
    Ok(())
}
