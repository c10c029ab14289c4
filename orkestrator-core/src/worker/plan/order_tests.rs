//! The plan with tasks that work together: start order (`depends_on`, `Waiting`, init tasks),
//! a dependency that fails for good, stop order (dependents first, sidecars last) and sidecars
//! that finish once the other tasks ended.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::ids::TaskName;
use crate::runtime::labels;
use crate::spec::{Condition, Format, Job, RestartPolicy, parse_job};

const T0_MS: Millis = 5_000_000;

/// db (a health check), init (restart never) and app, which waits for db to be healthy and
/// init to complete successfully.
fn three() -> Job {
    let mut job = parse_job(
        "name: j\ntasks:\n  - {name: db, image: img:1, health_check: {tcp: {port: 80}, interval: 1s, failures: 1}}\n  - {name: init, image: img:1, restart: {policy: never}}\n  - {name: app, image: img:1}\n",
        Format::Yaml,
    )
    .unwrap();
    job.tasks[2].depends_on = [
        (TaskName::new("db"), Condition::Healthy),
        (TaskName::new("init"), Condition::CompletedSuccessfully),
    ]
    .into();
    job
}

fn held(job: &Job, desired: Desired) -> BTreeMap<InstanceId, Assignment> {
    let a = Assignment {
        instance: InstanceId::new("i1"),
        index: 0,
        desired,
        job: Arc::new(job.clone()),
        ended: vec![],
        version: 1,
    };
    [(a.instance.clone(), a)].into()
}

fn ctr(id: &str, task: &str, state: ContainerState) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: format!("ork-w1-i1-{task}-0"),
        labels: [
            (labels::WORKER, "w1"),
            (labels::INSTANCE, "i1"),
            (labels::TASK, task),
            (labels::ATTEMPT, "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        state,
        health: None,
    }
}

fn at(t: Instant) -> Now {
    Now {
        at: t,
        unix_ms: T0_MS,
    }
}

/// The actions in a line each: `report app Waiting (waiting for ...)`, `start db`, `stop c`.
fn lines(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| match a {
            Action::Report(u) => match &u.reason {
                Some(r) => format!("report {} {:?} ({r})", u.task, u.state),
                None => format!("report {} {:?}", u.task, u.state),
            },
            Action::Start { key, .. } => format!("start {}", key.1),
            Action::Stop { container, .. } => format!("stop {container}"),
            Action::Halt { container, .. } => format!("halt {container}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Marks the task as started by the agent (as `started` does after a successful start).
fn started(tracks: &mut Tracks, held: &BTreeMap<InstanceId, Assignment>, task: &str, t: Instant) {
    let a = held.values().next().unwrap();
    let spec = a.job.task(task).unwrap().clone();
    super::started(tracks, a, &spec, format!("c-{task}"), t);
}

#[test]
fn dependents_wait_then_start_once_their_dependencies_are_as_asked() {
    let t0 = Instant::now();
    let job = three();
    let held = held(&job, Desired::Run);
    let mut tracks = Tracks::new(7);

    // Nothing runs: db and init start, app waits for both, saying so.
    let p = plan(&held, &[], &mut tracks, at(t0));
    assert_eq!(
        lines(&p),
        [
            "report db Starting",
            "start db",
            "report init Starting",
            "start init",
            "report app Waiting (waiting for db to be healthy, init to complete successfully)",
        ]
    );
    started(&mut tracks, &held, "db", t0);
    started(&mut tracks, &held, "init", t0);

    // db runs, not yet checked; init runs: app still waits (said once).
    let running = [
        ctr("c-db", "db", ContainerState::Running),
        ctr("c-init", "init", ContainerState::Running),
    ];
    let p = plan(
        &held,
        &running,
        &mut tracks,
        at(t0 + Duration::from_millis(10)),
    );
    assert!(
        lines(&p).iter().all(|l| !l.contains("app")),
        "{:?}",
        lines(&p)
    );

    // db passes its check: app now waits for init alone.
    let hc = job.tasks[0].health_check.clone().unwrap();
    tracks
        .entry(&InstanceId::new("i1"), &TaskName::new("db"))
        .health
        .record(&hc, Ok(()), t0 + Duration::from_secs(1));
    let p = plan(
        &held,
        &running,
        &mut tracks,
        at(t0 + Duration::from_secs(1)),
    );
    assert!(
        lines(&p)
            .contains(&"report app Waiting (waiting for init to complete successfully)".to_owned()),
        "{:?}",
        lines(&p)
    );

    // init exits 0: it is Completed, its container kept, and app starts in the same pass.
    let done = [
        ctr("c-db", "db", ContainerState::Running),
        ctr(
            "c-init",
            "init",
            ContainerState::Exited {
                code: 0,
                reason: None,
            },
        ),
    ];
    let p = plan(&held, &done, &mut tracks, at(t0 + Duration::from_secs(2)));
    let l = lines(&p);
    assert_eq!(
        l,
        ["report init Completed", "report app Starting", "start app"]
    );

    // Later restarts of db do not touch app, and app (now with a container) is never gated.
    let all = [
        ctr(
            "c-db",
            "db",
            ContainerState::Exited {
                code: 1,
                reason: None,
            },
        ),
        ctr(
            "c-init",
            "init",
            ContainerState::Exited {
                code: 0,
                reason: None,
            },
        ),
        ctr("c-app", "app", ContainerState::Running),
    ];
    let p = plan(&held, &all, &mut tracks, at(t0 + Duration::from_secs(3)));
    assert!(
        lines(&p)
            .iter()
            .all(|l| !l.contains("app Waiting") && !l.contains("stop")),
        "{:?}",
        lines(&p)
    );
}

#[test]
fn a_failing_init_task_fails_its_dependents_which_never_start() {
    let t0 = Instant::now();
    let job = three();
    let held = held(&job, Desired::Run);
    let mut tracks = Tracks::new(7);
    plan(&held, &[], &mut tracks, at(t0));
    started(&mut tracks, &held, "init", t0);
    let failed = [ctr(
        "c-init",
        "init",
        ContainerState::Exited {
            code: 3,
            reason: None,
        },
    )];
    let p = plan(&held, &failed, &mut tracks, at(t0 + Duration::from_secs(1)));
    let l = lines(&p);
    assert!(
        l.contains(&"report init Failed (exited with code 3)".to_owned()),
        "{l:?}"
    );
    assert!(
        l.contains(&"report app Failed (not started: init failed: exited with code 3)".to_owned()),
        "{l:?}"
    );
    assert!(!l.iter().any(|l| l == "start app"), "{l:?}");
    // And it stays so.
    let p = plan(
        &held,
        &failed,
        &mut tracks,
        at(t0 + Duration::from_secs(60)),
    );
    assert!(
        !lines(&p).iter().any(|l| l == "start app"),
        "{:?}",
        lines(&p)
    );
}

#[test]
fn tasks_stop_dependents_first() {
    let t0 = Instant::now();
    let job = three();
    let held = held(&job, Desired::Stop);
    let mut tracks = Tracks::new(7);
    let all = [
        ctr("c-db", "db", ContainerState::Running),
        ctr(
            "c-init",
            "init",
            ContainerState::Exited {
                code: 0,
                reason: None,
            },
        ),
        ctr("c-app", "app", ContainerState::Running),
    ];
    let p = plan(&held, &all, &mut tracks, at(t0));
    let stops: Vec<_> = lines(&p)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    assert_eq!(stops, ["stop c-app"], "{:?}", lines(&p));
    assert!(
        lines(&p).contains(&"report db Stopping (stopping after app)".to_owned()),
        "{:?}",
        lines(&p)
    );
    // app is gone: db and init stop now.
    let p = plan(
        &held,
        &all[..2],
        &mut tracks,
        at(t0 + Duration::from_secs(1)),
    );
    let stops: Vec<_> = lines(&p)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    assert_eq!(stops, ["stop c-db", "stop c-init"]);
}

#[test]
fn sidecars_finish_after_the_other_tasks_and_the_instance_completes() {
    let t0 = Instant::now();
    let mut job = parse_job(
        "name: j\ntasks:\n  - {name: main, image: img:1, restart: {policy: never}}\n  - {name: logs, image: img:1, restart: {policy: always}}\n",
        Format::Yaml,
    )
    .unwrap();
    job.tasks[1].sidecar = true;
    job.tasks[1].stop_grace = Some(Duration::from_secs(2));
    assert_eq!(job.tasks[0].restart, RestartPolicy::never());
    let held = held(&job, Desired::Run);
    let mut tracks = Tracks::new(7);
    plan(&held, &[], &mut tracks, at(t0));
    started(&mut tracks, &held, "main", t0);
    started(&mut tracks, &held, "logs", t0);
    let main_done = [
        ctr(
            "c-main",
            "main",
            ContainerState::Exited {
                code: 0,
                reason: None,
            },
        ),
        ctr("c-logs", "logs", ContainerState::Running),
    ];
    let p = plan(
        &held,
        &main_done,
        &mut tracks,
        at(t0 + Duration::from_secs(1)),
    );
    assert_eq!(
        lines(&p),
        [
            "report main Completed",
            "report logs Stopping (the instance's other tasks ended)",
            "halt c-logs",
        ]
    );
    let Some(Action::Halt { grace, .. }) = p.actions.last() else {
        unreachable!()
    };
    assert_eq!(*grace, Some(Duration::from_secs(2)), "its own stop_grace");
    // It exits (killed: 137); `always` does not restart it: it is Completed, container kept.
    let both_done = [
        main_done[0].clone(),
        ctr(
            "c-logs",
            "logs",
            ContainerState::Exited {
                code: 137,
                reason: None,
            },
        ),
    ];
    let p = plan(
        &held,
        &both_done,
        &mut tracks,
        at(t0 + Duration::from_secs(2)),
    );
    assert_eq!(
        lines(&p),
        ["report logs Completed (stopped: the instance's other tasks ended)"]
    );
    let p = plan(
        &held,
        &both_done,
        &mut tracks,
        at(t0 + Duration::from_secs(3)),
    );
    assert!(p.actions.is_empty(), "{:?}", lines(&p));
}

#[test]
fn a_sidecar_stops_after_the_other_tasks_when_the_instance_stops() {
    let t0 = Instant::now();
    let mut job = parse_job(
        "name: j\ntasks:\n  - {name: main, image: img:1}\n  - {name: proxy, image: img:1}\n",
        Format::Yaml,
    )
    .unwrap();
    job.tasks[1].sidecar = true;
    let held = held(&job, Desired::Stop);
    let mut tracks = Tracks::new(7);
    let both = [
        ctr("c-main", "main", ContainerState::Running),
        ctr("c-proxy", "proxy", ContainerState::Running),
    ];
    let p = plan(&held, &both, &mut tracks, at(t0));
    let stops: Vec<_> = lines(&p)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    assert_eq!(stops, ["stop c-main"]);
    let p = plan(
        &held,
        &both[1..],
        &mut tracks,
        at(t0 + Duration::from_secs(1)),
    );
    let stops: Vec<_> = lines(&p)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    assert_eq!(stops, ["stop c-proxy"]);
}

#[test]
fn start_order_puts_every_task_after_its_dependencies() {
    let mut job = parse_job(
        "name: j\ntasks:\n  - {name: a, image: img:1}\n  - {name: b, image: img:1}\n  - {name: c, image: img:1}\n",
        Format::Yaml,
    )
    .unwrap();
    job.tasks[0].depends_on = [(TaskName::new("c"), Condition::Started)].into();
    job.tasks[2].depends_on = [(TaskName::new("b"), Condition::Started)].into();
    let names: Vec<_> = order::start_order(&job)
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["b", "c", "a"]);
}
