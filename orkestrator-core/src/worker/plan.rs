//! The worker's reconcile as a value: from the assignments it holds, the containers its runtime
//! shows, what it remembers of every task ([`Tracks`]) and the time, [`plan`] decides what to do —
//! start, stop, remove, restart later, report — as a list of [`Action`]s, which the agent carries
//! out. No I/O, no clock, no locks: the same inputs give the same plan, and the tests below are
//! tables of situations and the actions they lead to.
//!
//! The plan updates the [`Tracks`] it is given (a restart counted, a report remembered so that it
//! is sent once), and so do [`started`] and [`start_failed`], which turn the outcome of a start
//! into the task's next state.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::container;
use super::order::{self, Gate};
use super::restart::AfterExit;
use super::tracks::{TaskKey, Track, Tracks};
use crate::api::{Assignment, Desired, TaskUpdate};
use crate::clock::Millis;
use crate::error::{Error, RuntimeErrorKind};
use crate::ids::{InstanceId, TaskName};
use crate::runtime::{ContainerInfo, ContainerState};
use crate::spec::Task;
use crate::state::TaskState;
use crate::units::format_duration;

/// The time a plan is made at: the monotonic clock for deadlines, the wall clock for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// For backoffs and checks.
    pub(crate) at: Instant,
    /// Milliseconds since the Unix epoch, for the `next_start_at` the manager shows.
    pub(crate) unix_ms: Millis,
}

/// One thing the agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Tell the manager about a task's new state.
    Report(TaskUpdate),
    /// Stop and remove a container in the background: an older attempt of a task, or a task's
    /// container when its instance was told to stop.
    Stop {
        /// The container.
        container: String,
        /// How long it has to stop before it is killed; `None`: the worker's `--stop-grace`.
        grace: Option<Duration>,
    },
    /// Stop a container in the background and keep it (its logs and exit stay readable): a
    /// sidecar whose instance's other tasks ended.
    Halt {
        /// The container.
        container: String,
        /// How long it has to stop before it is killed; `None`: the worker's `--stop-grace`.
        grace: Option<Duration>,
    },
    /// Stop and remove, in the background, a container of an instance not assigned here.
    RemoveGhost {
        /// The container.
        container: String,
        /// The instance its labels name.
        instance: String,
        /// The task its labels name.
        task: String,
    },
    /// Create and start generation `attempt` of a task's container, removing `replace` (the
    /// exited container it restarts) first.
    Start {
        /// The task.
        key: TaskKey,
        /// The container's generation.
        attempt: u32,
        /// The exited container to remove first.
        replace: Option<String>,
    },
    /// Start a task's container that was created but never started.
    StartCreated {
        /// The task.
        key: TaskKey,
        /// The container.
        container: String,
    },
    /// Remove a task's exited container now; the restart is due at `at` (a later plan starts it).
    RestartAt {
        /// The task.
        key: TaskKey,
        /// The exited container.
        remove: String,
        /// When the restart is due.
        at: Instant,
    },
}

/// A plan: what to do now, and when to look again at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// In order: stops and removals first (to free resources), then each task's reports and
    /// starts.
    pub(crate) actions: Vec<Action>,
    /// The earliest pending restart or health check.
    pub(crate) wake_at: Option<Instant>,
}

/// Decides what makes `containers` (this worker's, as listed) match `held`, updating `tracks`.
pub(crate) fn plan(
    held: &BTreeMap<InstanceId, Assignment>,
    containers: &[ContainerInfo],
    tracks: &mut Tracks,
    now: Now,
) -> Plan {
    tracks.retain_held(held);
    let mut by_task: BTreeMap<(&str, &str), Vec<&ContainerInfo>> = BTreeMap::new();
    for c in containers {
        by_task.entry(container::owner(c)).or_default().push(c);
    }
    let mut actions = Vec::new();
    // First everything that goes away (older attempts, instances told to stop, containers of
    // instances not assigned here), so that resources are freed before new containers start.
    let mut to_run = Vec::new();
    for a in held.values() {
        // Every task after the tasks it depends on: a dependency's news of this pass reaches
        // its dependents in the same pass.
        let mut currents = Vec::new();
        for task in order::start_order(&a.job) {
            let mut cs = by_task
                .remove(&(a.instance.as_str(), task.name.as_str()))
                .unwrap_or_default();
            // Newest attempt first; anything older is a leftover.
            cs.sort_by_key(|c| std::cmp::Reverse(container::attempt(c)));
            let mut cs = cs.into_iter();
            let current = cs.next();
            actions.extend(cs.map(|c| Action::Stop {
                container: c.id.clone(),
                grace: None,
            }));
            currents.push((task, current));
        }
        if a.desired == Desired::Stop {
            let has_container =
                |n: &TaskName| currents.iter().any(|(t, c)| &t.name == n && c.is_some());
            for (task, current) in &currents {
                let held_up = order::held_up_by(&a.job, task, has_container);
                stop_task(a, task, *current, held_up, tracks, &mut actions);
            }
        } else {
            to_run.push((a, currents));
        }
    }
    for ((instance, task), cs) in by_task {
        actions.extend(cs.into_iter().map(|c| Action::RemoveGhost {
            container: c.id.clone(),
            instance: instance.to_owned(),
            task: task.to_owned(),
        }));
    }
    // Then what should run.
    for (a, currents) in to_run {
        let running = |n: &TaskName| {
            currents
                .iter()
                .any(|(t, c)| &t.name == n && c.is_some_and(|c| c.state == ContainerState::Running))
        };
        // Sidecars finish once every other task ended: as seen before this pass, or in it.
        let finishing = order::main_tasks_ended(a, tracks);
        for &(task, current) in &currents {
            if finishing && task.sidecar {
                let held_up = order::held_up_by(&a.job, task, running);
                finish_sidecar(a, task, current, held_up, tracks, &mut actions);
            } else {
                run_task(a, task, current, tracks, now, &mut actions);
            }
        }
        if !finishing && order::main_tasks_ended(a, tracks) {
            for &(task, current) in currents.iter().filter(|(t, _)| t.sidecar) {
                let held_up = order::held_up_by(&a.job, task, running);
                finish_sidecar(a, task, current, held_up, tracks, &mut actions);
            }
        }
    }
    Plan {
        actions,
        wake_at: tracks.next_wake(),
    }
}

/// An instance told to stop: stop its container once no task that must stop first still has
/// one (dependents first, sidecars last), or report it stopped once it is gone.
fn stop_task(
    a: &Assignment,
    task: &Task,
    current: Option<&ContainerInfo>,
    held_up: Option<&TaskName>,
    tracks: &mut Tracks,
    actions: &mut Vec<Action>,
) {
    let tr = tracks.entry(&a.instance, &task.name);
    let mut u = update(a, task, TaskState::Stopping, tr.restart.attempts());
    match current {
        Some(c) => {
            u.container_id = Some(c.id.clone());
            if let Some(first) = held_up {
                u.reason = Some(format!("stopping after {first}"));
            }
            actions.extend(tr.report(u).map(Action::Report));
            // Reported `Stopped` on a later pass, once the container is gone.
            if held_up.is_none() {
                actions.push(Action::Stop {
                    container: c.id.clone(),
                    grace: task.stop_grace,
                });
            }
        }
        None => {
            u.state = TaskState::Stopped;
            u.reason = Some("stopped on request".into());
            actions.extend(tr.report(u).map(Action::Report));
        }
    }
}

/// A sidecar whose instance's other tasks all ended: stop it (after the sidecars that depend on
/// it), keep its container, and report it `Completed` once it is down, whatever its exit.
fn finish_sidecar(
    a: &Assignment,
    task: &Task,
    current: Option<&ContainerInfo>,
    held_up: Option<&TaskName>,
    tracks: &mut Tracks,
    actions: &mut Vec<Action>,
) {
    let tr = tracks.entry(&a.instance, &task.name);
    if tr.restart.is_done() || a.ended.contains(&task.name) {
        return;
    }
    let why = "the instance's other tasks ended";
    let running =
        current.filter(|c| matches!(c.state, ContainerState::Running | ContainerState::Other(_)));
    match running {
        Some(c) => {
            let mut u = update(a, task, TaskState::Stopping, tr.restart.attempts());
            u.container_id = Some(c.id.clone());
            u.reason = Some(match held_up {
                Some(first) => format!("{why}; stopping after {first}"),
                None => why.to_owned(),
            });
            actions.extend(tr.report(u).map(Action::Report));
            if held_up.is_none() {
                actions.push(Action::Halt {
                    container: c.id.clone(),
                    grace: task.stop_grace,
                });
            }
        }
        None => {
            tr.restart.end();
            let mut u = update(a, task, TaskState::Completed, tr.restart.attempts());
            u.reason = Some(format!("stopped: {why}"));
            if let Some(c) = current {
                u.container_id = Some(c.id.clone());
                if let ContainerState::Exited { code, .. } = c.state {
                    u.exit_code = Some(code);
                }
            }
            actions.extend(tr.report(u).map(Action::Report));
        }
    }
}

/// A task that should run, given its newest container.
fn run_task(
    a: &Assignment,
    task: &Task,
    current: Option<&ContainerInfo>,
    tracks: &mut Tracks,
    now: Now,
    actions: &mut Vec<Action>,
) {
    let key = (a.instance.clone(), task.name.clone());
    let gate = if current.is_none() && !task.depends_on.is_empty() {
        order::gate(a, task, tracks)
    } else {
        Gate::Open
    };
    let tr = tracks.entry(&a.instance, &task.name);
    if let Some(c) = current {
        tr.restart.saw_generation(container::attempt(c));
    }
    if a.ended.contains(&task.name) {
        // The manager recorded its end (this agent may have restarted since and forgotten it).
        tr.restart.end();
    }
    if tr.restart.is_done() {
        return;
    }
    let Some(c) = current else {
        if !tr.opened {
            // Its first start waits for its dependencies.
            match gate {
                Gate::Open => tr.opened = true,
                Gate::Wait(why) => {
                    let mut u = update(a, task, TaskState::Waiting, tr.restart.attempts());
                    u.reason = Some(why);
                    actions.extend(tr.report(u).map(Action::Report));
                    return;
                }
                Gate::Fail(why) => {
                    tr.restart.end();
                    let mut u = update(a, task, TaskState::Failed, tr.restart.attempts());
                    u.reason = Some(format!("not started: {why}"));
                    actions.extend(tr.report(u).map(Action::Report));
                    return;
                }
            }
        }
        if tr.restart.start_due(now.at) {
            start(a, task, tr, key, None, actions);
        }
        return;
    };
    tr.opened = true;
    let stopped = matches!(
        c.state,
        ContainerState::Created | ContainerState::Exited { .. }
    );
    if stopped && tr.restart.accounted(container::attempt(c)) {
        // A container whose exit or refused start was counted already (one created but refused at
        // start stays behind as created): replace it once the backoff is over, remove it before.
        match tr.restart.next_start() {
            Some(at) if now.at < at => actions.push(Action::RestartAt {
                key,
                remove: c.id.clone(),
                at,
            }),
            _ => start(a, task, tr, key, Some(c.id.clone()), actions),
        }
        return;
    }
    match &c.state {
        ContainerState::Running => {
            let since = tr.restart.observe_running(now.at, &task.restart.backoff);
            tr.health.running(since, task.health_check.as_ref());
            let mut u = update(a, task, TaskState::Running, tr.restart.attempts());
            u.container_id = Some(c.id.clone());
            u.healthy = tr.health.verdict();
            actions.extend(tr.report(u).map(Action::Report));
        }
        ContainerState::Created => actions.push(Action::StartCreated {
            key,
            container: c.id.clone(),
        }),
        ContainerState::Other(_) => {}
        ContainerState::Exited { code, reason } => {
            let code = *code;
            let unhealthy = tr.health.exited();
            // A container stopped for failing its health check failed, whatever it exited with
            // (a service that shuts down cleanly on SIGTERM exits 0).
            let failed = code != 0 || unhealthy.is_some();
            let reason = unhealthy
                .map(|u| format!("unhealthy: {u}"))
                .or_else(|| reason.clone());
            let after = tr.restart.exited(&task.restart, failed, now.at);
            let mut u = match after {
                AfterExit::Restart { attempt, delay, .. } => {
                    let why = format!(
                        "exited with code {code}{}",
                        reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    );
                    restarting(a, task, attempt, delay, now, &why, "restart")
                }
                AfterExit::Done => {
                    let state = if failed {
                        TaskState::Failed
                    } else {
                        TaskState::Completed
                    };
                    let restarts = tr.restart.attempts();
                    let mut u = update(a, task, state, restarts);
                    u.reason = match (failed, reason) {
                        (false, _) => None,
                        (true, Some(r)) => Some(format!("exited with code {code} ({r})")),
                        (true, None) if restarts > 0 => {
                            Some(format!("exited with code {code} after {restarts} restarts"))
                        }
                        (true, None) => Some(format!("exited with code {code}")),
                    };
                    u
                }
            };
            u.exit_code = Some(code);
            u.container_id = Some(c.id.clone());
            actions.extend(tr.report(u).map(Action::Report));
            match after {
                // Keep the exited container (and its logs) until the job is stopped.
                AfterExit::Done => {}
                AfterExit::Restart { at, .. } if now.at < at => actions.push(Action::RestartAt {
                    key,
                    remove: c.id.clone(),
                    at,
                }),
                AfterExit::Restart { .. } => start(a, task, tr, key, Some(c.id.clone()), actions),
            }
        }
    }
}

/// Reports `Starting` and starts the task's next container.
fn start(
    a: &Assignment,
    task: &Task,
    tr: &mut Track,
    key: TaskKey,
    replace: Option<String>,
    actions: &mut Vec<Action>,
) {
    let attempt = tr.restart.starting();
    let u = update(a, task, TaskState::Starting, tr.restart.attempts());
    actions.extend(tr.report(u).map(Action::Report));
    actions.push(Action::Start {
        key,
        attempt,
        replace,
    });
}

/// A task's container `container` started at `now`: the update to report, if new.
pub(crate) fn started(
    tracks: &mut Tracks,
    a: &Assignment,
    task: &Task,
    container: String,
    now: Instant,
) -> Option<TaskUpdate> {
    let tr = tracks.entry(&a.instance, &task.name);
    tr.restart.started(now);
    let mut u = update(a, task, TaskState::Running, tr.restart.attempts());
    u.container_id = Some(container);
    tr.report(u)
}

/// Whether `e` says the engine itself is unreachable (not the task's fault).
pub(crate) fn engine_unavailable(e: &Error) -> bool {
    matches!(
        e,
        Error::Runtime {
            kind: RuntimeErrorKind::Unavailable,
            ..
        }
    )
}

/// A task's container could not be created or started: that counts as a failed run, unless the
/// engine is unavailable (then the start is simply tried again on the next pass). Returns the
/// update to report, if new.
pub(crate) fn start_failed(
    tracks: &mut Tracks,
    a: &Assignment,
    task: &Task,
    e: &Error,
    now: Now,
) -> Option<TaskUpdate> {
    if engine_unavailable(e) {
        return None;
    }
    let tr = tracks.entry(&a.instance, &task.name);
    let u = match tr.restart.exited(&task.restart, true, now.at) {
        AfterExit::Restart { attempt, delay, .. } => restarting(
            a,
            task,
            attempt,
            delay,
            now,
            &format!("cannot start: {e}"),
            "retry",
        ),
        AfterExit::Done => {
            let mut u = update(a, task, TaskState::Failed, tr.restart.attempts());
            u.reason = Some(format!("cannot start: {e}"));
            u
        }
    };
    tr.report(u)
}

/// The `Restarting` update for restart number `attempt`, due `delay` after `now`.
fn restarting(
    a: &Assignment,
    task: &Task,
    attempt: u32,
    delay: Duration,
    now: Now,
    why: &str,
    what: &str,
) -> TaskUpdate {
    let ms = delay.as_millis() as u64;
    let mut u = update(a, task, TaskState::Restarting, attempt);
    u.next_start_at = Some(now.unix_ms + ms);
    // "restart 3 of 5 in 20s"; without a limit, "restart 3 in 20s".
    let of = if task.restart.is_unlimited() {
        String::new()
    } else {
        format!(" of {}", task.restart.max_attempts)
    };
    u.reason = Some(format!(
        "{why}; {what} {attempt}{of} in {}",
        format_duration(Duration::from_millis(ms))
    ));
    u
}

/// A bare update of one task to `state`.
fn update(a: &Assignment, task: &Task, state: TaskState, restarts: u32) -> TaskUpdate {
    TaskUpdate {
        instance: a.instance.clone(),
        task: task.name.clone(),
        state,
        exit_code: None,
        reason: None,
        container_id: None,
        restarts,
        next_start_at: None,
        healthy: None,
    }
}

#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;
