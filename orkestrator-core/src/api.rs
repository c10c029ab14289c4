//! Typed requests and responses of the manager's API: the same structs travel over HTTP as JSON
//! and through the in-process transport as values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{InstanceId, JobId, SchedulerId, TaskName, WorkerId};
use crate::spec::{Job, Problems, Protocol, Resources};
use crate::state::TaskState;

pub use crate::clock::{Millis, now_millis};

/// What kind of failure an [`ApiError`] is, in the manager's own terms. Transports map it to
/// their own codes (`orkestrator-runtime` maps it to HTTP statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule (a bad spec, query or body).
    Invalid,
    /// What the request names does not exist.
    NotFound,
    /// The request conflicts with the current state (not placed yet, no container yet, ...).
    Conflict,
    /// The manager cannot serve it now (its store failed); retrying later may succeed.
    Unavailable,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// The request exceeds a limit (too large, too many).
    LimitExceeded,
    /// This manager is not the leader; ask the leader.
    NotLeader,
    /// The request's media type is not one the endpoint reads.
    UnsupportedMedia,
    /// The endpoint does not take this method.
    MethodNotAllowed,
    /// A component the manager relays to (a worker) failed or did not answer.
    Upstream,
    /// A bug or an unexpected failure inside the manager.
    Internal,
}

/// An error answered by the manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// A stable machine-readable code (`invalid_spec`, `not_found`, ...).
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// For `invalid_spec`: every problem with its field path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Problems>,
}

impl ApiError {
    /// An error of `kind` with `code` and `message`.
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code: code.into(),
            message: message.into(),
            problems: None,
        }
    }

    /// An invalid request, with `code` and `message`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// An unknown `kind` of thing with `id`.
    pub fn not_found(kind: &str, id: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{kind} \"{id}\" not found"),
        )
    }

    /// A conflict with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, "conflict", message)
    }

    /// The manager cannot serve the request now.
    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(p) = &self.problems {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Invalid(problems) => ApiError {
                kind: ErrorKind::Invalid,
                code: "invalid_spec".into(),
                message: format!(
                    "invalid job spec ({} problem{})",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ),
                problems: Some(problems),
            },
            crate::Error::Syntax { .. } | crate::Error::UnknownFormat { .. } => {
                ApiError::bad_request("malformed_spec", e.to_string())
            }
            crate::Error::IllegalTransition { .. } => ApiError::conflict(e.to_string()),
            crate::Error::Api(a) => a,
            crate::Error::Store(m) => {
                crate::manager::store_failure(crate::manager::StoreFailure::Failed, &m)
            }
            crate::Error::OutcomeUnknown(m) => {
                crate::manager::store_failure(crate::manager::StoreFailure::OutcomeUnknown, &m)
            }
            crate::Error::NotLeader(m) => {
                crate::manager::store_failure(crate::manager::StoreFailure::NotLeader, &m)
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// The answer to a job submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The job.
    pub job: JobId,
    /// The job's spec version (1 for a new job; unchanged for an identical re-submission).
    pub version: u64,
    /// What the submission did.
    pub outcome: SubmitOutcome,
    /// The commit index of the change (for `unchanged`, the state index it was compared at):
    /// an event stream from here (`GET /v1/events?index=N`) misses nothing that follows.
    #[serde(default)]
    pub index: u64,
}

/// What a submission did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitOutcome {
    /// A new job.
    Created,
    /// The spec changed; the job's instances are replaced.
    Updated,
    /// The same spec was already running: nothing to do.
    Unchanged,
}

/// The phase of a job, derived from its instances' tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobPhase {
    /// Some instance waits for a placement.
    Pending,
    /// Placed, and some task is starting or restarting.
    Starting,
    /// Every task runs (or has completed, with at least one running).
    Running,
    /// Every task completed successfully.
    Completed,
    /// Some task failed for good.
    Failed,
    /// Some task's worker is down and the instance waits to be replaced.
    Lost,
    /// Being stopped.
    Stopping,
    /// Stopped on request.
    Stopped,
}

impl JobPhase {
    /// Every phase.
    pub const ALL: [JobPhase; 8] = [
        JobPhase::Pending,
        JobPhase::Starting,
        JobPhase::Running,
        JobPhase::Completed,
        JobPhase::Failed,
        JobPhase::Lost,
        JobPhase::Stopping,
        JobPhase::Stopped,
    ];
}

impl fmt::Display for JobPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Whether an instance should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    /// Keep it running (per its restart policy).
    Run,
    /// Stop it and remove its containers.
    Stop,
}

/// The observed status of one task of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The lifecycle state.
    pub state: TaskState,
    /// The last exit code, once the container has exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why the task is in this state (a failure, a pending reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The container, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// How many times the task has been restarted.
    #[serde(default)]
    pub restarts: u32,
    /// When the state last changed.
    pub since: Millis,
    /// For `Restarting`: when the next start is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<Millis>,
    /// The last health check's verdict, for tasks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

impl TaskStatus {
    /// A fresh status in `state`.
    pub fn new(state: TaskState) -> Self {
        TaskStatus {
            state,
            exit_code: None,
            reason: None,
            container_id: None,
            restarts: 0,
            since: now_millis(),
            next_start_at: None,
            healthy: None,
        }
    }
}

/// One placed (or waiting) copy of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    /// The instance.
    pub id: InstanceId,
    /// Which copy of the job (0-based).
    pub index: u32,
    /// The spec version it runs (the job's `version` for a current instance, lower for one a
    /// rolling update is replacing). 0 from a manager that does not report it.
    #[serde(default)]
    pub version: u64,
    /// The worker it is placed on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// Whether it should run.
    pub desired: Desired,
    /// Why it is not placed, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// Each task's status.
    pub tasks: BTreeMap<TaskName, TaskStatus>,
    /// Each running task's current CPU and memory, from the metrics its worker publishes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usage: BTreeMap<TaskName, crate::metrics::Usage>,
}

/// A job and everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job's name.
    pub name: JobId,
    /// The phase, derived from its instances.
    pub phase: JobPhase,
    /// The spec version.
    pub version: u64,
    /// When it was first submitted.
    pub submitted_at: Millis,
    /// The spec.
    pub spec: Job,
    /// Its instances (the current ones first, then replaced ones not yet cleaned up).
    pub instances: Vec<InstanceView>,
    /// The state index this view is as of (for a stop, the index of the stop's commit): an
    /// event stream from here misses nothing that follows.
    #[serde(default)]
    pub index: u64,
}

/// `GET /v1/jobs/{job}/logs` query: which task of which instance, and how many lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The task; may be left out when the job has one task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Which copy of the job (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// How many of the last lines (default [`LogsQuery::DEFAULT_TAIL`], at most
    /// [`LogsQuery::MAX_TAIL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<usize>,
    /// Only output written since then: a duration ago (`10m`, `1h30m`), an RFC 3339 time
    /// (`2024-05-01T12:00:00Z`) or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Stream the output as it is written (chunked `text/plain`), following the task into its
    /// next container when it restarts or is replaced, until the job ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
}

impl LogsQuery {
    /// Lines returned when `tail` is not given.
    pub const DEFAULT_TAIL: usize = 100;
    /// The most lines one request may ask for.
    pub const MAX_TAIL: usize = 10_000;

    /// The number of lines asked for, checked.
    pub fn tail(&self) -> Result<usize, ApiError> {
        match self.tail {
            None => Ok(Self::DEFAULT_TAIL),
            Some(n) if (1..=Self::MAX_TAIL).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "invalid_tail",
                format!(
                    "tail {n} is out of range: ask for 1 to {} lines",
                    Self::MAX_TAIL
                ),
            )),
        }
    }

    /// The `since` asked for, as Unix seconds at `now`; `None` when not given.
    pub fn since_at(&self, now: std::time::SystemTime) -> Result<Option<i64>, ApiError> {
        self.since
            .as_deref()
            .map(|s| parse_since(s, now))
            .transpose()
            .map_err(|m| ApiError::bad_request("invalid_since", m))
    }
}

/// Reads a `since` (a duration ago, an RFC 3339 time, or Unix seconds) as Unix seconds at `now`.
pub fn parse_since(s: &str, now: std::time::SystemTime) -> Result<i64, String> {
    use std::time::UNIX_EPOCH;
    let s = s.trim();
    let secs = |t: std::time::SystemTime| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => 0,
    };
    if let Ok(n) = s.parse::<i64>()
        && n >= 0
    {
        return Ok(n);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(secs(now.checked_sub(d).unwrap_or(UNIX_EPOCH)));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(secs(t));
    }
    Err(format!(
        "since {s:?} is neither a duration (10m, 1h30m) nor a time (2024-05-01T12:00:00Z, or Unix seconds)"
    ))
}

/// Where one task's output lives: the manager finds it, the worker's endpoint serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSource {
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// The task.
    pub task: TaskName,
    /// The worker running it.
    pub worker: WorkerId,
    /// The worker's endpoint (`http://host:port`).
    pub address: String,
    /// The task's container on that worker.
    pub container_id: String,
}

/// The last lines a task's container wrote (stdout and stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// The task.
    pub task: TaskName,
    /// The worker running it.
    pub worker: WorkerId,
    /// The output, as the engine returned it.
    pub text: String,
}

/// A worker endpoint's answer for one container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLogs {
    /// The output.
    pub text: String,
}

/// A line of the job list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job's name.
    pub name: JobId,
    /// The phase.
    pub phase: JobPhase,
    /// The spec version.
    pub version: u64,
    /// Tasks per instance.
    pub tasks: usize,
    /// Workers its live instances are on.
    pub workers: Vec<WorkerId>,
    /// Why it is pending, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Workers

/// What a worker has, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerResources {
    /// What the worker offers to tasks in all.
    pub total: Resources,
    /// What the tasks it runs have reserved.
    pub allocated: Resources,
    /// What the host has free right now (measured, e.g. free memory).
    pub available: Resources,
}

/// A worker's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterWorker {
    /// The worker's id (its name; stable across restarts).
    pub id: WorkerId,
    /// Where the worker's own HTTP endpoint listens (for logs), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Labels for placement constraints.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its resources.
    pub resources: WorkerResources,
    /// The worker's software version.
    #[serde(default)]
    pub version: String,
}

/// What the manager tells a component that registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// How often to send heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// After how long without a heartbeat the component counts as down, in milliseconds.
    pub heartbeat_grace_ms: u64,
    /// The component's own credential, when this registration issued one (registering with the
    /// join token, or by an operator): it acts only as this component from now on. Shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl Registered {
    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}

/// A worker's periodic report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// Its resources now.
    pub resources: WorkerResources,
    /// Whether it can run containers (false when its container engine does not answer).
    pub healthy: bool,
    /// Why it is unhealthy, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A component's liveness as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Liveness {
    /// Heartbeating and healthy.
    Ready,
    /// Heartbeating but reporting a problem (e.g. its container engine is down).
    Unhealthy,
    /// No heartbeat within the grace period.
    Down,
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A worker as the manager sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// The worker.
    pub id: WorkerId,
    /// Its liveness.
    pub status: Liveness,
    /// Why it is unhealthy, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its own endpoint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its last reported resources.
    pub resources: WorkerResources,
    /// What the manager has placed on it (the scheduler's view of "allocated").
    pub reserved: Resources,
    /// Live instances placed on it.
    pub instances: usize,
    /// Milliseconds since its last heartbeat.
    pub last_seen_ms_ago: u64,
    /// The host's current CPU and memory use, from the metrics the worker publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::metrics::Usage>,
}

/// A placed instance, as its worker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// Whether it should run.
    pub desired: Desired,
    /// The job's spec (shared: one copy per spec version).
    pub job: Arc<Job>,
}

/// A worker's assignments at a point in the manager's history: the whole set (`full`), or what
/// changed since the index the worker passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    /// The manager's state index these assignments reflect; pass it back to wait for a change.
    pub index: u64,
    /// `true`: `instances` is every instance placed on the worker that it should run or stop (the
    /// answer to index 0, or to an index too old to answer with changes). `false`: `instances`
    /// holds only the assignments added or changed since the index passed, and `removed` the
    /// instances that left.
    #[serde(default = "full_default")]
    pub full: bool,
    /// The assignments (all of them, or the changed ones: see `full`).
    pub instances: Vec<Assignment>,
    /// Instances no longer assigned since the index passed (only when `full` is `false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<InstanceId>,
}

fn full_default() -> bool {
    true
}

impl Assignments {
    /// Applies a watch answer to the assignments a worker holds, keyed by instance: a full answer
    /// replaces them, a delta adds, replaces and removes.
    pub fn apply_to(self, held: &mut BTreeMap<InstanceId, Assignment>) {
        if self.full {
            held.clear();
        }
        for id in &self.removed {
            held.remove(id);
        }
        for a in self.instances {
            held.insert(a.instance.clone(), a);
        }
    }
}

/// One task's state change, as a worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUpdate {
    /// The instance.
    pub instance: InstanceId,
    /// The task.
    pub task: TaskName,
    /// The new state.
    pub state: TaskState,
    /// The exit code, if the container exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why (a failure message, a restart reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Restarts so far.
    #[serde(default)]
    pub restarts: u32,
    /// For `Restarting`: when the next start is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<Millis>,
    /// The last health check's verdict, for tasks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

/// The answer to a status report: which updates were refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportResponse {
    /// Updates that were refused (unknown instance, illegal transition), with the reason.
    pub rejected: Vec<RejectedUpdate>,
}

/// A refused task update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedUpdate {
    /// The instance.
    pub instance: InstanceId,
    /// The task.
    pub task: TaskName,
    /// Why.
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------
// Schedulers

/// A scheduler's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterScheduler {
    /// The scheduler's id.
    pub id: SchedulerId,
    /// The algorithm it runs (for display).
    #[serde(default)]
    pub algorithm: String,
}

/// What a scheduler needs to know about a worker to place work on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    /// The worker.
    pub id: WorkerId,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// What it offers in all.
    pub total: Resources,
    /// What is reserved by instances placed on it.
    pub allocated: Resources,
    /// Host ports in use by instances placed on it.
    pub ports_in_use: BTreeSet<(u16, Protocol)>,
    /// Live instances placed on it.
    pub instances: u32,
    /// Live instances placed on it, per job (for spreading a job's instances).
    #[serde(default)]
    pub jobs: BTreeMap<JobId, u32>,
}

impl WorkerSnapshot {
    /// What is free: total − allocated.
    pub fn free(&self) -> Resources {
        self.total.saturating_sub(&self.allocated)
    }
}

/// An instance waiting for a placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstance {
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// The job's spec (shared: one copy per spec version).
    pub job: Arc<Job>,
}

/// Work handed to a scheduler: pending instances and the workers that could take them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulingWork {
    /// The manager's state index; pass it back to wait for new work.
    pub index: u64,
    /// Instances to place (leased to this scheduler).
    pub pending: Vec<PendingInstance>,
    /// Workers that are ready to take work.
    pub workers: Vec<WorkerSnapshot>,
}

/// A scheduler's decision for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The instance.
    pub instance: InstanceId,
    /// Where it goes, or why nowhere.
    pub outcome: DecisionOutcome,
}

/// Where an instance goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Place it on this worker.
    Place {
        /// The worker.
        worker: WorkerId,
    },
    /// It fits nowhere now.
    Unschedulable {
        /// Why, per worker or grouped.
        reason: String,
    },
}

/// What the manager did with a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionResult {
    /// The instance.
    pub instance: InstanceId,
    /// Whether the placement was committed.
    pub accepted: bool,
    /// Why not, if not (it no longer fits, the job is gone, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Health

/// A scheduler as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerView {
    /// The scheduler.
    pub id: SchedulerId,
    /// Its algorithm.
    pub algorithm: String,
    /// Its liveness.
    pub status: Liveness,
    /// Milliseconds since its last heartbeat.
    pub last_seen_ms_ago: u64,
}

/// The health of every component and job, summarised: counts by state, not lists (a cluster may
/// have tens of thousands of workers and a million tasks). `GET /v1/workers` and `GET /v1/jobs`
/// page through the details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The manager itself.
    pub manager: ManagerHealth,
    /// Registered schedulers (there are few).
    pub schedulers: Vec<SchedulerView>,
    /// Workers by liveness.
    pub workers: BTreeMap<Liveness, u64>,
    /// Jobs by phase.
    pub jobs: BTreeMap<JobPhase, u64>,
    /// Tasks of the instances the manager keeps, by state.
    pub tasks: BTreeMap<TaskState, u64>,
    /// Workers that are not `Ready` (at most [`HealthReport::MAX_LISTED`]), to act on.
    pub unready_workers: Vec<WorkerView>,
    /// Jobs that are `Failed` or `Lost` (at most [`HealthReport::MAX_LISTED`]), to act on.
    pub failing_jobs: Vec<JobSummary>,
    /// The managers sharing the store (etcd) and which one leads; empty for a lone manager.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<ManagerPeer>,
}

/// One of several managers on one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerPeer {
    /// Its name.
    pub name: String,
    /// Where it answers.
    pub addr: String,
    /// Whether it is the leader (the one that commits; the others forward to it).
    pub leader: bool,
}

impl HealthReport {
    /// How many unready workers and failing jobs the report lists by name.
    pub const MAX_LISTED: usize = 20;

    /// How many workers are registered.
    pub fn worker_count(&self) -> u64 {
        self.workers.values().sum()
    }

    /// How many tasks are in `state`.
    pub fn tasks_in(&self, state: TaskState) -> u64 {
        self.tasks.get(&state).copied().unwrap_or(0)
    }
}

/// The manager's own health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerHealth {
    /// Always `Ready` when it answers.
    pub status: Liveness,
    /// Its software version.
    pub version: String,
    /// Its state index (the last durable commit).
    pub index: u64,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// How its durable store is doing.
    pub store: StoreStats,
}

/// Figures of the manager's store commits (group commits: one durable commit for every change
/// gathered while the previous one was being written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreStats {
    /// Durable commits since the manager started.
    pub commits: u64,
    /// Changes (acknowledged writes) those commits held.
    pub changes: u64,
    /// Median commit latency over the recent commits, in microseconds.
    pub commit_p50_us: u64,
    /// 99th percentile commit latency over the recent commits, in microseconds.
    pub commit_p99_us: u64,
    /// The most changes one commit has held.
    pub batch_max: u64,
    /// Commits that failed.
    pub failures: u64,
}

// ---------------------------------------------------------------------------------------------
// Lists

/// One page of a list: its items, and a token for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass it as `continue` to get the next page; absent on the last page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `?limit=N&continue=TOKEN` of a paged list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Items per page: 1 to [`ListQuery::MAX_LIMIT`], default [`ListQuery::DEFAULT_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The token of the previous page's answer.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The least state index the answer must reflect (`?index=N`, e.g. a submission's): a
    /// follower manager waits until its copy has it; the leader always has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

impl ListQuery {
    /// Items per page when `limit` is not given.
    pub const DEFAULT_LIMIT: usize = 500;
    /// The most items one page may hold.
    pub const MAX_LIMIT: usize = 5_000;

    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        ListQuery {
            limit: Some(limit),
            after: None,
            index: None,
        }
    }

    /// The page size asked for, checked.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "invalid_limit",
                format!(
                    "limit {n} is out of range: ask for 1 to {} items",
                    Self::MAX_LIMIT
                ),
            )),
        }
    }
}
