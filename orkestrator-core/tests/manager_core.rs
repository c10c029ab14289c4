//! The manager's core: group commit, nothing visible before it is durable, a failed commit,
//! racing changes in one batch, the index across restarts, delta watches, paged lists, the health
//! summary and garbage collection under churn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::*;
use orkestrator_core::clock::now_millis;
use orkestrator_core::events::EventKind;
use orkestrator_core::ids::{InstanceId, JobId, SchedulerId, WorkerId};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::units::{ByteSize, Cpu};
use tokio::task::JoinHandle;

async fn manager_on(store: &Arc<MemoryStore>) -> Manager {
    Manager::new(ManagerConfig::default(), store.clone())
        .await
        .unwrap()
}

fn job(name: &str, count: u32, mem_mib: u64) -> Job {
    parse_job(
        &format!(
            "name: {name}\ncount: {count}\ntasks: [{{name: t, image: x:1, resources: {{memory: {mem_mib}Mi}}}}]"
        ),
        Format::Yaml,
    )
    .unwrap()
}

fn size(mem_mib: u64) -> WorkerResources {
    let total = Resources {
        cpu: Cpu::from_cores(64),
        memory: ByteSize::mib(mem_mib),
        disk: ByteSize::gib(100),
    };
    WorkerResources {
        total,
        allocated: Resources::ZERO,
        available: total,
    }
}

async fn add_worker(m: &Manager, id: &str, mem_mib: u64) {
    m.workers()
        .register(RegisterWorker {
            id: WorkerId::new(id),
            address: None,
            labels: BTreeMap::new(),
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

fn place(instance: &InstanceId, worker: &str) -> Decision {
    Decision {
        instance: instance.clone(),
        outcome: DecisionOutcome::Place {
            worker: WorkerId::new(worker),
        },
    }
}

/// Lets spawned tasks run until none can make progress.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn spawn_submit(m: &Manager, j: Job) -> JoinHandle<Result<SubmitResponse, ApiError>> {
    let m = m.clone();
    tokio::spawn(async move { m.jobs().submit(j).await })
}

#[tokio::test]
async fn nothing_is_visible_or_acknowledged_before_it_is_durable() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let mut events = m.events().subscribe();
    let held = store.hold_commits().await;
    let submit = spawn_submit(&m, job("a", 1, 64));
    settle().await;
    let read = {
        let m = m.clone();
        tokio::spawn(async move { m.jobs().get(&JobId::new("a")).await })
    };
    let again = spawn_submit(&m, job("a", 1, 64));
    settle().await;
    assert!(!submit.is_finished(), "acknowledged before its commit");
    assert!(!read.is_finished(), "a read showed an uncommitted job");
    assert!(
        !again.is_finished(),
        "`unchanged` answered before what it compared against was durable"
    );
    assert!(
        events.try_recv().is_err(),
        "an event of an uncommitted change"
    );
    assert!(store.snapshot().jobs.is_empty());
    drop(held);
    assert_eq!(
        submit.await.unwrap().unwrap().outcome,
        SubmitOutcome::Created
    );
    assert_eq!(read.await.unwrap().unwrap().name.as_str(), "a");
    assert_eq!(
        again.await.unwrap().unwrap().outcome,
        SubmitOutcome::Unchanged
    );
    let e = events.recv().await.unwrap();
    assert!(matches!(e.kind, EventKind::JobSubmitted { .. }), "{e:?}");
    assert_eq!(store.snapshot().jobs.len(), 1);
}

#[tokio::test]
async fn concurrent_changes_share_one_commit() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let held = store.hold_commits().await;
    // The first commit is in flight (held); the next 20 gather behind it.
    let first = spawn_submit(&m, job("first", 1, 64));
    settle().await;
    let rest: Vec<_> = (0..20)
        .map(|i| spawn_submit(&m, job(&format!("j{i}"), 1, 64)))
        .collect();
    settle().await;
    let before = store.commit_attempts();
    drop(held);
    first.await.unwrap().unwrap();
    for r in rest {
        r.await.unwrap().unwrap();
    }
    let commits = store.commit_attempts() - before;
    assert!(
        commits <= 2,
        "21 submissions took {commits} commits; expected the 20 to share one"
    );
    let h = m.cluster().health().await.unwrap();
    assert!(h.manager.store.batch_max >= 20, "{:?}", h.manager.store);
}

#[tokio::test]
async fn a_failed_commit_fails_its_batch_and_those_on_top_and_memory_follows_the_store() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    m.jobs().submit(job("kept", 1, 64)).await.unwrap();
    let held = store.hold_commits().await;
    let doomed = spawn_submit(&m, job("doomed", 2, 64));
    settle().await;
    // Prepared on top of the doomed batch: they must fail with it.
    let on_top: Vec<_> = (0..5)
        .map(|i| spawn_submit(&m, job(&format!("top{i}"), 1, 64)))
        .collect();
    let stop = {
        let m = m.clone();
        tokio::spawn(async move { m.jobs().stop(&JobId::new("kept")).await })
    };
    settle().await;
    store.fail_next_commits(1);
    drop(held);
    let e = doomed.await.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("nothing of this request was kept"),
        "{e}"
    );
    for t in on_top {
        let e = t.await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    }
    assert_eq!(
        stop.await.unwrap().unwrap_err().kind,
        ErrorKind::Unavailable
    );
    // Memory is what the store holds: `kept` running, nothing of the failed batches.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let jobs = loop {
        match m.jobs().list(&ListQuery::default()).await {
            Ok(p) => break p.items,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let names: Vec<_> = jobs.iter().map(|j| j.name.to_string()).collect();
    assert_eq!(names, ["kept"]);
    let snap = store.snapshot();
    assert_eq!(
        snap.jobs.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        ["kept"]
    );
    assert!(!snap.jobs[&JobId::new("kept")].stopped);
    assert_eq!(
        m.jobs().get(&JobId::new("kept")).await.unwrap().phase,
        JobPhase::Pending
    );
    // The next batch succeeds, and ids handed out in the failed batch are not a problem.
    let r = m.jobs().submit(job("doomed", 2, 64)).await.unwrap();
    assert_eq!(r.outcome, SubmitOutcome::Created);
    assert_eq!(store.snapshot().jobs.len(), 2);
    assert_eq!(
        m.jobs()
            .get(&JobId::new("doomed"))
            .await
            .unwrap()
            .instances
            .len(),
        2
    );
}

#[tokio::test]
async fn racing_submissions_stops_and_decisions_in_one_batch_never_overcommit_or_duplicate() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    add_worker(&m, "w", 1024).await;
    let (a, b) = (add_scheduler(&m, "a").await, add_scheduler(&m, "b").await);
    m.jobs().submit(job("one", 1, 768)).await.unwrap();
    let wa = m.schedulers().work(&a, Duration::ZERO).await.unwrap();
    m.jobs().submit(job("two", 1, 768)).await.unwrap();
    let wb = m.schedulers().work(&b, Duration::ZERO).await.unwrap();
    let (ia, ib) = (
        wa.pending[0].instance.clone(),
        wb.pending[0].instance.clone(),
    );
    let held = store.hold_commits().await;
    let blocker = spawn_submit(&m, job("blocker", 1, 8));
    settle().await;
    // All of these are prepared while the blocker's commit is held: one batch.
    let da = {
        let m = m.clone();
        let a = a.clone();
        tokio::spawn(async move { m.schedulers().decide(&a, vec![place(&ia, "w")]).await })
    };
    let db = {
        let m = m.clone();
        tokio::spawn(async move { m.schedulers().decide(&b, vec![place(&ib, "w")]).await })
    };
    let update = spawn_submit(&m, job("one", 1, 700));
    let stop = {
        let m = m.clone();
        tokio::spawn(async move { m.jobs().stop(&JobId::new("two")).await })
    };
    let resubmit = spawn_submit(&m, job("two", 1, 768));
    settle().await;
    drop(held);
    blocker.await.unwrap().unwrap();
    let (ra, rb) = (da.await.unwrap().unwrap(), db.await.unwrap().unwrap());
    update.await.unwrap().unwrap();
    stop.await.unwrap().unwrap();
    resubmit.await.unwrap().unwrap();
    let accepted = [ra[0].accepted, rb[0].accepted];
    assert_eq!(
        accepted.iter().filter(|x| **x).count(),
        1,
        "exactly one of two 768Mi placements fits a 1Gi worker: {ra:?} {rb:?}"
    );
    let page = m.workers().list(&ListQuery::default()).await.unwrap();
    let w = &page.items[0];
    assert!(w.resources.total.fits(&w.reserved), "over-committed: {w:?}");
    for name in ["one", "two", "blocker"] {
        let v = m.jobs().get(&JobId::new(name)).await.unwrap();
        let mut live: BTreeMap<u32, u32> = BTreeMap::new();
        for i in v.instances.iter().filter(|i| i.desired == Desired::Run) {
            *live.entry(i.index).or_insert(0) += 1;
        }
        assert!(live.values().all(|n| *n == 1), "{name}: {live:?}");
    }
}

#[tokio::test]
async fn the_index_and_event_ids_never_repeat_across_restarts() {
    let store = Arc::new(MemoryStore::new());
    let mut seen: Vec<(u64, u32)> = Vec::new();
    let mut last_index = 0;
    for round in 0..3 {
        let m = manager_on(&store).await;
        let h = m.cluster().health().await.unwrap();
        assert!(
            h.manager.index > last_index,
            "round {round}: index {} after {last_index}",
            h.manager.index
        );
        let mut events = m.events().subscribe();
        add_worker(&m, &format!("w{round}"), 1024).await;
        m.jobs()
            .submit(job(&format!("j{round}"), 2, 64))
            .await
            .unwrap();
        // A soft change: the worker reports trouble, then recovers.
        for healthy in [false, true] {
            m.workers()
                .heartbeat(
                    &WorkerId::new(format!("w{round}")),
                    WorkerHeartbeat {
                        resources: size(1024),
                        healthy,
                        message: None,
                    },
                )
                .await
                .unwrap();
        }
        let mut liveness = 0;
        while let Ok(e) = events.try_recv() {
            if matches!(e.kind, EventKind::WorkerLiveness { .. }) {
                liveness += 1;
            }
            seen.push((e.index, e.seq));
        }
        assert_eq!(
            liveness, 2,
            "one event per liveness change (Unhealthy, Ready)"
        );
        last_index = m.cluster().health().await.unwrap().manager.index;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "event ids rise and never repeat: {seen:?}");
}

#[tokio::test]
async fn watches_answer_with_what_changed_since_the_index_held() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    add_worker(&m, "w", 4096).await;
    let s = add_scheduler(&m, "s").await;
    let w = WorkerId::new("w");
    m.jobs().submit(job("a", 2, 64)).await.unwrap();
    let work = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    let d: Vec<_> = work
        .pending
        .iter()
        .map(|p| place(&p.instance, "w"))
        .collect();
    m.schedulers().decide(&s, d).await.unwrap();
    let full = m.workers().watch(&w, 0, Duration::ZERO).await.unwrap();
    assert!(full.full);
    assert_eq!(full.instances.len(), 2);
    // Nothing new: the watch waits, then answers with nothing at the same index.
    let none = m
        .workers()
        .watch(&w, full.index, Duration::from_millis(20))
        .await
        .unwrap();
    assert!(!none.full && none.instances.is_empty() && none.removed.is_empty());
    assert_eq!(none.index, full.index);
    // A new placement: only it comes.
    m.jobs().submit(job("b", 1, 64)).await.unwrap();
    let work = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    m.schedulers()
        .decide(&s, vec![place(&work.pending[0].instance, "w")])
        .await
        .unwrap();
    let delta = m
        .workers()
        .watch(&w, full.index, Duration::ZERO)
        .await
        .unwrap();
    assert!(!delta.full);
    assert_eq!(delta.instances.len(), 1);
    assert_eq!(delta.instances[0].job.name.as_str(), "b");
    // Stopping `a`: both its instances come back told to stop; once the worker reports them
    // stopped, they are removed.
    m.jobs().stop(&JobId::new("a")).await.unwrap();
    let stop = m
        .workers()
        .watch(&w, delta.index, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(stop.instances.len(), 2);
    assert!(stop.instances.iter().all(|a| a.desired == Desired::Stop));
    let updates = stop
        .instances
        .iter()
        .map(|a| TaskUpdate {
            instance: a.instance.clone(),
            task: "t".into(),
            state: TaskState::Stopped,
            exit_code: None,
            reason: None,
            container_id: None,
            restarts: 0,
            next_start_at: None,
            healthy: None,
        })
        .collect();
    m.workers().report(&w, updates).await.unwrap();
    let gone = m
        .workers()
        .watch(&w, stop.index, Duration::ZERO)
        .await
        .unwrap();
    assert!(!gone.full);
    let removed: BTreeSet<_> = gone.removed.iter().cloned().collect();
    let expected: BTreeSet<_> = stop.instances.iter().map(|a| a.instance.clone()).collect();
    assert_eq!(removed, expected);
    // Applied to what the worker held, the deltas give the full set.
    let mut held = BTreeMap::new();
    for a in [full, delta, stop, gone] {
        a.apply_to(&mut held);
    }
    let now = m.workers().watch(&w, 0, Duration::ZERO).await.unwrap();
    let want: BTreeSet<_> = now.instances.iter().map(|a| a.instance.clone()).collect();
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(want.len(), 1);
}

#[tokio::test]
async fn lists_page_by_name_and_refuse_bad_tokens() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    for i in 0..25 {
        m.jobs()
            .submit(job(&format!("job{i:02}"), 1, 64))
            .await
            .unwrap();
    }
    let mut q = ListQuery::first(10);
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let p = m.jobs().list(&q).await.unwrap();
        pages += 1;
        names.extend(p.items.iter().map(|j| j.name.to_string()));
        match p.next {
            Some(t) => q.after = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<_> = (0..25).map(|i| format!("job{i:02}")).collect();
    assert_eq!(names, want);
    let bad = ListQuery {
        limit: None,
        after: Some("nonsense".into()),
        index: None,
    };
    let e = m.jobs().list(&bad).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Invalid, "invalid_continue")
    );
    assert!(e.message.contains("malformed"), "{e}");
    // A token made more than an hour ago.
    let old = ListQuery {
        limit: None,
        after: Some(format!("j1.{:x}.6a", now_millis() - 2 * 3_600_000)),
        index: None,
    };
    let e = m.jobs().list(&old).await.unwrap_err();
    assert_eq!(e.code, "expired_continue", "{e}");
    let e = m.jobs().list(&ListQuery::first(0)).await.unwrap_err();
    assert_eq!(e.code, "invalid_limit");
    // A job token is no worker token.
    let p = m.jobs().list(&ListQuery::first(1)).await.unwrap();
    let cross = ListQuery {
        limit: None,
        after: p.next,
        index: None,
    };
    assert_eq!(
        m.workers().list(&cross).await.unwrap_err().code,
        "invalid_continue"
    );
}

#[tokio::test]
async fn health_summarises_counts_by_state() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    add_worker(&m, "w", 1024).await;
    m.jobs().submit(job("a", 3, 64)).await.unwrap();
    m.jobs().submit(job("b", 2, 64)).await.unwrap();
    m.jobs().stop(&JobId::new("b")).await.unwrap();
    let h = m.cluster().health().await.unwrap();
    assert_eq!(h.worker_count(), 1);
    assert_eq!(h.workers.get(&Liveness::Ready), Some(&1));
    assert_eq!(h.jobs.get(&JobPhase::Pending), Some(&1));
    assert_eq!(h.jobs.get(&JobPhase::Stopped), Some(&1));
    assert_eq!(h.tasks_in(TaskState::Pending), 3);
    assert_eq!(h.tasks_in(TaskState::Stopped), 2);
    assert!(h.unready_workers.is_empty() && h.failing_jobs.is_empty());
}

#[tokio::test]
async fn gc_under_churn_keeps_memory_and_store_bounded_and_never_reuses_ids() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let mut ids: BTreeSet<InstanceId> = BTreeSet::new();
    let mut sizes = Vec::new();
    for round in 0..30 {
        for k in 0..5 {
            let name = format!("churn{k}");
            m.jobs().submit(job(&name, 2, 64 + round)).await.unwrap();
            let v = m.jobs().get(&JobId::new(&name)).await.unwrap();
            for i in &v.instances {
                if i.desired == Desired::Run {
                    // GC removed the job last round: this is a version 1 again, with new ids.
                    assert_eq!(v.version, 1);
                    assert!(ids.insert(i.id.clone()), "id {} reused", i.id);
                }
            }
            m.jobs().stop(&JobId::new(&name)).await.unwrap();
        }
        let r = m.cluster().gc(Duration::ZERO).await.unwrap();
        assert_eq!(r.jobs, 5, "round {round}: {r:?}");
        let snap = store.snapshot();
        sizes.push((snap.jobs.len(), snap.instances.len(), snap.specs.len()));
    }
    assert!(sizes.iter().all(|s| *s == (0, 0, 0)), "{sizes:?}");
    let h = m.cluster().health().await.unwrap();
    assert!(h.jobs.is_empty() && h.tasks.is_empty(), "{h:?}");
    assert_eq!(ids.len(), 30 * 5 * 2, "every instance had an id of its own");
    // A young stopped job is kept by a GC with a long horizon.
    m.jobs().submit(job("young", 1, 64)).await.unwrap();
    m.jobs().stop(&JobId::new("young")).await.unwrap();
    assert_eq!(
        m.cluster()
            .gc(Duration::from_secs(3600))
            .await
            .unwrap()
            .jobs,
        0
    );
    assert!(m.jobs().get(&JobId::new("young")).await.is_ok());
}

#[tokio::test]
async fn gc_removes_replaced_instances_and_old_specs_of_live_jobs() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    m.jobs().submit(job("live", 2, 64)).await.unwrap();
    // Unplaced instances are replaced at once by each update.
    for mem in [65, 66, 67] {
        m.jobs().submit(job("live", 2, mem)).await.unwrap();
    }
    assert_eq!(store.snapshot().instances.len(), 8);
    let r = m.cluster().gc(Duration::ZERO).await.unwrap();
    assert_eq!((r.jobs, r.instances, r.specs), (0, 6, 3), "{r:?}");
    let snap = store.snapshot();
    assert_eq!(snap.instances.len(), 2);
    assert_eq!(snap.specs.len(), 1);
    let v = m.jobs().get(&JobId::new("live")).await.unwrap();
    assert_eq!(v.version, 4);
    assert_eq!(v.instances.len(), 2);
}

#[tokio::test]
async fn a_registration_over_a_limit_is_refused_naming_it_and_the_manager_keeps_serving() {
    use orkestrator_core::manager::{
        MAX_COMPONENT_ID_BYTES, MAX_COMPONENT_TEXT_BYTES, MAX_WORKER_ADDRESS_BYTES,
        MAX_WORKER_LABELS, REGISTRATION_LIMIT,
    };
    use orkestrator_core::spec::{MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES};
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let reg = |id: &str, labels: BTreeMap<String, String>| RegisterWorker {
        id: WorkerId::new(id),
        address: None,
        labels,
        host_volumes: Default::default(),
        resources: size(1024),
        version: String::new(),
    };
    let many: BTreeMap<String, String> = (0..=MAX_WORKER_LABELS)
        .map(|i| (format!("l{i}"), "v".to_owned()))
        .collect();
    let long_key = BTreeMap::from([("k".repeat(MAX_LABEL_KEY_BYTES + 1), "v".to_owned())]);
    let long_value = BTreeMap::from([("zone".to_owned(), "v".repeat(MAX_LABEL_VALUE_BYTES + 1))]);
    let mut long_address = reg("w", BTreeMap::new());
    long_address.address = Some("a".repeat(MAX_WORKER_ADDRESS_BYTES + 1));
    let mut long_version = reg("w", BTreeMap::new());
    long_version.version = "1".repeat(MAX_COMPONENT_TEXT_BYTES + 1);
    let cases = [
        (
            reg(&"w".repeat(MAX_COMPONENT_ID_BYTES + 1), BTreeMap::new()),
            format!(
                "worker id: {} bytes; at most {MAX_COMPONENT_ID_BYTES} are allowed",
                MAX_COMPONENT_ID_BYTES + 1
            ),
        ),
        (
            reg("w", many),
            format!(
                "labels: {} labels; at most {MAX_WORKER_LABELS} are allowed",
                MAX_WORKER_LABELS + 1
            ),
        ),
        (
            reg("w", long_key),
            format!(
                "a label key: {} bytes; at most {MAX_LABEL_KEY_BYTES} are allowed",
                MAX_LABEL_KEY_BYTES + 1
            ),
        ),
        (
            reg("w", long_value),
            format!(
                "label \"zone\": {} bytes; at most {MAX_LABEL_VALUE_BYTES} are allowed",
                MAX_LABEL_VALUE_BYTES + 1
            ),
        ),
        (
            long_address,
            format!("address: {} bytes", MAX_WORKER_ADDRESS_BYTES + 1),
        ),
        (
            long_version,
            format!("version: {} bytes", MAX_COMPONENT_TEXT_BYTES + 1),
        ),
    ];
    for (req, message) in cases {
        let e = m.workers().register(req).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e:?}");
        assert_eq!(e.code, REGISTRATION_LIMIT, "{e:?}");
        assert!(e.message.contains(&message), "{message:?} not in {e:?}");
    }
    let e = m
        .schedulers()
        .register(RegisterScheduler {
            id: SchedulerId::new("s".repeat(MAX_COMPONENT_ID_BYTES + 1)),
            algorithm: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, REGISTRATION_LIMIT, "{e:?}");
    // Nothing refused was registered, and a registration at every limit is taken.
    let listed = m.workers().list(&ListQuery::default()).await.unwrap();
    assert!(listed.items.is_empty(), "{listed:?}");
    let at_limits: BTreeMap<String, String> = (0..MAX_WORKER_LABELS)
        .map(|i| {
            (
                format!("{i}{}", "k".repeat(MAX_LABEL_KEY_BYTES - 3)),
                "v".repeat(MAX_LABEL_VALUE_BYTES),
            )
        })
        .collect();
    m.workers()
        .register(reg(&"w".repeat(MAX_COMPONENT_ID_BYTES), at_limits))
        .await
        .unwrap();
    add_worker(&m, "ok", 1024).await;
    let listed = m.workers().list(&ListQuery::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2, "{listed:?}");
}

#[tokio::test]
async fn health_counts_the_jobs_of_a_reloaded_state() {
    let store = Arc::new(MemoryStore::new());
    let m = Manager::new(ManagerConfig::default(), store.clone())
        .await
        .unwrap();
    for name in ["a", "b"] {
        let job = parse_job(
            &format!(
                "name: {name}\ntasks:\n  - name: t\n    image: x:1\n    resources: {{cpu: 0.1, memory: 16MiB}}\n"
            ),
            Format::Yaml,
        )
        .unwrap();
        m.jobs().submit(job).await.unwrap();
    }
    let before = m.cluster().health().await.unwrap().jobs;
    assert_eq!(before.values().sum::<u64>(), 2, "{before:?}");
    drop(m);
    let again = Manager::new(ManagerConfig::default(), store).await.unwrap();
    let after = again.cluster().health().await.unwrap().jobs;
    assert_eq!(after, before, "the reloaded state counts its jobs by phase");
}

/// Issue 18 item 2: a task that ended for good is named in its instance's assignment (so that a
/// worker that restarted never starts it again), also by a manager reloaded from the store; the
/// instance keeps its whole reservation until every one of its tasks ended, then frees it.
#[tokio::test]
async fn an_ended_task_is_assigned_as_ended_and_the_reservation_holds_until_all_ended() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    add_worker(&m, "w", 4096).await;
    let s = add_scheduler(&m, "s").await;
    let w = WorkerId::new("w");
    let two = parse_job(
        "name: two\ntasks:\n  - {name: a, image: x:1, resources: {memory: 64Mi}}\n  - {name: b, image: x:1, resources: {memory: 64Mi}}",
        Format::Yaml,
    )
    .unwrap();
    m.jobs().submit(two).await.unwrap();
    let work = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    let instance = work.pending[0].instance.clone();
    m.schedulers()
        .decide(&s, vec![place(&instance, "w")])
        .await
        .unwrap();
    let update = |task: &str, state: TaskState| TaskUpdate {
        instance: instance.clone(),
        task: task.into(),
        state,
        exit_code: None,
        reason: None,
        container_id: None,
        restarts: 0,
        next_start_at: None,
        healthy: None,
    };
    let reserved = |m: &Manager| {
        let m = m.clone();
        async move {
            let page = m.workers().list(&ListQuery::default()).await.unwrap();
            page.items[0].reserved.memory
        }
    };
    let ended = |m: &Manager| {
        let (m, w) = (m.clone(), w.clone());
        async move {
            let full = m.workers().watch(&w, 0, Duration::ZERO).await.unwrap();
            full.instances[0]
                .ended
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    m.workers()
        .report(
            &w,
            vec![
                update("a", TaskState::Running),
                update("b", TaskState::Running),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ended(&m).await, Vec::<String>::new());
    assert_eq!(reserved(&m).await, ByteSize::mib(128));
    m.workers()
        .report(&w, vec![update("a", TaskState::Failed)])
        .await
        .unwrap();
    assert_eq!(ended(&m).await, ["a"]);
    assert_eq!(reserved(&m).await, ByteSize::mib(128), "b still runs");
    // A manager reloaded from the store says the same.
    drop(m);
    let m = manager_on(&store).await;
    assert_eq!(ended(&m).await, ["a"]);
    assert_eq!(reserved(&m).await, ByteSize::mib(128), "b still runs");
    m.workers()
        .report(&w, vec![update("b", TaskState::Completed)])
        .await
        .unwrap();
    assert_eq!(ended(&m).await, ["a", "b"]);
    assert_eq!(reserved(&m).await, ByteSize::ZERO, "every task ended");
}

/// The jobs by phase as the job list gives them.
async fn phases_listed(m: &Manager) -> BTreeMap<JobPhase, u64> {
    let mut by = BTreeMap::new();
    for j in m.jobs().list(&ListQuery::default()).await.unwrap().items {
        *by.entry(j.phase).or_insert(0) += 1;
    }
    by
}

/// Issue 18, item 3: a reloaded state counts every job once, in the phase the job list gives,
/// whatever phases its jobs are in (placed, stopped, pending).
#[tokio::test]
async fn a_reloaded_state_counts_jobs_and_tasks_as_the_job_list_does() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    add_worker(&m, "w", 1024).await;
    let s = add_scheduler(&m, "s").await;
    m.jobs().submit(job("placed", 2, 64)).await.unwrap();
    let work = m.schedulers().work(&s, Duration::ZERO).await.unwrap();
    let d = work
        .pending
        .iter()
        .map(|p| place(&p.instance, "w"))
        .collect();
    m.schedulers().decide(&s, d).await.unwrap();
    m.jobs().submit(job("stopped", 2, 64)).await.unwrap();
    m.jobs().stop(&JobId::new("stopped")).await.unwrap();
    m.jobs().submit(job("waiting", 1, 4096)).await.unwrap();
    let before = m.cluster().health().await.unwrap();
    assert_eq!(before.jobs, phases_listed(&m).await);
    drop(m);
    for round in 0..2 {
        let again = manager_on(&store).await;
        let after = again.cluster().health().await.unwrap();
        assert_eq!(
            after.jobs,
            phases_listed(&again).await,
            "reload {round}: health counts jobs as the list does"
        );
        assert_eq!(after.jobs.values().sum::<u64>(), 3, "{:?}", after.jobs);
        assert_eq!(after.tasks, before.tasks, "reload {round}: tasks by state");
    }
}

#[tokio::test]
async fn host_volume_offers_are_kept_by_name_and_bad_names_are_refused() {
    use orkestrator_core::api::HostVolumeOffer;
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let reg = |names: &[(&str, bool)]| RegisterWorker {
        id: WorkerId::new("w1"),
        address: None,
        labels: BTreeMap::new(),
        host_volumes: names
            .iter()
            .map(|(n, ro)| ((*n).to_owned(), HostVolumeOffer { read_only: *ro }))
            .collect(),
        resources: size(1024),
        version: String::new(),
    };
    for bad in ["Logs", "../x", "/var/log", ""] {
        let e = m
            .workers()
            .register(reg(&[(bad, false)]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is not a name"), "{bad}: {e}");
    }
    let many: Vec<String> = (0..=orkestrator_core::manager::MAX_HOST_VOLUMES)
        .map(|i| format!("v{i}"))
        .collect();
    let many: Vec<(&str, bool)> = many.iter().map(|n| (n.as_str(), false)).collect();
    assert!(m.workers().register(reg(&many)).await.is_err());
    m.workers()
        .register(reg(&[("applogs", true), ("data", false)]))
        .await
        .unwrap();
    let listed = m
        .workers()
        .list(&orkestrator_core::api::ListQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        listed[0].host_volumes["applogs"],
        HostVolumeOffer { read_only: true }
    );
    assert_eq!(listed[0].host_volumes.len(), 2);
}

/// A job with volumes and mounts is accepted as it is, and its view shows them.
#[tokio::test]
async fn jobs_with_volumes_are_accepted() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let text = "name: db\nvolumes: { data: { type: volume, retain: true } }\ntasks:\n  - { name: a, image: x:1, mounts: [{ volume: data, path: /d }] }\n";
    let j = parse_job(text, Format::Yaml).unwrap();
    m.jobs().submit(j.clone()).await.unwrap();
    let v = m.jobs().get(&JobId::new("db")).await.unwrap();
    assert_eq!(v.spec.volumes, j.volumes);
    assert_eq!(v.spec.tasks[0].mounts, j.tasks[0].mounts);
}
