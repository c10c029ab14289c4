//! The order of an instance's tasks: which may start ([`gate`]), in which order the plan looks
//! at them ([`start_order`]), and which may stop yet ([`held_up_by`]). No I/O: what the tasks
//! did so far comes from their [`Tracks`].
//!
//! - A task waits for its `depends_on` before its first start only: a task that has had a
//!   container (started here, or adopted after a worker restart) is never gated again, and a
//!   dependency's later restart does not touch its dependents.
//! - A dependency that fails for good fails its waiting dependents, which never start.
//! - Tasks stop in reverse: a task stops once no task that depends on it still has a container,
//!   and sidecars stop after every other task.

use super::tracks::{Track, Tracks};
use crate::api::Assignment;
use crate::ids::TaskName;
use crate::spec::{Condition, Job, Task};
use crate::state::TaskState;

/// Whether a task may make its first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Every dependency is as asked.
    Open,
    /// Not yet: `waiting for db to be healthy` (every unmet condition, in the job's order).
    Wait(String),
    /// Never: a dependency failed for good, or ended without meeting the condition.
    Fail(String),
}

/// Whether `task` of instance `a` may start, from what its dependencies did so far.
pub(crate) fn gate(a: &Assignment, task: &Task, tracks: &Tracks) -> Gate {
    let mut waiting = Vec::new();
    for (dep, cond) in &task.depends_on {
        let track = tracks.get(&(a.instance.clone(), dep.clone()));
        match condition_state(a, dep, *cond, track) {
            Met::Yes => {}
            Met::NotYet => waiting.push(cond.waiting_for(dep.as_str())),
            Met::Never(why) => return Gate::Fail(why),
        }
    }
    if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Wait(format!("waiting for {}", waiting.join(", ")))
    }
}

enum Met {
    Yes,
    NotYet,
    Never(String),
}

fn condition_state(a: &Assignment, dep: &TaskName, cond: Condition, track: Option<&Track>) -> Met {
    let outcome = track.and_then(Track::outcome);
    match (cond, outcome) {
        (_, Some((TaskState::Failed, Some(why)))) => Met::Never(format!("{dep} failed: {why}")),
        (_, Some((TaskState::Failed, None))) => Met::Never(format!("{dep} failed")),
        (Condition::CompletedSuccessfully, Some((TaskState::Completed, _))) => Met::Yes,
        (Condition::Started, Some(_)) => Met::Yes,
        (Condition::Healthy, Some(_)) if track.is_some_and(Track::was_healthy) => Met::Yes,
        (Condition::Healthy, Some(_)) => Met::Never(format!("{dep} ended before it was healthy")),
        (_, Some(_)) => Met::NotYet,
        // Ended as the manager recorded it, and this agent (restarted since) has no trace of how:
        // only its dependents' own state can tell, and they were decided then.
        (_, None) if a.ended.contains(dep) => Met::Yes,
        (Condition::Started, None) if track.is_some_and(Track::was_started) => Met::Yes,
        (Condition::Healthy, None) if track.is_some_and(Track::was_healthy) => Met::Yes,
        (_, None) => Met::NotYet,
    }
}

/// The job's tasks with every task after the tasks it depends on, otherwise in the job's order
/// (validation refuses cycles; were there one, its tasks come last, in the job's order).
pub(crate) fn start_order(job: &Job) -> Vec<&Task> {
    let mut placed: Vec<&Task> = Vec::with_capacity(job.tasks.len());
    let mut left: Vec<&Task> = job.tasks.iter().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            t.depends_on
                .keys()
                .all(|d| placed.iter().any(|p| &p.name == d))
        });
        match ready {
            Some(i) => placed.push(left.remove(i)),
            None => {
                placed.append(&mut left);
            }
        }
    }
    placed
}

/// Whether `task` must wait before it stops: a task that depends on it, or (for a sidecar) any
/// task that is not a sidecar, still has a container. `has_container` says which tasks of the
/// instance still have one. Returns the first such task.
pub(crate) fn held_up_by<'j>(
    job: &'j Job,
    task: &Task,
    has_container: impl Fn(&TaskName) -> bool,
) -> Option<&'j TaskName> {
    job.tasks
        .iter()
        .filter(|t| t.name != task.name)
        .filter(|t| t.depends_on.contains_key(&task.name) || (task.sidecar && !t.sidecar))
        .map(|t| &t.name)
        .find(|n| has_container(n))
}

/// Whether every task of `a` that is not a sidecar ended for good: its sidecars are then
/// finished, and the instance completes.
pub(crate) fn main_tasks_ended(a: &Assignment, tracks: &Tracks) -> bool {
    a.job
        .tasks
        .iter()
        .filter(|t| !t.sidecar)
        .all(|t| a.ended.contains(&t.name) || tracks.is_done(&(a.instance.clone(), t.name.clone())))
        && a.job.tasks.iter().any(|t| !t.sidecar)
}
