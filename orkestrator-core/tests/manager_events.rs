//! The event stream as the manager serves it: an event after each kind of state change, stamped
//! with its commit index; a stream cut off and resumed from its last position misses nothing
//! and sees nothing twice; a start older than the window gets a reset; a subscriber that falls
//! behind the bus catches up from the window; metrics reports land in the window, never in the
//! store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::*;
use orkestrator_core::events::{
    Event, EventFilter, EventKind, Position, StreamItem, StreamStart, Topic,
};
use orkestrator_core::ids::{InstanceId, JobId, SchedulerId, TaskName, WorkerId};
use orkestrator_core::manager::{EventSubscription, Manager, ManagerConfig};
use orkestrator_core::metrics::{MetricsReport, NodeSample, TaskMetrics, TaskSample};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::units::{ByteSize, Cpu};

fn job(name: &str, count: u32, cmd: &str) -> Job {
    parse_job(
        &format!(
            "name: {name}\ncount: {count}\ntasks: [{{name: t, image: x:1, command: [{cmd}], resources: {{memory: 64Mi}}}}]"
        ),
        Format::Yaml,
    )
    .unwrap()
}

async fn manager(cfg: ManagerConfig) -> (Manager, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (Manager::new(cfg, store.clone()).await.unwrap(), store)
}

async fn add_worker(m: &Manager, id: &str) {
    let total = Resources {
        cpu: Cpu::from_cores(8),
        memory: ByteSize::gib(8),
        disk: ByteSize::gib(100),
    };
    m.workers()
        .register(RegisterWorker {
            id: WorkerId::new(id),
            address: None,
            labels: BTreeMap::new(),
            host_volumes: Default::default(),
            resources: WorkerResources {
                total,
                allocated: Resources::ZERO,
                available: total,
            },
            version: String::new(),
        })
        .await
        .unwrap();
}

/// Places every pending instance of the manager on `worker`.
async fn place_all(m: &Manager, scheduler: &SchedulerId, worker: &str) -> Vec<InstanceId> {
    let work = m
        .schedulers()
        .work(scheduler, Duration::from_millis(10))
        .await
        .unwrap();
    let ids: Vec<InstanceId> = work.pending.iter().map(|p| p.instance.clone()).collect();
    let decisions = ids
        .iter()
        .map(|i| Decision {
            instance: i.clone(),
            outcome: DecisionOutcome::Place {
                worker: WorkerId::new(worker),
            },
        })
        .collect();
    for r in m.schedulers().decide(scheduler, decisions).await.unwrap() {
        assert!(r.accepted, "{r:?}");
    }
    ids
}

fn update(i: &InstanceId, state: TaskState, exit: Option<i64>) -> TaskUpdate {
    TaskUpdate {
        instance: i.clone(),
        task: TaskName::new("t"),
        state,
        exit_code: exit,
        reason: None,
        container_id: Some(format!("c-{i}")),
        restarts: 0,
        next_start_at: None,
        healthy: None,
    }
}

/// The next item, within a deadline.
async fn next(sub: &mut EventSubscription) -> StreamItem {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("no event within 10 s")
        .expect("the stream ended")
}

async fn next_event(sub: &mut EventSubscription) -> Event {
    match next(sub).await {
        StreamItem::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Reads events until one matches, returning it; fails after 10 s.
async fn until(sub: &mut EventSubscription, what: &str, f: impl Fn(&EventKind) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = tokio::time::timeout_at(deadline, next_event(sub))
            .await
            .unwrap_or_else(|_| panic!("no {what} event within 10 s"));
        if f(&e.kind) {
            return e;
        }
    }
}

#[tokio::test]
async fn every_kind_of_state_change_is_an_event_stamped_with_its_commit_index() {
    let cfg = ManagerConfig {
        heartbeat_grace: Duration::from_millis(300),
        gc_after: Duration::from_secs(3600),
        ..ManagerConfig::default()
    };
    let (m, _store) = manager(cfg).await;
    let mut all = m.events().stream(StreamStart::Now, EventFilter::default());

    add_worker(&m, "w1").await;
    let e = until(&mut all, "worker_registered", |k| {
        matches!(k, EventKind::WorkerRegistered { .. })
    })
    .await;
    assert_eq!(e.kind.topic(), Topic::Worker);
    let sched = SchedulerId::new("s1");
    m.schedulers()
        .register(RegisterScheduler {
            id: sched.clone(),
            algorithm: "test".into(),
        })
        .await
        .unwrap();
    until(&mut all, "scheduler_registered", |k| {
        matches!(k, EventKind::SchedulerRegistered { .. })
    })
    .await;

    let r = m.jobs().submit(job("web", 1, "sleep, '1'")).await.unwrap();
    let e = until(&mut all, "job_submitted", |k| {
        matches!(k, EventKind::JobSubmitted { .. })
    })
    .await;
    assert_eq!(
        e.index, r.index,
        "the submit answer carries its commit index"
    );

    let ids = place_all(&m, &sched, "w1").await;
    let e = until(&mut all, "instance_placed", |k| {
        matches!(k, EventKind::InstancePlaced { .. })
    })
    .await;
    assert!(
        matches!(&e.kind, EventKind::InstancePlaced { job, worker, .. } if job.as_str() == "web" && worker.as_str() == "w1")
    );

    let w1 = WorkerId::new("w1");
    m.workers()
        .report(&w1, vec![update(&ids[0], TaskState::Running, None)])
        .await
        .unwrap();
    until(&mut all, "task running", |k| {
        matches!(
            k,
            EventKind::TaskStateChanged {
                to: TaskState::Running,
                ..
            }
        )
    })
    .await;
    m.workers()
        .report(&w1, vec![update(&ids[0], TaskState::Failed, Some(3))])
        .await
        .unwrap();
    let e = until(&mut all, "task failed", |k| {
        matches!(
            k,
            EventKind::TaskStateChanged {
                to: TaskState::Failed,
                ..
            }
        )
    })
    .await;
    match &e.kind {
        EventKind::TaskStateChanged { reason, job, .. } => {
            assert_eq!(job.as_str(), "web");
            assert!(
                reason.as_deref().is_some_and(|r| r.contains('3')),
                "the reason names the exit: {reason:?}"
            );
        }
        _ => unreachable!(),
    }

    m.jobs().submit(job("web", 1, "sleep, '2'")).await.unwrap();
    until(&mut all, "job_updated", |k| {
        matches!(k, EventKind::JobUpdated { version: 2, .. })
    })
    .await;
    let v = m.jobs().stop(&JobId::new("web")).await.unwrap();
    let e = until(&mut all, "job_stopped", |k| {
        matches!(k, EventKind::JobStopped { .. })
    })
    .await;
    assert_eq!(e.index, v.index, "the stop answer carries its commit index");

    // The worker stops heartbeating: it goes down (a soft event under the last index).
    let e = until(&mut all, "worker down", |k| {
        matches!(
            k,
            EventKind::WorkerLiveness {
                status: Liveness::Down,
                ..
            }
        )
    });
    let checks = {
        let m = m.clone();
        tokio::spawn(async move {
            loop {
                m.cluster().check_liveness().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let e = e.await;
    assert!(e.index <= m.durable_index());
    until(&mut all, "scheduler down", |k| {
        matches!(
            k,
            EventKind::SchedulerLiveness {
                status: Liveness::Down,
                ..
            }
        )
    })
    .await;
    checks.abort();

    // An unplaceable job: the scheduler says so.
    m.jobs().submit(job("big", 1, "x")).await.unwrap();
    m.schedulers()
        .register(RegisterScheduler {
            id: sched.clone(),
            algorithm: "test".into(),
        })
        .await
        .unwrap();
    let work = m
        .schedulers()
        .work(&sched, Duration::from_millis(10))
        .await
        .unwrap();
    let pending = work
        .pending
        .iter()
        .find(|p| p.job.name.as_str() == "big")
        .expect("big is pending")
        .instance
        .clone();
    m.schedulers()
        .decide(
            &sched,
            vec![Decision {
                instance: pending,
                outcome: DecisionOutcome::Unschedulable {
                    reason: "no worker has 64Mi free".into(),
                },
            }],
        )
        .await
        .unwrap();
    until(
        &mut all,
        "instance_unschedulable",
        |k| matches!(k, EventKind::InstanceUnschedulable { reason, .. } if reason.contains("64Mi")),
    )
    .await;

    // Garbage collection of the stopped job (nothing left running on its worker).
    m.jobs().stop(&JobId::new("big")).await.unwrap();
    m.workers()
        .report(&w1, vec![update(&ids[0], TaskState::Stopped, None)])
        .await
        .ok();
    let gc = m.cluster().gc(Duration::ZERO).await.unwrap();
    assert!(gc.jobs >= 1, "{gc:?}");
    until(&mut all, "job_collected", |k| {
        matches!(k, EventKind::JobCollected { .. })
    })
    .await;
    until(&mut all, "collected", |k| {
        matches!(k, EventKind::Collected { .. })
    })
    .await;
}

/// Makes `n` durable changes (job submissions) and returns their indexes.
async fn churn(m: &Manager, prefix: &str, n: usize) {
    for i in 0..n {
        m.jobs()
            .submit(job(&format!("{prefix}{i}"), 1, "x"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_stream_cut_off_and_resumed_from_its_last_position_misses_nothing_and_repeats_nothing() {
    let (m, _s) = manager(ManagerConfig::default()).await;
    let start = m.durable_index();
    let mut whole = m
        .events()
        .stream(StreamStart::Index(start), EventFilter::default());
    let mut first = m
        .events()
        .stream(StreamStart::Index(start), EventFilter::default());
    churn(&m, "a", 30).await;
    // Read part of the stream, then "disconnect".
    let mut seen: Vec<Position> = Vec::new();
    for _ in 0..17 {
        seen.push(next_event(&mut first).await.position());
    }
    let last = *seen.last().unwrap();
    drop(first);
    churn(&m, "b", 30).await;
    let mut resumed = m
        .events()
        .stream(StreamStart::After(last), EventFilter::default());
    let mut expected = Vec::new();
    let head = m.durable_index();
    loop {
        let e = next_event(&mut whole).await;
        expected.push(e.position());
        if e.index >= head {
            break;
        }
    }
    while seen.len() < expected.len() {
        seen.push(next_event(&mut resumed).await.position());
    }
    assert_eq!(
        seen, expected,
        "the resumed stream differs from an uncut one"
    );
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "an event was seen twice");
}

#[tokio::test]
async fn a_start_older_than_the_window_gets_a_reset_then_the_events_after_it() {
    let cfg = ManagerConfig {
        event_window: 10,
        ..ManagerConfig::default()
    };
    let (m, _s) = manager(cfg).await;
    let start = m.durable_index();
    churn(&m, "a", 20).await;
    let mut old = m
        .events()
        .stream(StreamStart::Index(start), EventFilter::default());
    let reset = match next(&mut old).await {
        StreamItem::Reset(r) => r,
        other => panic!("expected a reset, got {other:?}"),
    };
    assert!(reset.oldest_index > start, "{reset:?}");
    assert!(reset.message.contains("re-list"), "{}", reset.message);
    m.jobs().submit(job("after", 1, "x")).await.unwrap();
    let e = next_event(&mut old).await;
    assert!(e.position() > reset.position());
    assert!(matches!(&e.kind, EventKind::JobSubmitted { job, .. } if job.as_str() == "after"));

    // A start inside the window gets no reset.
    let recent = m.durable_index() - 2;
    let mut fresh = m
        .events()
        .stream(StreamStart::Index(recent), EventFilter::default());
    assert!(matches!(next(&mut fresh).await, StreamItem::Event(e) if e.index >= recent));
}

#[tokio::test]
async fn filters_keep_one_jobs_events_and_a_lagging_subscriber_catches_up_from_the_window() {
    let (m, _s) = manager(ManagerConfig::default()).await;
    let start = m.durable_index();
    let mut only_b7 = m.events().stream(
        StreamStart::Index(start),
        EventFilter {
            topics: vec![Topic::Job],
            key: Some("b7".into()),
        },
    );
    let mut slow = m
        .events()
        .stream(StreamStart::Index(start), EventFilter::default());
    // More events than the bus holds (4096) while `slow` reads none.
    for chunk in 0..5 {
        let jobs: Vec<_> = (0..1000)
            .map(|i| {
                let m = m.clone();
                tokio::spawn(async move {
                    m.jobs()
                        .submit(job(&format!("b{}", chunk * 1000 + i), 1, "x"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
    }
    let e = next_event(&mut only_b7).await;
    assert!(matches!(&e.kind, EventKind::JobSubmitted { job, .. } if job.as_str() == "b7"));
    let mut submitted = std::collections::BTreeSet::new();
    let mut last = Position::default();
    while submitted.len() < 5000 {
        let e = next_event(&mut slow).await;
        assert!(
            e.position() > last,
            "out of order or repeated: {last} then {}",
            e.id()
        );
        last = e.position();
        if let EventKind::JobSubmitted { job, .. } = e.kind {
            submitted.insert(job);
        }
    }
}

#[tokio::test]
async fn metrics_reports_land_in_the_window_and_never_in_the_store() {
    let (m, store) = manager(ManagerConfig::default()).await;
    add_worker(&m, "w1").await;
    let sched = SchedulerId::new("s1");
    m.schedulers()
        .register(RegisterScheduler {
            id: sched.clone(),
            algorithm: "test".into(),
        })
        .await
        .unwrap();
    m.jobs().submit(job("web", 2, "x")).await.unwrap();
    let ids = place_all(&m, &sched, "w1").await;
    let attempts = store.commit_attempts();
    let w1 = WorkerId::new("w1");
    for round in 0..3u64 {
        let report = MetricsReport {
            node: NodeSample {
                at: 1000 + round,
                cpu_cores_used: 1.5,
                cpu_cores_total: 8.0,
                memory_used_bytes: 1 << 30,
                memory_total_bytes: 8 << 30,
                ..NodeSample::default()
            },
            tasks: ids
                .iter()
                .chain([&InstanceId::new("other-0-99")])
                .map(|i| TaskMetrics {
                    instance: i.clone(),
                    task: TaskName::new("t"),
                    sample: TaskSample {
                        at: 1000 + round,
                        cpu_cores: 0.25 * (round + 1) as f64,
                        memory_working_set_bytes: 10 << 20,
                        ..TaskSample::default()
                    },
                })
                .collect(),
        };
        let a = m.metrics().report(&w1, report).await.unwrap();
        assert_eq!((a.accepted, a.ignored), (2, 1));
    }
    assert_eq!(
        store.commit_attempts(),
        attempts,
        "metrics went through the store"
    );
    let jm = m.metrics().job(&JobId::new("web"), None).await.unwrap();
    assert_eq!(jm.tasks.len(), 2);
    assert_eq!(jm.tasks[0].samples.len(), 3);
    assert!((jm.tasks[0].last().unwrap().cpu_cores - 0.75).abs() < 1e-6);
    let view = m.jobs().get(&JobId::new("web")).await.unwrap();
    let usage = view.instances[0].usage.get(&TaskName::new("t")).unwrap();
    assert_eq!(usage.memory_bytes, 10 << 20);
    let wm = m.metrics().worker(&w1, Some(2)).await.unwrap();
    assert_eq!(wm.node.len(), 2);
    let workers = m.workers().list(&ListQuery::default()).await.unwrap();
    assert_eq!(workers.items[0].usage.unwrap().memory_bytes, 1 << 30);
    let e = m
        .metrics()
        .report(&WorkerId::new("nobody"), MetricsReport::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(
        m.metrics()
            .job(&JobId::new("nope"), None)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
}
