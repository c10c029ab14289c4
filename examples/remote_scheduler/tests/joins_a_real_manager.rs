//! The example scheduler, run as its own process, joins a real manager over HTTP with a join
//! token and places the jobs submitted to it with its own filter and score (issue 18, item 10).
//!
//! The manager serves its real HTTP API on loopback, in this test's process, without any
//! scheduler of its own: whatever gets placed, the example placed. Its two workers are agents on
//! the fake runtime that joined over HTTP too (no container is started).

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{JobPhase, JobView, Liveness};
use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::JobId;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, Resources, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};
use orkestrator_runtime::HttpTransport;

/// How long any awaited state may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The example's process, killed when the test ends; its standard error is kept in `log`.
struct Scheduler {
    child: Child,
    log: std::path::PathBuf,
}

impl Scheduler {
    /// What the process wrote so far, and whether it has ended.
    fn describe(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("ended: {s}"),
            _ => "running".to_owned(),
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("the example scheduler is {status}; its log:\n{log}")
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Looks with `look` until it answers `Some`, at most [`DEADLINE`]; then fails naming `what`,
/// the last state seen and the example's log.
async fn wait_for<T, F, Fut>(what: &str, scheduler: &mut Scheduler, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let state = match look().await {
            Ok(v) => return v,
            Err(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "gave up waiting {DEADLINE:?} for {what}: {state}\n{}",
                scheduler.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job `name` when `ok` says it is as awaited, else its phase and pending reasons.
async fn job_when(
    client: &HttpTransport,
    name: &str,
    ok: impl Fn(&JobView) -> bool,
) -> Result<JobView, String> {
    let v = client
        .get_job(&JobId::new(name))
        .await
        .map_err(|e| e.to_string())?;
    if ok(&v) {
        return Ok(v);
    }
    let reasons: Vec<_> = v
        .instances
        .iter()
        .filter_map(|i| i.pending_reason.clone())
        .collect();
    Err(format!("{name} is {} ({reasons:?})", v.phase))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_scheduler_joins_over_http_and_places_with_its_own_filter_and_score() {
    // A real manager, serving HTTP, with no scheduler of its own.
    let manager = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(orkestrator_runtime::http::server::serve(
        listener,
        manager.clone(),
        std::future::pending(),
    ));
    let token = |role| {
        let m = manager.clone();
        async move {
            m.tokens()
                .create(CreateToken { role, name: None })
                .await
                .unwrap()
                .token
        }
    };
    let join = token(Role::Join).await;
    let client = HttpTransport::new(&base)
        .unwrap()
        .with_token(Some(token(Role::Operator).await));

    // Two workers of 2 cores and 1 GiB each, joined over HTTP.
    for (name, disk) in [("w-ssd", "ssd"), ("w-hdd", "hdd")] {
        let mut config = WorkerConfig::new(name);
        config.labels.insert("disk".into(), disk.into());
        let size = Resources {
            cpu: Cpu::from_cores(2),
            memory: ByteSize::gib(1),
            disk: ByteSize::gib(10),
        };
        let transport = HttpTransport::new(&base)
            .unwrap()
            .with_join_token(join.clone(), None);
        let worker = WorkerAgent::new(
            config,
            Arc::new(transport),
            Arc::new(FakeRuntime::new()),
            Arc::new(StaticProbe(size)),
        );
        tokio::spawn(worker.run(std::future::pending()));
    }

    // The example, as its own process, with the join token and a preference for disk=hdd.
    let log = std::env::temp_dir().join(format!("remote-scheduler-{}.log", std::process::id()));
    let mut scheduler = Scheduler {
        child: Command::new(env!("CARGO_BIN_EXE_remote-scheduler"))
            .args(["--manager", &base, "--join-token", &join])
            .args(["--name", "example", "--prefer", "disk=hdd"])
            .env_remove("ORKESTRATOR_ADDR")
            .env_remove("ORKESTRATOR_JOIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the example scheduler starts"),
        log,
    };

    let c = &client;
    wait_for(
        "the example scheduler and two workers to be ready",
        &mut scheduler,
        || async move {
            let h = c.health().await.map_err(|e| e.to_string())?;
            let scheduler = h.schedulers.iter().find(|s| s.id.as_str() == "example");
            let ready = c
                .list_workers()
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .filter(|w| w.status == Liveness::Ready)
                .count();
            match scheduler {
                Some(s) if s.status == Liveness::Ready && ready == 2 => {
                    assert_eq!(s.algorithm, "example", "the pipeline's name is registered");
                    Ok(())
                }
                s => Err(format!("scheduler {s:?}, {ready} workers ready")),
            }
        },
    )
    .await;

    // Its score: both instances on the hdd worker, though spreading alone would split them.
    let web = parse_job(
        "name: web\ncount: 2\ntasks:\n  - name: nginx\n    image: nginx:1\n    resources: { memory: 256Mi }\n",
        Format::Yaml,
    )
    .unwrap();
    client.submit_job(&web).await.unwrap();
    let v = wait_for("web to be Running", &mut scheduler, || {
        job_when(c, "web", |v| v.phase == JobPhase::Running)
    })
    .await;
    let placed: Vec<_> = v
        .instances
        .iter()
        .map(|i| i.worker.as_ref().map(|w| w.as_str().to_owned()))
        .collect();
    assert_eq!(
        placed,
        [Some("w-hdd".to_owned()), Some("w-hdd".to_owned())],
        "the preferred worker takes both"
    );

    // Its filter: 950Mi fits the ssd worker's free memory, but not with 10% kept free.
    let big = parse_job(
        "name: big\ntasks:\n  - name: db\n    image: postgres:16\n    resources: { memory: 950Mi }\n",
        Format::Yaml,
    )
    .unwrap();
    client.submit_job(&big).await.unwrap();
    let v = wait_for(
        "big to be refused by the headroom filter",
        &mut scheduler,
        || {
            job_when(c, "big", |v| {
                v.phase == JobPhase::Pending
                    && v.instances.iter().any(|i| {
                        i.pending_reason
                            .as_deref()
                            .is_some_and(|r| r.contains("would leave less than 10% memory free"))
                    })
            })
        },
    )
    .await;
    assert!(v.instances.iter().all(|i| i.worker.is_none()), "{v:?}");
}
