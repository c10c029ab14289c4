//! The event bus: every state change the manager makes is published here. It feeds long-polls,
//! and will feed the SSE event stream and metrics.

use serde::{Deserialize, Serialize};

use crate::api::{Liveness, Millis};
use crate::ids::{InstanceId, JobId, SchedulerId, TaskName, WorkerId};
use crate::state::TaskState;

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The state index of the change: the commit index for changes of durable state; for soft
    /// changes (liveness, leases), the last commit index when it happened.
    pub index: u64,
    /// The event's place under its index: events of one change count from 0; soft events count
    /// on after them. `(index, seq)` rises with every event and never repeats, across restarts
    /// too, so a stream can resume after any event.
    #[serde(default)]
    pub seq: u32,
    /// When it happened.
    pub at: Millis,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A job was created or its spec changed.
    JobSubmitted {
        /// The job.
        job: JobId,
        /// Its new version.
        version: u64,
    },
    /// A job was stopped.
    JobStopped {
        /// The job.
        job: JobId,
    },
    /// An instance was placed on a worker.
    InstancePlaced {
        /// The instance.
        instance: InstanceId,
        /// The worker.
        worker: WorkerId,
        /// The scheduler that decided.
        scheduler: SchedulerId,
    },
    /// An instance could not be placed.
    InstanceUnschedulable {
        /// The instance.
        instance: InstanceId,
        /// Why.
        reason: String,
    },
    /// A task changed state.
    TaskStateChanged {
        /// The instance.
        instance: InstanceId,
        /// The task.
        task: TaskName,
        /// The previous state.
        from: TaskState,
        /// The new state.
        to: TaskState,
    },
    /// A worker registered.
    WorkerRegistered {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker's liveness changed.
    WorkerLiveness {
        /// The worker.
        worker: WorkerId,
        /// Its new liveness.
        status: Liveness,
    },
    /// A scheduler registered.
    SchedulerRegistered {
        /// The scheduler.
        scheduler: SchedulerId,
    },
    /// A scheduler's liveness changed.
    SchedulerLiveness {
        /// The scheduler.
        scheduler: SchedulerId,
        /// Its new liveness.
        status: Liveness,
    },
    /// Instances leased to a scheduler that did not decide in time went back to the pool.
    LeasesExpired,
    /// Garbage collection removed what had ended long enough ago.
    Collected {
        /// Jobs removed with everything of theirs.
        jobs: u64,
        /// Instances removed (of removed jobs, and replaced ones of live jobs).
        instances: u64,
        /// Workers removed after being down for long.
        workers: u64,
    },
}
