//! Placement: pending instances leased to schedulers in batches, and their decisions committed
//! only if they still fit (optimistic concurrency), so a slow or remote scheduler can never
//! over-commit a worker.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::*;
use crate::clock::{Millis, Now};
use crate::events::EventKind;
use crate::ids::{JobId, SchedulerId, WorkerId};
use crate::scheduler::{Request, check_fit};
use crate::state::TaskState;

use super::commit::Txn;
use super::config::ManagerConfig;
use super::deadlines::lease_expired;
use super::state::{Lease, State, WorkerEntry};
use crate::ids::{InstanceKey as Key, instance_id, parse_id};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Leases up to `max_work` ready instances to `scheduler`, oldest first, with a snapshot of the
/// ready workers. `None` when nothing waits.
pub(crate) fn take_work(
    st: &mut State,
    cfg: &ManagerConfig,
    scheduler: &SchedulerId,
    now: Now,
) -> ApiResult<Option<SchedulingWork>> {
    let s = st
        .schedulers
        .get_mut(scheduler)
        .ok_or_else(|| ApiError::not_found("scheduler", scheduler))?;
    let now = now.instant;
    s.last_seen = now;
    // Leases of schedulers that died or took too long go to whoever asks.
    let stale: Vec<u64> = st
        .leased
        .iter()
        .filter(|(_, l)| {
            &l.scheduler != scheduler
                && lease_expired(
                    l.at,
                    st.schedulers.get(&l.scheduler).map(|s| s.last_seen),
                    now,
                    cfg.lease_timeout,
                    cfg.heartbeat_grace,
                )
        })
        .map(|(n, _)| *n)
        .collect();
    for n in stale {
        if let Some(l) = st.leased.remove(&n) {
            st.ready.insert(n, l.job);
        }
    }
    if st.ready.is_empty() {
        return Ok(None);
    }
    let mut pending = Vec::new();
    let mut jobs: BTreeSet<JobId> = BTreeSet::new();
    while pending.len() < cfg.max_work {
        let Some((number, job)) = st.ready.pop_first() else {
            break;
        };
        let Some(e) = st.jobs.get(&job) else { continue };
        let Some(i) = e.instances.get(&number) else {
            continue;
        };
        let spec = e.spec_of(i);
        pending.push(PendingInstance {
            instance: instance_id(&job, i.index, number),
            index: i.index,
            job: spec.clone(),
            pinned: super::volumes::pin(st, &job, i.index, spec),
        });
        st.leased.insert(
            number,
            Lease {
                job: job.clone(),
                scheduler: scheduler.clone(),
                at: now,
                epoch: st.capacity_epoch,
            },
        );
        jobs.insert(job);
    }
    if pending.is_empty() {
        return Ok(None);
    }
    let workers = st
        .workers
        .values()
        .filter(|w| ready(w, now))
        .map(|w| snapshot(w, |j| jobs.contains(j)))
        .collect();
    Ok(Some(SchedulingWork {
        index: st.head,
        pending,
        workers,
    }))
}

/// Whether new work may go to `w`: `Ready`, and not past its deadline (a pass may not have
/// judged it yet).
fn ready(w: &WorkerEntry, now: tokio::time::Instant) -> bool {
    w.liveness == Liveness::Ready && w.healthy && now <= w.deadline
}

/// A worker as a scheduler sees it, with the per-job counts of the jobs `wanted` says.
fn snapshot(w: &WorkerEntry, wanted: impl Fn(&JobId) -> bool) -> WorkerSnapshot {
    let r = &w.reserved;
    WorkerSnapshot {
        id: w.reg.id.clone(),
        labels: w.reg.labels.clone(),
        host_volumes: w.reg.host_volumes.clone(),
        total: w.resources.total,
        allocated: r.resources,
        ports_in_use: r.ports.keys().copied().collect(),
        instances: r.instances,
        jobs: r
            .jobs
            .iter()
            .filter(|(j, _)| wanted(j))
            .map(|(j, n)| (j.clone(), *n))
            .collect::<BTreeMap<_, _>>(),
        // Filled from the metrics window once the state lock is let go (`Schedulers::work`).
        measured: None,
    }
}

/// Commits the decisions that still fit and refuses the rest, each with its reason.
pub(crate) fn decide(
    st: &mut State,
    txn: &mut Txn,
    scheduler: &SchedulerId,
    decisions: Vec<Decision>,
    now: Now,
) -> ApiResult<Vec<DecisionResult>> {
    if !st.schedulers.contains_key(scheduler) {
        return Err(ApiError::not_found("scheduler", scheduler));
    }
    // A scheduler decides only what it leased: naming another's lease is refused whole (403),
    // before anything is changed.
    for d in &decisions {
        let other = parse_id(&d.instance)
            .and_then(|k| st.leased.get(&k.1))
            .filter(|l| &l.scheduler != scheduler);
        if let Some(l) = other {
            return Err(super::tokens::forbidden(
                "not_your_lease",
                format!(
                    "instance {} is leased to scheduler \"{}\", not to \"{scheduler}\": a scheduler decides only instances it leased",
                    d.instance, l.scheduler
                ),
            ));
        }
    }
    let mut results = Vec::with_capacity(decisions.len());
    for d in decisions {
        let refuse = |reason: &str| DecisionResult {
            instance: d.instance.clone(),
            accepted: false,
            reason: Some(reason.into()),
        };
        let Some(key) = parse_id(&d.instance).filter(|k| st.instance(k).is_some()) else {
            results.push(refuse("unknown instance"));
            continue;
        };
        let inst = st.instance(&key).expect("checked");
        if !inst.pending() {
            results.push(refuse("instance no longer needs a placement"));
            continue;
        }
        let lease = st.leased.get(&key.1).cloned();
        if lease.is_none() {
            results.push(refuse(
                "instance is not leased to this scheduler (its lease expired?): take work again",
            ));
            continue;
        }
        let epoch = lease.as_ref().map_or(st.capacity_epoch, |l| l.epoch);
        let accepted = DecisionResult {
            instance: d.instance.clone(),
            accepted: true,
            reason: None,
        };
        match d.outcome {
            DecisionOutcome::Unschedulable { reason } => {
                unschedulable(st, txn, &key, &d.instance, reason, epoch);
                results.push(accepted);
            }
            DecisionOutcome::Place { worker } => {
                match place(st, txn, &key, &d.instance, &worker, scheduler, now) {
                    Ok(()) => results.push(accepted),
                    Err(why) => {
                        // Back to the queue: the next request for work offers it again.
                        requeue(st, &key);
                        results.push(refuse(&why));
                    }
                }
            }
        }
    }
    Ok(results)
}

fn requeue(st: &mut State, key: &Key) {
    st.leased.remove(&key.1);
    st.blocked.remove(&key.1);
    st.ready.insert(key.1, key.0.clone());
    st.work.notify_waiters();
}

fn unschedulable(
    st: &mut State,
    txn: &mut Txn,
    key: &Key,
    id: &crate::ids::InstanceId,
    reason: String,
    epoch: u64,
) {
    st.leased.remove(&key.1);
    st.ready.remove(&key.1);
    if epoch == st.capacity_epoch {
        st.blocked.insert(key.1, key.0.clone());
    } else {
        // Capacity changed since it was judged: look again.
        st.ready.insert(key.1, key.0.clone());
        st.work.notify_waiters();
    }
    let same = st
        .instance(key)
        .is_some_and(|i| i.pending_reason.as_deref() == Some(reason.as_str()));
    if same {
        return;
    }
    st.with_instance(key, txn, |i, _| {
        i.pending_reason = Some(reason.clone());
        for t in &mut i.tasks {
            t.reason = Some(reason.clone());
        }
    });
    txn.events.push(EventKind::InstanceUnschedulable {
        job: key.0.clone(),
        instance: id.clone(),
        reason,
    });
}

fn place(
    st: &mut State,
    txn: &mut Txn,
    key: &Key,
    id: &crate::ids::InstanceId,
    worker: &WorkerId,
    scheduler: &SchedulerId,
    at: Now,
) -> Result<(), String> {
    // The optimistic check: against the manager's own bookkeeping, now.
    let spec = st.spec_of(key).expect("checked");
    let index = st.instance(key).expect("checked").index;
    let snap = match st.workers.get(worker) {
        Some(w) if ready(w, at.instant) => snapshot(w, |j| *j == key.0),
        _ => return Err("worker is unknown or not ready".into()),
    };
    if let Some(pin) = super::volumes::pin(st, &key.0, index, &spec)
        && &pin != worker
    {
        return Err(format!(
            "volume data of instance {index} lives on worker {pin}: it runs there or nowhere"
        ));
    }
    if let Err(why) = check_fit(&Request::new(&spec, index), &snap) {
        return Err(format!("no longer fits on {worker}: {}", why.reason));
    }
    super::volumes::placed(st, txn, &key.0, index, &spec, worker, at.wall);
    let mut events = Vec::new();
    let mut pending_ms = 0;
    st.with_instance(key, txn, |i, spec| {
        let now: Millis = at.wall;
        pending_ms = i
            .tasks
            .iter()
            .map(|s| now.saturating_sub(s.since))
            .max()
            .unwrap_or(0);
        i.worker = Some(worker.clone());
        i.pending_reason = None;
        for (t, s) in spec.tasks.iter().zip(i.tasks.iter_mut()) {
            events.push(EventKind::TaskStateChanged {
                job: key.0.clone(),
                instance: id.clone(),
                task: t.name.clone(),
                from: s.state,
                to: TaskState::Scheduled,
                reason: Some(format!("placed on {worker}")),
            });
            *s = TaskStatus::new(TaskState::Scheduled);
            s.since = now;
        }
    });
    txn.events.extend(events);
    txn.events.push(EventKind::InstancePlaced {
        job: key.0.clone(),
        instance: id.clone(),
        worker: worker.clone(),
        scheduler: scheduler.clone(),
        pending_ms,
    });
    Ok(())
}
