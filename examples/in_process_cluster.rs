//! A whole cluster in one process: manager, embedded scheduler and a worker, over the in-process
//! transport with the in-memory `FakeRuntime`. The same component code runs over HTTP and Docker in
//! the `orkestrator` binary.
//!
//! Run it: `cargo run -p orkestrator-examples --example in_process_cluster`

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
use orkestrator_core::transport::Transport;
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The manager, and a transport that calls it directly.
    let manager = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new())).await?;
    let mut events = manager.subscribe();
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
            } = e.kind
            {
                println!("[event {:>3}] {instance}/{task}: {from} -> {to}", e.index);
            }
        }
    });

    let job = parse_job(JOB, Format::Yaml)?;
    let r = transport.submit_job(&job).await?;
    println!("submitted job {} (version {})", r.job, r.version);

    for _ in 0..100 {
        let v = transport.get_job(&r.job).await?;
        let batch_done = v.instances[0]
            .tasks
            .values()
            .any(|t| t.state == TaskState::Completed);
        if v.phase == JobPhase::Running && batch_done {
            println!("job {} is {}:", v.name, v.phase);
            for i in &v.instances {
                for (name, t) in &i.tasks {
                    println!("  {name}: {} (exit code {:?})", t.state, t.exit_code);
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    transport.stop_job(&r.job).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    println!("after stop: {}", transport.get_job(&r.job).await?.phase);
    Ok(())
}
