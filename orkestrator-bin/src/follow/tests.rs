use super::*;
use orkestrator_core::ids::SchedulerId;

fn placed(i: &str) -> EventKind {
    EventKind::InstancePlaced {
        job: JobId::new("j"),
        instance: InstanceId::new(i),
        worker: WorkerId::new("w1"),
        scheduler: SchedulerId::new("s"),
        pending_ms: 0,
    }
}

fn task(i: &str, from: TaskState, to: TaskState, reason: Option<&str>) -> EventKind {
    EventKind::TaskStateChanged {
        job: JobId::new("j"),
        instance: InstanceId::new(i),
        task: TaskName::new("main"),
        from,
        to,
        reason: reason.map(String::from),
    }
}

fn empty(goal: Goal, want: u32) -> JobModel {
    JobModel {
        job: JobId::new("j"),
        goal,
        version: 1,
        want,
        stale: false,
        instances: BTreeMap::new(),
        failure: None,
        gone: false,
    }
}

fn updated(version: u64) -> EventKind {
    EventKind::JobUpdated {
        job: JobId::new("j"),
        version,
    }
}

/// A picture of job `j` at `version` wanting `count`, with instances (id, index, version,
/// task state).
fn view(version: u64, count: u32, insts: &[(&str, u32, u64, TaskState)]) -> JobView {
    use orkestrator_core::api::{InstanceView, JobPhase, TaskStatus};
    use orkestrator_core::spec::{Format, parse_job};
    let spec = parse_job(
        &format!("name: j\ncount: {count}\ntasks: [{{name: main, image: img:{version}}}]"),
        Format::Yaml,
    )
    .unwrap();
    JobView {
        name: JobId::new("j"),
        phase: JobPhase::Starting,
        version,
        submitted_at: 0,
        spec,
        instances: insts
            .iter()
            .map(|(id, index, version, state)| InstanceView {
                id: InstanceId::new(*id),
                index: *index,
                version: *version,
                worker: Some(WorkerId::new("w1")),
                desired: Desired::Run,
                pending_reason: None,
                tasks: [(TaskName::new("main"), TaskStatus::new(*state))].into(),
                usage: Default::default(),
            })
            .collect(),
        index: 7,
    }
}

#[test]
fn old_version_instances_running_do_not_satisfy_a_wait_for_the_new_one() {
    use TaskState::*;
    // A rolling update to version 2 of a job of 2: both version 1 instances still run, the
    // first replacement is starting.
    let v = view(
        2,
        2,
        &[
            ("a", 0, 1, Running),
            ("b", 1, 1, Running),
            ("c", 0, 2, Starting),
        ],
    );
    let mut m = JobModel::from_view(&v, Goal::Running);
    assert_eq!(m.version(), 2);
    assert_eq!(m.counts(), (1, 0, 2));
    assert_eq!(m.verdict(), Verdict::Waiting);
    m.apply(&task("c", Starting, Running, None));
    assert_eq!(m.counts(), (1, 1, 2));
    assert_eq!(m.verdict(), Verdict::Waiting, "one of version 2 runs");
    // A version 1 instance failing is not the new version's failure.
    m.apply(&task("b", Running, Failed, Some("exited with code 1")));
    assert_eq!(m.verdict(), Verdict::Waiting);
    // The second replacement (first seen in events: of the newest version) runs.
    m.apply(&placed("d"));
    m.apply(&task("d", Starting, Running, None));
    assert_eq!(m.counts(), (2, 2, 2));
    assert_eq!(m.verdict(), Verdict::Done { completed: false });
}

#[test]
fn a_newer_submission_is_followed_and_its_instances_waited_for() {
    use TaskState::*;
    let mut m = JobModel::from_view(&view(1, 1, &[("a", 0, 1, Running)]), Goal::Running);
    assert_eq!(m.verdict(), Verdict::Done { completed: false });
    let line = m.apply(&updated(2)).unwrap();
    assert_eq!(
        line,
        "version 2 submitted; waiting for it instead of version 1"
    );
    assert!(m.stale());
    assert_eq!(m.version(), 2);
    // Until a new picture says what version 2 wants, the version 1 instance that still runs
    // does not end the wait (nor does anything else).
    assert_eq!(m.verdict(), Verdict::Waiting);
    assert_eq!(m.counts().1, 0);
    // The new picture: version 2 wants 1, its instance starts, then runs.
    let mut m = JobModel::from_view(
        &view(2, 1, &[("b", 0, 2, Starting), ("a", 0, 1, Running)]),
        Goal::Running,
    );
    assert!(!m.stale());
    assert_eq!(m.verdict(), Verdict::Waiting);
    m.apply(&task("b", Starting, Running, None));
    assert_eq!(m.verdict(), Verdict::Done { completed: false });
    // Its own (or an older) version's event changes nothing.
    assert_eq!(m.apply(&updated(2)).as_deref(), Some("version 2 submitted"));
    assert!(!m.stale());
}

#[test]
fn a_manager_that_does_not_report_instance_versions_counts_every_running_one() {
    use TaskState::*;
    let m = JobModel::from_view(&view(3, 1, &[("a", 0, 0, Running)]), Goal::Running);
    assert_eq!(m.verdict(), Verdict::Done { completed: false });
}

#[test]
fn backoff_grows_to_its_cap_across_reconnects_and_resets_on_an_item() {
    let mut b = Backoff::default();
    let pauses: Vec<u64> = (0..9).map(|_| b.pause().as_millis() as u64).collect();
    assert_eq!(pauses, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert_eq!(b.peek(), Backoff::MAX);
    b.reset();
    assert_eq!(b.pause(), Backoff::MIN);
    assert_eq!(b.peek(), Duration::from_millis(200));
}

#[test]
fn running_needs_every_wanted_instance() {
    use TaskState::*;
    let mut m = empty(Goal::Running, 2);
    m.apply(&placed("a"));
    m.apply(&task("a", Scheduled, Running, None));
    assert_eq!(m.counts(), (1, 1, 2));
    assert_eq!(m.verdict(), Verdict::Waiting);
    m.apply(&placed("b"));
    m.apply(&task("b", Starting, Running, None));
    assert_eq!(m.verdict(), Verdict::Done { completed: false });
    assert_eq!(m.progress(), "j: placed 2/2, running 2/2");
}

#[test]
fn a_failed_task_fails_the_wait_with_its_reason() {
    use TaskState::*;
    let mut m = empty(Goal::Running, 1);
    m.apply(&task("a", Starting, Running, None));
    m.apply(&task("a", Running, Failed, Some("exited with code 3")));
    match m.verdict() {
        Verdict::Failed(why) => assert!(why.contains("exited with code 3"), "{why}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn a_lost_instance_is_not_waited_for_and_its_replacement_is() {
    use TaskState::*;
    let mut m = empty(Goal::Running, 1);
    m.apply(&task("a", Running, Lost, Some("worker down")));
    assert_eq!(m.verdict(), Verdict::Waiting);
    m.apply(&placed("b"));
    m.apply(&task("b", Starting, Running, None));
    assert_eq!(m.verdict(), Verdict::Done { completed: false });
}

#[test]
fn stop_is_done_when_every_task_ended() {
    use TaskState::*;
    let mut m = empty(Goal::Stopped, 1);
    m.apply(&task("a", Running, Stopping, None));
    assert_eq!(m.verdict(), Verdict::Waiting);
    m.apply(&task("a", Stopping, Stopped, None));
    assert_eq!(m.verdict(), Verdict::Done { completed: true });
}
