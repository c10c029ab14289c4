//! Failure simulations: worker death, partitions, scheduler death and manager restarts, with
//! `FakeRuntime` workers over in-process links under tokio's paused clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{Desired, JobPhase, JobView};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::JobId;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::runtime::{ContainerState, labels};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::{MemoryStore, Store};
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use tokio::task::JoinHandle;

mod common;
use common::{start_manager, start_worker};

struct Node {
    link: LocalTransport,
    runtime: FakeRuntime,
    agent: Option<JoinHandle<()>>,
    name: String,
}

struct Sim {
    store: Arc<MemoryStore>,
    client: LocalTransport,
    background: Vec<JoinHandle<()>>,
    nodes: Vec<Node>,
}

fn size() -> Resources {
    Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::gib(4),
        disk: ByteSize::gib(20),
    }
}

impl Sim {
    async fn new(workers: usize) -> Sim {
        let store = Arc::new(MemoryStore::new());
        let (m, background) = start_manager(store.clone()).await;
        let client = LocalTransport::new(m);
        let mut sim = Sim {
            store,
            client,
            background,
            nodes: Vec::new(),
        };
        for i in 0..workers {
            let link = sim.client.link();
            let runtime = FakeRuntime::new();
            let mut node = Node {
                link,
                runtime,
                agent: None,
                name: format!("w{i}"),
            };
            start_agent(&mut node);
            sim.nodes.push(node);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        sim
    }

    async fn job(&self, name: &str) -> JobView {
        self.client.get_job(&JobId::new(name)).await.unwrap()
    }

    async fn wait_for(&self, what: &str, mut f: impl AsyncFnMut(&Sim) -> bool) {
        for _ in 0..1200 {
            if f(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.client.list_jobs().await
        );
    }

    /// Live containers per (job, instance index) across all workers.
    fn copies(&self, job: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for n in &self.nodes {
            for c in n.runtime.containers() {
                if c.label(labels::JOB) == Some(job) && c.state == ContainerState::Running {
                    let inst = c.label(labels::INSTANCE).unwrap().to_owned();
                    let index = inst.rsplit('-').nth(1).unwrap().to_owned();
                    *m.entry(index).or_insert(0) += 1;
                }
            }
        }
        m
    }

    /// Restarts the manager from its store (the old one is dropped; links follow the new one).
    async fn restart_manager(&mut self) {
        for h in self.background.drain(..) {
            h.abort();
        }
        let (m, background) = start_manager(self.store.clone()).await;
        self.client.set_manager(m);
        self.background = background;
    }
}

fn start_agent(node: &mut Node) {
    node.agent = Some(start_worker(&node.name, &node.link, &node.runtime, size()));
}

fn kill_agent(node: &mut Node) {
    if let Some(h) = node.agent.take() {
        h.abort();
    }
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap()
}

fn workers_of(v: &JobView) -> Vec<String> {
    v.instances
        .iter()
        .filter(|i| i.desired == Desired::Run)
        .filter_map(|i| i.worker.as_ref().map(|w| w.to_string()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_dead_workers_instances_run_elsewhere_and_never_twice() {
    let mut sim = Sim::new(3).await;
    sim.client
        .submit_job(&job("name: web\ncount: 2\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    sim.wait_for("web running", async |s| {
        s.job("web").await.phase == JobPhase::Running
    })
    .await;
    let before = workers_of(&sim.job("web").await);
    let victim = sim
        .nodes
        .iter()
        .position(|n| before.contains(&n.name))
        .unwrap();
    // The worker process dies; its containers keep running on its (unreachable) host.
    kill_agent(&mut sim.nodes[victim]);
    sim.nodes[victim].link.set_cut(true);
    let t0 = tokio::time::Instant::now();
    sim.wait_for("replacement running", async |s| {
        let v = s.job("web").await;
        v.phase == JobPhase::Running && !workers_of(&v).contains(&s.nodes[victim].name)
    })
    .await;
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "rescheduled in {took:?}; the target is 5 s with defaults"
    );
    let v = sim.job("web").await;
    let lost: Vec<_> = v
        .instances
        .iter()
        .filter(|i| i.desired == Desired::Stop)
        .collect();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].tasks.values().all(|t| t.state == TaskState::Lost));

    // The worker comes back: it must remove the moved instance's container.
    sim.nodes[victim].link.set_cut(false);
    start_agent(&mut sim.nodes[victim]);
    sim.wait_for("one copy per index", async |s| {
        s.copies("web").values().all(|n| *n == 1)
    })
    .await;
    assert_eq!(sim.copies("web").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_worker_keeps_running_and_heals_without_duplicates() {
    let sim = Sim::new(2).await;
    sim.client
        .submit_job(&job("name: api\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    sim.wait_for("api running", async |s| {
        s.job("api").await.phase == JobPhase::Running
    })
    .await;
    let first = workers_of(&sim.job("api").await)[0].clone();
    let node = sim.nodes.iter().position(|n| n.name == first).unwrap();
    sim.nodes[node].link.set_cut(true);
    // Cut off, the worker keeps its container running (it cannot know the manager moved it).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.nodes[node].runtime.running(), 1);
    sim.wait_for("moved", async |s| {
        let v = s.job("api").await;
        v.phase == JobPhase::Running && workers_of(&v) != [first.clone()]
    })
    .await;
    sim.nodes[node].link.set_cut(false);
    sim.wait_for("healed: the old copy is gone", async |s| {
        s.nodes[node].runtime.running() == 0
    })
    .await;
    assert_eq!(sim.copies("api").values().copied().collect::<Vec<_>>(), [1]);
}

#[tokio::test(start_paused = true)]
async fn the_manager_restarts_from_its_store_and_workers_keep_their_containers() {
    let mut sim = Sim::new(2).await;
    for name in ["a", "b", "c"] {
        sim.client
            .submit_job(&job(&format!(
                "name: {name}\ntasks: [{{name: t, image: x:1}}]"
            )))
            .await
            .unwrap();
    }
    sim.wait_for("all running", async |s| {
        let jobs = s.client.list_jobs().await.unwrap();
        jobs.len() == 3 && jobs.iter().all(|j| j.phase == JobPhase::Running)
    })
    .await;
    let starts: u64 = sim.nodes.iter().map(|n| n.runtime.starts()).sum();
    sim.restart_manager().await;
    assert_eq!(sim.store.load().await.unwrap().jobs.len(), 3);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let jobs = sim.client.list_jobs().await.unwrap();
    assert_eq!(jobs.len(), 3, "every acknowledged job is back");
    assert!(
        jobs.iter().all(|j| j.phase == JobPhase::Running),
        "{jobs:#?}"
    );
    let after: u64 = sim.nodes.iter().map(|n| n.runtime.starts()).sum();
    assert_eq!(starts, after, "no container was restarted");
    // And the restarted manager keeps working.
    sim.client
        .submit_job(&job("name: d\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    sim.wait_for("d running", async |s| {
        s.job("d").await.phase == JobPhase::Running
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_worker_adopts_its_containers() {
    let mut sim = Sim::new(1).await;
    sim.client
        .submit_job(&job("name: keep\ncount: 3\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    sim.wait_for("running", async |s| {
        s.job("keep").await.phase == JobPhase::Running
    })
    .await;
    let starts = sim.nodes[0].runtime.starts();
    kill_agent(&mut sim.nodes[0]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    start_agent(&mut sim.nodes[0]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        sim.nodes[0].runtime.starts(),
        starts,
        "adopted, not restarted"
    );
    assert_eq!(sim.nodes[0].runtime.running(), 3);
    assert_eq!(sim.job("keep").await.phase, JobPhase::Running);
}

#[tokio::test(start_paused = true)]
async fn a_worker_removes_containers_of_jobs_that_no_longer_exist() {
    let mut sim = Sim::new(1).await;
    sim.client
        .submit_job(&job("name: gone\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    sim.wait_for("running", async |s| {
        s.job("gone").await.phase == JobPhase::Running
    })
    .await;
    // The worker is away while the job is stopped.
    kill_agent(&mut sim.nodes[0]);
    sim.client.stop_job(&JobId::new("gone")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sim.nodes[0].runtime.running(), 1);
    start_agent(&mut sim.nodes[0]);
    sim.wait_for("stopped", async |s| {
        s.job("gone").await.phase == JobPhase::Stopped
    })
    .await;
    sim.wait_for("container removed", async |s| {
        s.nodes[0].runtime.containers().is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_spec_rolls_out_one_instance_at_a_time() {
    let sim = Sim::new(3).await;
    let v1 = "name: roll\ncount: 3\ntasks: [{name: t, image: x:1, env: {V: '1'}}]";
    sim.client.submit_job(&job(v1)).await.unwrap();
    sim.wait_for("v1 running", async |s| {
        s.job("roll").await.phase == JobPhase::Running
    })
    .await;
    let r = sim
        .client
        .submit_job(&job(&v1.replace("'1'", "'2'")))
        .await
        .unwrap();
    assert_eq!(
        (r.version, r.outcome),
        (2, orkestrator_core::api::SubmitOutcome::Updated)
    );
    let mut min_running = usize::MAX;
    for _ in 0..600 {
        let running: usize = sim.copies("roll").values().sum();
        min_running = min_running.min(running);
        let v = sim.job("roll").await;
        let new_running = v
            .instances
            .iter()
            .filter(|i| {
                i.desired == Desired::Run && i.tasks.values().all(|t| t.state == TaskState::Running)
            })
            .count();
        if v.version == 2
            && new_running == 3
            && running == 3
            && v.instances.iter().all(|i| {
                i.desired == Desired::Run || i.tasks.values().all(|t| t.state.is_terminal())
            })
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = sim.job("roll").await;
    assert_eq!(v.phase, JobPhase::Running);
    let live: Vec<_> = v
        .instances
        .iter()
        .filter(|i| i.desired == Desired::Run)
        .collect();
    assert_eq!(live.len(), 3);
    assert!(
        live.iter().all(|i| i.id.as_str() != "roll-0-0"),
        "all replaced"
    );
    assert!(
        min_running >= 2,
        "never fewer than count - 1 running during the update, saw {min_running}"
    );
    // Identical re-submission: nothing moves.
    let again = sim
        .client
        .submit_job(&job(&v1.replace("'1'", "'2'")))
        .await
        .unwrap();
    assert_eq!(
        again.outcome,
        orkestrator_core::api::SubmitOutcome::Unchanged
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_update_stops_rolling_and_keeps_the_rest() {
    let sim = Sim::new(2).await;
    let v1 = "name: safe\ncount: 2\ntasks: [{name: t, image: x:1}]";
    sim.client.submit_job(&job(v1)).await.unwrap();
    sim.wait_for("v1 running", async |s| {
        s.job("safe").await.phase == JobPhase::Running
    })
    .await;
    let bad = "name: safe\ncount: 2\ntasks: [{name: t, image: x:1, command: [exit, '1'], restart: {policy: never}}]";
    sim.client.submit_job(&job(bad)).await.unwrap();
    sim.wait_for("the new instance fails", async |s| {
        s.job("safe").await.phase == JobPhase::Failed
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = sim.job("safe").await;
    let old_running = v
        .instances
        .iter()
        .filter(|i| {
            i.desired == Desired::Run && i.tasks.values().all(|t| t.state == TaskState::Running)
        })
        .count();
    assert_eq!(old_running, 1, "one old instance keeps serving: {v:#?}");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_engine_makes_the_worker_unhealthy_not_dead() {
    let sim = Sim::new(1).await;
    sim.client
        .submit_job(&job("name: e\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    sim.wait_for("running", async |s| {
        s.job("e").await.phase == JobPhase::Running
    })
    .await;
    sim.nodes[0].runtime.set_unavailable(true);
    sim.wait_for("unhealthy", async |s| {
        let w = &s.client.list_workers().await.unwrap()[0];
        w.status == orkestrator_core::api::Liveness::Unhealthy
    })
    .await;
    let w = &sim.client.list_workers().await.unwrap()[0];
    assert!(
        w.message
            .as_deref()
            .unwrap()
            .contains("fake engine is down"),
        "{w:?}"
    );
    // Nothing is rescheduled or lost while the engine is away, and new work waits.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let v = sim.job("e").await;
    assert_eq!(v.phase, JobPhase::Running);
    assert_eq!(v.instances.len(), 1);
    sim.client
        .submit_job(&job("name: f\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.job("f").await.phase, JobPhase::Pending);
    // The engine comes back: the worker is Ready again and the waiting job runs.
    sim.nodes[0].runtime.set_unavailable(false);
    sim.wait_for("f running", async |s| {
        s.job("f").await.phase == JobPhase::Running
    })
    .await;
    assert_eq!(sim.nodes[0].runtime.running(), 2);
    assert_eq!(
        sim.nodes[0].runtime.starts(),
        2,
        "the first container was kept, not restarted"
    );
}
