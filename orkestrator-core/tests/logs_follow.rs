//! Following a task's output across its containers (`Jobs::follow_logs`), with `FakeRuntime`
//! workers over in-process links under tokio's paused clock: a restart, a replacement on another
//! worker, and the end of the stream when the job stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use orkestrator_core::api::{ApiError, JobPhase, Liveness, LogSource};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::JobId;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::Manager;
use orkestrator_core::runtime::{ContainerState, LogOptions, LogStream, Runtime, labels};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};
use tokio::task::JoinHandle;

mod common;
use common::start_manager;

/// A worker agent like `common::start_worker`'s, registered with an endpoint address (which the
/// manager needs to name a log source; the opener here reads the runtime directly).
fn start_worker(
    name: &str,
    link: &LocalTransport,
    rt: &FakeRuntime,
    size: Resources,
) -> JoinHandle<()> {
    let mut cfg = WorkerConfig::new(name);
    cfg.stop_grace = Duration::from_secs(1);
    cfg.address = Some(format!("http://{name}.invalid:1"));
    let agent = WorkerAgent::new(
        cfg,
        Arc::new(link.clone()),
        Arc::new(rt.clone()),
        Arc::new(StaticProbe(size)),
    );
    tokio::spawn(async move {
        let _ = agent.run(std::future::pending()).await;
    })
}

fn size() -> Resources {
    Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::gib(4),
        disk: ByteSize::gib(20),
    }
}

struct Sim {
    manager: Manager,
    store: Arc<MemoryStore>,
    client: LocalTransport,
    runtimes: BTreeMap<String, FakeRuntime>,
    links: BTreeMap<String, LocalTransport>,
    agents: BTreeMap<String, JoinHandle<()>>,
    _background: Vec<JoinHandle<()>>,
}

impl Sim {
    async fn new(workers: usize) -> Sim {
        let store = Arc::new(MemoryStore::new());
        let (manager, background) = start_manager(store.clone()).await;
        let client = LocalTransport::new(manager.clone());
        let mut sim = Sim {
            manager,
            store,
            client,
            runtimes: BTreeMap::new(),
            links: BTreeMap::new(),
            agents: BTreeMap::new(),
            _background: background,
        };
        for i in 0..workers {
            let name = format!("w{i}");
            let link = sim.client.link();
            let rt = FakeRuntime::new();
            sim.agents
                .insert(name.clone(), start_worker(&name, &link, &rt, size()));
            sim.runtimes.insert(name.clone(), rt);
            sim.links.insert(name, link);
        }
        sim.wait_workers_ready(workers).await;
        sim
    }

    /// Waits (on the paused clock, with a deadline) until `n` workers are registered and Ready.
    async fn wait_workers_ready(&self, n: usize) {
        let mut workers = Vec::new();
        for _ in 0..600 {
            workers = self.client.list_workers().await.unwrap();
            if workers
                .iter()
                .filter(|w| w.status == Liveness::Ready)
                .count()
                == n
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not {n} workers Ready: {workers:#?}");
    }

    /// Reads each container's output straight from its worker's runtime.
    fn opener(
        &self,
    ) -> impl Fn(
        LogSource,
        LogOptions,
    ) -> futures_util::future::BoxFuture<'static, Result<LogStream, ApiError>>
    + Send
    + Sync
    + 'static {
        let runtimes = self.runtimes.clone();
        move |src: LogSource, opts: LogOptions| {
            let rt = runtimes[src.worker.as_str()].clone();
            Box::pin(async move {
                rt.stream_logs(&src.container_id, &opts)
                    .await
                    .map_err(|e| ApiError::unavailable("engine_error", e.to_string()))
            })
        }
    }

    /// The running container of `job` on any worker, with its worker's name.
    fn running(&self, job: &str) -> Option<(String, String)> {
        self.runtimes.iter().find_map(|(w, rt)| {
            rt.containers()
                .into_iter()
                .find(|c| c.label(labels::JOB) == Some(job) && c.state == ContainerState::Running)
                .map(|c| (w.clone(), c.id))
        })
    }

    /// The running container of `job` that is not `old` (worker, id).
    async fn wait_running_other_than(&self, job: &str, old: (&str, &str)) -> (String, String) {
        for _ in 0..600 {
            if let Some((w, id)) = self.running(job)
                && (w.as_str(), id.as_str()) != old
            {
                return (w, id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no new container of {job}: {:#?}\n{:#?}",
            self.client.get_job(&JobId::new(job)).await,
            self.client.list_workers().await
        );
    }

    async fn wait_phase(&self, job: &str, phase: JobPhase) {
        for _ in 0..600 {
            if self.client.get_job(&JobId::new(job)).await.unwrap().phase == phase {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{job} never {phase}");
    }
}

/// The next chunk as text, within `within`.
async fn next_text(s: &mut LogStream, within: Duration) -> Option<String> {
    match tokio::time::timeout(within, s.next()).await {
        Ok(Some(Ok(b))) => Some(String::from_utf8(b).unwrap()),
        Ok(Some(Err(e))) => panic!("stream error: {e}"),
        Ok(None) => None,
        Err(_) => panic!("no chunk and no end within {within:?}"),
    }
}

/// Reads chunks until `want` has been seen (as a suffix of everything read).
async fn read_until(s: &mut LogStream, got: &mut String, want: &str) {
    while !got.ends_with(want) {
        match next_text(s, Duration::from_secs(30)).await {
            Some(t) => got.push_str(&t),
            None => panic!("the stream ended before {want:?}; got {got:?}"),
        }
    }
}

const ALWAYS: &str = "restart: { policy: always, backoff: { initial: 1s } }";

#[tokio::test(start_paused = true)]
async fn following_goes_on_into_the_restarted_container_and_ends_when_the_job_stops() {
    let sim = Sim::new(1).await;
    let job = JobId::new("talk");
    sim.client
        .submit_job(
            &parse_job(
                &format!("name: talk\ntasks: [{{name: t, image: x:1, {ALWAYS}}}]"),
                Format::Yaml,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    sim.wait_phase("talk", JobPhase::Running).await;
    let (w, c1) = sim.running("talk").unwrap();
    let rt = &sim.runtimes[&w];
    assert!(rt.write_output(&c1, "a1\na2\na3\n"));

    // The tail of what is there, then what comes.
    let opts = LogOptions {
        tail: Some(2),
        ..LogOptions::default()
    };
    let mut s = sim
        .manager
        .jobs()
        .follow_logs(&job, None, 0, opts, sim.opener())
        .await
        .unwrap();
    let mut got = String::new();
    read_until(&mut s, &mut got, "a3\n").await;
    assert_eq!(got, "a2\na3\n");
    rt.write_output(&c1, "a4\n");
    read_until(&mut s, &mut got, "a4\n").await;

    // The container dies; after the backoff its successor writes before the follower reads it:
    // all of its output comes, after the first one's, once.
    rt.kill(&c1);
    let (_, c2) = sim.wait_running_other_than("talk", (&w, &c1)).await;
    assert!(rt.write_output(&c2, "b1\n"));
    read_until(&mut s, &mut got, "b1\n").await;
    rt.write_output(&c2, "b2\n");
    read_until(&mut s, &mut got, "b2\n").await;
    assert_eq!(got, "a2\na3\na4\nb1\nb2\n");

    // Stopping the job ends the stream.
    sim.client.stop_job(&job).await.unwrap();
    assert_eq!(next_text(&mut s, Duration::from_secs(30)).await, None);
}

#[tokio::test(start_paused = true)]
async fn following_goes_on_into_the_replacement_on_another_worker() {
    let mut sim = Sim::new(2).await;
    let job = JobId::new("moved");
    sim.client
        .submit_job(
            &parse_job("name: moved\ntasks: [{name: t, image: x:1}]", Format::Yaml).unwrap(),
        )
        .await
        .unwrap();
    sim.wait_phase("moved", JobPhase::Running).await;
    let (w1, c1) = sim.running("moved").unwrap();
    sim.runtimes[&w1].write_output(&c1, "on-first\n");
    let mut s = sim
        .manager
        .jobs()
        .follow_logs(&job, Some("t"), 0, LogOptions::default(), sim.opener())
        .await
        .unwrap();
    let mut got = String::new();
    read_until(&mut s, &mut got, "on-first\n").await;

    // The first worker's host dies: agent, link and container.
    sim.agents.remove(&w1).unwrap().abort();
    sim.links[&w1].set_cut(true);
    sim.runtimes[&w1].kill(&c1);
    let (w2, c2) = sim.wait_running_other_than("moved", (&w1, &c1)).await;
    assert_ne!(w1, w2, "replaced on the other worker");
    sim.runtimes[&w2].write_output(&c2, "on-second\n");
    read_until(&mut s, &mut got, "on-second\n").await;
    assert_eq!(got, "on-first\non-second\n");

    sim.client.stop_job(&job).await.unwrap();
    assert_eq!(next_text(&mut s, Duration::from_secs(30)).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_follower_waits_for_the_first_container_and_bad_requests_fail_at_once() {
    let sim = Sim::new(1).await;
    let err = sim
        .manager
        .jobs()
        .follow_logs(
            &JobId::new("nope"),
            None,
            0,
            LogOptions::default(),
            sim.opener(),
        )
        .await
        .err()
        .expect("an unknown job is an error");
    assert!(err.message.contains("not found"), "{err:?}");

    sim.client
        .submit_job(&parse_job("name: late\ntasks: [{name: t, image: x:1}]", Format::Yaml).unwrap())
        .await
        .unwrap();
    // Asked for before the task has a container: the stream waits for it.
    let mut s = sim
        .manager
        .jobs()
        .follow_logs(
            &JobId::new("late"),
            None,
            0,
            LogOptions::default(),
            sim.opener(),
        )
        .await
        .unwrap();
    sim.wait_phase("late", JobPhase::Running).await;
    let (w, c) = sim.running("late").unwrap();
    sim.runtimes[&w].write_output(&c, "hello\n");
    let mut got = String::new();
    read_until(&mut s, &mut got, "hello\n").await;
    assert_eq!(got, "hello\n");
}

#[test]
fn since_reads_durations_times_and_unix_seconds() {
    use orkestrator_core::api::{LogsQuery, parse_since};
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(parse_since("10m", now), Ok(1_700_000_000 - 600));
    assert_eq!(parse_since("1h30m", now), Ok(1_700_000_000 - 5400));
    assert_eq!(parse_since("2023-11-14T22:13:20Z", now), Ok(1_700_000_000));
    assert_eq!(parse_since("1699999999", now), Ok(1_699_999_999));
    let e = parse_since("yesterday", now).unwrap_err();
    assert!(e.contains("neither a duration"), "{e}");
    let q = LogsQuery {
        since: Some("soon".into()),
        ..LogsQuery::default()
    };
    let e = q.since_at(SystemTime::now()).unwrap_err();
    assert_eq!(e.code, "invalid_since");
    assert_eq!(LogsQuery::default().since_at(now), Ok(None));
}

#[tokio::test(start_paused = true)]
async fn the_fake_runtime_serves_tails_and_ends_a_follow_when_the_container_exits() {
    use orkestrator_core::runtime::ContainerSpec;
    let rt = FakeRuntime::new();
    let spec = ContainerSpec {
        name: "c".into(),
        image: "x:1".into(),
        command: vec!["sleep-exit".into(), "5".into(), "0".into()],
        env: BTreeMap::new(),
        ports: vec![],
        resources: Resources::default(),
        labels: BTreeMap::new(),
        pids_limit: 4096,
        user: None,
        read_only: false,
        ..Default::default()
    };
    let id = rt.create(&spec).await.unwrap();
    assert!(
        !rt.write_output(&id, "not started\n"),
        "only a running container writes"
    );
    rt.start(&id).await.unwrap();
    rt.write_output(&id, "1\n2\n3\n");
    let all = |tail| LogOptions {
        tail,
        ..LogOptions::default()
    };
    let read = async |o: LogOptions| {
        let mut s = rt.stream_logs(&id, &o).await.unwrap();
        let mut out = String::new();
        while let Some(c) = s.next().await {
            out.push_str(std::str::from_utf8(&c.unwrap()).unwrap());
        }
        out
    };
    assert_eq!(read(all(Some(2))).await, "2\n3\n");
    assert_eq!(read(all(None)).await, "1\n2\n3\n");
    assert_eq!(read(all(Some(10))).await, "1\n2\n3\n");
    // Following: what comes next, then the end at the scripted exit (5 s after the start).
    let t0 = tokio::time::Instant::now();
    let mut s = rt
        .stream_logs(
            &id,
            &LogOptions {
                tail: Some(0),
                follow: true,
                ..LogOptions::default()
            },
        )
        .await
        .unwrap();
    rt.write_output(&id, "4\n");
    assert_eq!(
        next_text(&mut s, Duration::from_secs(10)).await.as_deref(),
        Some("4\n")
    );
    assert_eq!(next_text(&mut s, Duration::from_secs(10)).await, None);
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_failed_store_commit_while_waiting_for_the_next_container_does_not_end_the_stream() {
    let sim = Sim::new(1).await;
    let job = JobId::new("shaky");
    sim.client
        .submit_job(
            &parse_job(
                &format!("name: shaky\ntasks: [{{name: t, image: x:1, {ALWAYS}}}]"),
                Format::Yaml,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    sim.wait_phase("shaky", JobPhase::Running).await;
    let (w, c1) = sim.running("shaky").unwrap();
    let rt = &sim.runtimes[&w];
    assert!(rt.write_output(&c1, "one\n"));
    let mut s = sim
        .manager
        .jobs()
        .follow_logs(&job, None, 0, LogOptions::default(), sim.opener())
        .await
        .unwrap();
    let mut got = String::new();
    read_until(&mut s, &mut got, "one\n").await;
    // The stream is read on (so the follower runs) from here on, by a task of its own.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(item) = s.next().await {
            let item = item.map(|b| String::from_utf8(b).unwrap());
            if tx.send(item.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    });

    // Commits wait at the gate, and the next one fails. The container dies: its stream ends and
    // the worker's report of it is applied in memory, its commit held.
    let gate = sim.store.hold_commits().await;
    sim.store.fail_next_commits(1);
    let durable = sim.manager.durable_index();
    rt.kill(&c1);
    let mut pending = false;
    for _ in 0..600 {
        let g = sim.manager.metrics().gauges();
        if g.tasks.get(&TaskState::Running) == Some(&0) {
            pending = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        pending,
        "the exit was never applied: {:?}",
        sim.manager.metrics().gauges()
    );
    assert_eq!(
        sim.manager.durable_index(),
        durable,
        "nothing committed past the gate"
    );
    // Longer than the follower's recheck (2 s): on the paused clock time only moves on once
    // every task is idle, so by then the follower has read the state again and waits for that
    // read to be durable.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The commit fails (a 503 `store_unavailable` for the reads waiting on it) and memory is
    // rebuilt from the store.
    drop(gate);

    // The stream goes on (it used to end, cleanly, on that 503) into the restarted container.
    let (_, c2) = sim.wait_running_other_than("shaky", (&w, &c1)).await;
    assert!(rt.write_output(&c2, "two\n"));
    while !got.ends_with("two\n") {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(Ok(text))) => got.push_str(&text),
            Ok(Some(Err(e))) => panic!("the stream failed: {e}; got {got:?}"),
            Ok(None) => panic!("the stream ended; got {got:?}"),
            Err(_) => panic!("nothing within 30 s; got {got:?}"),
        }
    }
    assert_eq!(got, "one\ntwo\n");
    assert!(
        sim.manager.metrics().telemetry().commit_failures >= 1,
        "the injected failure happened"
    );

    sim.client.stop_job(&job).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    reader.await.unwrap();
}
