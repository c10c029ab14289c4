//! What reads return: job and worker views, paged lists, the health summary, a worker's
//! assignments (whole or as a delta), and where a task's logs are. Pure functions of the state,
//! each touching only what it shows.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Millis, Now};

use crate::api::*;
use crate::ids::{JobId, TaskName, WorkerId};
use crate::state::TaskState;
use crate::units::format_duration;

use super::deadlines::liveness;
use super::state::{Instance, JobEntry, State, WorkerEntry};
use crate::ids::{InstanceKey as Key, instance_id};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// How long a `continue` token stays valid.
pub(crate) const TOKEN_TTL_MS: u64 = 3_600_000;

fn instance_view(job: &JobId, number: u64, i: &Instance, e: &JobEntry) -> InstanceView {
    let spec = e.spec_of(i);
    InstanceView {
        id: instance_id(job, i.index, number),
        index: i.index,
        version: i.version,
        worker: i.worker.clone(),
        desired: i.desired,
        pending_reason: i.pending_reason.clone(),
        tasks: spec
            .tasks
            .iter()
            .zip(&i.tasks)
            .map(|(t, s)| (t.name.clone(), s.clone()))
            .collect(),
        usage: Default::default(),
    }
}

/// One job and its instances (the current version first, then older ones).
pub(crate) fn job_view(st: &State, name: &JobId) -> Option<JobView> {
    let e = st.jobs.get(name)?;
    let mut insts: Vec<(&u64, &Instance)> = e.instances.iter().collect();
    insts.sort_by(|(na, a), (nb, b)| {
        b.version
            .cmp(&a.version)
            .then(a.index.cmp(&b.index))
            .then(na.cmp(nb))
    });
    Some(JobView {
        name: name.clone(),
        phase: e.phase,
        version: e.rec.version,
        submitted_at: e.rec.submitted_at,
        spec: (**e.spec()).clone(),
        instances: insts
            .into_iter()
            .map(|(n, i)| instance_view(name, *n, i, e))
            .collect(),
        index: st.head,
    })
}

/// A line of the job list.
pub(crate) fn job_summary(name: &JobId, e: &JobEntry) -> JobSummary {
    let phase = e.phase;
    let mut workers: Vec<WorkerId> = Vec::new();
    let mut seen = BTreeSet::new();
    for i in e.instances.values().filter(|i| i.desired == Desired::Run) {
        if let Some(w) = &i.worker
            && seen.insert(w)
        {
            workers.push(w.clone());
        }
    }
    let reason = if phase == JobPhase::Pending {
        e.instances
            .values()
            .find(|i| i.pending())
            .and_then(|i| i.pending_reason.clone())
    } else {
        e.instances
            .values()
            .filter(|i| i.version == e.rec.version)
            .find_map(|i| {
                let spec = e.spec_of(i);
                spec.tasks
                    .iter()
                    .zip(&i.tasks)
                    .find(|(_, s)| s.state == TaskState::Failed)
                    .map(|(t, s)| {
                        format!(
                            "task {}: {}",
                            t.name,
                            s.reason.clone().unwrap_or_else(|| "failed".into())
                        )
                    })
            })
    };
    JobSummary {
        name: name.clone(),
        phase,
        version: e.rec.version,
        tasks: e.spec().tasks.len(),
        instances: e.tally.current,
        placed: e.tally.current.saturating_sub(e.tally.unplaced),
        workers,
        reason,
    }
}

/// Encodes a page token: the last key shown and when the token was made (`now`).
fn token(kind: char, last: &str, now: Millis) -> String {
    let mut s = format!("{kind}1.{:x}.", now);
    for b in last.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Decodes a page token of `kind`: the key to continue after, if the token has not expired at
/// `now`.
fn untoken(kind: char, t: &str, now: Millis) -> ApiResult<String> {
    let bad = || {
        ApiError::bad_request(
            "invalid_continue",
            format!(
                "continue token {t:?} is malformed: pass the `continue` value of the previous page as it was given, or leave it out to start from the first page"
            ),
        )
    };
    let rest = t
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix("1."))
        .ok_or_else(bad)?;
    let (made, key) = rest.split_once('.').ok_or_else(bad)?;
    let made = u64::from_str_radix(made, 16).map_err(|_| bad())?;
    if key.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..key.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key[i..i + 2], 16).ok())
        .collect();
    let key = bytes
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    if now.saturating_sub(made) > TOKEN_TTL_MS {
        return Err(ApiError::bad_request(
            "expired_continue",
            format!(
                "continue token {t:?} has expired (tokens last {} minutes): start the listing again without `continue`",
                TOKEN_TTL_MS / 60_000
            ),
        ));
    }
    Ok(key)
}

/// The page size and the key to continue after.
fn page_start(kind: char, q: &ListQuery, now: Millis) -> ApiResult<(usize, Option<String>)> {
    let limit = q.limit()?;
    let after = q
        .after
        .as_deref()
        .map(|t| untoken(kind, t, now))
        .transpose()?;
    Ok((limit, after))
}

/// Takes up to `limit` items of `it` (ordered by key) into a page; its token is made at `now`.
fn page<'a, V: 'a, T>(
    kind: char,
    limit: usize,
    it: impl Iterator<Item = (&'a str, V)>,
    view: impl Fn(V) -> T,
    now: Millis,
) -> Page<T> {
    let mut it = it.peekable();
    let mut items = Vec::new();
    let mut last = None;
    while items.len() < limit {
        let Some((k, v)) = it.next() else { break };
        last = Some(k);
        items.push(view(v));
    }
    let next = match (last, it.peek()) {
        (Some(k), Some(_)) => Some(token(kind, k, now)),
        _ => None,
    };
    Page { items, next }
}

fn after(key: &Option<String>) -> (Bound<&str>, Bound<&str>) {
    match key {
        Some(k) => (Bound::Excluded(k.as_str()), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// One page of the job list, at wall time `now` (continue tokens expire).
pub(crate) fn job_page(st: &State, q: &ListQuery, now: Millis) -> ApiResult<Page<JobSummary>> {
    let (limit, key) = page_start('j', q, now)?;
    let it = st
        .jobs
        .range::<str, _>(after(&key))
        .map(|(k, e)| (k.as_str(), (k, e)));
    Ok(page('j', limit, it, |(k, e)| job_summary(k, e), now))
}

/// A worker as the manager sees it at `now`: its liveness as the last heartbeat or liveness
/// pass decided it.
pub(crate) fn worker_view(w: &WorkerEntry, now: Instant) -> WorkerView {
    let silent = now.saturating_duration_since(w.last_seen);
    let message = if w.suspected {
        Some(format!(
            "no heartbeat for {}, but most workers went silent at once, so the manager suspects itself or the network and does not declare it Down; it is Ready again at its next heartbeat, or Down one grace after most workers are back",
            format_duration(silent)
        ))
    } else {
        w.message.clone()
    };
    WorkerView {
        id: w.reg.id.clone(),
        status: w.liveness,
        message,
        address: w.reg.address.clone(),
        labels: w.reg.labels.clone(),
        host_volumes: w.reg.host_volumes.clone(),
        resources: w.resources,
        reserved: w.reserved.resources,
        instances: w.reserved.instances as usize,
        last_seen_ms_ago: silent.as_millis() as u64,
        usage: None,
        tasks_usage: None,
    }
}

/// One page of the worker list.
pub(crate) fn worker_page(st: &State, q: &ListQuery, now: Now) -> ApiResult<Page<WorkerView>> {
    let (limit, key) = page_start('w', q, now.wall)?;
    let it = st
        .workers
        .range::<str, _>(after(&key))
        .map(|(k, w)| (k.as_str(), w));
    Ok(page(
        'w',
        limit,
        it,
        |w| worker_view(w, now.instant),
        now.wall,
    ))
}

/// The health summary.
pub(crate) fn health(
    st: &State,
    grace: Duration,
    uptime: Duration,
    durable: u64,
    store: StoreStats,
    now: Instant,
) -> HealthReport {
    let mut workers = std::collections::BTreeMap::new();
    let unready = st.counts.unready.len() as u64;
    workers.insert(
        Liveness::Ready,
        st.workers.len() as u64 - unready.min(st.workers.len() as u64),
    );
    let mut unready_workers = Vec::new();
    for id in &st.counts.unready {
        if let Some(w) = st.workers.get(id) {
            *workers.entry(w.liveness).or_insert(0) += 1;
            if unready_workers.len() < HealthReport::MAX_LISTED {
                unready_workers.push(worker_view(w, now));
            }
        }
    }
    workers.retain(|_, n| *n > 0);
    let tasks = TaskState::ALL
        .iter()
        .map(|s| (*s, st.counts.tasks[*s as usize]))
        .filter(|(_, n)| *n > 0)
        .collect();
    let jobs = st
        .counts
        .phases
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(p, n)| (*p, *n))
        .collect();
    let failing_jobs = st
        .counts
        .failing
        .iter()
        .take(HealthReport::MAX_LISTED)
        .filter_map(|n| st.jobs.get(n).map(|e| job_summary(n, e)))
        .collect();
    HealthReport {
        manager: ManagerHealth {
            status: Liveness::Ready,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            index: durable,
            uptime_ms: uptime.as_millis() as u64,
            store,
        },
        schedulers: st
            .schedulers
            .iter()
            .map(|(id, s)| SchedulerView {
                id: id.clone(),
                algorithm: s.algorithm.clone(),
                status: liveness(true, s.last_seen, grace, now),
                last_seen_ms_ago: now.duration_since(s.last_seen).as_millis() as u64,
            })
            .collect(),
        workers,
        jobs,
        tasks,
        unready_workers,
        failing_jobs,
        managers: Vec::new(),
    }
}

fn assignment(st: &State, key: &Key) -> Option<Assignment> {
    let e = st.jobs.get(&key.0)?;
    let i = e.instances.get(&key.1)?;
    let job = e.spec_of(i);
    // Tasks and their statuses are in the same order.
    let ended = job
        .tasks
        .iter()
        .zip(&i.tasks)
        .filter(|(_, s)| matches!(s.state, TaskState::Completed | TaskState::Failed))
        .map(|(t, _)| t.name.clone())
        .collect();
    Some(Assignment {
        instance: instance_id(&key.0, i.index, key.1),
        index: i.index,
        desired: i.desired,
        job: job.clone(),
        ended,
        version: i.version,
    })
}

/// A worker's assignments: everything, or what changed since `index` when its log reaches back.
pub(crate) fn assignments(st: &State, worker: &WorkerId, index: u64) -> Assignments {
    let Some(w) = st.workers.get(worker) else {
        return Assignments {
            index,
            full: true,
            instances: vec![],
            removed: vec![],
            volumes_to_remove: vec![],
        };
    };
    if index == 0 || index < w.log_floor || index > st.head {
        return Assignments {
            index: w.assign_index,
            full: true,
            instances: w
                .assigned
                .iter()
                .filter_map(|k| assignment(st, k))
                .collect(),
            removed: vec![],
            volumes_to_remove: st.volumes.removing_on(worker),
        };
    }
    let changed: BTreeSet<(&Key, u32)> = w
        .log
        .iter()
        .rev()
        .take_while(|(i, _, _)| *i > index)
        .map(|(_, k, idx)| (k, *idx))
        .collect();
    let mut instances = Vec::new();
    let mut removed = Vec::new();
    for (k, idx) in changed {
        if w.assigned.contains(k) {
            instances.extend(assignment(st, k));
        } else {
            removed.push(instance_id(&k.0, idx, k.1));
        }
    }
    Assignments {
        index: w.assign_index,
        full: false,
        instances,
        removed,
        volumes_to_remove: st.volumes.removing_on(worker),
    }
}

/// Where a task's output is.
pub(crate) fn log_source(
    st: &State,
    job: &JobId,
    task: Option<&str>,
    index: u32,
) -> ApiResult<LogSource> {
    log_target(st, job, task, index)?.source
}

/// Where a task's output is now, for following it from container to container.
#[derive(Debug)]
pub(crate) struct LogTarget {
    /// Its current container, or why it has none (yet).
    pub source: ApiResult<LogSource>,
    /// Whether no further container will come: the job is stopped, the index is past the job's
    /// count, or the task ended for good (completed or failed) in the instance meant to run.
    pub ended: bool,
}

/// Where a task's output is now and whether more can come; an error for a job, task or index
/// that does not exist.
pub(crate) fn log_target(
    st: &State,
    job: &JobId,
    task: Option<&str>,
    index: u32,
) -> ApiResult<LogTarget> {
    let e = st
        .jobs
        .get(job)
        .ok_or_else(|| ApiError::not_found("job", job))?;
    let spec = e.spec();
    let names: Vec<&str> = spec.tasks.iter().map(|t| t.name.as_str()).collect();
    let task = match (task, names.as_slice()) {
        (Some(t), _) if names.contains(&t) => TaskName::new(t),
        (Some(t), _) => {
            return Err(ApiError::bad_request(
                "unknown_task",
                format!(
                    "job \"{job}\" has no task \"{t}\"; its tasks: {}",
                    names.join(", ")
                ),
            ));
        }
        (None, [only]) => TaskName::new(*only),
        (None, _) => {
            return Err(ApiError::bad_request(
                "task_required",
                format!(
                    "job \"{job}\" has {} tasks ({}): name one with --task (`?task=NAME` in the API)",
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    // The current instance with that index, else the newest instance with it.
    let with_index = || e.instances.iter().rev().filter(|(_, i)| i.index == index);
    let Some((number, inst)) = with_index()
        .find(|(_, i)| i.desired == Desired::Run && i.version == e.rec.version)
        .or_else(|| with_index().find(|(_, i)| i.desired == Desired::Run))
        .or_else(|| with_index().next())
    else {
        return Err(ApiError::bad_request(
            "unknown_index",
            format!(
                "job \"{job}\" has no instance {index}; its count is {}",
                spec.count
            ),
        ));
    };
    let ispec = e.spec_of(inst);
    let status = ispec
        .tasks
        .iter()
        .position(|t| t.name == task)
        .map(|p| &inst.tasks[p]);
    let ended = e.rec.stopped
        || index >= spec.count
        || (inst.desired == Desired::Run
            && status.is_some_and(|t| matches!(t.state, TaskState::Completed | TaskState::Failed)));
    let source = source_of(st, job, index, task, *number, inst, status);
    Ok(LogTarget { source, ended })
}

fn source_of(
    st: &State,
    job: &JobId,
    index: u32,
    task: TaskName,
    number: u64,
    inst: &Instance,
    status: Option<&TaskStatus>,
) -> ApiResult<LogSource> {
    let Some(worker) = inst.worker.clone() else {
        let why = inst
            .pending_reason
            .as_deref()
            .unwrap_or("waiting for a scheduler");
        return Err(ApiError::conflict(format!(
            "instance {index} of job \"{job}\" is not placed yet ({why}): no output to show"
        )));
    };
    let Some(container_id) = status.and_then(|t| t.container_id.clone()) else {
        let state = status.map_or("not started".to_owned(), |t| t.state.to_string());
        return Err(ApiError::conflict(format!(
            "task \"{task}\" of instance {index} of job \"{job}\" has no container yet ({state}) on worker \"{worker}\""
        )));
    };
    let address = st
        .workers
        .get(&worker)
        .and_then(|w| w.reg.address.clone())
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "worker \"{worker}\" has no endpoint to read logs from (it registered without an address)"
            ))
        })?;
    Ok(LogSource {
        instance: instance_id(job, inst.index, number),
        index,
        task,
        worker,
        address,
        container_id,
    })
}
