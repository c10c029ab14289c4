//! Issue 20, simulated: named volumes in the manager. The instance of an index goes back to the
//! worker holding its volume (and waits, with the reason, while that worker is down, unless
//! `on_worker_loss: recreate`); volumes are removed only by the manager's word (garbage
//! collection, `volume rm`), never by a worker on its own, and never by a manager that knows
//! nothing of them. Manager, embedded scheduler and workers on fake runtimes, under tokio's
//! paused clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{JobPhase, JobView, VolumeRef, VolumeView};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::{JobId, WorkerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::Manager;
use orkestrator_core::runtime::labels;
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};
use tokio::task::JoinHandle;

fn size() -> Resources {
    Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::gib(4),
        disk: ByteSize::gib(10),
    }
}

struct Node {
    name: String,
    runtime: FakeRuntime,
    agent: Option<JoinHandle<()>>,
}

struct Sim {
    store: Arc<MemoryStore>,
    client: Arc<LocalTransport>,
    background: Vec<JoinHandle<()>>,
    nodes: Vec<Node>,
}

impl Sim {
    async fn new(workers: usize) -> Sim {
        let store = Arc::new(MemoryStore::new());
        let (m, background) = common::start_manager(store.clone()).await;
        let client = Arc::new(LocalTransport::new(m));
        let mut sim = Sim {
            store,
            client,
            background,
            nodes: Vec::new(),
        };
        for k in 0..workers {
            let name = format!("w{k}");
            let runtime = FakeRuntime::new();
            sim.nodes.push(Node {
                name,
                runtime,
                agent: None,
            });
            sim.start_agent(k);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        sim
    }

    fn manager(&self) -> Manager {
        self.client.manager()
    }

    /// Starts node `k`'s worker agent, labelled `node=NAME` (so that a job can be sent there).
    fn start_agent(&mut self, k: usize) {
        let n = &mut self.nodes[k];
        let mut cfg = WorkerConfig::new(n.name.as_str());
        cfg.stop_grace = Duration::from_secs(1);
        cfg.labels.insert("node".into(), n.name.clone());
        let agent = WorkerAgent::new(
            cfg,
            Arc::new(self.client.link()),
            Arc::new(n.runtime.clone()),
            Arc::new(StaticProbe(size())),
        );
        n.agent = Some(tokio::spawn(async move {
            let _ = agent.run(std::future::pending()).await;
        }));
    }

    fn kill_agent(&mut self, k: usize) {
        if let Some(h) = self.nodes[k].agent.take() {
            h.abort();
        }
    }

    fn node_of(&self, worker: &str) -> usize {
        self.nodes.iter().position(|n| n.name == worker).unwrap()
    }

    async fn volumes(&self, job: Option<&str>) -> Vec<VolumeView> {
        let job = job.map(JobId::new);
        self.manager()
            .volumes()
            .list(job.as_ref())
            .await
            .unwrap()
            .volumes
    }

    /// Waits (simulated time, at most two minutes) until the volume list passes `check`.
    async fn wait_volumes(
        &self,
        what: &str,
        check: impl Fn(&[VolumeView]) -> bool,
    ) -> Vec<VolumeView> {
        for _ in 0..1200 {
            let v = self.volumes(None).await;
            if check(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("volumes never {what}: {:#?}", self.volumes(None).await);
    }

    /// Runs `db` (one instance, its volume's extra keys `extra`), then kills the agent of the
    /// worker that holds the volume: answers that worker and its node.
    async fn run_db_and_lose_its_worker(&mut self, extra: &str) -> (String, usize) {
        let t = self.client.clone();
        t.submit_job(&db(extra, 1, "1")).await.unwrap();
        let v = common::wait_for(&t, "db", "running", running).await;
        let holder = worker_of(&v, 0).unwrap();
        let k = self.node_of(&holder);
        self.kill_agent(k);
        (holder, k)
    }

    /// The engine's volume names on every node.
    fn engine_volumes(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| n.runtime.volumes())
            .map(|v| v.name)
            .collect();
        all.sort();
        all
    }
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
}

fn db(extra: &str, count: u32, version: &str) -> Job {
    job(&format!(
        "name: db
count: {count}
volumes:
  data: {{ type: volume, size: 1Gi{extra} }}
tasks:
  - name: db
    image: img:1
    env: {{ V: '{version}' }}
    mounts: [{{ volume: data, path: /var/lib/db }}]
"
    ))
}

/// The state of the copy of a volume list's volume on worker `w`.
fn state_on(listed: &[VolumeView], w: &str) -> Option<String> {
    listed
        .iter()
        .find(|v| v.worker.as_str() == w)
        .map(|v| v.state.clone())
}

/// How many of a job's instances are to run.
fn to_run(v: &JobView) -> usize {
    v.instances
        .iter()
        .filter(|i| i.desired == orkestrator_core::api::Desired::Run)
        .count()
}

fn running(v: &JobView) -> bool {
    v.phase == JobPhase::Running
}

/// The worker of the instance with `index` that is to run.
fn worker_of(v: &JobView, index: u32) -> Option<String> {
    v.instances
        .iter()
        .find(|i| i.index == index && i.desired == orkestrator_core::api::Desired::Run)
        .and_then(|i| i.worker.as_ref())
        .map(|w| w.to_string())
}

#[tokio::test(start_paused = true)]
async fn an_instance_goes_back_to_the_worker_holding_its_volume_version_after_version() {
    let sim = Sim::new(3).await;
    let t = &sim.client;
    t.submit_job(&db("", 1, "1")).await.unwrap();
    let v = common::wait_for(t, "db", "running", running).await;
    let first = worker_of(&v, 0).unwrap();
    let listed = sim.volumes(Some("db")).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0].worker.as_str(), first);
    assert_eq!(listed[0].state, "active");
    assert!(listed[0].in_use);
    assert_eq!(listed[0].name, format!("ork-{first}-db-0-data"));
    // Its worker becomes the busiest: spread would put a new instance anywhere else.
    t.submit_job(&job(&format!(
        "name: filler\ncount: 3\nconstraints: [{{ label: node, equals: {first} }}]\ntasks: [{{ name: f, image: img:1 }}]\n"
    )))
    .await
    .unwrap();
    common::wait_for(t, "filler", "running", running).await;
    // New versions (spread would move it to an emptier worker otherwise) and restarts.
    for version in 2..=4 {
        t.submit_job(&db("", 1, &version.to_string()))
            .await
            .unwrap();
        let v = common::wait_for(t, "db", "on the new version", |v| {
            running(v) && v.version == version && to_run(v) == 1
        })
        .await;
        assert_eq!(worker_of(&v, 0).as_deref(), Some(first.as_str()));
    }
    assert_eq!(sim.volumes(Some("db")).await.len(), 1);
    assert_eq!(sim.engine_volumes(), [format!("ork-{first}-db-0-data")]);
}

#[tokio::test(start_paused = true)]
async fn with_its_worker_down_the_instance_waits_with_the_reason_then_runs_there_again() {
    let mut sim = Sim::new(2).await;
    let t = sim.client.clone();
    let (holder, k) = sim.run_db_and_lose_its_worker("").await;
    let reason = format!("volume data of instance 0 lives on worker {holder}, which is down");
    let v = common::wait_for(&t, "db", "waiting for its worker", |v| {
        v.instances
            .iter()
            .any(|i| i.worker.is_none() && i.pending_reason.as_deref() == Some(reason.as_str()))
    })
    .await;
    assert_eq!(v.phase, JobPhase::Pending);
    // It stays waiting: the other worker has room, but not the data.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let v = t.get_job(&JobId::new("db")).await.unwrap();
    assert!(worker_of(&v, 0).is_none(), "{v:#?}");
    // The worker comes back: the instance runs there, on the same volume.
    sim.start_agent(k);
    let v = common::wait_for(&t, "db", "running again", running).await;
    assert_eq!(worker_of(&v, 0).as_deref(), Some(holder.as_str()));
    assert_eq!(sim.volumes(Some("db")).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn with_recreate_it_starts_elsewhere_and_the_old_copy_is_an_orphan() {
    let mut sim = Sim::new(2).await;
    let t = sim.client.clone();
    let (holder, k) = sim
        .run_db_and_lose_its_worker(", on_worker_loss: recreate")
        .await;
    let v = common::wait_for(&t, "db", "running elsewhere", |v| {
        running(v) && worker_of(v, 0).is_some_and(|w| w != holder)
    })
    .await;
    let other = worker_of(&v, 0).unwrap();
    sim.start_agent(k);
    let listed = sim
        .wait_volumes("an orphan and a new copy", |v| v.len() == 2)
        .await;
    assert_eq!(state_on(&listed, &holder).as_deref(), Some("orphan"));
    assert_eq!(state_on(&listed, &other).as_deref(), Some("active"));
    // The old copy is kept on its worker: nobody removed it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(sim.nodes[k].runtime.volumes().len(), 1);
    // An operator removes the orphan: naming the worker, as two copies exist.
    let of = VolumeRef {
        job: JobId::new("db"),
        index: 0,
        volume: "data".into(),
    };
    let m = sim.manager();
    let e = m.volumes().remove(&of, None).await.unwrap_err();
    assert!(
        e.message.contains("name one with --worker"),
        "{}",
        e.message
    );
    let e = m
        .volumes()
        .remove(&of, Some(&WorkerId::new(other.clone())))
        .await
        .unwrap_err();
    assert_eq!(e.kind, orkestrator_core::api::ErrorKind::Conflict, "{e:?}");
    let gone = m
        .volumes()
        .remove(&of, Some(&WorkerId::new(holder.clone())))
        .await
        .unwrap();
    assert_eq!(gone.state, "removing");
    sim.wait_volumes("the orphan removed", |v| v.len() == 1)
        .await;
    assert!(sim.nodes[k].runtime.volumes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn gc_removes_a_collected_jobs_volumes_and_keeps_retained_ones() {
    let sim = Sim::new(1).await;
    let t = sim.client.clone();
    let spec = job("name: db
volumes:
  data: { type: volume }
  keep: { type: volume, retain: true }
  cache: { type: tmpfs }
tasks:
  - name: db
    image: img:1
    mounts: [{ volume: data, path: /d }, { volume: keep, path: /k }, { volume: cache, path: /c }]
");
    t.submit_job(&spec).await.unwrap();
    common::wait_for(&t, "db", "running", running).await;
    assert_eq!(
        sim.engine_volumes(),
        ["ork-w0-db-0-data", "ork-w0-db-0-keep"]
    );
    let m = sim.manager();
    // Stopped but not yet collected: nothing goes, and `run` again finds the same volumes.
    t.stop_job(&JobId::new("db")).await.unwrap();
    common::wait_for(&t, "db", "stopped", |v| v.phase == JobPhase::Stopped).await;
    let r = m.cluster().gc(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(r.volumes, 0);
    assert_eq!(sim.volumes(None).await.len(), 2);
    let r = m.cluster().gc(Duration::ZERO).await.unwrap();
    assert_eq!((r.jobs, r.volumes), (1, 1), "{r:?}");
    let listed = sim.wait_volumes("data removed", |v| v.len() == 1).await;
    assert_eq!(listed[0].volume, "keep");
    assert_eq!(listed[0].state, "retained");
    assert_eq!(sim.engine_volumes(), ["ork-w0-db-0-keep"]);
    // A job of the same name finds the retained volume again.
    t.submit_job(&spec).await.unwrap();
    common::wait_for(&t, "db", "running again", running).await;
    let listed = sim.volumes(Some("db")).await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(listed.iter().all(|v| v.state == "active"));
    assert_eq!(
        sim.engine_volumes(),
        ["ork-w0-db-0-data", "ork-w0-db-0-keep"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_smaller_count_removes_the_dropped_indexes_volumes_after_gc() {
    let sim = Sim::new(1).await;
    let t = sim.client.clone();
    t.submit_job(&db("", 3, "1")).await.unwrap();
    common::wait_for(&t, "db", "running", running).await;
    assert_eq!(sim.engine_volumes().len(), 3);
    t.submit_job(&db("", 1, "1")).await.unwrap();
    common::wait_for(&t, "db", "down to one", |v| running(v) && to_run(v) == 1).await;
    // The stopped instances are still kept: their volumes stay.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sim.engine_volumes().len(), 3);
    let r = sim.manager().cluster().gc(Duration::ZERO).await.unwrap();
    assert_eq!(r.volumes, 2, "{r:?}");
    sim.wait_volumes("two removed", |v| v.len() == 1).await;
    assert_eq!(sim.engine_volumes(), ["ork-w0-db-0-data"]);
}

#[tokio::test(start_paused = true)]
async fn a_manager_with_an_empty_state_removes_no_volume() {
    let mut sim = Sim::new(1).await;
    let t = sim.client.clone();
    t.submit_job(&db("", 2, "1")).await.unwrap();
    common::wait_for(&t, "db", "running", running).await;
    let before = sim.engine_volumes();
    assert_eq!(before.len(), 2);
    // A new manager on an empty store; the worker (restarted) joins it.
    for h in sim.background.drain(..) {
        h.abort();
    }
    sim.kill_agent(0);
    sim.store = Arc::new(MemoryStore::new());
    let (m, background) = common::start_manager(sim.store.clone()).await;
    sim.client.set_manager(m.clone());
    sim.background = background;
    sim.start_agent(0);
    // The worker removes its containers (nothing is assigned), garbage is collected: the
    // volumes stay, and nothing lists them for removal.
    tokio::time::sleep(Duration::from_secs(30)).await;
    m.cluster().gc(Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        sim.nodes[0]
            .runtime
            .containers()
            .iter()
            .all(|c| c.label(labels::JOB) != Some("db")
                || c.state != orkestrator_core::runtime::ContainerState::Running),
        "no db container runs"
    );
    assert_eq!(sim.engine_volumes(), before);
    assert!(sim.volumes(None).await.is_empty());
    // The same job again finds the same data there.
    t.submit_job(&db("", 2, "1")).await.unwrap();
    common::wait_for(&t, "db", "running", running).await;
    assert_eq!(sim.engine_volumes(), before);
}

#[tokio::test(start_paused = true)]
async fn an_operator_cannot_remove_a_volume_in_use_and_can_once_the_job_stopped() {
    let sim = Sim::new(1).await;
    let t = sim.client.clone();
    t.submit_job(&db("", 1, "1")).await.unwrap();
    common::wait_for(&t, "db", "running", running).await;
    let of = VolumeRef {
        job: JobId::new("db"),
        index: 0,
        volume: "data".into(),
    };
    let m = sim.manager();
    let e = m.volumes().remove(&of, None).await.unwrap_err();
    assert_eq!(e.kind, orkestrator_core::api::ErrorKind::Conflict, "{e:?}");
    assert!(e.message.contains("stop the job first"), "{}", e.message);
    let missing = VolumeRef {
        volume: "nope".into(),
        ..of.clone()
    };
    assert_eq!(
        m.volumes().remove(&missing, None).await.unwrap_err().kind,
        orkestrator_core::api::ErrorKind::NotFound
    );
    t.stop_job(&JobId::new("db")).await.unwrap();
    common::wait_for(&t, "db", "stopped", |v| v.phase == JobPhase::Stopped).await;
    m.volumes().remove(&of, None).await.unwrap();
    sim.wait_volumes("removed", |v| v.is_empty()).await;
    assert!(sim.engine_volumes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_waiting_instance_moves_once_a_new_version_says_recreate() {
    let mut sim = Sim::new(2).await;
    let t = sim.client.clone();
    let (holder, _) = sim.run_db_and_lose_its_worker("").await;
    common::wait_for(&t, "db", "waiting for its worker", |v| {
        v.instances.iter().any(|i| {
            i.pending_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("volume data of instance 0"))
        })
    })
    .await;
    // The operator gives up on the data there: a new version that recreates.
    t.submit_job(&db(", on_worker_loss: recreate", 1, "1"))
        .await
        .unwrap();
    let v = common::wait_for(&t, "db", "running elsewhere", |v| {
        running(v) && worker_of(v, 0).is_some_and(|w| w != holder)
    })
    .await;
    let other = worker_of(&v, 0).unwrap();
    let listed = sim.volumes(Some("db")).await;
    assert_eq!(
        state_on(&listed, &holder).as_deref(),
        Some("orphan"),
        "{listed:#?}"
    );
    assert_eq!(
        state_on(&listed, &other).as_deref(),
        Some("active"),
        "{listed:#?}"
    );
}
