//! Submit → Running latency of a single-task job, end to end against the real Docker engine, with
//! raw bollard create + start on the same engine as the baseline, measured in the same run.
//!
//! ```text
//! scripts/build-test-image.sh
//! cargo bench -p orkestrator-benches --bench submit_to_running
//! BENCH_N=50 BENCH_VERBOSE=1 cargo bench -p orkestrator-benches --bench submit_to_running
//! ```
//!
//! **Orkestrator**: a manager serving its API over real HTTP on a loopback port, with the embedded
//! scheduler (in-process transport, as `orkestrator server` runs it), and one worker agent with the
//! Docker runtime that talks to the manager through [`HttpTransport`], as a separate process would.
//! Heartbeat, reconcile and long-poll settings are the defaults. The client (another
//! [`HttpTransport`]) submits a job and polls `get_job` every 5 ms until the phase is `Running`;
//! the time from just before the submit call to the answer that says `Running` is recorded. The
//! job is then stopped and its container waited out (not timed).
//!
//! **Baseline**: bollard `create_container` + `start_container` of the same image, command and
//! resource limits on the same engine, timed from just before create to the answer of start; the
//! container is then removed (not timed).
//!
//! The two alternate (Orkestrator, raw, Orkestrator, raw, …) so that engine noise hits both alike.
//! One untimed warm-up pair runs first.
//!
//! Where the time goes is read from two event streams, without touching the path being measured:
//! the manager's event bus (job committed, placed, task `Starting`, task `Running`) and the
//! engine's own event stream (`create`, `start`, `destroy` of each container, with the engine's
//! timestamps). Both are stamped with the wall clock of this host.
//!
//! Every container carries a label of this run (the baseline's `orkestrator.bench`, the worker's
//! `orkestrator.worker`); whatever is left is removed with `docker rm -f` at the end, also after a
//! failure, a panic or Ctrl-C.
//!
//! Environment: `BENCH_N` (iterations of each, default 20), `BENCH_WARMUP` (untimed pairs first,
//! default 1), `BENCH_VERBOSE=1` (one line per iteration).
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing and exits at once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use futures_util::StreamExt;
use orkestrator_core::api::{JobPhase, Liveness};
use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::events::EventKind;
use orkestrator_core::ids::{InstanceId, JobId, SchedulerId, WorkerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::runtime::labels;
use orkestrator_core::scheduler::{DEFAULT_SCHEDULER, Registry, SchedulerAgent};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};
use orkestrator_runtime::{DockerRuntime, HttpTransport};

/// The locally built test image (`scripts/build-test-image.sh`).
const IMAGE: &str = "orkestrator/busybox:latest";
/// The command of both containers.
const COMMAND: [&str; 2] = ["sleep", "3600"];
/// How often the client asks for the job while it waits for `Running`.
const POLL: Duration = Duration::from_millis(5);
/// How often the (untimed) clean-up checks whether the job has stopped.
const STOP_POLL: Duration = Duration::from_millis(20);
/// The label on the baseline's containers; its value is the run id.
const BENCH_LABEL: &str = "orkestrator.bench";
/// Longest wait for any one step before the run is abandoned.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after each iteration's clean-up, so that its after-effects (the worker's next pass, the
/// engine's bookkeeping) do not land in the next timed section.
const SETTLE: Duration = Duration::from_millis(100);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

fn main() -> ExitCode {
    if !std::env::args().skip(1).any(|a| a == "--bench") {
        eprintln!(
            "submit_to_running: skipped (it runs only under `cargo bench`, which passes --bench)"
        );
        return ExitCode::SUCCESS;
    }
    let n = env_count("BENCH_N", 20).max(1);
    let warmup = env_count("BENCH_WARMUP", 1);
    let verbose = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        (wall_ns() / 1_000_000) % 100_000_000
    );

    // Declared before the runtime so that it is dropped after it: the agents stop first, then
    // what they created is removed — on success, on error and while unwinding from a panic.
    let cleanup = Cleanup {
        filters: vec![
            format!("label={BENCH_LABEL}={run_id}"),
            format!("label={}={}", labels::WORKER, worker_id(&run_id)),
        ],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    let result = rt.block_on(async {
        tokio::select! {
            r = bench(&run_id, n, warmup, verbose) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    drop(cleanup);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("submit_to_running: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn worker_id(run_id: &str) -> String {
    format!("bench-{run_id}")
}

/// Removes every container matching one of `filters` with the Docker CLI when dropped.
struct Cleanup {
    filters: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut removed = 0;
        for filter in &self.filters {
            let listed = Command::new("docker")
                .args(["ps", "--all", "--quiet", "--no-trunc", "--filter", filter])
                .output();
            let ids: Vec<String> = match listed {
                Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                Ok(out) => {
                    eprintln!(
                        "clean-up: docker ps --filter {filter} failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    continue;
                }
                Err(e) => {
                    eprintln!("clean-up: cannot run docker: {e}");
                    continue;
                }
            };
            if ids.is_empty() {
                continue;
            }
            match Command::new("docker")
                .args(["rm", "--force"])
                .args(&ids)
                .output()
            {
                Ok(out) if out.status.success() => removed += ids.len(),
                Ok(out) => eprintln!(
                    "clean-up: docker rm -f failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => eprintln!("clean-up: cannot run docker: {e}"),
            }
        }
        if removed > 0 {
            eprintln!("clean-up: removed {removed} leftover container(s)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the manager and the engine say happened, and when

/// Now, in nanoseconds since the Unix epoch: the clock the engine stamps its events with.
fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The time from `from` to `to` (wall-clock nanoseconds); zero if `to` is earlier.
fn span(from: i128, to: i128) -> Duration {
    Duration::from_nanos(u64::try_from(to - from).unwrap_or(0))
}

/// A manager event that matters here.
#[derive(Debug, Clone)]
enum Mark {
    Submitted(JobId),
    Placed(InstanceId),
    Task(InstanceId, TaskState),
}

/// An engine event about a container: `create`, `start` or `destroy`.
#[derive(Debug, Clone)]
struct EngineEvent {
    at: i128,
    action: String,
    /// The container's name.
    name: String,
    /// Its `orkestrator.job` label, for the worker's containers.
    job: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the manager's events, stamped when received.
fn record_manager_events(manager: &Manager, into: Arc<Mutex<Vec<(i128, Mark)>>>) {
    let mut rx = manager.events().subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let at = wall_ns();
            let mark = match ev.kind {
                EventKind::JobSubmitted { job, .. } => Mark::Submitted(job),
                EventKind::InstancePlaced { instance, .. } => Mark::Placed(instance),
                EventKind::TaskStateChanged { instance, to, .. } => Mark::Task(instance, to),
                _ => continue,
            };
            lock(&into).push((at, mark));
        }
    });
}

/// Records the engine's container events from now on, with the engine's timestamps.
fn record_engine_events(docker: &Docker, into: Arc<Mutex<Vec<EngineEvent>>>) {
    // `since` replays what happens between now and the moment the stream is connected.
    let options = EventsOptions {
        since: Some((wall_ns() / 1_000_000_000).to_string()),
        until: None,
        filters: Some(HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                vec!["create".into(), "start".into(), "destroy".into()],
            ),
        ])),
    };
    // The stream outlives the client's per-request timeout.
    let docker = docker.clone().with_timeout(Duration::from_secs(24 * 3600));
    tokio::spawn(async move {
        let mut events = docker.events(Some(options));
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    eprintln!("engine events stopped: {e}");
                    return;
                }
            };
            let (Some(at), Some(action)) = (ev.time_nano, ev.action) else {
                continue;
            };
            let mut attributes = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
            lock(&into).push(EngineEvent {
                at: i128::from(at),
                action,
                name: attributes.remove("name").unwrap_or_default(),
                job: attributes.remove(labels::JOB),
            });
        }
    });
}

/// The stages of one Orkestrator run, in causal order. Each ends at a moment the manager or the
/// engine reports; the first starts at the submit call, the last ends when the client sees
/// `Running`.
const STAGES: [&str; 7] = [
    "submit: client → manager (HTTP), job committed",
    "scheduler: wake-up, decide, placement committed (in-process)",
    "worker: watch answers (HTTP), list containers, report `Starting` (HTTP)",
    "worker: `Starting` answered, inspect image, create (engine `create` event)",
    "engine: start the container (engine `start` event)",
    "worker: start call returns, report `Running` (HTTP), committed",
    "client: next 5 ms poll sees `Running` (get_job over HTTP)",
];

/// One Orkestrator run: the total, and the end of each of [`STAGES`] (from the submit call) when
/// every moment was observed.
struct Sample {
    total: Duration,
    marks: Option<[Duration; STAGES.len()]>,
    /// The stop that follows (not part of `total`): from the `stop_job` call to the engine's
    /// `destroy` event of the container, and to the client seeing `Stopped`.
    stop: Option<(Duration, Duration)>,
}

/// Finds the ends of [`STAGES`] for `job` (instance `instance`) in what was recorded since `t0`.
fn stage_marks(
    t0: i128,
    total: Duration,
    job: &JobId,
    instance: &InstanceId,
    seen: &[(i128, Mark)],
    engine: &[EngineEvent],
) -> Option<[Duration; STAGES.len()]> {
    let event = |want: &dyn Fn(&Mark) -> bool| {
        seen.iter()
            .find(|(at, m)| *at >= t0 && want(m))
            .map(|(at, _)| *at)
    };
    let submitted = event(&|m| matches!(m, Mark::Submitted(j) if j == job))?;
    let placed = event(&|m| matches!(m, Mark::Placed(i) if i == instance))?;
    let starting = event(&|m| matches!(m, Mark::Task(i, TaskState::Starting) if i == instance))?;
    let running = event(&|m| matches!(m, Mark::Task(i, TaskState::Running) if i == instance))?;
    let engine_at = |action: &str| {
        engine
            .iter()
            .find(|e| e.action == action && e.job.as_deref() == Some(job.as_str()))
            .map(|e| e.at)
    };
    let created = engine_at("create")?;
    let started = engine_at("start")?;
    let mut out = [Duration::ZERO; STAGES.len()];
    let ends = [submitted, placed, starting, created, started, running];
    for (o, at) in out.iter_mut().zip(ends) {
        *o = span(t0, at);
    }
    out[STAGES.len() - 1] = total;
    Some(out)
}

/// One baseline run.
#[derive(Debug, Clone, Copy)]
struct RawSample {
    /// Create + start, timed by the caller.
    total: Duration,
    /// From the engine's `create` event to its `start` event, if both were seen.
    engine_start: Option<Duration>,
}

// ---------------------------------------------------------------------------------------------
// The cluster and the two measurements

struct Bench {
    run_id: String,
    /// The client, as the CLI would be.
    client: HttpTransport,
    /// The baseline's engine client (its own connection pool).
    docker: Docker,
    seen: Arc<Mutex<Vec<(i128, Mark)>>>,
    engine: Arc<Mutex<Vec<EngineEvent>>>,
}

async fn bench(run_id: &str, n: usize, warmup: usize, verbose: bool) -> Res<()> {
    let raw_runtime = DockerRuntime::connect()?;
    let docker = raw_runtime.client().await?.clone();
    let info = docker.info().await?;
    docker
        .inspect_image(IMAGE)
        .await
        .map_err(|e| format!("{IMAGE} is missing (run scripts/build-test-image.sh): {e}"))?;
    let engine = Arc::new(Mutex::new(Vec::new()));
    record_engine_events(&docker, engine.clone());

    // The manager, serving HTTP on a loopback port, with the embedded scheduler and the liveness
    // checker, as `orkestrator server` wires them.
    let config = ManagerConfig::default();
    let heartbeat = config.heartbeat_interval;
    let manager = Manager::new(config, Arc::new(MemoryStore::new())).await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    record_manager_events(&manager, seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", listener.local_addr()?);
    {
        let m = manager.clone();
        tokio::spawn(async move {
            if let Err(e) =
                orkestrator_runtime::http::server::serve(listener, m, std::future::pending()).await
            {
                eprintln!("the API server stopped: {e}");
            }
        });
    }
    // The scheduler `orkestrator server` embeds by default.
    let scheduler = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        Arc::new(LocalTransport::new(manager.clone())),
        Registry::builtin()
            .get(DEFAULT_SCHEDULER)
            .ok_or("the default scheduler is not in the built-in registry")?,
    );
    tokio::spawn(scheduler.run(std::future::pending()));
    {
        let m = manager.clone();
        let every = heartbeat.max(Duration::from_millis(100)) / 2;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                m.cluster().check_liveness().await;
            }
        });
    }

    // Tokens, as `orkestrator server` writes them (issue 11): the client presents an operator
    // token; the worker joins with a join token and then uses the credential it is issued.
    let token = |role: Role| {
        let m = manager.clone();
        async move {
            m.tokens()
                .create(CreateToken {
                    role,
                    name: Some("submit_to_running bench".into()),
                })
                .await
                .map(|t| t.token)
        }
    };
    let operator = token(Role::Operator).await?;
    let join = token(Role::Join).await?;

    // One worker with the Docker runtime, talking to the manager over HTTP.
    let worker = WorkerId::new(worker_id(run_id));
    let mut wconfig = WorkerConfig::new(worker.clone());
    // `sleep` as PID 1 ignores SIGTERM: without this every (untimed) stop would wait out the
    // default 10 s grace period.
    wconfig.stop_grace = Duration::ZERO;
    let probe = Arc::new(StaticProbe(Resources {
        cpu: Cpu::from_cores(2),
        memory: ByteSize::gib(8),
        disk: ByteSize::gib(50),
    }));
    let agent = WorkerAgent::new(
        wconfig,
        Arc::new(HttpTransport::new(&addr)?.with_join_token(join, None)),
        Arc::new(DockerRuntime::connect()?),
        probe,
    );
    tokio::spawn(agent.run(std::future::pending()));

    let b = Bench {
        run_id: run_id.to_owned(),
        client: HttpTransport::new(&addr)?.with_token(Some(operator)),
        docker,
        seen,
        engine,
    };
    b.wait_for_worker(&worker).await?;

    let cpus = info.ncpu.map_or("?".into(), |n| n.to_string());
    println!("# submit_to_running (run {run_id})");
    println!(
        "engine: Docker {} ({} storage driver, cgroup {}), {cpus} CPUs, kernel {}",
        info.server_version.as_deref().unwrap_or("?"),
        info.driver.as_deref().unwrap_or("?"),
        info.cgroup_version
            .map_or("?".to_owned(), |v| v.to_string()),
        info.kernel_version.as_deref().unwrap_or("?"),
    );
    println!(
        "cluster: manager on {addr} (embedded scheduler), worker {worker} over HTTP; \
         heartbeat {} ms, worker reconcile tick 1 s (defaults)",
        heartbeat.as_millis()
    );
    println!(
        "N = {n} of each, interleaved (Orkestrator, raw, ...), after {warmup} untimed pair(s); \
         client polls get_job every {} ms",
        POLL.as_millis()
    );
    println!();

    for i in 0..warmup {
        b.orkestrator_once(&format!("w{i}")).await?;
        tokio::time::sleep(SETTLE).await;
        b.raw_once(&format!("w{i}")).await?;
        tokio::time::sleep(SETTLE).await;
    }
    let mut ork = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    for i in 0..n {
        let s = b.orkestrator_once(&i.to_string()).await?;
        tokio::time::sleep(SETTLE).await;
        let r = b.raw_once(&i.to_string()).await?;
        tokio::time::sleep(SETTLE).await;
        if verbose {
            println!(
                "  #{i:<3} orkestrator {:>8}  raw {:>8}",
                ms(s.total),
                ms(r.total)
            );
        }
        ork.push(s);
        raw.push(r);
    }
    if verbose {
        println!();
    }
    print!("{}", report(&ork, &raw));
    Ok(())
}

impl Bench {
    async fn wait_for_worker(&self, worker: &WorkerId) -> Res<()> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let workers = self.client.list_workers().await?;
            if workers
                .iter()
                .any(|w| &w.id == worker && w.status == Liveness::Ready)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("worker {worker} did not become ready").into());
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    /// Clears what the event recorders hold (between iterations, when nothing happens).
    fn forget_events(&self) {
        lock(&self.seen).clear();
        lock(&self.engine).clear();
    }

    /// Submits a job, waits (polling) until it is `Running`; then stops it and waits until its
    /// container is gone (not timed).
    async fn orkestrator_once(&self, tag: &str) -> Res<Sample> {
        let name = format!("str-{}-{tag}", self.run_id);
        let command = COMMAND.map(|c| format!("{c:?}")).join(",");
        let spec = format!(
            r#"{{"name":"{name}","tasks":[{{"name":"main","image":"{IMAGE}","command":[{command}],"restart":{{"policy":"never"}}}}]}}"#
        );
        let job = parse_job(&spec, Format::Json)?;
        self.forget_events();

        let t0_wall = wall_ns();
        let t0 = Instant::now();
        let submitted = self.client.submit_job(&job).await?;
        let view = loop {
            let v = self.client.get_job(&submitted.job).await?;
            match v.phase {
                JobPhase::Running => break v,
                JobPhase::Pending | JobPhase::Starting => {}
                other => {
                    return Err(format!("job {name} ended up {other} instead of Running").into());
                }
            }
            if t0.elapsed() > STEP_TIMEOUT {
                return Err(format!("job {name} is not Running after {STEP_TIMEOUT:?}").into());
            }
            tokio::time::sleep(POLL).await;
        };
        let total = t0.elapsed();

        // Not timed: stop the job and wait until its container is gone and the client sees
        // `Stopped`.
        let t_stop = wall_ns();
        self.client.stop_job(&submitted.job).await?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let stopped_seen = loop {
            let phase = self.client.get_job(&submitted.job).await?.phase;
            if phase == JobPhase::Stopped {
                break wall_ns();
            }
            if Instant::now() > deadline {
                return Err(format!("job {name} did not stop ({phase})").into());
            }
            tokio::time::sleep(STOP_POLL).await;
        };
        while self.containers(&format!("{}={name}", labels::JOB)).await? > 0 {
            if Instant::now() > deadline {
                return Err(format!("the container of job {name} is still there").into());
            }
            tokio::time::sleep(STOP_POLL).await;
        }
        // The engine may publish `destroy` a moment after the container is gone from its list.
        let destroyed = loop {
            let at = lock(&self.engine)
                .iter()
                .find(|e| e.action == "destroy" && e.job.as_deref() == Some(name.as_str()))
                .map(|e| e.at);
            if at.is_some() || Instant::now() > deadline {
                break at;
            }
            tokio::time::sleep(STOP_POLL).await;
        };

        let marks = view.instances.first().and_then(|inst| {
            stage_marks(
                t0_wall,
                total,
                &submitted.job,
                &inst.id,
                &lock(&self.seen),
                &lock(&self.engine),
            )
        });
        let stop = destroyed.map(|d| (span(t_stop, d), span(t_stop, stopped_seen)));
        Ok(Sample { total, marks, stop })
    }

    /// Creates and starts a container with bollard (timed), then removes it (not timed).
    async fn raw_once(&self, tag: &str) -> Res<RawSample> {
        let name = format!("bench-raw-{}-{tag}", self.run_id);
        // What the worker would ask for: same image, command and default limits (100m CPU,
        // 128Mi memory, no swap).
        let memory = i64::try_from(Resources::DEFAULT_MEMORY.bytes())?;
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_owned()),
            cmd: Some(COMMAND.map(str::to_owned).to_vec()),
            env: Some(Vec::new()),
            labels: Some(HashMap::from([(
                BENCH_LABEL.to_owned(),
                self.run_id.clone(),
            )])),
            host_config: Some(HostConfig {
                nano_cpus: Some(i64::try_from(Resources::DEFAULT_CPU.millis())? * 1_000_000),
                memory: Some(memory),
                memory_swap: Some(memory),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        self.forget_events();

        let t0 = Instant::now();
        let created = self.docker.create_container(Some(options), body).await?;
        self.docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await?;
        let total = t0.elapsed();

        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        self.docker
            .remove_container(&created.id, Some(options))
            .await?;
        let engine_at = |action: &str| {
            lock(&self.engine)
                .iter()
                .find(|e| e.action == action && e.name == name)
                .map(|e| e.at)
        };
        let engine_start = engine_at("create")
            .zip(engine_at("start"))
            .map(|(c, s)| span(c, s));
        Ok(RawSample {
            total,
            engine_start,
        })
    }

    /// How many containers (running or not) carry `label` (`key=value`).
    async fn containers(&self, label: &str) -> Res<usize> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![label.to_owned()],
            )])),
            ..Default::default()
        };
        Ok(self.docker.list_containers(Some(options)).await?.len())
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Debug, Clone, Copy)]
struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
    max: Duration,
}

/// Median (mean of the two middle values for an even count), p90 (nearest rank), min, max.
fn stats(values: &[Duration]) -> Stats {
    assert!(!values.is_empty());
    let mut v = values.to_vec();
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    let rank = (n * 9).div_ceil(10).max(1);
    Stats {
        median,
        p90: v[rank - 1],
        min: v[0],
        max: v[n - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A table row: `label`, then median, p90 and max of `values`.
fn row(out: &mut String, label: &str, values: &[Duration]) {
    let s = stats(values);
    let _ = writeln!(
        out,
        "| {label} | {} | {} | {} |",
        ms(s.median),
        ms(s.p90),
        ms(s.max)
    );
}

fn report(ork: &[Sample], raw: &[RawSample]) -> String {
    let totals: Vec<Duration> = ork.iter().map(|s| s.total).collect();
    let raw_totals: Vec<Duration> = raw.iter().map(|r| r.total).collect();
    let (o, r) = (stats(&totals), stats(&raw_totals));
    let mut out = String::new();
    let _ = writeln!(out, "| path | n | median | p90 | min | max |");
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
    for (label, n, s) in [
        (
            "Orkestrator: submit → `Running` seen by the client (HTTP, 5 ms polling)",
            totals.len(),
            o,
        ),
        (
            "raw bollard: create + start (same engine, same run)",
            raw_totals.len(),
            r,
        ),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {n} | {} | {} | {} | {} |",
            ms(s.median),
            ms(s.p90),
            ms(s.min),
            ms(s.max)
        );
    }
    let _ = writeln!(out);
    let ratio = o.median.as_secs_f64() / r.median.as_secs_f64();
    let overhead = o.median.as_secs_f64() - r.median.as_secs_f64();
    let _ = writeln!(
        out,
        "Ratio of medians (Orkestrator / raw): **{ratio:.2}×**; overhead (difference of medians): \
         **{:.1} ms**.",
        overhead * 1e3
    );

    let traced: Vec<[Duration; STAGES.len()]> = ork.iter().filter_map(|s| s.marks).collect();
    if !traced.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Where the Orkestrator time goes ({} of {} runs fully traced; each stage ends at the \
             next moment the manager or the engine reports):",
            traced.len(),
            ork.len()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| stage | median | p90 | max |");
        let _ = writeln!(out, "|---|--:|--:|--:|");
        for (k, label) in STAGES.iter().enumerate() {
            let spans: Vec<Duration> = traced
                .iter()
                .map(|m| m[k].saturating_sub(if k == 0 { Duration::ZERO } else { m[k - 1] }))
                .collect();
            row(&mut out, label, &spans);
        }
        // The engine's window: from `Starting` (the worker is about to call the engine) to the
        // engine's `start` event. The rest is Orkestrator's own time.
        let window: Vec<Duration> = traced.iter().map(|m| m[4].saturating_sub(m[2])).collect();
        let own: Vec<Duration> = traced
            .iter()
            .map(|m| m[6].saturating_sub(m[4].saturating_sub(m[2])))
            .collect();
        row(
            &mut out,
            "*engine window: `Starting` committed → engine `start` event*",
            &window,
        );
        row(
            &mut out,
            "*everything else: Orkestrator's own time (total − engine window)*",
            &own,
        );
    }

    // The same engine step, seen through the engine's events, in both paths.
    let ork_start: Vec<Duration> = traced.iter().map(|m| m[4].saturating_sub(m[3])).collect();
    let raw_start: Vec<Duration> = raw.iter().filter_map(|r| r.engine_start).collect();
    if !ork_start.is_empty() && !raw_start.is_empty() {
        let (w, r) = (stats(&ork_start), stats(&raw_start));
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "The same engine step in both paths (engine noise check), engine `create` event → \
             `start` event:"
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| path | median | p90 | max |");
        let _ = writeln!(out, "|---|--:|--:|--:|");
        for (label, s) in [("Orkestrator's worker", w), ("raw bollard", r)] {
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} |",
                ms(s.median),
                ms(s.p90),
                ms(s.max)
            );
        }
    }

    let stops: Vec<(Duration, Duration)> = ork.iter().filter_map(|s| s.stop).collect();
    if !stops.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Stop path, not timed above ({} runs; the client polls every {} ms here):",
            stops.len(),
            STOP_POLL.as_millis()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| from `stop_job` to | median | p90 | max |");
        let _ = writeln!(out, "|---|--:|--:|--:|");
        let destroyed: Vec<Duration> = stops.iter().map(|s| s.0).collect();
        let seen: Vec<Duration> = stops.iter().map(|s| s.1).collect();
        row(
            &mut out,
            "the engine's `destroy` event (container removed)",
            &destroyed,
        );
        row(&mut out, "the client sees `Stopped`", &seen);
    }
    out
}
