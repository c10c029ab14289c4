//! The plan as tables: a situation (one task `t` of instance `i1`, its containers, what the agent
//! remembers, the time) and the actions it leads to.

use std::time::Duration;

use super::*;
use crate::ids::TaskName;
use crate::runtime::labels;
use crate::spec::{Format, Job, parse_job};

/// The wall clock of every plan here.
const UNIX_MS: Millis = 1_000_000;

fn job(task_fields: &str) -> Job {
    let yaml = format!("name: j\ntasks:\n  - name: t\n    image: img:1\n{task_fields}");
    parse_job(&yaml, Format::Yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn held(job: &Job, desired: Desired) -> BTreeMap<InstanceId, Assignment> {
    let a = Assignment {
        instance: InstanceId::new("i1"),
        index: 0,
        desired,
        job: std::sync::Arc::new(job.clone()),
        ended: vec![],
        version: 1,
    };
    [(a.instance.clone(), a)].into()
}

fn container(id: &str, instance: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
    let labels = [
        (labels::WORKER, "w1"),
        (labels::INSTANCE, instance),
        (labels::TASK, "t"),
        (labels::ATTEMPT, &attempt.to_string()),
    ];
    ContainerInfo {
        id: id.into(),
        name: format!("ork-w1-{instance}-t-{attempt}"),
        labels: labels
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        state,
        health: None,
    }
}

fn exited(code: i64) -> ContainerState {
    ContainerState::Exited { code, reason: None }
}

fn key() -> TaskKey {
    (InstanceId::new("i1"), TaskName::new("t"))
}

fn now(at: Instant) -> Now {
    Now {
        at,
        unix_ms: UNIX_MS,
    }
}

/// An action in a line, for tables.
fn show(a: &Action) -> String {
    match a {
        Action::Report(u) => format!("report {} {:?} r{}", u.task, u.state, u.restarts),
        Action::Stop { container, .. } => format!("stop {container}"),
        Action::Halt { container, .. } => format!("halt {container}"),
        Action::RemoveGhost {
            container,
            instance,
            ..
        } => format!("remove ghost {container} of {instance}"),
        Action::Start {
            key,
            attempt,
            replace,
        } => match replace {
            Some(old) => format!("start {}#{attempt} replacing {old}", key.1),
            None => format!("start {}#{attempt}", key.1),
        },
        Action::StartCreated { container, .. } => format!("start created {container}"),
        Action::RestartAt { remove, .. } => format!("remove {remove}, restart later"),
    }
}

/// What the agent remembers before the plan, set up through the trackers' own operations.
type Setup = fn(&mut Track, &Task, Instant);

struct Row {
    name: &'static str,
    /// The task's fields after its image (restart policy, health check).
    task: &'static str,
    desired: Desired,
    containers: Vec<ContainerInfo>,
    before: Setup,
    /// Plan once with the same inputs a second earlier (the situation was seen already).
    seen: bool,
    expect: &'static [&'static str],
    /// When the next plan is due, in ms after now: at least, at most.
    wake: Option<(u64, u64)>,
    /// Part of the first report's reason.
    reason: Option<&'static str>,
}

const ON_FAILURE: &str =
    "    restart: {policy: on-failure, max_attempts: 3, backoff: {initial: 2s}}\n";
const NEVER: &str = "    restart: {policy: never}\n";
const ALWAYS: &str = "    restart: {policy: always, backoff: {initial: 2s}}\n";
const CHECKED: &str = "    restart: {policy: on-failure, max_attempts: 3, backoff: {initial: 2s}}\n    health_check: {tcp: {port: 80}, interval: 5s, failures: 1}\n";

fn fresh(_: &mut Track, _: &Task, _: Instant) {}

fn row(name: &'static str, task: &'static str, expect: &'static [&'static str]) -> Row {
    Row {
        name,
        task,
        desired: Desired::Run,
        containers: vec![],
        before: fresh,
        seen: false,
        expect,
        wake: None,
        reason: None,
    }
}

fn rows() -> Vec<Row> {
    vec![
        row(
            "desired run, no container: start the first generation",
            ON_FAILURE,
            &["report t Starting r0", "start t#0"],
        ),
        Row {
            containers: vec![container("c1", "i1", 0, exited(1))],
            wake: Some((1800, 2200)),
            reason: Some("exited with code 1; restart 1 of 3 in "),
            ..row(
                "exit 1 under on-failure with attempts left: restart after the backoff",
                ON_FAILURE,
                &["report t Restarting r1", "remove c1, restart later"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, exited(1))],
            reason: Some("exited with code 1"),
            ..row(
                "exit 1 under never: failed, the container kept for its logs",
                NEVER,
                &["report t Failed r0"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, exited(0))],
            ..row(
                "exit 0 under on-failure: completed",
                ON_FAILURE,
                &["report t Completed r0"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, exited(0))],
            wake: Some((1800, 2200)),
            ..row(
                "exit 0 under always: restart",
                ALWAYS,
                &["report t Restarting r1", "remove c1, restart later"],
            )
        },
        Row {
            containers: vec![container("c3", "i1", 3, exited(2))],
            reason: Some("exited with code 2 after 3 restarts"),
            ..row(
                "an adopted exited container with every attempt used: failed",
                ON_FAILURE,
                &["report t Failed r3"],
            )
        },
        Row {
            desired: Desired::Stop,
            containers: vec![container("c1", "i1", 0, ContainerState::Running)],
            ..row(
                "desired stop with a running container: stop it",
                ON_FAILURE,
                &["report t Stopping r0", "stop c1"],
            )
        },
        Row {
            desired: Desired::Stop,
            reason: Some("stopped on request"),
            ..row(
                "desired stop, container gone: stopped",
                ON_FAILURE,
                &["report t Stopped r0"],
            )
        },
        Row {
            containers: vec![
                container("c9", "i9", 0, ContainerState::Running),
                container("c1", "i1", 0, ContainerState::Running),
            ],
            ..row(
                "a container of an instance not held here: remove the ghost first",
                ON_FAILURE,
                &["remove ghost c9 of i9", "report t Running r0"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, ContainerState::Running)],
            ..row(
                "a running container is adopted whatever its process limit, user or root filesystem (made before they existed, say): never replaced for them",
                "    resources: {pids: 64}\n    user: \"1000:1000\"\n    read_only: true\n",
                &["report t Running r0"],
            )
        },
        Row {
            containers: vec![container("c2", "i1", 2, ContainerState::Running)],
            ..row(
                "a running container after the agent restarted: adopt it with its count",
                ON_FAILURE,
                &["report t Running r2"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, ContainerState::Running)],
            seen: true,
            ..row("running, and reported already: nothing", ON_FAILURE, &[])
        },
        Row {
            before: |tr, task, now| {
                let at = tr
                    .restart
                    .exited(&task.restart, true, now - Duration::from_secs(5));
                assert!(matches!(at, AfterExit::Restart { .. }));
            },
            ..row(
                "restarting, backoff due at now: start the next generation",
                ON_FAILURE,
                &["report t Starting r1", "start t#1"],
            )
        },
        Row {
            before: |tr, task, now| {
                tr.restart
                    .exited(&task.restart, true, now - Duration::from_millis(100));
            },
            wake: Some((1700, 2100)),
            ..row(
                "restarting, backoff not yet due: nothing but a wake-up time",
                ON_FAILURE,
                &[],
            )
        },
        Row {
            containers: vec![
                container("c0", "i1", 0, exited(1)),
                container("c1", "i1", 1, ContainerState::Running),
            ],
            ..row(
                "an older attempt beside the newest: stop the leftover",
                ON_FAILURE,
                &["stop c0", "report t Running r1"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, ContainerState::Created)],
            ..row(
                "created but never started: start it",
                ON_FAILURE,
                &["start created c1"],
            )
        },
        Row {
            containers: vec![container(
                "c1",
                "i1",
                0,
                ContainerState::Other("paused".into()),
            )],
            ..row("paused: leave it alone", ON_FAILURE, &[])
        },
        Row {
            containers: vec![container("c1", "i1", 0, exited(1))],
            before: |tr, task, now| {
                assert_eq!(tr.restart.exited(&task.restart, true, now), AfterExit::Done);
            },
            ..row("finished for good: nothing, not even a report", NEVER, &[])
        },
        Row {
            containers: vec![container("c1", "i1", 0, exited(0))],
            before: |tr, task, now| {
                let hc = task.health_check.as_ref().unwrap();
                tr.health.running(now, Some(hc));
                tr.health.record(hc, Err("refused".into()), now);
            },
            wake: Some((1800, 2200)),
            reason: Some(
                "exited with code 0 (unhealthy: tcp :80 failed 1 times in a row: refused)",
            ),
            ..row(
                "stopped as unhealthy, exit 0: a failure, restarted",
                CHECKED,
                &["report t Restarting r1", "remove c1, restart later"],
            )
        },
        Row {
            containers: vec![container("c2", "i1", 2, ContainerState::Running)],
            before: |tr, _, now| {
                tr.restart.saw_generation(2);
                tr.restart.started(now - Duration::from_secs(600));
            },
            ..row(
                "running healthy for reset_after: the count goes back to 0",
                ON_FAILURE,
                &["report t Running r0"],
            )
        },
        Row {
            containers: vec![container("c1", "i1", 0, ContainerState::Running)],
            wake: Some((5000, 5000)),
            ..row(
                "running with a health check: the first is due one interval in",
                CHECKED,
                &["report t Running r0"],
            )
        },
    ]
}

#[test]
fn the_plan_table() {
    let t0 = Instant::now();
    for r in rows() {
        let job = job(r.task);
        let held = held(&job, r.desired);
        let mut tracks = Tracks::new(7);
        (r.before)(tracks.entry(&key().0, &key().1), &job.tasks[0], t0);
        if r.seen {
            plan(
                &held,
                &r.containers,
                &mut tracks,
                now(t0 - Duration::from_secs(1)),
            );
        }
        let p = plan(&held, &r.containers, &mut tracks, now(t0));
        let shown: Vec<String> = p.actions.iter().map(show).collect();
        assert_eq!(shown, r.expect, "{}", r.name);
        let wake = p.wake_at.map(|w| w.duration_since(t0).as_millis() as u64);
        match (r.wake, wake) {
            (None, None) => {}
            (Some((lo, hi)), Some(w)) => assert!(lo <= w && w <= hi, "{}: wake {w} ms", r.name),
            (want, got) => panic!("{}: wake {want:?}, got {got:?} ms", r.name),
        }
        if let Some(part) = r.reason {
            let reason = p.actions.iter().find_map(|a| match a {
                Action::Report(u) => u.reason.clone(),
                _ => None,
            });
            let reason = reason.unwrap_or_default();
            assert!(reason.contains(part), "{}: {reason}", r.name);
        }
    }
}

#[test]
fn a_restart_reports_when_it_is_due_and_the_exit() {
    let t0 = Instant::now();
    let job = job(ON_FAILURE);
    let held = held(&job, Desired::Run);
    let mut tracks = Tracks::new(7);
    let p = plan(
        &held,
        &[container("c1", "i1", 0, exited(3))],
        &mut tracks,
        now(t0),
    );
    let [Action::Report(u), Action::RestartAt { key: k, remove, at }] = &p.actions[..] else {
        panic!("{:?}", p.actions);
    };
    let delay = at.duration_since(t0);
    assert_eq!(u.next_start_at, Some(UNIX_MS + delay.as_millis() as u64));
    assert_eq!(
        (u.exit_code, u.container_id.as_deref()),
        (Some(3), Some("c1"))
    );
    assert_eq!((k, remove.as_str()), (&key(), "c1"));
    assert_eq!(p.wake_at, Some(*at));
    // The container is gone now; at the due time the next generation starts.
    let early = plan(&held, &[], &mut tracks, now(*at - Duration::from_millis(1)));
    assert_eq!(early.actions, vec![]);
    let due = plan(&held, &[], &mut tracks, now(*at));
    let shown: Vec<String> = due.actions.iter().map(show).collect();
    assert_eq!(shown, ["report t Starting r1", "start t#1"]);
    assert_eq!(due.wake_at, None);
}

#[test]
fn a_restart_due_at_once_replaces_the_exited_container_in_the_same_plan() {
    let t0 = Instant::now();
    let mut job = job(ALWAYS);
    job.tasks[0].restart.backoff.initial = Duration::ZERO;
    let held = held(&job, Desired::Run);
    let mut tracks = Tracks::new(7);
    let p = plan(
        &held,
        &[container("c1", "i1", 0, exited(0))],
        &mut tracks,
        now(t0),
    );
    let shown: Vec<String> = p.actions.iter().map(show).collect();
    assert_eq!(
        shown,
        [
            "report t Restarting r1",
            "report t Starting r1",
            "start t#1 replacing c1"
        ]
    );
    assert_eq!(p.wake_at, None);
}

#[test]
fn tracks_of_instances_no_longer_held_are_forgotten() {
    let t0 = Instant::now();
    let job = job(ON_FAILURE);
    let mut tracks = Tracks::new(7);
    plan(&held(&job, Desired::Run), &[], &mut tracks, now(t0));
    assert!(tracks.get(&key()).is_some());
    let p = plan(&BTreeMap::new(), &[], &mut tracks, now(t0));
    assert_eq!(p.actions, vec![]);
    assert!(tracks.get(&key()).is_none());
}

#[test]
fn start_outcomes_move_the_task_on() {
    let t0 = Instant::now();
    let job = job(ON_FAILURE);
    let held = held(&job, Desired::Run);
    let (a, task) = (&held[&key().0], &job.tasks[0]);
    let mut tracks = Tracks::new(7);
    plan(&held, &[], &mut tracks, now(t0));

    let u = started(&mut tracks, a, task, "c1".into(), t0).expect("new");
    assert_eq!(
        (u.state, u.container_id.as_deref()),
        (TaskState::Running, Some("c1"))
    );
    assert_eq!(tracks.running_containers(), ["c1"]);
    assert_eq!(
        started(&mut tracks, a, task, "c1".into(), t0),
        None,
        "sent once"
    );

    let down = Error::runtime(RuntimeErrorKind::Unavailable, "engine down");
    assert_eq!(start_failed(&mut tracks, a, task, &down, now(t0)), None);
    assert_eq!(
        tracks.get(&key()).unwrap().restart.attempts(),
        0,
        "not the task's fault"
    );

    let missing = Error::runtime(RuntimeErrorKind::ImageNotFound, "no such image: img:1");
    let u = start_failed(&mut tracks, a, task, &missing, now(t0)).expect("new");
    assert_eq!((u.state, u.restarts), (TaskState::Restarting, 1));
    let reason = u.reason.unwrap_or_default();
    assert!(
        reason.starts_with("cannot start: ") && reason.contains("; retry 1 of 3 in "),
        "{reason}"
    );
    assert!(tracks.next_wake().is_some_and(|w| w > t0));

    let job = self::job(NEVER);
    let held = self::held(&job, Desired::Run);
    let mut tracks = Tracks::new(7);
    let u = start_failed(
        &mut tracks,
        &held[&key().0],
        &job.tasks[0],
        &missing,
        now(t0),
    );
    let u = u.expect("new");
    assert_eq!(u.state, TaskState::Failed);
    assert!(tracks.is_done(&key()));
}

#[test]
fn a_report_that_did_not_arrive_is_sent_again() {
    let t0 = Instant::now();
    let job = job(ON_FAILURE);
    let held = held(&job, Desired::Run);
    let running = [container("c1", "i1", 0, ContainerState::Running)];
    let mut tracks = Tracks::new(7);
    let first = plan(&held, &running, &mut tracks, now(t0));
    let [Action::Report(u)] = &first.actions[..] else {
        panic!("{:?}", first.actions);
    };
    assert_eq!(plan(&held, &running, &mut tracks, now(t0)).actions, vec![]);
    tracks.unreport(std::slice::from_ref(u));
    let again = plan(&held, &running, &mut tracks, now(t0));
    assert_eq!(again.actions, first.actions);
}

/// Issue 18 item 1: a container created but refused at start (a missing binary, a host port
/// taken) stays behind as `Created` (or `Exited`); its failure was counted when the start failed,
/// so later passes neither start it again nor count it again before the backoff is over.
#[test]
fn a_start_refused_waits_out_its_backoff_and_counts_once() {
    let t0 = Instant::now();
    let job = job(ON_FAILURE);
    let held = held(&job, Desired::Run);
    let (a, task) = (&held[&key().0], &job.tasks[0]);
    for left in [ContainerState::Created, exited(127)] {
        let mut tracks = Tracks::new(7);
        let first = plan(&held, &[], &mut tracks, now(t0));
        let shown: Vec<String> = first.actions.iter().map(show).collect();
        assert_eq!(shown, ["report t Starting r0", "start t#0"]);
        let refused = Error::runtime(RuntimeErrorKind::Other, "exec: nosuchbinary: not found");
        let u = start_failed(&mut tracks, a, task, &refused, now(t0)).expect("new");
        assert_eq!((u.state, u.restarts), (TaskState::Restarting, 1));
        let due = tracks.next_restart().expect("a backoff runs");
        assert!(due >= t0 + Duration::from_millis(1800), "{left:?}");
        let leftover = [container("c0", "i1", 0, left.clone())];
        for at in [
            t0,
            t0 + Duration::from_millis(500),
            due - Duration::from_millis(1),
        ] {
            let p = plan(&held, &leftover, &mut tracks, now(at));
            let shown: Vec<String> = p.actions.iter().map(show).collect();
            assert_eq!(shown, ["remove c0, restart later"], "{left:?}");
            assert_eq!(
                tracks.get(&key()).unwrap().restart.attempts(),
                1,
                "{left:?}"
            );
            assert_eq!(p.wake_at, Some(due), "{left:?}");
        }
        let p = plan(&held, &leftover, &mut tracks, now(due));
        let shown: Vec<String> = p.actions.iter().map(show).collect();
        assert_eq!(
            shown,
            ["report t Starting r1", "start t#1 replacing c0"],
            "{left:?}"
        );
    }
}

/// Issue 18 item 2: a task the manager knows ended for good (its assignment lists it) is never
/// started again, by a restarted agent that finds no container of it, or one.
#[test]
fn a_task_that_ended_stays_ended() {
    let t0 = Instant::now();
    let job = job(ON_FAILURE);
    let mut held = held(&job, Desired::Run);
    held.get_mut(&key().0).unwrap().ended = vec![TaskName::new("t")];
    for containers in [
        vec![],
        vec![container("c2", "i1", 1, ContainerState::Created)],
        vec![container("c2", "i1", 1, exited(1))],
    ] {
        let mut tracks = Tracks::new(7);
        let p = plan(&held, &containers, &mut tracks, now(t0));
        assert_eq!(p.actions, vec![], "{containers:?}");
        assert!(tracks.is_done(&key()));
    }
}
