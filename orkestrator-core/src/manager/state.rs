//! The manager's state in memory, and the indexes kept beside it so that no request scans every
//! job, instance or worker: instances live in their job; each worker knows what is assigned to
//! it and what that reserves; the pending instances wait in queues; the counts that views and
//! health need are tallied as instances change.
//!
//! Every change to an instance goes through [`State::with_instance`] (or [`State::add_instance`]),
//! which takes the instance's contribution to every index out before the change and puts it back
//! after, so the indexes can never drift from the instances.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::{Desired, JobPhase, Liveness, RegisterWorker, TaskStatus, WorkerResources};
use crate::ids::{JobId, SchedulerId, WorkerId};
use crate::spec::{Job, Protocol, Resources};
use crate::state::TaskState;
use crate::store::{InstanceRecord, JobRecord};

use super::commit::Txn;

pub(crate) use crate::ids::{InstanceKey as Key, instance_id, parse_id};

/// One placed (or waiting) copy of a job.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub index: u32,
    pub version: u64,
    pub worker: Option<WorkerId>,
    pub desired: Desired,
    pub pending_reason: Option<String>,
    /// In the order of the spec's tasks.
    pub tasks: Vec<TaskStatus>,
    /// Soft: since when every task has been running and healthy (for rolling updates).
    pub healthy_since: Option<Instant>,
}

impl Instance {
    pub fn all_terminal(&self) -> bool {
        self.tasks.iter().all(|t| t.state.is_terminal())
    }

    pub fn holds_resources(&self) -> bool {
        self.worker.is_some() && self.tasks.iter().any(|t| t.state.holds_resources())
    }

    /// Whether its worker should know about it: placed, and not (told to stop and done).
    pub fn assigned(&self) -> bool {
        self.worker.is_some() && !(self.desired == Desired::Stop && self.all_terminal())
    }

    /// Whether it waits for a placement.
    pub fn pending(&self) -> bool {
        self.desired == Desired::Run && self.worker.is_none()
    }

    pub fn record(&self, job: &JobId, number: u64) -> InstanceRecord {
        InstanceRecord {
            id: instance_id(job, self.index, number),
            job: job.clone(),
            version: self.version,
            index: self.index,
            worker: self.worker.clone(),
            desired: self.desired,
            pending_reason: self.pending_reason.clone(),
            tasks: self.tasks.clone(),
        }
    }

    pub fn from_record(r: InstanceRecord) -> Self {
        Instance {
            index: r.index,
            version: r.version,
            worker: r.worker,
            desired: r.desired,
            pending_reason: r.pending_reason,
            tasks: r.tasks,
            healthy_since: None,
        }
    }
}

/// Counts over a job's current instances (its current version, desired to run), and over all of
/// its instances, from which its phase follows without looking at the instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Current instances.
    pub current: u32,
    /// Current instances without a worker.
    pub unplaced: u32,
    /// Tasks of current instances, by state.
    pub states: [u32; TaskState::ALL.len()],
    /// Instances (any version) with a task that has not ended.
    pub unfinished: u32,
    /// Instances told to stop whose tasks have all ended (replaced or stopped: for GC).
    pub retired: u32,
}

impl Tally {
    fn add(&mut self, i: &Instance, version: u64, sign: i32) {
        let apply = |v: &mut u32| *v = v.wrapping_add_signed(sign);
        if !i.all_terminal() {
            apply(&mut self.unfinished);
        } else if i.desired == Desired::Stop {
            apply(&mut self.retired);
        }
        if i.version == version && i.desired == Desired::Run {
            apply(&mut self.current);
            if i.worker.is_none() {
                apply(&mut self.unplaced);
            }
            for t in &i.tasks {
                apply(&mut self.states[t.state as usize]);
            }
        }
    }

    fn count(&self, s: TaskState) -> u32 {
        self.states[s as usize]
    }

    /// The job's phase.
    pub fn phase(&self, stopped: bool) -> JobPhase {
        use TaskState::*;
        if stopped {
            return if self.unfinished == 0 {
                JobPhase::Stopped
            } else {
                JobPhase::Stopping
            };
        }
        if self.unplaced > 0 {
            return JobPhase::Pending;
        }
        let total: u32 = self.states.iter().sum();
        if self.count(Failed) > 0 {
            JobPhase::Failed
        } else if self.count(Lost) > 0 {
            JobPhase::Lost
        } else if total > 0 && self.count(Completed) == total {
            JobPhase::Completed
        } else if [Pending, Scheduled, Waiting, Starting, Restarting]
            .iter()
            .any(|s| self.count(*s) > 0)
        {
            JobPhase::Starting
        } else if self.count(Stopping) + self.count(Stopped) > 0 {
            JobPhase::Stopping
        } else {
            JobPhase::Running
        }
    }
}

/// A job, its spec versions and its instances.
#[derive(Debug)]
pub(crate) struct JobEntry {
    pub rec: JobRecord,
    /// One shared copy of each spec version that a live record refers to.
    pub specs: BTreeMap<u64, Arc<Job>>,
    /// Instances by instance number.
    pub instances: BTreeMap<u64, Instance>,
    pub tally: Tally,
    pub phase: JobPhase,
}

impl JobEntry {
    pub fn new(rec: JobRecord) -> Self {
        JobEntry {
            rec,
            specs: BTreeMap::new(),
            instances: BTreeMap::new(),
            tally: Tally::default(),
            phase: JobPhase::Pending,
        }
    }

    /// The current spec.
    pub fn spec(&self) -> &Arc<Job> {
        &self.specs[&self.rec.version]
    }

    pub fn spec_of(&self, i: &Instance) -> &Arc<Job> {
        &self.specs[&i.version]
    }
}

/// What the instances placed on one worker reserve there.
#[derive(Debug, Clone)]
pub(crate) struct Reserved {
    pub resources: Resources,
    /// Host ports, with how many instances hold each.
    pub ports: BTreeMap<(u16, Protocol), u32>,
    pub instances: u32,
    pub jobs: BTreeMap<JobId, u32>,
}

impl Default for Reserved {
    fn default() -> Self {
        // Not `Resources::default()`: that is a task's default request.
        Reserved {
            resources: Resources::ZERO,
            ports: BTreeMap::new(),
            instances: 0,
            jobs: BTreeMap::new(),
        }
    }
}

/// How many assignment changes a worker's log keeps beyond its assignment count.
const LOG_SLACK: usize = 256;

#[derive(Debug)]
pub(crate) struct WorkerEntry {
    pub reg: RegisterWorker,
    /// The index of the change that stored its registration.
    pub reg_index: u64,
    pub resources: WorkerResources,
    pub healthy: bool,
    pub message: Option<String>,
    pub last_seen: Instant,
    /// When it misses its deadline: its last heartbeat and the grace it was told, pushed back by
    /// the manager's own stalls and by the end of a mass silence.
    pub deadline: Instant,
    /// Missed its deadline while most workers were silent: `Unhealthy`, not `Down`.
    pub suspected: bool,
    /// The liveness last published.
    pub liveness: Liveness,
    /// Since when it has been `Down` (for GC), as wall-clock milliseconds.
    pub down_since: Option<u64>,
    /// The index of the last change to its assignments.
    pub assign_index: u64,
    /// Instances assigned to it.
    pub assigned: BTreeSet<Key>,
    /// Recent assignment changes (index, instance, its index in the job), for answering
    /// watches with deltas.
    pub log: VecDeque<(u64, Key, u32)>,
    /// Watches from an index below this get the full set (the log no longer reaches back).
    pub log_floor: u64,
    pub reserved: Reserved,
    /// Woken when its assignments change.
    pub notify: Arc<Notify>,
}

impl WorkerEntry {
    /// A worker seen at `now`, told to heartbeat within `grace`.
    pub fn new(reg: RegisterWorker, reg_index: u64, now: Instant, grace: Duration) -> Self {
        WorkerEntry {
            resources: reg.resources,
            reg,
            reg_index,
            healthy: true,
            message: None,
            last_seen: now,
            deadline: now + grace,
            suspected: false,
            liveness: Liveness::Ready,
            down_since: None,
            assign_index: reg_index,
            assigned: BTreeSet::new(),
            log: VecDeque::new(),
            log_floor: reg_index,
            reserved: Reserved::default(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Records that something the worker is told besides its instances (a volume to remove)
    /// changed at `index`, and wakes its watch.
    pub fn bump(&mut self, index: u64) {
        self.assign_index = index;
        self.notify.notify_waiters();
    }

    /// Records that `key`'s assignment changed at `index`, and wakes the worker's watch.
    pub fn log_change(&mut self, index: u64, key: Key, instance_index: u32) {
        self.assign_index = index;
        self.log.push_back((index, key, instance_index));
        while self.log.len() > self.assigned.len() * 2 + LOG_SLACK {
            if let Some((i, _, _)) = self.log.pop_front() {
                self.log_floor = i;
            }
        }
        self.notify.notify_waiters();
    }
}

#[derive(Debug)]
pub(crate) struct SchedulerEntry {
    pub algorithm: String,
    pub last_seen: Instant,
    pub liveness: Liveness,
}

/// A pending instance handed to a scheduler.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub job: JobId,
    pub scheduler: SchedulerId,
    pub at: Instant,
    /// The capacity epoch when it was leased: an "unschedulable" judged on older capacity is
    /// looked at again.
    pub epoch: u64,
}

/// Counts over the whole cluster, for the health summary.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub tasks: [u64; TaskState::ALL.len()],
    pub phases: BTreeMap<JobPhase, u64>,
    /// Jobs that are `Failed` or `Lost`.
    pub failing: BTreeSet<JobId>,
    /// Workers that are not `Ready`.
    pub unready: BTreeSet<WorkerId>,
}

/// The manager's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The index of the last prepared change (durable or in flight).
    pub head: u64,
    pub next_instance: u64,
    /// Bumped whenever capacity may have grown, so instances judged unschedulable are looked at
    /// again — and only then.
    pub capacity_epoch: u64,
    pub jobs: BTreeMap<JobId, JobEntry>,
    pub workers: BTreeMap<WorkerId, WorkerEntry>,
    pub schedulers: BTreeMap<SchedulerId, SchedulerEntry>,
    /// Pending instances to offer to schedulers, oldest first (instance number → job).
    pub ready: BTreeMap<u64, JobId>,
    /// Pending instances judged unschedulable at the current capacity epoch.
    pub blocked: BTreeMap<u64, JobId>,
    /// Pending instances leased to a scheduler.
    pub leased: BTreeMap<u64, Lease>,
    /// Jobs with a rolling update under way.
    pub rolling: BTreeSet<JobId>,
    pub counts: Counts,
    /// Woken when there is work for schedulers.
    pub work: Arc<Notify>,
    /// Until then no worker is judged `Down` (a new leader's grace for workers to find it).
    pub judge_workers_after: Option<Instant>,
    /// Workers not `Down`, as the last liveness pass (or registration since) counted them: what
    /// the heartbeat pace is set for.
    pub live_workers: usize,
    /// Since when most workers have been silent at once (the manager suspects itself or the
    /// network), while it lasts.
    pub mass_silence: Option<Instant>,
    /// Secrets by name: their kept versions, sealed.
    pub secrets: BTreeMap<String, BTreeMap<u64, crate::secrets::SecretRecord>>,
    /// Named volumes: where each instance index's data lives, and what workers are to remove.
    pub volumes: super::volume_index::Volumes,
}

/// An instance's place in the indexes, before or after a change.
struct Footprint {
    index: u32,
    worker: Option<WorkerId>,
    holds: bool,
    assigned: bool,
    desired: Desired,
}

impl State {
    /// Applies `f` to instance `key`, keeping every index in step. `None` if there is no such
    /// instance. Records the instance as changed in `txn`.
    pub fn with_instance<R>(
        &mut self,
        key: &Key,
        txn: &mut Txn,
        f: impl FnOnce(&mut Instance, &Arc<Job>) -> R,
    ) -> Option<R> {
        let next = self.head + 1;
        let entry = self.jobs.get_mut(&key.0)?;
        let inst = entry.instances.get_mut(&key.1)?;
        let spec = entry.specs[&inst.version].clone();
        let before = footprint(inst);
        account(&mut self.workers, &mut self.counts, &key.0, inst, &spec, -1);
        entry.tally.add(inst, entry.rec.version, -1);
        let r = f(inst, &spec);
        entry.tally.add(inst, entry.rec.version, 1);
        account(&mut self.workers, &mut self.counts, &key.0, inst, &spec, 1);
        let after = footprint(inst);
        let pending = inst.pending();
        txn.touch(key.clone());
        self.refresh_phase(&key.0);
        self.after_change(key, &before, &after, pending, next);
        Some(r)
    }

    /// Adds a new instance of `job` (which must exist) and indexes it. Returns its key.
    pub fn add_instance(&mut self, job: &JobId, inst: Instance, txn: &mut Txn) -> Key {
        let number = self.next_instance;
        self.next_instance += 1;
        txn.instance_numbers_advanced = true;
        let key = (job.clone(), number);
        self.insert_loaded(key.clone(), inst, txn);
        key
    }

    /// Inserts an instance under `key` and indexes it.
    pub fn insert_loaded(&mut self, key: Key, inst: Instance, txn: &mut Txn) {
        let entry = self
            .jobs
            .get_mut(&key.0)
            .expect("the job of a new instance exists");
        let spec = entry.specs[&inst.version].clone();
        let empty = Footprint {
            index: inst.index,
            worker: None,
            holds: false,
            assigned: false,
            desired: Desired::Stop,
        };
        entry.tally.add(&inst, entry.rec.version, 1);
        account(&mut self.workers, &mut self.counts, &key.0, &inst, &spec, 1);
        let after = footprint(&inst);
        let pending = inst.pending();
        entry.instances.insert(key.1, inst);
        txn.touch(key.clone());
        self.refresh_phase(&key.0);
        let next = self.head + 1;
        self.after_change(&key, &empty, &after, pending, next);
    }

    /// Removes instance `key` from memory and every index (for GC).
    pub fn remove_instance(&mut self, key: &Key, txn: &mut Txn) {
        let Some(entry) = self.jobs.get_mut(&key.0) else {
            return;
        };
        let Some(inst) = entry.instances.remove(&key.1) else {
            return;
        };
        let spec = entry.specs[&inst.version].clone();
        entry.tally.add(&inst, entry.rec.version, -1);
        account(
            &mut self.workers,
            &mut self.counts,
            &key.0,
            &inst,
            &spec,
            -1,
        );
        txn.touched.remove(key);
        txn.ops
            .push(crate::store::StoreOp::DeleteInstance(instance_id(
                &key.0, inst.index, key.1,
            )));
        self.ready.remove(&key.1);
        self.blocked.remove(&key.1);
        self.leased.remove(&key.1);
        if let Some(w) = inst.worker.as_ref().and_then(|w| self.workers.get_mut(w))
            && w.assigned.remove(key)
        {
            w.log_change(self.head + 1, key.clone(), inst.index);
        }
        self.refresh_phase(&key.0);
    }

    fn after_change(
        &mut self,
        key: &Key,
        before: &Footprint,
        after: &Footprint,
        pending: bool,
        next: u64,
    ) {
        // The pending queues.
        if !pending {
            self.ready.remove(&key.1);
            self.blocked.remove(&key.1);
            self.leased.remove(&key.1);
        } else if !self.ready.contains_key(&key.1)
            && !self.blocked.contains_key(&key.1)
            && !self.leased.contains_key(&key.1)
        {
            self.ready.insert(key.1, key.0.clone());
            self.work.notify_waiters();
        }
        // Capacity freed: what was judged unschedulable is looked at again.
        if before.holds && !after.holds {
            self.capacity_grew();
        }
        // The workers' assignment sets and change logs.
        if before.worker != after.worker || before.assigned != after.assigned {
            if let Some(w) = before.worker.as_ref().and_then(|w| self.workers.get_mut(w))
                && before.assigned
            {
                w.assigned.remove(key);
                w.log_change(next, key.clone(), before.index);
            }
            if let Some(w) = after.worker.as_ref().and_then(|w| self.workers.get_mut(w))
                && after.assigned
            {
                w.assigned.insert(key.clone());
                w.log_change(next, key.clone(), after.index);
            }
        } else if after.assigned
            && before.desired != after.desired
            && let Some(w) = after.worker.as_ref().and_then(|w| self.workers.get_mut(w))
        {
            w.log_change(next, key.clone(), after.index);
        }
    }

    /// Capacity may have grown: instances judged unschedulable go back to the queue.
    pub fn capacity_grew(&mut self) {
        self.capacity_epoch += 1;
        if !self.blocked.is_empty() {
            let mut blocked = std::mem::take(&mut self.blocked);
            self.ready.append(&mut blocked);
            self.work.notify_waiters();
        }
    }

    /// Recomputes a job's tally from its instances (after its current version changed).
    pub fn recount(&mut self, job: &JobId) {
        let Some(entry) = self.jobs.get_mut(job) else {
            return;
        };
        let mut t = Tally::default();
        for i in entry.instances.values() {
            t.add(i, entry.rec.version, 1);
        }
        entry.tally = t;
        self.refresh_phase(job);
    }

    /// Updates a job's cached phase and the cluster's phase counts.
    pub fn refresh_phase(&mut self, job: &JobId) {
        let Some(entry) = self.jobs.get_mut(job) else {
            return;
        };
        let new = entry.tally.phase(entry.rec.stopped);
        let old = std::mem::replace(&mut entry.phase, new);
        self.set_phase(job, Some(old), Some(new));
    }

    /// Moves `job` from phase `old` to `new` in the counts (`None`: not counted).
    pub fn set_phase(&mut self, job: &JobId, old: Option<JobPhase>, new: Option<JobPhase>) {
        if old == new {
            return;
        }
        if let Some(o) = old
            && let Some(n) = self.counts.phases.get_mut(&o)
        {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = new {
            *self.counts.phases.entry(n).or_insert(0) += 1;
        }
        if new.is_some_and(failing) {
            self.counts.failing.insert(job.clone());
        } else {
            self.counts.failing.remove(job);
        }
    }

    /// Sets a worker's published liveness and keeps the counts.
    pub fn set_liveness(&mut self, id: &WorkerId, to: Liveness) {
        let Some(w) = self.workers.get_mut(id) else {
            return;
        };
        w.liveness = to;
        if to == Liveness::Ready {
            self.counts.unready.remove(id);
        } else {
            self.counts.unready.insert(id.clone());
        }
    }

    /// The shared spec of an instance.
    pub fn spec_of(&self, key: &Key) -> Option<Arc<Job>> {
        let e = self.jobs.get(&key.0)?;
        let i = e.instances.get(&key.1)?;
        Some(e.specs[&i.version].clone())
    }

    pub fn instance(&self, key: &Key) -> Option<&Instance> {
        self.jobs.get(&key.0)?.instances.get(&key.1)
    }
}

fn failing(p: JobPhase) -> bool {
    matches!(p, JobPhase::Failed | JobPhase::Lost)
}

fn footprint(i: &Instance) -> Footprint {
    Footprint {
        index: i.index,
        worker: i.worker.clone(),
        holds: i.holds_resources(),
        assigned: i.assigned(),
        desired: i.desired,
    }
}

/// Adds (`sign` 1) or takes out (-1) an instance's share of its worker's reservations and of the
/// cluster's task counts.
fn account(
    workers: &mut BTreeMap<WorkerId, WorkerEntry>,
    counts: &mut Counts,
    job: &JobId,
    i: &Instance,
    spec: &Job,
    sign: i32,
) {
    for t in &i.tasks {
        let c = &mut counts.tasks[t.state as usize];
        *c = c.wrapping_add_signed(sign as i64);
    }
    if !i.holds_resources() {
        return;
    }
    let Some(w) = i.worker.as_ref().and_then(|w| workers.get_mut(w)) else {
        return;
    };
    let r = &mut w.reserved;
    let need = spec.resources();
    if sign > 0 {
        r.resources = r.resources.saturating_add(&need);
        r.instances += 1;
        *r.jobs.entry(job.clone()).or_insert(0) += 1;
        for p in spec.host_ports() {
            *r.ports.entry(p).or_insert(0) += 1;
        }
    } else {
        r.resources = r.resources.saturating_sub(&need);
        r.instances = r.instances.saturating_sub(1);
        if let Some(n) = r.jobs.get_mut(job) {
            *n -= 1;
            if *n == 0 {
                r.jobs.remove(job);
            }
        }
        for p in spec.host_ports() {
            if let Some(n) = r.ports.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    r.ports.remove(&p);
                }
            }
        }
    }
}
