//! Named volumes in the manager's state: where each instance index's data lives, the rule that
//! sends the instance of that index back to it, and the only path by which one is ever removed —
//! the manager decides (garbage collection, or an operator's `volume rm`), tells the worker in its
//! assignments, and forgets the record once the worker confirms. A worker never removes a volume
//! on its own judgement, and a manager that knows of no volume (an empty state) tells nobody to
//! remove anything.

use crate::api::{ApiError, VolumeList, VolumeRecord, VolumeRef, VolumeState, VolumeView};
use crate::clock::Millis;
use crate::ids::{JobId, WorkerId};
use crate::spec::{Job, OnWorkerLoss};
use crate::store::StoreOp;

use super::commit::Txn;
use super::state::State;
use super::volume_index::{declares, named};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Writes `rec` to the state and the store.
fn put(st: &mut State, txn: &mut Txn, rec: VolumeRecord) {
    txn.ops.push(StoreOp::PutVolume(rec.clone()));
    st.volumes.insert(rec);
}

/// Tells a volume's worker to remove it (through its assignments), durably.
fn mark_removing(st: &mut State, txn: &mut Txn, mut rec: VolumeRecord) {
    if rec.state == VolumeState::Removing {
        return;
    }
    rec.state = VolumeState::Removing;
    let worker = rec.worker.clone();
    tracing::info!(volume = %rec.of, %worker, "volume to be removed by its worker");
    put(st, txn, rec);
    let next = st.head + 1;
    if let Some(w) = st.workers.get_mut(&worker) {
        w.bump(next);
    }
}

/// Whether every named volume of `spec` says `on_worker_loss: recreate` (and it has some).
fn recreates(spec: &Job) -> bool {
    let mut policies = named(spec).map(|(_, _, p)| p).peekable();
    policies.peek().is_some() && policies.all(|p| p == OnWorkerLoss::Recreate)
}

/// The worker instance `index` of `job` (at `spec`) must be placed on: the one holding its named
/// volumes — unless that worker is down (or gone) and the volumes say `on_worker_loss: recreate`,
/// which lets the instance start anywhere (see [`placed`]).
pub(crate) fn pin(st: &State, job: &JobId, index: u32, spec: &Job) -> Option<WorkerId> {
    let w = st.volumes.pin(job, index, spec)?;
    let down = st
        .workers
        .get(&w)
        .is_none_or(|e| e.liveness == crate::api::Liveness::Down);
    if down && recreates(spec) {
        return None;
    }
    Some(w)
}

/// Records the named volumes of instance `index` of `job` as held by `worker`, where it was just
/// placed: new ones are made there when its tasks start; one being removed there is kept after all;
/// an active copy on another worker (left behind by a recreate) becomes an orphan.
pub(crate) fn placed(
    st: &mut State,
    txn: &mut Txn,
    job: &JobId,
    index: u32,
    spec: &Job,
    worker: &WorkerId,
    now: Millis,
) {
    for (name, retain, _) in named(spec) {
        let of = VolumeRef {
            job: job.clone(),
            index,
            volume: name.to_owned(),
        };
        let elsewhere: Vec<VolumeRecord> = st
            .volumes
            .of_instance(job, index)
            .filter(|r| {
                r.of.volume == name && &r.worker != worker && r.state == VolumeState::Active
            })
            .cloned()
            .collect();
        for mut old in elsewhere {
            tracing::info!(volume = %old.of, worker = %old.worker, "the instance starts elsewhere with a new volume; the old copy is kept as an orphan");
            old.state = VolumeState::Orphan;
            put(st, txn, old);
        }
        let rec = match st.volumes.get(&of, worker) {
            Some(r) if r.state == VolumeState::Active && r.retain == retain => continue,
            Some(r) => VolumeRecord {
                state: VolumeState::Active,
                retain,
                ..r.clone()
            },
            None => VolumeRecord {
                of,
                worker: worker.clone(),
                state: VolumeState::Active,
                retain,
                created_at: now,
            },
        };
        put(st, txn, rec);
    }
}

/// The worker holding instance `index` of `job`'s data is down: with `on_worker_loss: recreate`
/// on every named volume of the instance, its copies there become orphans (kept, listed) and the
/// replacement starts elsewhere with empty ones; otherwise the replacement waits for that worker.
pub(crate) fn worker_lost(
    st: &mut State,
    txn: &mut Txn,
    job: &JobId,
    index: u32,
    spec: &Job,
    worker: &WorkerId,
) {
    if !recreates(spec) {
        return;
    }
    let orphans: Vec<VolumeRecord> = st
        .volumes
        .of_instance(job, index)
        .filter(|r| &r.worker == worker && r.state == VolumeState::Active)
        .cloned()
        .collect();
    for mut rec in orphans {
        tracing::info!(volume = %rec.of, %worker, "worker down: its copy of the volume is kept as an orphan; the instance starts elsewhere with a new one");
        rec.state = VolumeState::Orphan;
        put(st, txn, rec);
    }
}

/// A worker confirms it removed volumes it was told to remove: their records go. A confirmation
/// of anything else (not told, or told another worker) changes nothing.
pub(crate) fn removed(st: &mut State, txn: &mut Txn, worker: &WorkerId, refs: &[VolumeRef]) {
    for of in refs {
        let told = st
            .volumes
            .get(of, worker)
            .is_some_and(|r| r.state == VolumeState::Removing);
        if told {
            st.volumes.remove(of, worker);
            txn.ops.push(StoreOp::DeleteVolume {
                of: of.clone(),
                worker: worker.clone(),
            });
            tracing::info!(volume = %of, %worker, "volume removed");
        }
    }
}

/// Whether an instance of `job` with `index` that mounts `volume` runs (or is starting, or
/// stopping) on `worker`.
fn in_use(st: &State, of: &VolumeRef, worker: &WorkerId) -> bool {
    let Some(e) = st.jobs.get(&of.job) else {
        return false;
    };
    e.instances.values().any(|i| {
        i.index == of.index
            && i.worker.as_ref() == Some(worker)
            && (i.assigned() || !i.all_terminal())
            && declares(e.spec_of(i), &of.volume)
    })
}

/// Garbage collection of volumes (after jobs and instances were collected): the active volumes
/// of a job that is gone, and of instance indexes that no kept instance uses and the current spec
/// no longer wants (a smaller `count`, or the volume dropped), are told to be removed — unless
/// they say `retain: true`. Orphans wait for an operator. Answers how many were marked.
pub(crate) fn collect(st: &mut State, txn: &mut Txn) -> usize {
    if st.volumes.is_empty() {
        return 0;
    }
    let mut drop = Vec::new();
    for r in st.volumes.all() {
        if r.state != VolumeState::Active || r.retain {
            continue;
        }
        let wanted = match st.jobs.get(&r.of.job) {
            None => false,
            Some(e) => {
                let current = e.spec();
                let by_current = r.of.index < current.count && declares(current, &r.of.volume);
                by_current
                    || e.instances
                        .values()
                        .any(|i| i.index == r.of.index && declares(e.spec_of(i), &r.of.volume))
            }
        };
        if !wanted {
            drop.push(r.clone());
        }
    }
    let n = drop.len();
    for rec in drop {
        mark_removing(st, txn, rec);
    }
    n
}

/// The volume list, of one job or all.
pub(crate) fn list(st: &State, job: Option<&JobId>) -> VolumeList {
    let volumes = st
        .volumes
        .all()
        .filter(|r| job.is_none_or(|j| &r.of.job == j))
        .map(|r| view(st, r))
        .collect();
    VolumeList { volumes }
}

fn view(st: &State, r: &VolumeRecord) -> VolumeView {
    let state = match r.state {
        VolumeState::Active if !st.jobs.contains_key(&r.of.job) => "retained",
        s => s.as_str(),
    };
    VolumeView {
        job: r.of.job.clone(),
        index: r.of.index,
        volume: r.of.volume.clone(),
        worker: r.worker.clone(),
        state: state.to_owned(),
        in_use: in_use(st, &r.of, &r.worker),
        retain: r.retain,
        name: r.of.docker_name(&r.worker),
        created_at: r.created_at,
    }
}

/// An operator removes a volume (`orkestrator volume rm`): refused while an instance that mounts
/// it runs there, or while its job still wants it there (stop the job first); otherwise its worker
/// is told to remove it. `worker` may be left out when only one worker holds that volume.
pub(crate) fn remove(
    st: &mut State,
    txn: &mut Txn,
    of: &VolumeRef,
    worker: Option<&WorkerId>,
) -> ApiResult<VolumeView> {
    let holders: Vec<&VolumeRecord> = st
        .volumes
        .of_instance(&of.job, of.index)
        .filter(|r| r.of.volume == of.volume && worker.is_none_or(|w| &r.worker == w))
        .collect();
    let rec = match holders.as_slice() {
        [] => return Err(ApiError::not_found("volume", of)),
        [one] => (*one).clone(),
        many => {
            let on: Vec<String> = many.iter().map(|r| r.worker.to_string()).collect();
            return Err(ApiError::bad_request(
                "ambiguous_volume",
                format!(
                    "volume {of} is on {} workers ({}): name one with --worker (?worker=)",
                    many.len(),
                    on.join(", ")
                ),
            ));
        }
    };
    if in_use(st, &rec.of, &rec.worker) {
        return Err(ApiError::conflict(format!(
            "volume {of} is in use by an instance of job {} on worker {}: stop the job first (orkestrator stop {})",
            of.job, rec.worker, of.job
        )));
    }
    if rec.state == VolumeState::Active
        && let Some(e) = st.jobs.get(&of.job)
        && !e.rec.stopped
        && of.index < e.spec().count
        && declares(e.spec(), &of.volume)
    {
        return Err(ApiError::conflict(format!(
            "volume {of} holds the data of job {}'s instance {}, which is to run: stop the job first (orkestrator stop {})",
            of.job, of.index, of.job
        )));
    }
    mark_removing(st, txn, rec.clone());
    let now = st.volumes.get(&rec.of, &rec.worker).cloned().unwrap_or(rec);
    Ok(view(st, &now))
}
