//! The agent as a whole: watch answers (full or deltas) taken into what it holds, and carried out
//! on a [`FakeRuntime`] under tokio's paused clock, over a transport that answers from a script.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::agent::take_answer;
use super::*;
use crate::api::*;
use crate::fake::FakeRuntime;
use crate::ids::{InstanceId, WorkerId};
use crate::runtime::{ContainerInfo, ContainerState, labels};
use crate::spec::{Format, Job, Resources, parse_job};
use crate::state::TaskState;

mod compose;
mod networks;
mod storage;

fn job() -> Job {
    parse_job("name: j\ntasks: [{name: t, image: img:1}]", Format::Yaml).unwrap()
}

fn assignment(instance: &str, desired: Desired) -> Assignment {
    Assignment {
        instance: InstanceId::new(instance),
        index: 0,
        desired,
        job: std::sync::Arc::new(job()),
        ended: vec![],
        version: 1,
    }
}

fn answer(index: u64, full: bool, instances: Vec<Assignment>, removed: &[&str]) -> Assignments {
    Assignments {
        index,
        full,
        instances,
        removed: removed.iter().map(|r| InstanceId::new(*r)).collect(),
        volumes_to_remove: vec![],
    }
}

#[test]
fn a_delta_answer_changes_only_what_it_names() {
    let mut held = None;
    let mut index = 0;
    let full = answer(
        4,
        true,
        ["i1", "i2", "i3"]
            .map(|i| assignment(i, Desired::Run))
            .into(),
        &[],
    );
    assert!(take_answer(&mut held, &mut index, full));
    let before = held.clone().unwrap();
    assert_eq!((index, before.len()), (4, 3));

    let delta = answer(
        6,
        false,
        vec![
            assignment("i2", Desired::Stop),
            assignment("i4", Desired::Run),
        ],
        &["i3"],
    );
    assert!(take_answer(&mut held, &mut index, delta));
    let after = held.clone().unwrap();
    assert_eq!(index, 6);
    let ids: Vec<&str> = after.keys().map(|i| i.as_str()).collect();
    assert_eq!(ids, ["i1", "i2", "i4"]);
    assert_eq!(after["i1"], before["i1"], "not named: untouched");
    assert_eq!(after["i2"].desired, Desired::Stop);

    // A long poll that timed out answers at the same index: nothing changes.
    let idle = answer(6, false, vec![], &["i1"]);
    assert!(!take_answer(&mut held, &mut index, idle));
    assert_eq!(held.as_ref(), Some(&after));

    // A full answer (after registering again, say) replaces everything.
    let full = answer(9, true, vec![assignment("i5", Desired::Run)], &[]);
    assert!(take_answer(&mut held, &mut index, full));
    let ids: Vec<&str> = held.as_ref().unwrap().keys().map(|i| i.as_str()).collect();
    assert_eq!((index, ids), (9, vec!["i5"]));
}

/// Answers watches from a queue (each answer once, in order); with none queued, a watch times out
/// after its wait with an empty delta at the index it was given. Records what the worker reports.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Assignments>>,
    queued: Notify,
    watched: Mutex<Vec<u64>>,
    reports: Mutex<Vec<TaskUpdate>>,
    metrics: Mutex<Vec<crate::metrics::MetricsReport>>,
    /// What the next registrations answer, in order, before they succeed.
    registrations: Mutex<VecDeque<crate::error::Error>>,
    /// How many registrations were tried.
    registered: Mutex<usize>,
    /// Volumes the worker confirmed it removed.
    volumes_removed: Mutex<Vec<crate::api::VolumeRef>>,
    /// The labels of the last registration.
    registered_labels: Mutex<Option<BTreeMap<String, String>>>,
}

impl Scripted {
    fn push(&self, a: Assignments) {
        self.answers.lock().unwrap().push_back(a);
        self.queued.notify_one();
    }
}

#[async_trait]
impl crate::transport::WorkerApi for Scripted {
    async fn report_metrics(
        &self,
        _: &WorkerId,
        r: &crate::metrics::MetricsReport,
    ) -> Result<crate::metrics::MetricsAccepted> {
        self.metrics.lock().unwrap().push(r.clone());
        Ok(crate::metrics::MetricsAccepted::default())
    }
    async fn register_worker(&self, r: &RegisterWorker) -> Result<Registered> {
        *self.registered.lock().unwrap() += 1;
        *self.registered_labels.lock().unwrap() = Some(r.labels.clone());
        if let Some(e) = self.registrations.lock().unwrap().pop_front() {
            return Err(e);
        }
        Ok(Registered {
            heartbeat_interval_ms: 1000,
            heartbeat_grace_ms: 5000,
            credential: None,
        })
    }
    async fn worker_heartbeat(&self, _: &WorkerId, _: &WorkerHeartbeat) -> Result<HeartbeatAnswer> {
        Ok(HeartbeatAnswer {
            heartbeat_interval_ms: 1000,
            heartbeat_grace_ms: 5000,
        })
    }
    async fn watch_assignments(
        &self,
        _: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> Result<Assignments> {
        self.watched.lock().unwrap().push(index);
        let deadline = Instant::now() + wait;
        loop {
            if let Some(a) = self.answers.lock().unwrap().pop_front() {
                return Ok(a);
            }
            tokio::select! {
                _ = self.queued.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(answer(index, false, vec![], &[])),
            }
        }
    }
    async fn volumes_removed(&self, _: &WorkerId, r: &crate::api::VolumesRemoved) -> Result<()> {
        self.volumes_removed
            .lock()
            .unwrap()
            .extend(r.volumes.iter().cloned());
        Ok(())
    }
    async fn report_status(&self, _: &WorkerId, updates: &[TaskUpdate]) -> Result<ReportResponse> {
        self.reports.lock().unwrap().extend_from_slice(updates);
        Ok(ReportResponse::default())
    }
    async fn instance_secrets(
        &self,
        _: &WorkerId,
        instance: &crate::ids::InstanceId,
    ) -> Result<crate::secrets::InstanceSecrets> {
        Err(crate::error::Error::Api(crate::api::ApiError::not_found(
            "instance secrets",
            instance.as_str(),
        )))
    }
}

/// Polls `f` (in virtual time) until it holds; fails after a minute.
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An agent named `worker` on `rt` (1 s stop grace, no resources), over a scripted transport.
fn start_agent(
    rt: &FakeRuntime,
    worker: &str,
) -> (Arc<Scripted>, tokio::task::JoinHandle<Result<()>>) {
    let transport = Arc::new(Scripted::default());
    let mut config = WorkerConfig::new(worker);
    config.stop_grace = Duration::from_secs(1);
    let agent = WorkerAgent::new(
        config,
        transport.clone(),
        Arc::new(rt.clone()),
        Arc::new(StaticProbe(Resources::ZERO)),
    );
    (transport, tokio::spawn(agent.run(std::future::pending())))
}

/// The running containers, by instance.
fn running(rt: &FakeRuntime) -> BTreeMap<String, String> {
    rt.containers()
        .into_iter()
        .filter(|c: &ContainerInfo| c.state == ContainerState::Running)
        .map(|c| (c.label(labels::INSTANCE).unwrap_or("").to_owned(), c.id))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_agent_carries_out_a_delta_without_touching_what_it_does_not_name() {
    let rt = FakeRuntime::new();
    let (transport, run) = start_agent(&rt, "w1");

    let all = ["i1", "i2", "i3"].map(|i| assignment(i, Desired::Run));
    transport.push(answer(3, true, all.into(), &[]));
    wait_until("three containers", || running(&rt).len() == 3).await;
    let before = running(&rt);
    assert_eq!(rt.starts(), 3);

    // i1 is told to stop, i2 leaves, i4 arrives; i3 is not named.
    let delta = answer(
        5,
        false,
        vec![
            assignment("i1", Desired::Stop),
            assignment("i4", Desired::Run),
        ],
        &["i2"],
    );
    transport.push(delta);
    wait_until("the delta carried out", || {
        let now = running(&rt);
        now.len() == 2 && now.contains_key("i3") && now.contains_key("i4")
    })
    .await;
    wait_until("i1 and i2 removed", || rt.containers().len() == 2).await;
    wait_until("i1 reported stopped", || {
        transport
            .reports
            .lock()
            .unwrap()
            .iter()
            .any(|u| u.instance.as_str() == "i1" && u.state == TaskState::Stopped)
    })
    .await;
    assert_eq!(running(&rt)["i3"], before["i3"], "i3 kept its container");
    assert_eq!(rt.starts(), 4, "only i4 was started");
    let watched = transport.watched.lock().unwrap().clone();
    assert_eq!(
        &watched[..3],
        [0, 3, 5],
        "each answer's index is passed back"
    );
    run.abort();
}

/// A [`FakeRuntime`] whose containers each burn half a core: `stats` reports CPU time growing at
/// 0.5 s per second since the container was first sampled, and no CPU figure of its own (as
/// Docker's one-shot stats).
struct HalfCore {
    inner: FakeRuntime,
    born: Mutex<BTreeMap<String, Instant>>,
}

#[async_trait]
impl crate::runtime::Runtime for HalfCore {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn create_network(&self, spec: &crate::runtime::NetworkSpec) -> Result<String> {
        self.inner.create_network(spec).await
    }
    async fn remove_network(&self, id: &str) -> Result<()> {
        self.inner.remove_network(id).await
    }
    async fn list_networks(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<crate::runtime::NetworkInfo>> {
        self.inner.list_networks(labels).await
    }
    async fn create_volume(
        &self,
        spec: &crate::runtime::VolumeSpec,
    ) -> Result<crate::runtime::VolumeInfo> {
        self.inner.create_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.inner.remove_volume(name).await
    }
    async fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<crate::runtime::VolumeInfo>> {
        self.inner.list_volumes(labels).await
    }
    async fn ensure_image(&self, image: &str) -> Result<()> {
        self.inner.ensure_image(image).await
    }
    async fn create(&self, spec: &crate::runtime::ContainerSpec) -> Result<String> {
        self.inner.create(spec).await
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.inner.start(id).await
    }
    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.inner.stop(id, grace).await
    }
    async fn remove(&self, id: &str) -> Result<()> {
        self.inner.remove(id).await
    }
    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.inner.inspect(id).await
    }
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        self.inner.list(labels).await
    }
    async fn stats(&self, id: &str) -> Result<crate::runtime::ContainerStats> {
        let mut s = self.inner.stats(id).await?;
        let born = *self
            .born
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_insert_with(Instant::now);
        s.cpu_seconds_total = 0.5 * (Instant::now() - born).as_secs_f64();
        s.cpu_cores = 0.0;
        Ok(s)
    }
    async fn logs(&self, id: &str, tail: usize) -> Result<String> {
        self.inner.logs(id, tail).await
    }
    async fn probe(
        &self,
        id: &str,
        probe: &crate::spec::Probe,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        self.inner.probe(id, probe, timeout).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_agent_reports_cpu_from_deltas_restarts_and_the_host_once_per_interval() {
    let transport = Arc::new(Scripted::default());
    let fake = FakeRuntime::new();
    let rt = Arc::new(HalfCore {
        inner: fake.clone(),
        born: Mutex::default(),
    });
    let mut config = WorkerConfig::new("w1");
    config.metrics_interval = Duration::from_secs(5);
    let size = Resources {
        cpu: crate::units::Cpu::from_cores(4),
        memory: crate::units::ByteSize::b(8 << 30),
        disk: crate::units::ByteSize::b(100 << 30),
    };
    let agent = WorkerAgent::new(config, transport.clone(), rt, Arc::new(StaticProbe(size)));
    let latest = agent.metrics();
    let run = tokio::spawn(agent.run(std::future::pending()));
    let all = ["i1", "i2"].map(|i| assignment(i, Desired::Run));
    transport.push(answer(3, true, all.into(), &[]));
    wait_until("two containers", || running(&fake).len() == 2).await;

    let reports = || transport.metrics.lock().unwrap().clone();
    // The first sample of a container has no predecessor; the next ones carry the delta.
    wait_until("a report with both tasks at half a core", || {
        reports().last().is_some_and(|r| {
            r.tasks.len() == 2
                && r.tasks
                    .iter()
                    .all(|t| (t.sample.cpu_cores - 0.5).abs() < 1e-6)
        })
    })
    .await;
    let r = reports().last().unwrap().clone();
    let names: Vec<&str> = r.tasks.iter().map(|t| t.instance.as_str()).collect();
    assert_eq!(names, ["i1", "i2"]);
    for t in &r.tasks {
        assert_eq!(t.sample.memory_working_set_bytes, 1 << 20);
        assert_eq!(t.sample.restarts, 0);
        assert!(t.sample.cpu_seconds_total > 0.0);
        assert!(t.sample.at > 0);
    }
    assert_eq!(r.node.cpu_cores_total, 4.0);
    assert_eq!(r.node.memory_total_bytes, 8 << 30);
    assert_eq!(r.node.cpu_cores_used, 0.0, "a static probe is never busy");
    assert!(r.node.at > 0);
    let shared = latest.get().expect("the newest snapshot is shared");
    assert_eq!(shared.report(), r);
    assert_eq!(shared.tasks[0].id.job.as_str(), "j");

    // Reports come one per interval, not more often.
    let (n, t0) = (reports().len(), Instant::now());
    wait_until("three more reports", || reports().len() >= n + 3).await;
    let took = Instant::now() - t0;
    assert!(
        took >= Duration::from_secs(10) && took <= Duration::from_secs(16),
        "{took:?}"
    );

    // A killed container is restarted (on-failure): its samples count the restart.
    fake.kill(&running(&fake)["i1"]);
    wait_until("i1's restart counted", || {
        reports().last().is_some_and(|r| {
            r.tasks
                .iter()
                .any(|t| t.instance.as_str() == "i1" && t.sample.restarts == 1)
        })
    })
    .await;
    run.abort();
}

/// Issue 18 item 2: an instance holds its whole reservation until every one of its tasks ended
/// for good (as this agent saw it, or as the manager recorded it), then frees it all at once.
#[test]
fn an_instance_holds_its_reservation_until_all_its_tasks_ended() {
    let two = parse_job(
        "name: j\ntasks: [{name: a, image: img:1}, {name: b, image: img:1}]",
        Format::Yaml,
    )
    .unwrap();
    let mut a = assignment("i1", Desired::Run);
    a.job = std::sync::Arc::new(two);
    let mut tracks = tracks::Tracks::new(1);
    assert!(!super::agent::instance_ended(&a, &tracks));
    let end = |tracks: &mut tracks::Tracks, task: &str| {
        let tr = tracks.entry(&a.instance, &crate::ids::TaskName::new(task));
        tr.restart.end();
        assert!(tr.restart.is_done());
    };
    end(&mut tracks, "a");
    assert!(
        !super::agent::instance_ended(&a, &tracks),
        "task b still runs: the whole reservation holds"
    );
    let mut recorded = a.clone();
    recorded.ended = vec![crate::ids::TaskName::new("b")];
    assert!(super::agent::instance_ended(&recorded, &tracks));
    end(&mut tracks, "b");
    assert!(super::agent::instance_ended(&a, &tracks));
}

#[test]
fn only_a_refusal_for_good_ends_registration() {
    use crate::error::Error;
    let refused_for_good = Error::is_refused_for_good;
    // Ends: a name taken, an unknown join token, not a manager there.
    assert!(refused_for_good(&Error::Api(ApiError::new(
        ErrorKind::Forbidden,
        "name_taken",
        "worker \"w1\" is registered with a credential of its own"
    ))));
    assert!(refused_for_good(&Error::Api(ApiError::new(
        ErrorKind::Unauthenticated,
        "unknown_token",
        "no such token"
    ))));
    assert!(refused_for_good(&Error::Api(ApiError::not_found(
        "not_a_manager",
        "http://127.0.0.1:1 is an Orkestrator worker, not the manager"
    ))));
    // Retried: unreachable, 503, 429, no leader, a proxy's 5xx.
    assert!(!refused_for_good(&Error::Unreachable {
        addr: "http://127.0.0.1:1".into(),
        message: "nothing answers".into()
    }));
    assert!(!refused_for_good(&Error::Api(ApiError::unavailable(
        "store_unavailable",
        "retry"
    ))));
    assert!(!refused_for_good(&Error::Api(ApiError::new(
        ErrorKind::LimitExceeded,
        "too_many",
        "slow down"
    ))));
    assert!(!refused_for_good(&Error::Api(ApiError::new(
        ErrorKind::NotLeader,
        "not_leader",
        "ask the leader"
    ))));
}

#[tokio::test(start_paused = true)]
async fn unreachable_and_503_are_retried_and_a_refusal_ends_the_agent() {
    use crate::error::Error;
    let transport = Arc::new(Scripted::default());
    let name_taken = ApiError::new(
        ErrorKind::Forbidden,
        "name_taken",
        "worker \"w1\" is registered with a credential of its own",
    );
    transport.registrations.lock().unwrap().extend([
        Error::Unreachable {
            addr: "http://127.0.0.1:1".into(),
            message: "nothing answers".into(),
        },
        Error::Api(ApiError::unavailable("store_unavailable", "retry")),
        Error::Api(name_taken.clone()),
    ]);
    let agent = WorkerAgent::new(
        WorkerConfig::new("w1"),
        transport.clone(),
        Arc::new(FakeRuntime::new()),
        Arc::new(StaticProbe(Resources::ZERO)),
    );
    let ended = tokio::time::timeout(Duration::from_secs(60), agent.run(std::future::pending()))
        .await
        .expect("the agent ends on the refusal");
    assert!(
        matches!(&ended, Err(Error::Api(a)) if *a == name_taken),
        "{ended:?}"
    );
    assert_eq!(*transport.registered.lock().unwrap(), 3);
}
