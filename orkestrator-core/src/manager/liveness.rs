//! Registrations, heartbeats and failure detection. Registrations are durable; liveness is soft
//! (its events are published at once, under the last durable index); what a dead worker ran is
//! marked `Lost` and replaced, durably.
//!
//! A worker misses its deadline one grace after its last heartbeat, the grace of the pace in
//! force when it was answered ([`pace`]). The manager does not blame workers for its own delays:
//! a heartbeat counts from when it arrived, not from when the state lock was free, and the time
//! the manager stalled between two liveness passes ([`stall`]) pushes every deadline back. When
//! most workers miss their deadline at once ([`mass_silence`]) the manager suspects itself or the
//! network: they are `Unhealthy`, not `Down`, until they heartbeat again; once a pass finds the
//! share back under the threshold, those still silent get one more grace from then, and are
//! `Down` if it passes without a heartbeat.

use crate::api::*;
use crate::clock::Now;
use crate::events::EventKind;
use crate::ids::{SchedulerId, WorkerId};
use crate::spec::{MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES};
use crate::state::TaskState;
use crate::store::StoreOp;

use super::commit::Txn;
use super::config::ManagerConfig;
use super::deadlines::{Pace, lease_expired, liveness, mass_silence, pace, stall};
use super::jobs::{advance_rollout, end_tasks, new_instance};
use super::reconcile;
use super::state::{SchedulerEntry, State, WorkerEntry};
use crate::ids::{InstanceKey as Key, instance_id};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Longest worker or scheduler id, in bytes.
pub const MAX_COMPONENT_ID_BYTES: usize = 253;
/// Most labels a worker may register with.
pub const MAX_WORKER_LABELS: usize = 64;
/// The most host volumes a worker may offer.
pub const MAX_HOST_VOLUMES: usize = 64;
/// Longest address a worker may give for its own endpoint, in bytes.
pub const MAX_WORKER_ADDRESS_BYTES: usize = 255;
/// Longest software version a worker may give, or algorithm name a scheduler may give, in bytes.
pub const MAX_COMPONENT_TEXT_BYTES: usize = 128;

/// The code of a registration refused for breaking one of the limits above (a 400).
pub const REGISTRATION_LIMIT: &str = "limit_exceeded";

/// `Err` naming the limit that `n` breaks when it is more than `max`.
pub(crate) fn within(what: &str, n: usize, max: usize, unit: &str) -> ApiResult<()> {
    if n <= max {
        return Ok(());
    }
    Err(ApiError::bad_request(
        REGISTRATION_LIMIT,
        format!("{what}: {n} {unit}; at most {max} are allowed"),
    ))
}

/// Holds a worker's registration to the limits on its id, labels, address and version.
fn check_worker_limits(req: &RegisterWorker) -> ApiResult<()> {
    within(
        "worker id",
        req.id.as_str().len(),
        MAX_COMPONENT_ID_BYTES,
        "bytes",
    )?;
    within("labels", req.labels.len(), MAX_WORKER_LABELS, "labels")?;
    within(
        "host volumes",
        req.host_volumes.len(),
        MAX_HOST_VOLUMES,
        "host volumes",
    )?;
    for name in req.host_volumes.keys() {
        if !crate::worker::host_volumes::valid_name(name) {
            return Err(ApiError::bad_request(
                REGISTRATION_LIMIT,
                format!(
                    "host volume name {name:?} is not a name: lowercase letters, digits, '-', '_' and '.', starting with a letter or digit, at most {} bytes",
                    crate::worker::host_volumes::MAX_NAME_BYTES
                ),
            ));
        }
    }
    for (k, v) in &req.labels {
        within("a label key", k.len(), MAX_LABEL_KEY_BYTES, "bytes")?;
        within(
            &format!("label {k:?}"),
            v.len(),
            MAX_LABEL_VALUE_BYTES,
            "bytes",
        )?;
    }
    if let Some(a) = &req.address {
        within("address", a.len(), MAX_WORKER_ADDRESS_BYTES, "bytes")?;
    }
    within(
        "version",
        req.version.len(),
        MAX_COMPONENT_TEXT_BYTES,
        "bytes",
    )
}

/// The pace workers are asked to keep now.
pub(crate) fn worker_pace(st: &State, cfg: &ManagerConfig) -> Pace {
    pace(st.live_workers, cfg)
}

/// Registers or re-registers a worker (durable).
pub(crate) fn register_worker(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    req: RegisterWorker,
    now: Now,
) -> ApiResult<()> {
    if req.id.as_str().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_id",
            "worker id: must not be empty",
        ));
    }
    check_worker_limits(&req)?;
    let now = now.instant;
    let index = st.head + 1;
    let id = req.id.clone();
    let counted = st
        .workers
        .get(&id)
        .is_some_and(|w| w.liveness != Liveness::Down);
    if !counted {
        st.live_workers += 1;
    }
    let grace = pace(st.live_workers, cfg).grace;
    match st.workers.get_mut(&id) {
        Some(w) => {
            w.reg = req.clone();
            w.reg_index = index;
            w.resources = req.resources;
            w.healthy = true;
            w.message = None;
            w.last_seen = now;
            w.deadline = now + grace;
            w.suspected = false;
            w.down_since = None;
        }
        None => {
            st.workers
                .insert(id.clone(), WorkerEntry::new(req.clone(), index, now, grace));
        }
    }
    st.set_liveness(&id, Liveness::Ready);
    st.capacity_grew();
    txn.ops.push(StoreOp::PutWorker(req));
    txn.events.push(EventKind::WorkerRegistered { worker: id });
    Ok(())
}

/// Records a heartbeat that arrived at `arrived` (before any wait for the state lock, which is
/// the manager's delay, not the worker's); returns the soft events it caused and the pace the
/// worker is to keep from now on.
pub(crate) fn heartbeat(
    st: &mut State,
    cfg: &ManagerConfig,
    id: &WorkerId,
    hb: WorkerHeartbeat,
    arrived: Now,
) -> ApiResult<(Vec<EventKind>, Pace)> {
    let Some(w) = st.workers.get(id) else {
        return Err(ApiError::not_found("worker", id));
    };
    if w.liveness == Liveness::Down {
        st.live_workers += 1;
    }
    let told = pace(st.live_workers, cfg);
    let Some(w) = st.workers.get_mut(id) else {
        return Err(ApiError::not_found("worker", id));
    };
    let was = w.liveness;
    w.last_seen = w.last_seen.max(arrived.instant);
    w.deadline = w.deadline.max(arrived.instant + told.grace);
    w.suspected = false;
    let grew = hb.resources.total != w.resources.total || (hb.healthy && !w.healthy);
    w.resources = hb.resources;
    w.healthy = hb.healthy;
    w.message = hb.message;
    w.down_since = None;
    let now_live = if w.healthy {
        Liveness::Ready
    } else {
        Liveness::Unhealthy
    };
    let mut soft = Vec::new();
    if now_live != was {
        st.set_liveness(id, now_live);
        soft.push(EventKind::WorkerLiveness {
            worker: id.clone(),
            status: now_live,
        });
    }
    if grew || (now_live == Liveness::Ready && was != Liveness::Ready) {
        st.capacity_grew();
    }
    Ok((soft, told))
}

/// Registers or re-registers a scheduler (soft).
pub(crate) fn register_scheduler(
    st: &mut State,
    req: RegisterScheduler,
    now: Now,
) -> ApiResult<Vec<EventKind>> {
    if req.id.as_str().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_id",
            "scheduler id: must not be empty",
        ));
    }
    within(
        "scheduler id",
        req.id.as_str().len(),
        MAX_COMPONENT_ID_BYTES,
        "bytes",
    )?;
    within(
        "algorithm",
        req.algorithm.len(),
        MAX_COMPONENT_TEXT_BYTES,
        "bytes",
    )?;
    let algorithm = if req.algorithm.is_empty() {
        st.schedulers
            .get(&req.id)
            .map(|s| s.algorithm.clone())
            .unwrap_or_default()
    } else {
        req.algorithm
    };
    st.schedulers.insert(
        req.id.clone(),
        SchedulerEntry {
            algorithm,
            last_seen: now.instant,
            liveness: Liveness::Ready,
        },
    );
    Ok(vec![EventKind::SchedulerRegistered { scheduler: req.id }])
}

/// Records a scheduler's heartbeat.
pub(crate) fn scheduler_heartbeat(st: &mut State, id: &SchedulerId, now: Now) -> ApiResult<()> {
    match st.schedulers.get_mut(id) {
        Some(s) => {
            s.last_seen = now.instant;
            Ok(())
        }
        None => Err(ApiError::not_found("scheduler", id)),
    }
}

/// A stall of the manager this long or longer is logged as a warning (shorter ones, timer jitter
/// mostly, at debug level); every stall is counted out of the workers' deadlines either way.
const STALL_WORTH_A_WARNING: std::time::Duration = std::time::Duration::from_millis(250);

/// One liveness pass; returns the soft events to publish. `previous` is when the pass before it
/// ran (`None` for a pass called on its own): the gap beyond the passes' interval was the
/// manager's stall, and is counted out of every worker's deadline.
pub(crate) fn check(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    at: Now,
    previous: Option<tokio::time::Instant>,
) -> Vec<EventKind> {
    let grace = cfg.heartbeat_grace;
    let now = at.instant;
    let mut soft = Vec::new();
    let stalled = stall(previous, now, super::deadlines::pass_every(cfg));
    if !stalled.is_zero() {
        // Timer jitter makes every pass a few milliseconds late: only a real stall is news.
        if stalled >= STALL_WORTH_A_WARNING {
            tracing::warn!(
                stalled_ms = stalled.as_millis() as u64,
                "the manager stalled; worker deadlines are pushed back by as much"
            );
        } else {
            tracing::debug!(
                stalled_ms = stalled.as_millis() as u64,
                "liveness pass late; worker deadlines are pushed back by as much"
            );
        }
        for w in st.workers.values_mut() {
            w.deadline += stalled;
        }
    }
    let judging = st.judge_workers_after.is_none_or(|t| now >= t);
    let considered = st
        .workers
        .values()
        .filter(|w| w.liveness != Liveness::Down)
        .count();
    let silent = st
        .workers
        .values()
        .filter(|w| w.liveness != Liveness::Down && now > w.deadline)
        .count();
    let mass = judging && mass_silence(considered, silent);
    if mass && st.mass_silence.is_none() {
        st.mass_silence = Some(now);
        tracing::warn!(
            silent,
            workers = considered,
            "most workers are silent at once: the manager suspects itself or the network, and marks them Unhealthy, not Down"
        );
    } else if !mass && let Some(since) = st.mass_silence.take() {
        // The suspicion ends: whoever is still silent gets one more grace from now.
        tracing::info!(
            lasted_ms = now.saturating_duration_since(since).as_millis() as u64,
            silent,
            workers = considered,
            "the mass silence is over; workers still silent get one more grace"
        );
        let fresh = now + pace(considered, cfg).grace;
        for w in st.workers.values_mut().filter(|w| w.suspected) {
            w.deadline = w.deadline.max(fresh);
        }
    }
    let mut changed = Vec::new();
    for (id, w) in st.workers.iter_mut() {
        if w.liveness == Liveness::Down {
            continue;
        }
        let live = if now <= w.deadline {
            if w.suspected || !w.healthy {
                Liveness::Unhealthy
            } else {
                Liveness::Ready
            }
        } else if !judging {
            // While workers are still finding a new leader, silence is not yet death.
            w.liveness
        } else if mass {
            w.suspected = true;
            Liveness::Unhealthy
        } else {
            Liveness::Down
        };
        if live != w.liveness {
            changed.push((id.clone(), live));
        }
    }
    let mut went_down = Vec::new();
    for (id, live) in changed {
        st.set_liveness(&id, live);
        if live == Liveness::Down {
            if let Some(w) = st.workers.get_mut(&id) {
                w.down_since = Some(at.wall);
                w.suspected = false;
            }
            went_down.push(id.clone());
        }
        soft.push(EventKind::WorkerLiveness {
            worker: id,
            status: live,
        });
    }
    st.live_workers = considered - went_down.len();
    // Schedulers: a change of liveness is an event, which also wakes the waiting schedulers so
    // that a dead scheduler's leases move at once. One down for 20 grace periods is forgotten.
    let mut scheduler_changed = false;
    st.schedulers.retain(|id, s| {
        let live = liveness(true, s.last_seen, grace, now);
        if live != s.liveness {
            s.liveness = live;
            scheduler_changed = true;
            soft.push(EventKind::SchedulerLiveness {
                scheduler: id.clone(),
                status: live,
            });
        }
        now.duration_since(s.last_seen) < grace * 20
    });
    // Leases past their timeout, or held by a scheduler that is down, go back to the queue.
    let expired: Vec<u64> = st
        .leased
        .iter()
        .filter(|(_, l)| {
            lease_expired(
                l.at,
                st.schedulers.get(&l.scheduler).map(|s| s.last_seen),
                now,
                cfg.lease_timeout,
                grace,
            )
        })
        .map(|(n, _)| *n)
        .collect();
    if !expired.is_empty() {
        for n in expired {
            if let Some(l) = st.leased.remove(&n) {
                st.ready.insert(n, l.job);
            }
        }
        st.work.notify_waiters();
        soft.push(EventKind::LeasesExpired);
    } else if scheduler_changed {
        st.work.notify_waiters();
    }
    for worker in went_down {
        lose_worker(st, txn, cfg, &worker, at);
    }
    // Rolling updates waiting out the minimum healthy time move on here.
    let rolling: Vec<_> = st.rolling.iter().cloned().collect();
    for job in rolling {
        advance_rollout(st, txn, cfg, &job, at);
    }
    soft
}

/// Marks what a down worker ran `Lost`, tells it to stop, and replaces it elsewhere: one copy per
/// instance index. The worker's watch returns when it is back, and it stops the lost instances.
fn lose_worker(st: &mut State, txn: &mut Txn, cfg: &ManagerConfig, worker: &WorkerId, at: Now) {
    let Some(w) = st.workers.get(worker) else {
        return;
    };
    let on_worker: Vec<(u64, bool, bool)> = w
        .assigned
        .iter()
        .filter_map(|k| {
            let i = st.instance(k)?;
            let done = i
                .tasks
                .iter()
                .all(|t| matches!(t.state, TaskState::Completed | TaskState::Failed));
            Some((k.1, i.desired == Desired::Run, done))
        })
        .collect();
    let keys: Vec<Key> = w.assigned.iter().cloned().collect();
    let lost = reconcile::lost_on_down_worker(&on_worker);
    for key in keys.into_iter().filter(|k| lost.contains(&k.1)) {
        let Some(i) = st.instance(&key) else { continue };
        let (index, version) = (i.index, i.version);
        let id = instance_id(&key.0, index, key.1);
        let reason = format!("worker {worker} is down; replaced on another worker");
        let mut events = Vec::new();
        st.with_instance(&key, txn, |i, spec| {
            i.desired = Desired::Stop;
            end_tasks(i, spec, &id, TaskState::Lost, &reason, &mut events, at.wall);
        });
        txn.events.extend(events);
        if let Some(spec) = st.spec_of(&key) {
            super::volumes::worker_lost(st, txn, &key.0, index, &spec, worker);
        }
        let current = st
            .jobs
            .get(&key.0)
            .is_some_and(|j| !j.rec.stopped && j.rec.version == version);
        if current {
            let reason = format!("replacing {id} (worker {worker} is down)");
            new_instance(st, txn, &key.0, index, Some(reason), at.wall);
        } else {
            // An instance of an older version: the rollout replaces it with the new spec.
            advance_rollout(st, txn, cfg, &key.0, at);
        }
    }
}
