//! Submissions, stops and task reports: the write paths of jobs, prepared under the state lock.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::api::*;
use crate::clock::{Millis, Now};
use crate::events::EventKind;
use crate::ids::{JobId, WorkerId};
use crate::spec::Job;
use crate::state::TaskState;
use crate::store::{JobRecord, StoreOp};

use super::commit::Txn;
use super::config::ManagerConfig;
use super::reconcile::{self, Action, InstanceFacts};
use super::state::{Instance, JobEntry, State};
use crate::ids::{InstanceKey as Key, instance_id, parse_id};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Creates or updates a job; an identical re-submission changes nothing.
pub(crate) fn submit(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    job: Job,
    now: Now,
) -> SubmitResponse {
    let name = job.name.clone();
    let (version, outcome) = match st.jobs.get(&name) {
        Some(e) if **e.spec() == job => {
            let version = e.rec.version;
            let outcome = if ended(e) {
                start_again(st, txn, &name, now.wall);
                SubmitOutcome::Restarted
            } else {
                SubmitOutcome::Unchanged
            };
            return SubmitResponse {
                job: name,
                version,
                outcome,
                index: 0,
            };
        }
        Some(e) => (e.rec.version + 1, SubmitOutcome::Updated),
        None => (1, SubmitOutcome::Created),
    };
    let old_phase = st.jobs.get(&name).map(|e| e.phase);
    let entry = st.jobs.entry(name.clone()).or_insert_with(|| {
        JobEntry::new(JobRecord {
            name: name.clone(),
            version: 0,
            submitted_at: now.wall,
            stopped: false,
            ended_at: None,
            restart_below: None,
        })
    });
    if old_phase.is_none() {
        // A new job: counted from here on.
        entry.phase = JobPhase::Pending;
    }
    let count = job.count;
    let spec = Arc::new(job);
    entry.specs.insert(version, spec.clone());
    entry.rec.version = version;
    entry.rec.stopped = false;
    entry.rec.ended_at = None;
    entry.rec.restart_below = None;
    txn.ops.push(StoreOp::PutSpec {
        job: name.clone(),
        version,
        spec,
    });
    txn.ops.push(StoreOp::PutJob(entry.rec.clone()));
    if old_phase.is_none() {
        st.set_phase(&name, None, Some(JobPhase::Pending));
    }
    st.recount(&name);
    // Instances that never got a worker are simply dropped; placed ones are replaced one at a
    // time (a rolling update) unless there are none, in which case all start at once.
    let entry = &st.jobs[&name];
    let mut placed = false;
    let mut unplaced = Vec::new();
    for (n, i) in &entry.instances {
        if i.desired == Desired::Run {
            if i.worker.is_some() {
                placed = true;
            } else {
                unplaced.push(*n);
            }
        }
    }
    for n in unplaced {
        stop_instance(st, txn, &(name.clone(), n), now.wall);
    }
    if placed {
        advance_rollout(st, txn, cfg, &name, now);
    } else {
        for index in 0..count {
            new_instance(st, txn, &name, index, None, now.wall);
        }
    }
    txn.events.push(if version > 1 {
        EventKind::JobUpdated {
            job: name.clone(),
            version,
        }
    } else {
        EventKind::JobSubmitted {
            job: name.clone(),
            version,
        }
    });
    SubmitResponse {
        job: name,
        version,
        outcome,
        index: 0,
    }
}

/// Whether a job has ended: stopped, or its current instances failed or completed for good.
pub(crate) fn ended(e: &JobEntry) -> bool {
    e.rec.stopped || matches!(e.phase, JobPhase::Failed | JobPhase::Completed)
}

/// Starts a job again under its current version: the instances told to run are told to stop
/// (they have ended, or end now), and `count` new ones start at once.
pub(crate) fn start_again(st: &mut State, txn: &mut Txn, name: &JobId, now: Millis) {
    let Some(entry) = st.jobs.get_mut(name) else {
        return;
    };
    entry.rec.stopped = false;
    entry.rec.ended_at = None;
    entry.rec.restart_below = None;
    txn.ops.push(StoreOp::PutJob(entry.rec.clone()));
    let (version, count) = (entry.rec.version, entry.spec().count);
    let running: Vec<u64> = entry
        .instances
        .iter()
        .filter(|(_, i)| i.desired == Desired::Run)
        .map(|(n, _)| *n)
        .collect();
    for n in running {
        stop_instance(st, txn, &(name.clone(), n), now);
    }
    st.rolling.remove(name);
    for index in 0..count {
        new_instance(st, txn, name, index, None, now);
    }
    st.recount(name);
    txn.events.push(EventKind::JobSubmitted {
        job: name.clone(),
        version,
    });
}

/// Restarts a job under its current version: a job that has ended starts every instance again
/// at once; a running one has its instances replaced one at a time, as a new version rolls out.
pub(crate) fn restart(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    name: &JobId,
    now: Now,
) -> ApiResult<SubmitResponse> {
    let Some(entry) = st.jobs.get_mut(name) else {
        return Err(ApiError::not_found("job", name));
    };
    let version = entry.rec.version;
    if ended(entry) {
        start_again(st, txn, name, now.wall);
    } else {
        entry.rec.restart_below = Some(st.next_instance);
        txn.ops.push(StoreOp::PutJob(entry.rec.clone()));
        txn.events.push(EventKind::JobSubmitted {
            job: name.clone(),
            version,
        });
        advance_rollout(st, txn, cfg, name, now);
    }
    Ok(SubmitResponse {
        job: name.clone(),
        version,
        outcome: SubmitOutcome::Restarted,
        index: 0,
    })
}

/// Stops a job: every instance is told to stop.
pub(crate) fn stop(st: &mut State, txn: &mut Txn, name: &JobId, now: Millis) -> ApiResult<()> {
    let Some(entry) = st.jobs.get_mut(name) else {
        return Err(ApiError::not_found("job", name));
    };
    if entry.rec.stopped {
        return Ok(());
    }
    entry.rec.stopped = true;
    entry.rec.ended_at = Some(now);
    txn.ops.push(StoreOp::PutJob(entry.rec.clone()));
    let numbers: Vec<u64> = entry.instances.keys().copied().collect();
    for n in numbers {
        stop_instance(st, txn, &(name.clone(), n), now);
    }
    st.rolling.remove(name);
    st.recount(name);
    txn.events.push(EventKind::JobStopped { job: name.clone() });
    Ok(())
}

/// Adds a pending instance `index` of `job` (current spec and version), with a new id, at `now`.
pub(crate) fn new_instance(
    st: &mut State,
    txn: &mut Txn,
    job: &JobId,
    index: u32,
    reason: Option<String>,
    now: Millis,
) -> Option<Key> {
    let entry = st.jobs.get(job)?;
    let spec = entry.spec();
    let reason = reason.unwrap_or_else(|| "waiting for a scheduler".into());
    let tasks = spec
        .tasks
        .iter()
        .map(|_| {
            let mut t = TaskStatus::new(TaskState::Pending);
            t.reason = None;
            t.since = now;
            t
        })
        .collect();
    let inst = Instance {
        index,
        version: entry.rec.version,
        worker: None,
        desired: Desired::Run,
        pending_reason: Some(reason),
        tasks,
        healthy_since: None,
    };
    Some(st.add_instance(job, inst, txn))
}

/// Moves every task of an instance that has not ended to the terminal state `to`, at `now`.
pub(crate) fn end_tasks(
    i: &mut Instance,
    spec: &Job,
    id: &crate::ids::InstanceId,
    to: TaskState,
    reason: &str,
    events: &mut Vec<EventKind>,
    now: Millis,
) {
    for (t, s) in spec.tasks.iter().zip(i.tasks.iter_mut()) {
        if s.state.is_terminal() {
            continue;
        }
        events.push(EventKind::TaskStateChanged {
            job: spec.name.clone(),
            instance: id.clone(),
            task: t.name.clone(),
            from: s.state,
            to,
            reason: Some(reason.to_owned()),
        });
        s.state = to;
        s.reason = Some(reason.to_owned());
        s.since = now;
    }
}

/// Tells an instance to stop. Unplaced instances stop at once; placed ones wait for their worker.
pub(crate) fn stop_instance(st: &mut State, txn: &mut Txn, key: &Key, now: Millis) {
    let id = match st.instance(key) {
        Some(i) if i.desired != Desired::Stop => instance_id(&key.0, i.index, key.1),
        _ => return,
    };
    let mut events = Vec::new();
    st.with_instance(key, txn, |i, spec| {
        i.desired = Desired::Stop;
        if i.worker.is_none() {
            i.pending_reason = None;
            end_tasks(
                i,
                spec,
                &id,
                TaskState::Stopped,
                "stopped before it was placed",
                &mut events,
                now,
            );
        }
    });
    txn.events.extend(events);
}

/// Whether an instance has run healthy: every task runs (or completed) and passes its health
/// check, if it has one.
fn healthy(i: &Instance, spec: &Job) -> bool {
    spec.tasks.iter().zip(&i.tasks).all(|(t, s)| {
        s.state == TaskState::Completed
            || (s.state == TaskState::Running
                && (t.health_check.is_none() || s.healthy == Some(true)))
    })
}

/// Moves a job's rolling update one step (see [`reconcile::rollout`]).
pub(crate) fn advance_rollout(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    job: &JobId,
    at: Now,
) {
    let now = at.instant;
    let Some(entry) = st.jobs.get_mut(job) else {
        st.rolling.remove(job);
        return;
    };
    let mut facts = Vec::with_capacity(entry.instances.len());
    for (n, i) in entry.instances.iter_mut() {
        let spec = &entry.specs[&i.version];
        i.healthy_since = if healthy(i, spec) {
            Some(i.healthy_since.unwrap_or(now))
        } else {
            None
        };
        facts.push(InstanceFacts {
            number: *n,
            index: i.index,
            version: i.version,
            run: i.desired == Desired::Run,
            placed: i.worker.is_some(),
            finished: i.all_terminal(),
            failed: i.tasks.iter().any(|t| t.state == TaskState::Failed),
            completed: i.tasks.iter().all(|t| t.state == TaskState::Completed),
            settled: i
                .healthy_since
                .is_some_and(|t| now.duration_since(t) >= cfg.min_healthy_time),
            stale: entry.rec.restart_below.is_some_and(|b| *n < b),
        });
    }
    let r = reconcile::rollout(
        entry.rec.version,
        entry.spec().count,
        entry.rec.stopped,
        &facts,
    );
    for a in r.actions {
        match a {
            Action::Stop { number } => stop_instance(st, txn, &(job.clone(), number), at.wall),
            Action::Create { index } => {
                new_instance(st, txn, job, index, Some("rolling update".into()), at.wall);
            }
        }
    }
    if r.done {
        st.rolling.remove(job);
    } else {
        st.rolling.insert(job.clone());
    }
}

/// Whether a worker's report of `to` for a task the manager marked `Lost` is stale: the worker
/// was judged `Down`, the instance was replaced elsewhere and set to stop, and the worker reports
/// what it did before its watch brought that stop (in `scale c1m`, `Starting` and `Running` for
/// instances it had just been given). Applying it would run one instance index twice; refusing
/// it as an error would count an expected race as a fault. It is left out, unanswered: the
/// worker stops its copy when the stop reaches it, and that report (`Stopping`, `Stopped`) is
/// recorded. A worker only suspected in a mass silence is `Unhealthy`, not `Down`, so its tasks
/// are never `Lost` and its reports apply as they are.
fn stale_after_loss(from: TaskState, to: TaskState) -> bool {
    from == TaskState::Lost
        && !matches!(
            to,
            TaskState::Lost | TaskState::Stopping | TaskState::Stopped
        )
}

/// Applies a worker's task updates; refuses unknown instances and illegal transitions.
pub(crate) fn report(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    worker: &WorkerId,
    updates: Vec<TaskUpdate>,
    now: Now,
) -> ApiResult<ReportResponse> {
    if !st.workers.contains_key(worker) {
        return Err(ApiError::not_found("worker", worker));
    }
    // A worker reports only for its own instances: naming another worker's is refused whole
    // (403), before anything is changed.
    for u in &updates {
        let owner = parse_id(&u.instance)
            .and_then(|k| st.instance(&k))
            .and_then(|i| i.worker.as_ref())
            .filter(|w| *w != worker);
        if let Some(owner) = owner {
            return Err(super::tokens::forbidden(
                "not_your_instance",
                format!(
                    "instance {} runs on worker \"{owner}\", not on \"{worker}\": a worker reports only its own tasks",
                    u.instance
                ),
            ));
        }
    }
    let mut rejected = Vec::new();
    let mut touched: BTreeSet<JobId> = BTreeSet::new();
    for u in updates {
        let reject = |reason: String| RejectedUpdate {
            instance: u.instance.clone(),
            task: u.task.clone(),
            reason,
        };
        let Some(key) = parse_id(&u.instance).filter(|k| st.instance(k).is_some()) else {
            rejected.push(reject("unknown instance: stop it".into()));
            continue;
        };
        let (inst, spec) = (
            st.instance(&key).expect("checked"),
            st.spec_of(&key).expect("checked"),
        );
        if inst.worker.as_ref() != Some(worker) {
            rejected.push(reject(
                "instance is not assigned to this worker: stop it".into(),
            ));
            continue;
        }
        let Some(pos) = spec.tasks.iter().position(|t| t.name == u.task) else {
            rejected.push(reject(format!(
                "instance has no task {:?}",
                u.task.as_str()
            )));
            continue;
        };
        let ts = &inst.tasks[pos];
        let from = ts.state;
        if stale_after_loss(from, u.state) {
            continue;
        }
        if let Err(e) = from.transition(u.state) {
            rejected.push(reject(e.to_string()));
            continue;
        }
        let changed = from != u.state
            || ts.exit_code != u.exit_code
            || ts.reason != u.reason
            || (u.container_id.is_some() && ts.container_id != u.container_id)
            || ts.restarts != u.restarts
            || ts.next_start_at != u.next_start_at
            || ts.healthy != u.healthy;
        if !changed {
            continue;
        }
        if from != u.state {
            txn.events.push(EventKind::TaskStateChanged {
                job: key.0.clone(),
                instance: u.instance.clone(),
                task: u.task.clone(),
                from,
                to: u.state,
                reason: u
                    .reason
                    .clone()
                    .or_else(|| u.exit_code.map(|c| format!("exit code {c}"))),
            });
        }
        st.with_instance(&key, txn, |i, _| {
            let ts = &mut i.tasks[pos];
            if from != u.state {
                ts.since = now.wall;
            }
            ts.state = u.state;
            ts.exit_code = u.exit_code;
            ts.reason = u.reason;
            if u.container_id.is_some() {
                ts.container_id = u.container_id;
            }
            ts.restarts = u.restarts;
            ts.next_start_at = u.next_start_at;
            ts.healthy = u.healthy;
        });
        touched.insert(key.0);
    }
    for job in &touched {
        if st.rolling.contains(job) {
            advance_rollout(st, txn, cfg, job, now);
        }
    }
    Ok(ReportResponse { rejected })
}
