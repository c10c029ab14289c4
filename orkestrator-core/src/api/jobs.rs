//! Jobs: submissions, phases, the views of jobs, instances and tasks, and the job list.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, now_millis};
use crate::ids::{InstanceId, JobId, TaskName, WorkerId};
use crate::spec::model::Job;
use crate::state::TaskState;
use crate::usage::Usage;

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
    /// The same spec, for a job that had ended (`Stopped`, `Failed` or `Completed`): every
    /// instance starts again at once, under the same version.
    Restarted,
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
    pub usage: BTreeMap<TaskName, Usage>,
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
    /// Instances of the current version that should run (the job's `count`).
    #[serde(default)]
    pub instances: u32,
    /// How many of those are placed on a worker (`status` shows `placed/instances`).
    #[serde(default)]
    pub placed: u32,
    /// Workers its live instances are on.
    pub workers: Vec<WorkerId>,
    /// Why it is pending, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
