//! The manager's side of scheduling, driven directly: leases, the optimistic commit, re-evaluation
//! only when capacity changes, and failover from a dead scheduler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::*;
use orkestrator_core::ids::{SchedulerId, WorkerId};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::units::{ByteSize, Cpu};

async fn manager() -> Manager {
    Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap()
}

fn size(mem_mib: u64) -> WorkerResources {
    let total = Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::mib(mem_mib),
        disk: ByteSize::gib(10),
    };
    WorkerResources {
        total,
        allocated: Resources::ZERO,
        available: total,
    }
}

async fn add_worker(m: &Manager, id: &str, mem_mib: u64, labels: &[(&str, &str)]) {
    m.workers()
        .register(RegisterWorker {
            id: WorkerId::new(id),
            address: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            host_volumes: Default::default(),
            resources: size(mem_mib),
            version: String::new(),
        })
        .await
        .unwrap();
}

async fn add_scheduler(m: &Manager, id: &str) -> SchedulerId {
    let id = SchedulerId::new(id);
    m.schedulers()
        .register(RegisterScheduler {
            id: id.clone(),
            algorithm: "test".into(),
        })
        .await
        .unwrap();
    id
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap()
}

fn place(instance: &orkestrator_core::ids::InstanceId, worker: &str) -> Decision {
    Decision {
        instance: instance.clone(),
        outcome: DecisionOutcome::Place {
            worker: WorkerId::new(worker),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn two_schedulers_racing_for_the_last_slot_exactly_one_wins() {
    let m = manager().await;
    add_worker(&m, "w", 1024, &[]).await;
    let (a, b) = (add_scheduler(&m, "a").await, add_scheduler(&m, "b").await);
    // `a` leases job one, then `b` leases job two: leases never hand an instance out twice.
    m.jobs()
        .submit(job(
            "name: one\ntasks: [{name: t, image: x:1, resources: {memory: 768Mi}}]",
        ))
        .await
        .unwrap();
    let wa = m.schedulers().work(&a, Duration::ZERO).await.unwrap();
    m.jobs()
        .submit(job(
            "name: two\ntasks: [{name: t, image: x:1, resources: {memory: 768Mi}}]",
        ))
        .await
        .unwrap();
    let wb = m.schedulers().work(&b, Duration::ZERO).await.unwrap();
    assert_eq!((wa.pending.len(), wb.pending.len()), (1, 1));
    assert_ne!(wa.pending[0].instance, wb.pending[0].instance);
    // Both saw the worker empty and both pick it; only one instance fits.
    let rb = m
        .schedulers()
        .decide(&b, vec![place(&wb.pending[0].instance, "w")])
        .await
        .unwrap();
    let ra = m
        .schedulers()
        .decide(&a, vec![place(&wa.pending[0].instance, "w")])
        .await
        .unwrap();
    assert!(rb[0].accepted);
    assert!(!ra[0].accepted);
    assert!(
        ra[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("no longer fits on w: insufficient memory"),
        "{ra:?}"
    );
    // The loser's instance is pending again.
    let again = m.schedulers().work(&a, Duration::ZERO).await.unwrap();
    assert_eq!(
        again.pending.len(),
        1,
        "the refused instance is pending again"
    );
    // A decision from a scheduler that does not hold the lease is refused whole (403), and
    // changes nothing.
    let stolen = m
        .schedulers()
        .decide(&b, vec![place(&again.pending[0].instance, "w")])
        .await
        .unwrap_err();
    assert_eq!(stolen.kind, ErrorKind::Forbidden, "{stolen:?}");
    assert_eq!(stolen.code, "not_your_lease");
    let placed: Vec<_> = m
        .jobs()
        .list(&ListQuery::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.phase != JobPhase::Pending)
        .collect();
    assert_eq!(placed.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_schedulers_work_goes_to_another() {
    let m = manager().await;
    add_worker(&m, "w", 1024, &[]).await;
    let (a, b) = (add_scheduler(&m, "a").await, add_scheduler(&m, "b").await);
    m.jobs()
        .submit(job("name: j\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    assert_eq!(
        m.schedulers()
            .work(&a, Duration::ZERO)
            .await
            .unwrap()
            .pending
            .len(),
        1
    );
    // `a` dies (no more heartbeats); `b` keeps heartbeating.
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(1)).await;
        m.schedulers().heartbeat(&b).await.unwrap();
        // keep the worker alive too
        m.workers()
            .heartbeat(
                &WorkerId::new("w"),
                WorkerHeartbeat {
                    resources: size(1024),
                    healthy: true,
                    message: None,
                },
            )
            .await
            .unwrap();
    }
    let wb = m.schedulers().work(&b, Duration::ZERO).await.unwrap();
    assert_eq!(wb.pending.len(), 1, "b takes over a's lease once a is down");
    let h = m.cluster().health().await.unwrap();
    let status: BTreeMap<_, _> = h
        .schedulers
        .iter()
        .map(|s| (s.id.to_string(), s.status))
        .collect();
    assert_eq!(status["a"], Liveness::Down);
    assert_eq!(status["b"], Liveness::Ready);
}

#[tokio::test(start_paused = true)]
async fn unschedulable_instances_wait_for_capacity_not_for_a_timer() {
    let m = manager().await;
    add_worker(&m, "small", 256, &[]).await;
    let s = add_scheduler(&m, "s").await;
    m.jobs()
        .submit(job(
            "name: big\ntasks: [{name: t, image: x:1, resources: {memory: 1Gi}}]",
        ))
        .await
        .unwrap();
    let w = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    let id = w.pending[0].instance.clone();
    m.schedulers()
        .decide(
            &s,
            vec![Decision {
                instance: id.clone(),
                outcome: DecisionOutcome::Unschedulable {
                    reason: "too big".into(),
                },
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        m.jobs().list(&ListQuery::default()).await.unwrap().items[0]
            .reason
            .as_deref(),
        Some("too big")
    );
    // Nothing new: a long-poll waits the whole time and returns empty.
    let w = m
        .schedulers()
        .work(&s, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(w.pending.is_empty());
    // A worker joins: the instance comes back at once.
    add_worker(&m, "large", 4096, &[]).await;
    let w = m
        .schedulers()
        .work(&s, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(w.pending.len(), 1);
    assert_eq!(w.pending[0].instance, id);
}

#[tokio::test(start_paused = true)]
async fn count_creates_instances_and_the_scheduler_spreads_them() {
    let m = manager().await;
    for w in ["w1", "w2", "w3"] {
        add_worker(&m, w, 1024, &[]).await;
    }
    let s = add_scheduler(&m, "s").await;
    m.jobs()
        .submit(job(
            "name: r\ncount: 3\ntasks: [{name: t, image: x:1, resources: {memory: 64Mi}}]",
        ))
        .await
        .unwrap();
    let w = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    assert_eq!(w.pending.len(), 3);
    for name in ["spread", "binpack", "epvm", "round-robin"] {
        let alg = orkestrator_core::scheduler::Registry::builtin()
            .get(name)
            .unwrap();
        let d = orkestrator_core::scheduler::decide(alg.as_ref(), &w.pending, w.workers.clone());
        let mut used: Vec<_> = d
            .iter()
            .map(|d| match &d.outcome {
                DecisionOutcome::Place { worker } => worker.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        used.sort();
        assert_eq!(
            used,
            ["w1", "w2", "w3"],
            "{name} spreads the instances of one job"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn constraints_pick_labelled_workers_and_explain_the_rest() {
    let m = manager().await;
    add_worker(&m, "wa", 1024, &[("zone", "a")]).await;
    add_worker(&m, "wb", 1024, &[("zone", "b")]).await;
    add_worker(&m, "wc", 128, &[("zone", "a")]).await;
    let s = add_scheduler(&m, "s").await;
    m.jobs().submit(job(
        "name: z\nconstraints: [{label: zone, equals: a}]\ntasks: [{name: t, image: x:1, resources: {memory: 256Mi}}]",
    ))
    .await
    .unwrap();
    let w = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    let alg = orkestrator_core::scheduler::Registry::builtin()
        .get("spread")
        .unwrap();
    let d = orkestrator_core::scheduler::decide(alg.as_ref(), &w.pending, w.workers.clone());
    assert_eq!(
        d[0].outcome,
        DecisionOutcome::Place {
            worker: WorkerId::new("wa")
        }
    );
    // Only zone=c would do: nobody.
    let j = job("name: c\nconstraints: [{label: zone, equals: c}]\ntasks: [{name: t, image: x:1}]");
    let req = orkestrator_core::scheduler::Request::new(&j, 0);
    match alg.place(&req, &w.workers) {
        orkestrator_core::scheduler::Placement::Unschedulable(why) => {
            assert_eq!(why, "3 workers: constraint zone=c")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_scheduler_wakes_when_the_lease_holder_dies() {
    let m = manager().await;
    tokio::spawn(m.clone().cluster().run_liveness_checks());
    add_worker(&m, "w", 1024, &[]).await;
    let (a, b) = (add_scheduler(&m, "a").await, add_scheduler(&m, "b").await);
    m.jobs()
        .submit(job("name: j\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    assert_eq!(
        m.schedulers()
            .work(&a, Duration::ZERO)
            .await
            .unwrap()
            .pending
            .len(),
        1
    );
    // `a` goes silent; `b` (and the worker) keep heartbeating in the background.
    let (m2, b2) = (m.clone(), b.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = m2.schedulers().heartbeat(&b2).await;
            let hb = WorkerHeartbeat {
                resources: size(1024),
                healthy: true,
                message: None,
            };
            let _ = m2.workers().heartbeat(&WorkerId::new("w"), hb).await;
        }
    });
    let t0 = tokio::time::Instant::now();
    let w = m
        .schedulers()
        .work(&b, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(w.pending.len(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "woke after {:?}, not at the end of the poll",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_judges_no_worker_down_within_its_failover_grace() {
    // The state of a cluster with one worker, as a new leader finds it in the store.
    let store = Arc::new(MemoryStore::new());
    let old = Manager::new(ManagerConfig::default(), store.clone())
        .await
        .unwrap();
    add_worker(&old, "w", 1024, &[]).await;
    drop(old);
    let cfg = ManagerConfig {
        failover_grace: Duration::from_secs(10),
        ..ManagerConfig::default()
    };
    let m = Manager::new(cfg, store).await.unwrap();
    let status = |h: &HealthReport| h.workers.get(&Liveness::Down).copied().unwrap_or(0);
    // Silent for twice the heartbeat grace: still not judged, it may be finding the leader.
    tokio::time::advance(Duration::from_secs(6)).await;
    m.cluster().check_liveness().await;
    assert_eq!(
        status(&m.cluster().health().await.unwrap()),
        0,
        "judged Down within the failover grace"
    );
    // Past the failover grace, silence is death again.
    tokio::time::advance(Duration::from_secs(5)).await;
    m.cluster().check_liveness().await;
    assert_eq!(
        status(&m.cluster().health().await.unwrap()),
        1,
        "a silent worker is Down after it"
    );
}

/// Issue 18, item 10: the scheduler's view of a worker carries what its host was measured to
/// use, from the metrics pipeline, besides what is reserved there; none before it reports.
#[tokio::test]
async fn a_schedulers_worker_view_carries_the_measured_use_from_the_metrics_pipeline() {
    use orkestrator_core::clock::now_millis;
    use orkestrator_core::metrics::{MetricsReport, NodeSample};

    let m = manager().await;
    add_worker(&m, "measured", 1024, &[]).await;
    add_worker(&m, "silent", 1024, &[]).await;
    let at = now_millis();
    m.metrics()
        .report(
            &WorkerId::new("measured"),
            MetricsReport {
                node: NodeSample {
                    at,
                    cpu_cores_used: 1.25,
                    cpu_cores_total: 4.0,
                    memory_used_bytes: 300 << 20,
                    memory_total_bytes: 1 << 30,
                    ..NodeSample::default()
                },
                tasks: vec![],
            },
        )
        .await
        .unwrap();
    let s = add_scheduler(&m, "s").await;
    m.jobs()
        .submit(job("name: j\ntasks: [{name: t, image: x:1}]"))
        .await
        .unwrap();
    let work = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    let by_id: BTreeMap<_, _> = work
        .workers
        .iter()
        .map(|w| (w.id.as_str().to_owned(), w.measured))
        .collect();
    assert_eq!(
        by_id.get("measured").copied().flatten(),
        Some(MeasuredUse {
            cpu: Cpu::from_millis(1250),
            memory: ByteSize::mib(300),
            at,
        }),
        "{work:#?}"
    );
    assert_eq!(by_id.get("silent").copied(), Some(None), "{work:#?}");
}
