//! Pieces shared by the simulation tests: a manager with its embedded scheduler and liveness
//! checks, and worker agents on `FakeRuntime`s over their own in-process links.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::JobView;
use orkestrator_core::clock::TokioClock;
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::{JobId, SchedulerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::{Registry, SchedulerAgent};
use orkestrator_core::spec::Resources;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};
use tokio::task::JoinHandle;

/// A manager on `store`, with the embedded (spread) scheduler and the liveness loop running.
/// Abort the handles to "kill" it.
pub async fn start_manager(store: Arc<MemoryStore>) -> (Manager, Vec<JoinHandle<()>>) {
    let m = Manager::with_clock(
        ManagerConfig::default(),
        store,
        Arc::new(TokioClock::starting_now()),
    )
    .await
    .unwrap();
    let t = Arc::new(LocalTransport::new(m.clone()));
    let sched = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        t,
        Registry::builtin().get("spread").unwrap(),
    );
    let scheduler = tokio::spawn(async move {
        let _ = sched.run(std::future::pending()).await;
    });
    let liveness = tokio::spawn(m.clone().cluster().run_liveness_checks());
    (m, vec![scheduler, liveness])
}

/// A worker agent named `name` of `size`, over `link`, on `runtime`, with a 1 s stop grace.
/// Abort the handle to "kill" the agent (its containers keep running).
pub fn start_worker(
    name: &str,
    link: &LocalTransport,
    runtime: &FakeRuntime,
    size: Resources,
) -> JoinHandle<()> {
    let mut cfg = WorkerConfig::new(name);
    cfg.stop_grace = Duration::from_secs(1);
    let agent = WorkerAgent::new(
        cfg,
        Arc::new(link.clone()),
        Arc::new(runtime.clone()),
        Arc::new(StaticProbe(size)),
    );
    tokio::spawn(async move {
        let _ = agent.run(std::future::pending()).await;
    })
}

/// Waits (on the paused clock, at most a simulated minute) until `check` accepts the view of job
/// `name`, and returns it; fails with the last view, saying what never happened.
pub async fn wait_for(
    t: &LocalTransport,
    name: &str,
    what: &str,
    check: impl Fn(&JobView) -> bool,
) -> JobView {
    let id = JobId::new(name);
    for _ in 0..600 {
        let v = t.get_job(&id).await.unwrap();
        if check(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "job {name}: never {what}: {:#?}",
        t.get_job(&id).await.unwrap()
    );
}
