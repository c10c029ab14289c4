//! Issue 19, simulated: tasks that wait for their dependencies (`Waiting`, with the reason, in
//! the manager's own view), a dependency that fails for good, sidecars that finish with their
//! instance, and the stop order. Manager, embedded scheduler and a worker on the fake runtime,
//! under tokio's paused clock: the same run every time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{JobPhase, JobView};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::JobId;
use orkestrator_core::local::LocalTransport;
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};

async fn cluster(fake: FakeRuntime) -> Arc<LocalTransport> {
    let (manager, _) = common::start_manager(Arc::new(MemoryStore::new())).await;
    let transport = Arc::new(LocalTransport::new(manager));
    let size = Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::gib(4),
        disk: ByteSize::gib(10),
    };
    common::start_worker("w0", &transport, &fake, size);
    tokio::time::sleep(Duration::from_millis(500)).await;
    transport
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
}

fn state(v: &JobView, task: &str) -> (TaskState, Option<String>) {
    let t = &v.instances[0].tasks[task];
    (t.state, t.reason.clone())
}

const THREE: &str = "name: three
tasks:
  - name: db
    image: img:1
    health_check: { exec: [check], interval: 1s, failures: 3 }
  - name: init
    image: img:1
    command: [sleep-exit, '2', '0']
    restart: { policy: never }
  - name: app
    image: img:1
    depends_on:
      db: { condition: healthy }
      init: { condition: completed_successfully }
";

#[tokio::test(start_paused = true)]
async fn a_dependent_waits_in_the_managers_view_until_its_dependencies_are_as_asked() {
    let fake = FakeRuntime::new();
    let t = cluster(fake.clone()).await;
    // db fails its checks at first (not enough in a row to be restarted).
    fake.set_unhealthy("three", true);
    t.submit_job(&job(THREE)).await.unwrap();
    let v = common::wait_for(&t, "three", "app waiting", |v| {
        !v.instances.is_empty() && state(v, "app").0 == TaskState::Waiting
    })
    .await;
    let (_, reason) = state(&v, "app");
    let reason = reason.unwrap_or_default();
    assert!(
        reason.starts_with("waiting for db to be healthy"),
        "{reason}"
    );
    assert_eq!(
        v.phase,
        JobPhase::Starting,
        "a waiting task is a starting job"
    );
    // init ends after 2 s; app still waits for db.
    let v = common::wait_for(&t, "three", "init Completed", |v| {
        state(v, "init").0 == TaskState::Completed
    })
    .await;
    assert_eq!(
        state(&v, "app"),
        (
            TaskState::Waiting,
            Some("waiting for db to be healthy".to_owned())
        )
    );
    // db passes: app starts, and the instance is Running with init Completed.
    fake.set_unhealthy("three", false);
    let v = common::wait_for(&t, "three", "Running", |v| v.phase == JobPhase::Running).await;
    assert_eq!(state(&v, "app").0, TaskState::Running);
    assert_eq!(state(&v, "init").0, TaskState::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_failing_for_good_fails_the_instance_and_its_dependents_never_start() {
    let fake = FakeRuntime::new();
    let t = cluster(fake.clone()).await;
    let spec = job("name: broken
tasks:
  - name: migrate
    image: img:1
    command: [exit, '3']
    restart: { policy: never }
  - name: app
    image: img:1
    depends_on: { migrate: { condition: completed_successfully } }
");
    t.submit_job(&spec).await.unwrap();
    let v = common::wait_for(&t, "broken", "Failed", |v| v.phase == JobPhase::Failed).await;
    let (app, reason) = state(&v, "app");
    assert_eq!(app, TaskState::Failed);
    assert_eq!(
        reason.as_deref(),
        Some("not started: migrate failed: exited with code 3")
    );
    assert!(
        fake.containers()
            .iter()
            .all(|c| c.label("orkestrator.task") != Some("app")),
        "app never had a container"
    );
}

#[tokio::test(start_paused = true)]
async fn sidecars_finish_when_the_main_task_completes() {
    let fake = FakeRuntime::new();
    let t = cluster(fake.clone()).await;
    let spec = job("name: batch
tasks:
  - name: main
    image: img:1
    command: [sleep-exit, '3', '0']
    restart: { policy: never }
  - name: shipper
    image: img:1
    sidecar: true
    restart: { policy: always }
");
    t.submit_job(&spec).await.unwrap();
    let v = common::wait_for(&t, "batch", "Completed", |v| v.phase == JobPhase::Completed).await;
    assert_eq!(state(&v, "shipper").0, TaskState::Completed);
    assert_eq!(v.instances[0].tasks["shipper"].restarts, 0);
    assert_eq!(fake.running(), 0, "nothing runs on");
}

#[tokio::test(start_paused = true)]
async fn tasks_stop_dependents_first_each_with_its_own_signal() {
    let fake = FakeRuntime::new();
    let t = cluster(fake.clone()).await;
    let spec = job("name: chain
tasks:
  - name: db
    image: img:1
  - name: app
    image: img:1
    depends_on: [db]
    stop_signal: SIGINT
    stop_grace: 5s
  - name: web
    image: img:1
    depends_on: [app]
  - name: logs
    image: img:1
    sidecar: true
");
    t.submit_job(&spec).await.unwrap();
    common::wait_for(&t, "chain", "Running", |v| v.phase == JobPhase::Running).await;
    assert!(fake.stops().is_empty());
    t.stop_job(&JobId::new("chain")).await.unwrap();
    common::wait_for(&t, "chain", "Stopped", |v| v.phase == JobPhase::Stopped).await;
    let stops: Vec<(String, String, Duration)> = fake
        .stops()
        .into_iter()
        .map(|s| (s.task.unwrap_or_default(), s.signal, s.grace))
        .collect();
    let second = Duration::from_secs(1);
    assert_eq!(
        stops,
        [
            ("web".to_owned(), "SIGTERM".to_owned(), second),
            (
                "app".to_owned(),
                "SIGINT".to_owned(),
                Duration::from_secs(5)
            ),
            ("db".to_owned(), "SIGTERM".to_owned(), second),
            ("logs".to_owned(), "SIGTERM".to_owned(), second),
        ],
        "dependents first, sidecars last"
    );
    assert!(
        fake.networks().is_empty(),
        "the instance's network went with its last container"
    );
}
