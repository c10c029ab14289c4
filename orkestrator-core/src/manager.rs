//! The manager: desired state (jobs), observed state (what workers report), and the rules that
//! connect them. Transport-agnostic: the HTTP server and the in-process transport both call these
//! methods.
//!
//! State lives in memory behind one lock and is written through a [`Store`] before a change is
//! acknowledged. Every change bumps the state index, publishes an [`Event`] and wakes long-polls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::api::*;
use crate::events::{Event, EventKind};
use crate::ids::{InstanceId, JobId, SchedulerId, TaskName, WorkerId};
use crate::scheduler::{Request, check_fit};
use crate::spec::{Job, Resources};
use crate::state::TaskState;
use crate::store::{InstanceRecord, JobRecord, Snapshot, Store, StoreOp};

/// Manager settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// How often components should heartbeat. Default 1 s.
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before a component is `Down`. Default 3 s.
    pub heartbeat_grace: Duration,
    /// How long a scheduler holds pending instances before they go to another. Default 10 s.
    pub lease_timeout: Duration,
    /// Longest long-poll a caller may ask for. Default 60 s.
    pub max_wait: Duration,
    /// How long a replacement must run during a rolling update before the next instance is
    /// replaced. Default 5 s.
    pub min_healthy_time: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_grace: Duration::from_secs(3),
            lease_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            min_healthy_time: Duration::from_secs(5),
        }
    }
}

/// The manager. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    config: ManagerConfig,
    state: Mutex<State>,
    store: Arc<dyn Store>,
    changed: watch::Sender<u64>,
    events: broadcast::Sender<Event>,
    started: Instant,
}

struct State {
    index: u64,
    /// Bumped whenever capacity may have grown (a worker joins, resources free up), so instances
    /// judged unschedulable are looked at again — and only then.
    capacity_epoch: u64,
    jobs: BTreeMap<JobId, JobRecord>,
    instances: BTreeMap<InstanceId, Instance>,
    workers: BTreeMap<WorkerId, WorkerEntry>,
    schedulers: BTreeMap<SchedulerId, SchedulerEntry>,
}

struct Instance {
    rec: InstanceRecord,
    lease: Option<(SchedulerId, Instant)>,
    blocked_epoch: Option<u64>,
    /// Since when every task has been running (for rolling updates).
    healthy_since: Option<Instant>,
}

impl Instance {
    /// An instance as loaded or created: no lease, not blocked, health not yet seen.
    fn new(rec: InstanceRecord) -> Self {
        Instance {
            rec,
            lease: None,
            blocked_epoch: None,
            healthy_since: None,
        }
    }
}

struct WorkerEntry {
    reg: RegisterWorker,
    resources: WorkerResources,
    healthy: bool,
    message: Option<String>,
    last_seen: Instant,
    /// The liveness last published (for change events).
    liveness: Liveness,
    /// Bumped when this worker's assignments change.
    assign_index: u64,
}

struct SchedulerEntry {
    algorithm: String,
    last_seen: Instant,
    /// The liveness last published (for change events).
    liveness: Liveness,
}

/// A batch of changes made under the lock: committed to the store, then published.
#[derive(Default)]
struct Txn {
    ops: Vec<StoreOp>,
    events: Vec<EventKind>,
}

type ApiResult<T> = std::result::Result<T, ApiError>;

impl Manager {
    /// A manager that loads its state from `store`.
    pub fn new(config: ManagerConfig, store: Arc<dyn Store>) -> crate::Result<Self> {
        let snap = store.load()?;
        let now = Instant::now();
        let Snapshot {
            index,
            jobs,
            instances,
            workers,
        } = snap;
        let state = State {
            index,
            capacity_epoch: 0,
            jobs,
            instances: instances
                .into_iter()
                .map(|(id, rec)| (id, Instance::new(rec)))
                .collect(),
            // Reloaded workers count as seen now: they get one grace period to heartbeat again.
            workers: workers
                .into_iter()
                .map(|(id, reg)| {
                    let resources = reg.resources;
                    let e = WorkerEntry {
                        reg,
                        resources,
                        healthy: true,
                        message: None,
                        last_seen: now,
                        liveness: Liveness::Ready,
                        assign_index: index,
                    };
                    (id, e)
                })
                .collect(),
            schedulers: BTreeMap::new(),
        };
        let (changed, _) = watch::channel(index);
        let (events, _) = broadcast::channel(1024);
        Ok(Manager {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                store,
                changed,
                events,
                started: now,
            }),
        })
    }

    /// The manager's settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// Subscribes to the event bus.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits a transaction made under `state`'s lock: store first, then index, events, wake-ups.
    fn commit(&self, state: &mut State, txn: Txn) -> ApiResult<()> {
        if txn.ops.is_empty() && txn.events.is_empty() {
            return Ok(());
        }
        let index = state.index + 1;
        if !txn.ops.is_empty() {
            self.inner
                .store
                .commit(index, &txn.ops)
                .map_err(|e| ApiError {
                    status: 503,
                    code: "store_unavailable".into(),
                    message: e.to_string(),
                    problems: None,
                })?;
        }
        state.index = index;
        let at = now_millis();
        for kind in txn.events {
            let _ = self.inner.events.send(Event { index, at, kind });
        }
        self.inner.changed.send_replace(index);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Jobs

    /// Creates or updates a job. An identical re-submission is a no-op.
    pub fn submit_job(&self, job: Job) -> ApiResult<SubmitResponse> {
        let mut st = self.lock();
        let mut txn = Txn::default();
        let name = job.name.clone();
        let (version, outcome) = match st.jobs.get(&name) {
            Some(rec) if rec.spec == job && !rec.stopped => {
                return Ok(SubmitResponse {
                    job: name,
                    version: rec.version,
                    outcome: SubmitOutcome::Unchanged,
                });
            }
            Some(rec) => (rec.version + 1, SubmitOutcome::Updated),
            None => (1, SubmitOutcome::Created),
        };
        let mut rec = st.jobs.get(&name).cloned().unwrap_or(JobRecord {
            spec: job.clone(),
            version,
            submitted_at: now_millis(),
            stopped: false,
            next_generation: 0,
        });
        rec.spec = job;
        rec.version = version;
        rec.stopped = false;
        txn.ops.push(StoreOp::PutJob(rec.clone()));
        let count = rec.spec.count;
        st.jobs.insert(name.clone(), rec);
        // Instances that never got a worker are simply dropped; placed ones are replaced one at a
        // time (a rolling update) unless there are none, in which case all start at once.
        let mut placed = Vec::new();
        let mut unplaced = Vec::new();
        for i in st
            .instances
            .values()
            .filter(|i| i.rec.job == name && i.rec.desired == Desired::Run)
        {
            if i.rec.worker.is_some() {
                &mut placed
            } else {
                &mut unplaced
            }
            .push(i.rec.id.clone());
        }
        for id in &unplaced {
            stop_instance(&mut st, id, &mut txn);
        }
        if placed.is_empty() {
            for index in 0..count {
                new_instance(&mut st, &name, index, None, &mut txn);
            }
        } else {
            advance_rollout(&mut st, &name, self.inner.config.min_healthy_time, &mut txn);
        }
        txn.events.push(EventKind::JobSubmitted {
            job: name.clone(),
            version,
        });
        match self.commit(&mut st, txn) {
            Ok(()) => Ok(SubmitResponse {
                job: name,
                version,
                outcome,
            }),
            Err(e) => {
                drop(st);
                // The store refused: reload what it holds so memory matches what was acknowledged.
                self.reload_after_failed_commit();
                Err(e)
            }
        }
    }

    fn reload_after_failed_commit(&self) {
        if let Ok(snap) = self.inner.store.load() {
            let mut st = self.lock();
            st.jobs = snap.jobs;
            st.instances = snap
                .instances
                .into_iter()
                .map(|(id, rec)| (id, Instance::new(rec)))
                .collect();
        }
    }

    /// Stops a job: its instances' containers are stopped and removed.
    pub fn stop_job(&self, name: &JobId) -> ApiResult<JobView> {
        let mut st = self.lock();
        let Some(rec) = st.jobs.get_mut(name) else {
            return Err(ApiError::not_found("job", name));
        };
        let mut txn = Txn::default();
        if !rec.stopped {
            rec.stopped = true;
            txn.ops.push(StoreOp::PutJob(rec.clone()));
            let ids: Vec<InstanceId> = st
                .instances
                .values()
                .filter(|i| &i.rec.job == name)
                .map(|i| i.rec.id.clone())
                .collect();
            for id in ids {
                stop_instance(&mut st, &id, &mut txn);
            }
            txn.events.push(EventKind::JobStopped { job: name.clone() });
        }
        self.commit(&mut st, txn)?;
        Ok(job_view(&st, name).expect("job exists"))
    }

    /// Every job, by name.
    pub fn list_jobs(&self) -> Vec<JobSummary> {
        let st = self.lock();
        st.jobs.keys().filter_map(|n| job_summary(&st, n)).collect()
    }

    /// One job.
    pub fn get_job(&self, name: &JobId) -> ApiResult<JobView> {
        let st = self.lock();
        job_view(&st, name).ok_or_else(|| ApiError::not_found("job", name))
    }

    /// Where the output of `task` of instance `index` of `job` can be read: its worker's endpoint
    /// and its container. `task` may be left out when the job has one task.
    pub fn log_source(&self, job: &JobId, task: Option<&str>, index: u32) -> ApiResult<LogSource> {
        let st = self.lock();
        let view = job_view(&st, job).ok_or_else(|| ApiError::not_found("job", job))?;
        let names: Vec<&str> = view.spec.tasks.iter().map(|t| t.name.as_str()).collect();
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
        // The current instance with that index (the view lists the current version first).
        let Some(inst) = view
            .instances
            .iter()
            .find(|i| i.index == index && i.desired == Desired::Run)
            .or_else(|| view.instances.iter().find(|i| i.index == index))
        else {
            return Err(ApiError::bad_request(
                "unknown_index",
                format!(
                    "job \"{job}\" has no instance {index}; its count is {}",
                    view.spec.count
                ),
            ));
        };
        let Some(worker) = inst.worker.clone() else {
            let why = inst
                .pending_reason
                .as_deref()
                .unwrap_or("waiting for a scheduler");
            return Err(ApiError::conflict(format!(
                "instance {index} of job \"{job}\" is not placed yet ({why}): no output to show"
            )));
        };
        let status = inst.tasks.get(&task);
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
            instance: inst.id.clone(),
            index,
            task,
            worker,
            address,
            container_id,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Workers

    /// Registers or re-registers a worker.
    pub fn register_worker(&self, req: RegisterWorker) -> ApiResult<Registered> {
        if req.id.as_str().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_id",
                "worker id: must not be empty",
            ));
        }
        let mut st = self.lock();
        let mut txn = Txn::default();
        let index = st.index + 1;
        let now = Instant::now();
        let entry = WorkerEntry {
            resources: req.resources,
            reg: req.clone(),
            healthy: true,
            message: None,
            last_seen: now,
            liveness: Liveness::Ready,
            assign_index: index,
        };
        st.workers.insert(req.id.clone(), entry);
        st.capacity_epoch += 1;
        txn.ops.push(StoreOp::PutWorker(req.clone()));
        txn.events
            .push(EventKind::WorkerRegistered { worker: req.id });
        self.commit(&mut st, txn)?;
        Ok(self.registered())
    }

    fn registered(&self) -> Registered {
        Registered {
            heartbeat_interval_ms: self.inner.config.heartbeat_interval.as_millis() as u64,
            heartbeat_grace_ms: self.inner.config.heartbeat_grace.as_millis() as u64,
        }
    }

    /// Records a worker's heartbeat.
    pub fn worker_heartbeat(&self, id: &WorkerId, hb: WorkerHeartbeat) -> ApiResult<()> {
        let mut st = self.lock();
        let grace = self.inner.config.heartbeat_grace;
        let Some(w) = st.workers.get_mut(id) else {
            return Err(ApiError::not_found("worker", id));
        };
        let was = w.liveness;
        w.last_seen = Instant::now();
        let grew = hb.resources.total != w.resources.total || (hb.healthy && !w.healthy);
        w.resources = hb.resources;
        w.healthy = hb.healthy;
        w.message = hb.message;
        let now_live = liveness(w.healthy, w.last_seen, grace);
        let mut txn = Txn::default();
        if now_live != was {
            w.liveness = now_live;
            txn.events.push(EventKind::WorkerLiveness {
                worker: id.clone(),
                status: now_live,
            });
        }
        if grew || (now_live == Liveness::Ready && was != Liveness::Ready) {
            st.capacity_epoch += 1;
            txn.events.push(EventKind::WorkerLiveness {
                worker: id.clone(),
                status: now_live,
            });
        }
        self.commit(&mut st, txn)
    }

    /// Every worker.
    pub fn list_workers(&self) -> Vec<WorkerView> {
        let st = self.lock();
        let grace = self.inner.config.heartbeat_grace;
        worker_views(&st, grace)
    }

    /// Waits (up to `wait`) until the worker's assignments change past `index`, then returns them.
    pub async fn watch_assignments(
        &self,
        id: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> ApiResult<Assignments> {
        let wait = wait.min(self.inner.config.max_wait);
        self.wait_until(wait, |st| {
            let w = st
                .workers
                .get(id)
                .ok_or_else(|| ApiError::not_found("worker", id))?;
            if w.assign_index > index || index == 0 {
                Ok(Some(assignments(st, id, w.assign_index)))
            } else {
                Ok(None)
            }
        })
        .await
        .and_then(|r| match r {
            Some(a) => Ok(a),
            None => {
                let st = self.lock();
                let w = st
                    .workers
                    .get(id)
                    .ok_or_else(|| ApiError::not_found("worker", id))?;
                Ok(assignments(&st, id, w.assign_index))
            }
        })
    }

    /// Applies a worker's task updates; refuses unknown instances and illegal transitions.
    pub fn report_status(
        &self,
        worker: &WorkerId,
        updates: Vec<TaskUpdate>,
    ) -> ApiResult<ReportResponse> {
        let mut st = self.lock();
        if !st.workers.contains_key(worker) {
            return Err(ApiError::not_found("worker", worker));
        }
        let mut txn = Txn::default();
        let mut rejected = Vec::new();
        let mut freed = false;
        let mut left_assignments = false;
        let mut touched: BTreeSet<JobId> = BTreeSet::new();
        for u in updates {
            let reject = |reason: String| RejectedUpdate {
                instance: u.instance.clone(),
                task: u.task.clone(),
                reason,
            };
            let Some(inst) = st.instances.get_mut(&u.instance) else {
                rejected.push(reject("unknown instance: stop it".into()));
                continue;
            };
            if inst.rec.worker.as_ref() != Some(worker) {
                rejected.push(reject(
                    "instance is not assigned to this worker: stop it".into(),
                ));
                continue;
            }
            let Some(ts) = inst.rec.tasks.get_mut(&u.task) else {
                rejected.push(reject(format!(
                    "instance has no task {:?}",
                    u.task.as_str()
                )));
                continue;
            };
            let from = ts.state;
            if let Err(e) = from.transition(u.state) {
                rejected.push(reject(e.to_string()));
                continue;
            }
            let changed = from != u.state
                || ts.exit_code != u.exit_code
                || ts.reason != u.reason
                || ts.container_id != u.container_id
                || ts.restarts != u.restarts
                || ts.next_start_at != u.next_start_at
                || ts.healthy != u.healthy;
            if !changed {
                continue;
            }
            if from != u.state {
                ts.since = now_millis();
                txn.events.push(EventKind::TaskStateChanged {
                    instance: u.instance.clone(),
                    task: u.task.clone(),
                    from,
                    to: u.state,
                });
            }
            ts.state = u.state;
            ts.exit_code = u.exit_code;
            ts.reason = u.reason;
            ts.container_id = u.container_id.or(ts.container_id.take());
            ts.restarts = u.restarts;
            ts.next_start_at = u.next_start_at;
            ts.healthy = u.healthy;
            if from.holds_resources() && !u.state.holds_resources() {
                freed = true;
            }
            touched.insert(inst.rec.job.clone());
            if inst.rec.desired == Desired::Stop
                && inst.rec.tasks.values().all(|t| t.state.is_terminal())
            {
                left_assignments = true;
            }
            txn.ops.push(StoreOp::PutInstance(inst.rec.clone()));
        }
        if freed {
            st.capacity_epoch += 1;
        }
        for job in &touched {
            advance_rollout(&mut st, job, self.inner.config.min_healthy_time, &mut txn);
        }
        // Instances told to stop whose tasks are all done leave the worker's assignments.
        let next_index = st.index + 1;
        if left_assignments && let Some(w) = st.workers.get_mut(worker) {
            w.assign_index = next_index;
        }
        self.commit(&mut st, txn)?;
        Ok(ReportResponse { rejected })
    }

    // -----------------------------------------------------------------------------------------
    // Schedulers

    /// Registers or re-registers a scheduler.
    pub fn register_scheduler(&self, req: RegisterScheduler) -> ApiResult<Registered> {
        if req.id.as_str().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_id",
                "scheduler id: must not be empty",
            ));
        }
        let mut st = self.lock();
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
                last_seen: Instant::now(),
                liveness: Liveness::Ready,
            },
        );
        let txn = Txn {
            ops: vec![],
            events: vec![EventKind::SchedulerRegistered { scheduler: req.id }],
        };
        self.commit(&mut st, txn)?;
        Ok(self.registered())
    }

    /// Records a scheduler's heartbeat.
    pub fn scheduler_heartbeat(&self, id: &SchedulerId) -> ApiResult<()> {
        let mut st = self.lock();
        match st.schedulers.get_mut(id) {
            Some(s) => {
                s.last_seen = Instant::now();
                Ok(())
            }
            None => Err(ApiError::not_found("scheduler", id)),
        }
    }

    /// Waits (up to `wait`) for instances to place, leases them to `scheduler` and returns them
    /// with a snapshot of the ready workers.
    pub async fn scheduling_work(
        &self,
        scheduler: &SchedulerId,
        wait: Duration,
    ) -> ApiResult<SchedulingWork> {
        let wait = wait.min(self.inner.config.max_wait);
        let lease = self.inner.config.lease_timeout;
        let grace = self.inner.config.heartbeat_grace;
        let work = self
            .wait_until(wait, |st| {
                let s = st.schedulers.get_mut(scheduler).ok_or_else(|| ApiError::not_found("scheduler", scheduler))?;
                s.last_seen = Instant::now();
                let now = Instant::now();
                let epoch = st.capacity_epoch;
                // A lease holds while its scheduler is alive and not past the lease timeout: a dead
                // scheduler's in-flight instances go to the next scheduler that asks.
                let alive: BTreeSet<SchedulerId> = st
                    .schedulers
                    .iter()
                    .filter(|(_, s)| liveness(true, s.last_seen, grace) == Liveness::Ready)
                    .map(|(id, _)| id.clone())
                    .collect();
                let mut pending = Vec::new();
                for inst in st.instances.values_mut() {
                    let r = &inst.rec;
                    if r.desired != Desired::Run || r.worker.is_some() || inst.blocked_epoch == Some(epoch) {
                        continue;
                    }
                    let leased_elsewhere = matches!(&inst.lease,
                        Some((s, at)) if s != scheduler && alive.contains(s) && now.duration_since(*at) < lease);
                    if leased_elsewhere {
                        continue;
                    }
                    inst.lease = Some((scheduler.clone(), now));
                    pending.push(PendingInstance { instance: r.id.clone(), index: r.index, job: r.spec.clone() });
                }
                if pending.is_empty() {
                    return Ok(None);
                }
                Ok(Some(SchedulingWork { index: st.index, pending, workers: snapshots(st, grace) }))
            })
            .await?;
        Ok(work.unwrap_or_else(|| {
            let st = self.lock();
            SchedulingWork {
                index: st.index,
                pending: vec![],
                workers: vec![],
            }
        }))
    }

    /// Commits a scheduler's decisions that still fit (optimistic concurrency); refuses the rest.
    pub fn submit_decisions(
        &self,
        scheduler: &SchedulerId,
        decisions: Vec<Decision>,
    ) -> ApiResult<Vec<DecisionResult>> {
        let mut st = self.lock();
        if !st.schedulers.contains_key(scheduler) {
            return Err(ApiError::not_found("scheduler", scheduler));
        }
        let grace = self.inner.config.heartbeat_grace;
        let mut txn = Txn::default();
        let mut results = Vec::with_capacity(decisions.len());
        let epoch = st.capacity_epoch;
        let next_index = st.index + 1;
        for d in decisions {
            let refuse = |reason: &str| DecisionResult {
                instance: d.instance.clone(),
                accepted: false,
                reason: Some(reason.into()),
            };
            let Some(inst) = st.instances.get(&d.instance) else {
                results.push(refuse("unknown instance"));
                continue;
            };
            if inst.rec.desired != Desired::Run || inst.rec.worker.is_some() {
                results.push(refuse("instance no longer needs a placement"));
                continue;
            }
            if matches!(&inst.lease, Some((s, _)) if s != scheduler) {
                results.push(refuse("instance is leased to another scheduler"));
                continue;
            }
            match d.outcome {
                DecisionOutcome::Unschedulable { reason } => {
                    let inst = st.instances.get_mut(&d.instance).expect("checked");
                    inst.lease = None;
                    inst.blocked_epoch = Some(epoch);
                    if inst.rec.pending_reason.as_deref() != Some(reason.as_str()) {
                        inst.rec.pending_reason = Some(reason.clone());
                        for t in inst.rec.tasks.values_mut() {
                            t.reason = Some(reason.clone());
                        }
                        txn.ops.push(StoreOp::PutInstance(inst.rec.clone()));
                        txn.events.push(EventKind::InstanceUnschedulable {
                            instance: d.instance.clone(),
                            reason,
                        });
                    }
                    results.push(DecisionResult {
                        instance: d.instance,
                        accepted: true,
                        reason: None,
                    });
                }
                DecisionOutcome::Place { worker } => {
                    // The optimistic check: against the manager's own bookkeeping, now.
                    let snap = snapshots(&st, grace).into_iter().find(|w| w.id == worker);
                    let Some(snap) = snap else {
                        results.push(refuse("worker is unknown or not ready"));
                        continue;
                    };
                    if let Err(why) =
                        check_fit(&Request::new(&inst.rec.spec, inst.rec.index), &snap)
                    {
                        let inst = st.instances.get_mut(&d.instance).expect("checked");
                        inst.lease = None;
                        results.push(refuse(&format!(
                            "no longer fits on {worker}: {}",
                            why.reason
                        )));
                        continue;
                    }
                    let inst = st.instances.get_mut(&d.instance).expect("checked");
                    inst.lease = None;
                    inst.blocked_epoch = None;
                    inst.rec.worker = Some(worker.clone());
                    inst.rec.pending_reason = None;
                    for (name, t) in inst.rec.tasks.iter_mut() {
                        txn.events.push(EventKind::TaskStateChanged {
                            instance: d.instance.clone(),
                            task: name.clone(),
                            from: t.state,
                            to: TaskState::Scheduled,
                        });
                        *t = TaskStatus::new(TaskState::Scheduled);
                    }
                    txn.ops.push(StoreOp::PutInstance(inst.rec.clone()));
                    txn.events.push(EventKind::InstancePlaced {
                        instance: d.instance.clone(),
                        worker: worker.clone(),
                        scheduler: scheduler.clone(),
                    });
                    if let Some(w) = st.workers.get_mut(&worker) {
                        w.assign_index = next_index;
                    }
                    results.push(DecisionResult {
                        instance: d.instance,
                        accepted: true,
                        reason: None,
                    });
                }
            }
        }
        self.commit(&mut st, txn)?;
        Ok(results)
    }

    // -----------------------------------------------------------------------------------------
    // Health

    /// The health of every component and job.
    pub fn health(&self) -> HealthReport {
        let st = self.lock();
        let grace = self.inner.config.heartbeat_grace;
        let now = Instant::now();
        HealthReport {
            manager: ManagerHealth {
                status: Liveness::Ready,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                index: st.index,
                uptime_ms: now.duration_since(self.inner.started).as_millis() as u64,
            },
            schedulers: st
                .schedulers
                .iter()
                .map(|(id, s)| SchedulerView {
                    id: id.clone(),
                    algorithm: s.algorithm.clone(),
                    status: liveness(true, s.last_seen, grace),
                    last_seen_ms_ago: now.duration_since(s.last_seen).as_millis() as u64,
                })
                .collect(),
            workers: worker_views(&st, grace),
            jobs: st.jobs.keys().filter_map(|n| job_summary(&st, n)).collect(),
        }
    }

    /// Detects workers whose heartbeats stopped: publishes their liveness, marks the tasks they ran
    /// `Lost` and places a replacement for each live instance. The lost instance is told to stop,
    /// so a worker that comes back removes its containers: one copy per instance index. Call it
    /// periodically (the binary does, twice per heartbeat interval).
    pub fn check_liveness(&self) {
        let mut st = self.lock();
        let grace = self.inner.config.heartbeat_grace;
        let mut txn = Txn::default();
        let mut went_down = Vec::new();
        for (id, w) in st.workers.iter_mut() {
            let now_live = liveness(w.healthy, w.last_seen, grace);
            if now_live != w.liveness {
                if now_live == Liveness::Down {
                    went_down.push(id.clone());
                }
                w.liveness = now_live;
                txn.events.push(EventKind::WorkerLiveness {
                    worker: id.clone(),
                    status: now_live,
                });
            }
        }
        // Schedulers: a change of liveness is an event, which also wakes the long-polls of the
        // others so that a dead scheduler's leases move at once. Schedulers keep no state here:
        // one that has been down for 20 grace periods is forgotten.
        let now = Instant::now();
        st.schedulers.retain(|id, sc| {
            let live = liveness(true, sc.last_seen, grace);
            if live != sc.liveness {
                sc.liveness = live;
                txn.events.push(EventKind::SchedulerLiveness {
                    scheduler: id.clone(),
                    status: live,
                });
            }
            now.duration_since(sc.last_seen) < grace * 20
        });
        // Leases past their timeout go back to the pool: wake the pollers.
        let lease_timeout = self.inner.config.lease_timeout;
        let mut expired = false;
        for i in st.instances.values_mut() {
            if let Some((_, at)) = &i.lease
                && now.duration_since(*at) >= lease_timeout
            {
                i.lease = None;
                expired = true;
            }
        }
        if expired {
            txn.events.push(EventKind::LeasesExpired);
        }
        for worker in went_down {
            let lost: Vec<InstanceId> = st
                .instances
                .values()
                .filter(|i| i.rec.worker.as_ref() == Some(&worker) && i.rec.desired == Desired::Run)
                .filter(|i| {
                    i.rec
                        .tasks
                        .values()
                        .any(|t| !matches!(t.state, TaskState::Completed | TaskState::Failed))
                })
                .map(|i| i.rec.id.clone())
                .collect();
            for id in lost {
                reschedule_lost(
                    &mut st,
                    &id,
                    &worker,
                    self.inner.config.min_healthy_time,
                    &mut txn,
                );
            }
        }
        // Rolling updates waiting out the minimum healthy time move on here.
        let rolling: BTreeSet<JobId> = st
            .instances
            .values()
            .filter(|i| i.rec.desired == Desired::Run)
            .filter(|i| {
                st.jobs
                    .get(&i.rec.job)
                    .is_some_and(|j| j.version != i.rec.version)
            })
            .map(|i| i.rec.job.clone())
            .collect();
        for job in &rolling {
            advance_rollout(&mut st, job, self.inner.config.min_healthy_time, &mut txn);
        }
        let _ = self.commit(&mut st, txn);
    }

    /// Runs [`Manager::check_liveness`] twice per heartbeat interval, forever.
    pub async fn run_liveness_checks(self) {
        let every = (self.inner.config.heartbeat_interval / 2).max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check_liveness();
        }
    }

    /// Runs `check` under the lock until it yields a value, re-checking on every state change,
    /// for at most `wait`. `Ok(None)` when time ran out.
    async fn wait_until<R>(
        &self,
        wait: Duration,
        mut check: impl FnMut(&mut State) -> ApiResult<Option<R>>,
    ) -> ApiResult<Option<R>> {
        let deadline = Instant::now() + wait;
        let mut rx = self.inner.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(r) = check(&mut self.lock())? {
                return Ok(Some(r));
            }
            tokio::select! {
                res = rx.changed() => if res.is_err() { return Ok(None) },
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }
}

fn liveness(healthy: bool, last_seen: Instant, grace: Duration) -> Liveness {
    if Instant::now().duration_since(last_seen) > grace {
        Liveness::Down
    } else if healthy {
        Liveness::Ready
    } else {
        Liveness::Unhealthy
    }
}

/// Adds a pending instance `index` of `job` (current spec and version), with a new id.
fn new_instance(st: &mut State, job: &JobId, index: u32, reason: Option<String>, txn: &mut Txn) {
    let Some(rec) = st.jobs.get_mut(job) else {
        return;
    };
    let generation = rec.next_generation;
    rec.next_generation += 1;
    txn.ops.push(StoreOp::PutJob(rec.clone()));
    let id = InstanceId::for_job(job, index, generation);
    let inst = InstanceRecord {
        id: id.clone(),
        job: job.clone(),
        version: rec.version,
        spec: rec.spec.clone(),
        index,
        worker: None,
        desired: Desired::Run,
        pending_reason: Some(reason.unwrap_or_else(|| "waiting for a scheduler".into())),
        tasks: rec
            .spec
            .tasks
            .iter()
            .map(|t| (t.name.clone(), TaskStatus::new(TaskState::Pending)))
            .collect(),
    };
    txn.ops.push(StoreOp::PutInstance(inst.clone()));
    st.instances.insert(id, Instance::new(inst));
    st.capacity_epoch += 1;
}

/// Moves a rolling update one step: stop an old instance, wait until it is gone, start its
/// replacement, wait until that runs, then the next index. One index at a time, so an update needs
/// no spare capacity and keeps `count - 1` instances serving; a replacement that fails stops the
/// rollout, leaving the remaining old instances running.
fn advance_rollout(st: &mut State, job: &JobId, min_healthy: Duration, txn: &mut Txn) {
    let now = Instant::now();
    for i in st.instances.values_mut().filter(|i| &i.rec.job == job) {
        // Healthy: every task runs (or completed) and passes its health check, if it has one.
        let spec = &i.rec.spec;
        let running = i.rec.tasks.iter().all(|(name, t)| {
            let checked = spec
                .task(name.as_str())
                .is_some_and(|t| t.health_check.is_some());
            t.state == TaskState::Completed
                || (t.state == TaskState::Running && (!checked || t.healthy == Some(true)))
        });
        i.healthy_since = if running {
            Some(i.healthy_since.unwrap_or(now))
        } else {
            None
        };
    }
    let Some(rec) = st.jobs.get(job) else { return };
    if rec.stopped {
        return;
    }
    let (version, count) = (rec.version, rec.spec.count);
    let all_done = |i: &Instance| i.rec.tasks.values().all(|t| t.state.is_terminal());
    let mine: Vec<&Instance> = st
        .instances
        .values()
        .filter(|i| &i.rec.job == job)
        .collect();
    // Scale down: instances past the new count go at once.
    let surplus: Vec<InstanceId> = mine
        .iter()
        .filter(|i| i.rec.desired == Desired::Run && i.rec.index >= count)
        .map(|i| i.rec.id.clone())
        .collect();
    let mut busy = false;
    for i in &mine {
        let r = &i.rec;
        if r.version == version && r.desired == Desired::Run {
            let states = r.tasks.values().map(|t| t.state);
            if states.clone().any(|s| s == TaskState::Failed) {
                return; // the new spec fails: stop rolling
            }
            let all_completed = states.clone().all(|s| s == TaskState::Completed);
            let settled = i
                .healthy_since
                .is_some_and(|t| now.duration_since(t) >= min_healthy);
            if !(all_completed || settled) {
                busy = true;
            }
        }
        if r.desired == Desired::Stop && r.worker.is_some() && !all_done(i) {
            busy = true;
        }
    }
    let missing = (0..count).find(|idx| {
        !mine.iter().any(|i| {
            i.rec.version == version && i.rec.desired == Desired::Run && i.rec.index == *idx
        })
    });
    let old_at = missing.and_then(|idx| {
        mine.iter()
            .find(|i| {
                i.rec.version != version && i.rec.desired == Desired::Run && i.rec.index == idx
            })
            .map(|i| i.rec.id.clone())
    });
    for id in surplus {
        stop_instance(st, &id, txn);
    }
    if busy {
        return;
    }
    let Some(idx) = missing else { return };
    match old_at {
        Some(old) => {
            stop_instance(st, &old, txn);
            // An old instance that never got a worker is gone at once: go straight on.
            let gone = st
                .instances
                .get(&old)
                .is_some_and(|i| i.rec.tasks.values().all(|t| t.state.is_terminal()));
            if gone {
                new_instance(st, job, idx, Some("rolling update".into()), txn);
            }
        }
        None => new_instance(st, job, idx, Some("rolling update".into()), txn),
    }
}

/// Marks a lost instance's tasks `Lost`, tells it to stop, and adds a replacement with the same
/// index (and a new id) to be placed elsewhere.
fn reschedule_lost(
    st: &mut State,
    id: &InstanceId,
    worker: &WorkerId,
    min_healthy: Duration,
    txn: &mut Txn,
) {
    let next_index = st.index + 1;
    if let Some(w) = st.workers.get_mut(worker) {
        // Its assignments change: when it is back, its watch returns and it stops the instance.
        w.assign_index = next_index;
    }
    let Some(inst) = st.instances.get_mut(id) else {
        return;
    };
    inst.rec.desired = Desired::Stop;
    let reason = format!("worker {worker} is down; replaced on another worker");
    end_tasks(&mut inst.rec, TaskState::Lost, &reason, txn);
    let old = inst.rec.clone();
    txn.ops.push(StoreOp::PutInstance(old.clone()));
    let current = st
        .jobs
        .get(&old.job)
        .is_some_and(|j| !j.stopped && j.version == old.version);
    if current {
        let reason = format!("replacing {} (worker {worker} is down)", old.id);
        new_instance(st, &old.job, old.index, Some(reason), txn);
    } else {
        // An instance of an older version: the rollout replaces it with the new spec.
        advance_rollout(st, &old.job, min_healthy, txn);
    }
}

/// Moves every task of `rec` that has not ended to the terminal state `to`, with `reason`.
fn end_tasks(rec: &mut InstanceRecord, to: TaskState, reason: &str, txn: &mut Txn) {
    for (name, t) in rec.tasks.iter_mut().filter(|(_, t)| !t.state.is_terminal()) {
        txn.events.push(EventKind::TaskStateChanged {
            instance: rec.id.clone(),
            task: name.clone(),
            from: t.state,
            to,
        });
        t.state = to;
        t.reason = Some(reason.to_owned());
        t.since = now_millis();
    }
}

/// Marks an instance to stop. Unplaced instances stop at once; placed ones wait for their worker.
fn stop_instance(st: &mut State, id: &InstanceId, txn: &mut Txn) {
    let next_index = st.index + 1;
    let Some(inst) = st.instances.get_mut(id) else {
        return;
    };
    if inst.rec.desired == Desired::Stop {
        return;
    }
    inst.rec.desired = Desired::Stop;
    inst.lease = None;
    match &inst.rec.worker {
        None => {
            inst.rec.pending_reason = None;
            end_tasks(
                &mut inst.rec,
                TaskState::Stopped,
                "stopped before it was placed",
                txn,
            );
        }
        Some(w) => {
            if let Some(w) = st.workers.get_mut(w) {
                w.assign_index = next_index;
            }
        }
    }
    txn.ops.push(StoreOp::PutInstance(inst.rec.clone()));
}

fn assignments(st: &State, worker: &WorkerId, index: u64) -> Assignments {
    let instances = st
        .instances
        .values()
        .filter(|i| i.rec.worker.as_ref() == Some(worker))
        .filter(|i| {
            !(i.rec.desired == Desired::Stop && i.rec.tasks.values().all(|t| t.state.is_terminal()))
        })
        .map(|i| Assignment {
            instance: i.rec.id.clone(),
            index: i.rec.index,
            desired: i.rec.desired,
            job: i.rec.spec.clone(),
        })
        .collect();
    Assignments {
        index,
        full: true,
        instances,
        removed: vec![],
    }
}

/// What the instances placed on one worker reserve.
#[derive(Clone)]
struct Reserved {
    resources: Resources,
    ports: BTreeSet<(u16, crate::spec::Protocol)>,
    instances: u32,
    jobs: BTreeMap<JobId, u32>,
}

impl Reserved {
    const NONE: Reserved = Reserved {
        resources: Resources::ZERO,
        ports: BTreeSet::new(),
        instances: 0,
        jobs: BTreeMap::new(),
    };
}

/// What is reserved on each worker: by the instances placed there that still hold resources.
fn reserved(st: &State) -> BTreeMap<&WorkerId, Reserved> {
    let mut m: BTreeMap<&WorkerId, Reserved> = BTreeMap::new();
    for i in st.instances.values() {
        let Some(w) = &i.rec.worker else { continue };
        if !i.rec.tasks.values().any(|t| t.state.holds_resources()) {
            continue;
        }
        let e = m.entry(w).or_insert(Reserved::NONE);
        e.resources = e.resources.saturating_add(&i.rec.spec.resources());
        e.ports.extend(i.rec.spec.host_ports());
        e.instances += 1;
        *e.jobs.entry(i.rec.job.clone()).or_insert(0) += 1;
    }
    m
}

fn snapshots(st: &State, grace: Duration) -> Vec<WorkerSnapshot> {
    let reserved = reserved(st);
    st.workers
        .values()
        .filter(|w| liveness(w.healthy, w.last_seen, grace) == Liveness::Ready)
        .map(|w| {
            let r = reserved.get(&w.reg.id).cloned().unwrap_or(Reserved::NONE);
            WorkerSnapshot {
                id: w.reg.id.clone(),
                labels: w.reg.labels.clone(),
                total: w.resources.total,
                allocated: r.resources,
                ports_in_use: r.ports,
                instances: r.instances,
                jobs: r.jobs,
            }
        })
        .collect()
}

fn worker_views(st: &State, grace: Duration) -> Vec<WorkerView> {
    let reserved = reserved(st);
    st.workers
        .values()
        .map(|w| {
            let r = reserved.get(&w.reg.id).cloned().unwrap_or(Reserved::NONE);
            WorkerView {
                id: w.reg.id.clone(),
                status: liveness(w.healthy, w.last_seen, grace),
                message: w.message.clone(),
                address: w.reg.address.clone(),
                labels: w.reg.labels.clone(),
                resources: w.resources,
                reserved: r.resources,
                instances: r.instances as usize,
                last_seen_ms_ago: Instant::now().duration_since(w.last_seen).as_millis() as u64,
            }
        })
        .collect()
}

fn instance_view(i: &Instance) -> InstanceView {
    InstanceView {
        id: i.rec.id.clone(),
        index: i.rec.index,
        worker: i.rec.worker.clone(),
        desired: i.rec.desired,
        pending_reason: i.rec.pending_reason.clone(),
        tasks: i.rec.tasks.clone(),
    }
}

fn job_instances<'a>(st: &'a State, name: &'a JobId) -> impl Iterator<Item = &'a Instance> + 'a {
    st.instances.values().filter(move |i| &i.rec.job == name)
}

/// The phase of a job from its current instances.
fn phase(rec: &JobRecord, instances: &[&Instance]) -> JobPhase {
    let current: Vec<&&Instance> = instances
        .iter()
        .filter(|i| i.rec.version == rec.version && i.rec.desired == Desired::Run)
        .collect();
    if rec.stopped {
        let all_done = instances
            .iter()
            .all(|i| i.rec.tasks.values().all(|t| t.state.is_terminal()));
        return if all_done {
            JobPhase::Stopped
        } else {
            JobPhase::Stopping
        };
    }
    if current.iter().any(|i| i.rec.worker.is_none()) {
        return JobPhase::Pending;
    }
    let states: Vec<TaskState> = current
        .iter()
        .flat_map(|i| i.rec.tasks.values().map(|t| t.state))
        .collect();
    use TaskState::*;
    if states.contains(&Failed) {
        JobPhase::Failed
    } else if states.contains(&Lost) {
        JobPhase::Lost
    } else if !states.is_empty() && states.iter().all(|s| *s == Completed) {
        JobPhase::Completed
    } else if states
        .iter()
        .any(|s| matches!(s, Pending | Scheduled | Starting | Restarting))
    {
        JobPhase::Starting
    } else if states.iter().any(|s| matches!(s, Stopping | Stopped)) {
        JobPhase::Stopping
    } else {
        JobPhase::Running
    }
}

fn job_view(st: &State, name: &JobId) -> Option<JobView> {
    let rec = st.jobs.get(name)?;
    let mut insts: Vec<&Instance> = job_instances(st, name).collect();
    // Current version first, then older ones.
    insts.sort_by(|a, b| {
        b.rec
            .version
            .cmp(&a.rec.version)
            .then(a.rec.index.cmp(&b.rec.index))
    });
    Some(JobView {
        name: name.clone(),
        phase: phase(rec, &insts),
        version: rec.version,
        submitted_at: rec.submitted_at,
        spec: rec.spec.clone(),
        instances: insts.iter().map(|i| instance_view(i)).collect(),
    })
}

fn job_summary(st: &State, name: &JobId) -> Option<JobSummary> {
    let rec = st.jobs.get(name)?;
    let insts: Vec<&Instance> = job_instances(st, name).collect();
    let phase = phase(rec, &insts);
    let mut workers: Vec<WorkerId> = insts
        .iter()
        .filter(|i| i.rec.desired == Desired::Run)
        .filter_map(|i| i.rec.worker.clone())
        .collect();
    workers.dedup();
    let reason = if phase == JobPhase::Pending {
        insts
            .iter()
            .find(|i| i.rec.worker.is_none() && i.rec.desired == Desired::Run)
            .and_then(|i| i.rec.pending_reason.clone())
    } else {
        insts
            .iter()
            .filter(|i| i.rec.version == rec.version)
            .flat_map(|i| i.rec.tasks.iter())
            .find(|(_, t)| t.state == TaskState::Failed)
            .map(|(name, t)| {
                format!(
                    "task {name}: {}",
                    t.reason.clone().unwrap_or_else(|| "failed".into())
                )
            })
    };
    Some(JobSummary {
        name: name.clone(),
        phase,
        version: rec.version,
        tasks: rec.spec.tasks.len(),
        workers,
        reason,
    })
}
