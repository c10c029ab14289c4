//! Whole-cluster simulations: manager + embedded scheduler + workers with `FakeRuntime` over the
//! in-process transport, under tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{JobPhase, JobView};
use orkestrator_core::clock::TokioClock;
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::{JobId, SchedulerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::runtime::labels;
use orkestrator_core::scheduler::{Registry, SchedulerAgent};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};

struct Cluster {
    transport: Arc<LocalTransport>,
    runtimes: Vec<FakeRuntime>,
}

fn worker_size() -> Resources {
    Resources {
        cpu: Cpu::from_cores(2),
        memory: ByteSize::gib(1),
        disk: ByteSize::gib(10),
    }
}

async fn cluster(workers: usize) -> Cluster {
    cluster_with(workers, Duration::from_secs(1)).await
}

/// `workers` fake workers whose stops wait `stop_grace` for a container that ignores SIGTERM.
async fn cluster_with(workers: usize, stop_grace: Duration) -> Cluster {
    let manager = Manager::with_clock(
        ManagerConfig::default(),
        Arc::new(MemoryStore::new()),
        Arc::new(TokioClock::starting_now()),
    )
    .await
    .unwrap();
    let transport = Arc::new(LocalTransport::new(manager));
    let sched = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        transport.clone(),
        Registry::builtin().get("spread").unwrap(),
    );
    tokio::spawn(sched.run(std::future::pending()));
    let mut runtimes = Vec::new();
    for i in 0..workers {
        let rt = FakeRuntime::new();
        let mut cfg = WorkerConfig::new(format!("w{i}"));
        cfg.stop_grace = stop_grace;
        let agent = WorkerAgent::new(
            cfg,
            transport.clone(),
            Arc::new(rt.clone()),
            Arc::new(StaticProbe(worker_size())),
        );
        tokio::spawn(agent.run(std::future::pending()));
        runtimes.push(rt);
    }
    // Let everyone register.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Cluster {
        transport,
        runtimes,
    }
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap()
}

impl Cluster {
    async fn wait_phase(&self, name: &str, phase: JobPhase) -> JobView {
        let id = JobId::new(name);
        for _ in 0..600 {
            let v = self.transport.get_job(&id).await.unwrap();
            if v.phase == phase {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "job {name} never reached {phase:?}: {:#?}",
            self.transport.get_job(&id).await.unwrap()
        );
    }

    fn running(&self) -> usize {
        self.runtimes.iter().map(|r| r.running()).sum()
    }
}

#[tokio::test(start_paused = true)]
async fn two_task_job_runs_and_stops() {
    let c = cluster(1).await;
    let j =
        job("name: pair\ntasks:\n  - name: a\n    image: img:1\n  - name: b\n    image: img:1\n");
    c.transport.submit_job(&j).await.unwrap();
    let v = c.wait_phase("pair", JobPhase::Running).await;
    assert_eq!(v.instances.len(), 1);
    assert!(
        v.instances[0]
            .tasks
            .values()
            .all(|t| t.state == TaskState::Running && t.container_id.is_some())
    );
    assert_eq!(c.running(), 2);
    let labels_seen: Vec<_> = c.runtimes[0]
        .containers()
        .iter()
        .map(|c| c.label(labels::JOB).unwrap().to_owned())
        .collect();
    assert_eq!(labels_seen, ["pair", "pair"]);

    c.transport.stop_job(&JobId::new("pair")).await.unwrap();
    let v = c.wait_phase("pair", JobPhase::Stopped).await;
    assert!(
        v.instances[0]
            .tasks
            .values()
            .all(|t| t.state == TaskState::Stopped)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c.runtimes[0].containers().is_empty(), "containers removed");
}

#[tokio::test(start_paused = true)]
async fn exit_codes_end_completed_or_failed() {
    let c = cluster(1).await;
    c.transport
        .submit_job(&job("name: ok\ntasks:\n  - name: t\n    image: img:1\n    command: [exit, '0']\n    restart: { policy: never }\n"))
        .await
        .unwrap();
    c.transport
        .submit_job(&job("name: bad\ntasks:\n  - name: t\n    image: img:1\n    command: [exit, '3']\n    restart: { policy: never }\n"))
        .await
        .unwrap();
    let ok = c.wait_phase("ok", JobPhase::Completed).await;
    assert_eq!(
        ok.instances[0].tasks.values().next().unwrap().exit_code,
        Some(0)
    );
    let bad = c.wait_phase("bad", JobPhase::Failed).await;
    let t = bad.instances[0].tasks.values().next().unwrap();
    assert_eq!(t.exit_code, Some(3));
    assert_eq!(t.reason.as_deref(), Some("exited with code 3"));
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_with_backoff_then_fails() {
    let c = cluster(1).await;
    c.transport
        .submit_job(&job(
            "name: crash\ntasks:\n  - name: t\n    image: img:1\n    command: [exit, '2']\n    restart: { policy: on-failure, max_attempts: 3, backoff: { initial: 1s, max: 2s } }\n",
        ))
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let v = c.wait_phase("crash", JobPhase::Failed).await;
    let t = v.instances[0].tasks.values().next().unwrap();
    assert_eq!(t.restarts, 3);
    assert_eq!(t.exit_code, Some(2));
    assert_eq!(c.runtimes[0].starts(), 4, "one start and three restarts");
    // Backoff 1s, 2s, 2s (capped), each with ±10% jitter: between 4.5 s and 5.5 s (plus checks).
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took <= Duration::from_secs(8),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn impossible_job_stays_pending_with_reason() {
    let c = cluster(2).await;
    c.transport
        .submit_job(&job(
            "name: huge\ntasks:\n  - name: t\n    image: img:1\n    resources: { memory: 64Gi }\n",
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = c.transport.get_job(&JobId::new("huge")).await.unwrap();
    let workers = c.transport.list_workers().await.unwrap();
    assert!(
        workers
            .iter()
            .all(|w| w.reserved == Resources::ZERO && w.instances == 0)
    );
    assert_eq!(v.phase, JobPhase::Pending);
    assert_eq!(
        v.instances[0].pending_reason.as_deref(),
        Some("2 workers: insufficient memory (need 64Gi, max free 1Gi)")
    );
    let summary = c.transport.list_jobs().await.unwrap();
    assert_eq!(
        summary[0].reason.as_deref(),
        Some("2 workers: insufficient memory (need 64Gi, max free 1Gi)")
    );
}

#[tokio::test(start_paused = true)]
async fn missing_image_fails_with_a_clear_reason() {
    let c = cluster(1).await;
    c.runtimes[0].remove_image("nope:1");
    c.transport
        .submit_job(&job(
            "name: noimg\ntasks:\n  - name: t\n    image: nope:1\n    restart: { policy: never }\n",
        ))
        .await
        .unwrap();
    let v = c.wait_phase("noimg", JobPhase::Failed).await;
    let reason = v.instances[0]
        .tasks
        .values()
        .next()
        .unwrap()
        .reason
        .clone()
        .unwrap();
    assert!(reason.contains("nope:1"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn resubmitting_the_same_spec_is_a_no_op() {
    let c = cluster(1).await;
    let j = job("name: same\ntasks:\n  - name: t\n    image: img:1\n");
    let first = c.transport.submit_job(&j).await.unwrap();
    c.wait_phase("same", JobPhase::Running).await;
    let second = c.transport.submit_job(&j).await.unwrap();
    assert_eq!(first.version, second.version);
    assert_eq!(
        second.outcome,
        orkestrator_core::api::SubmitOutcome::Unchanged
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.runtimes[0].starts(), 1);
}

#[tokio::test(start_paused = true)]
async fn jobs_spread_over_workers_and_free_resources_are_reused() {
    let c = cluster(2).await;
    for i in 0..2 {
        c.transport
            .submit_job(&job(&format!("name: j{i}\ntasks:\n  - name: t\n    image: img:1\n    resources: {{ memory: 768Mi }}\n")))
            .await
            .unwrap();
    }
    c.wait_phase("j0", JobPhase::Running).await;
    c.wait_phase("j1", JobPhase::Running).await;
    assert_eq!(c.runtimes[0].running(), 1);
    assert_eq!(c.runtimes[1].running(), 1);
    // A third does not fit until one stops.
    c.transport
        .submit_job(&job(
            "name: j2\ntasks:\n  - name: t\n    image: img:1\n    resources: { memory: 768Mi }\n",
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        c.transport.get_job(&JobId::new("j2")).await.unwrap().phase,
        JobPhase::Pending
    );
    c.transport.stop_job(&JobId::new("j0")).await.unwrap();
    c.wait_phase("j2", JobPhase::Running).await;
}

#[tokio::test(start_paused = true)]
async fn failing_health_checks_restart_the_task_under_its_policy() {
    let c = cluster(1).await;
    let spec = "name: hc\ntasks:\n  - name: t\n    image: img:1\n    health_check: { tcp: { port: 80 }, interval: 1s, timeout: 500ms, failures: 2 }\n    restart: { policy: on-failure, max_attempts: 1, backoff: { initial: 1s } }\n";
    c.transport.submit_job(&job(spec)).await.unwrap();
    c.wait_phase("hc", JobPhase::Running).await;
    // Healthy checks are reported.
    for _ in 0..50 {
        let v = c.transport.get_job(&JobId::new("hc")).await.unwrap();
        if v.instances[0].tasks.values().next().unwrap().healthy == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = c
        .transport
        .get_job(&JobId::new("hc"))
        .await
        .unwrap()
        .instances[0]
        .tasks
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(t.healthy, Some(true));
    // Now every check fails: after two failures the container is stopped and restarted once,
    // then (max_attempts 1) the task fails for good, with the health check as the reason.
    c.runtimes[0].set_unhealthy("hc", true);
    let v = c.wait_phase("hc", JobPhase::Failed).await;
    let t = v.instances[0].tasks.values().next().unwrap();
    assert_eq!(t.restarts, 1);
    let reason = t.reason.clone().unwrap();
    assert!(
        reason.contains("unhealthy: tcp :80 failed 2 times in a row: scripted failure"),
        "{reason}"
    );
    assert_eq!(c.runtimes[0].starts(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_stop_does_not_hold_up_other_starts() {
    let c = cluster_with(1, Duration::from_secs(30)).await;
    let transport = c.transport.clone();
    transport
        .submit_job(&job(
            "name: stubborn\ntasks: [{name: t, image: img:1, command: [ignore-term]}]",
        ))
        .await
        .unwrap();
    c.wait_phase("stubborn", JobPhase::Running).await;
    transport.stop_job(&JobId::new("stubborn")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = tokio::time::Instant::now();
    transport
        .submit_job(&job("name: next\ntasks: [{name: t, image: img:1}]\n"))
        .await
        .unwrap();
    c.wait_phase("next", JobPhase::Running).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "started after {:?} behind a 30 s stop",
        t0.elapsed()
    );
    // The stubborn one is killed after its grace and then reported stopped.
    let v = c.wait_phase("stubborn", JobPhase::Stopped).await;
    assert!(
        v.instances[0]
            .tasks
            .values()
            .all(|t| t.state == TaskState::Stopped)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_task_that_exits_cleanly_still_counts_as_failed() {
    let c = cluster(1).await;
    // `clean-term` exits 0 on SIGTERM, like a service that shuts down cleanly: stopped for failing
    // its check, it must still be restarted under on-failure, and the reason must say why.
    let spec = "name: clean\ntasks:\n  - name: t\n    image: img:1\n    command: [clean-term]\n    health_check: { tcp: { port: 80 }, interval: 1s, timeout: 500ms, failures: 1 }\n    restart: { policy: on-failure, max_attempts: 1, backoff: { initial: 1s } }\n";
    c.transport.submit_job(&job(spec)).await.unwrap();
    c.wait_phase("clean", JobPhase::Running).await;
    c.runtimes[0].set_unhealthy("clean", true);
    let v = c.wait_phase("clean", JobPhase::Failed).await;
    let t = v.instances[0].tasks.values().next().unwrap();
    assert_eq!(t.restarts, 1, "{t:?}");
    assert_eq!(t.exit_code, Some(0));
    assert!(
        t.reason
            .as_deref()
            .unwrap()
            .contains("unhealthy: tcp :80 failed 1 times"),
        "{t:?}"
    );
    assert_eq!(c.runtimes[0].starts(), 2);
}
