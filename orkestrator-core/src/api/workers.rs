//! Workers: registration, heartbeats, liveness, the worker view, assignments and status reports.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jobs::Desired;
use crate::clock::Millis;
use crate::ids::{InstanceId, TaskName, WorkerId};
use crate::spec::model::{Job, Resources};
use crate::state::TaskState;
use crate::usage::Usage;

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
    /// The host volumes its operator offers to jobs, by name (`worker --host-volume`): only the
    /// names and whether they are read-only; their paths stay on the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_volumes: BTreeMap<String, HostVolumeOffer>,
    /// Its resources.
    pub resources: WorkerResources,
    /// The worker's software version.
    #[serde(default)]
    pub version: String,
}

/// A host volume a worker offers (`worker --host-volume NAME=/path[:ro]`), as the manager and
/// schedulers know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct HostVolumeOffer {
    /// Whether the operator offers it read-only (then no mount of it may write).
    #[serde(default)]
    pub read_only: bool,
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

/// What the manager answers a worker's heartbeat: the pace in force now, which widens with the
/// number of workers (the manager's `max_heartbeats_per_second`). The worker sends
/// its next heartbeat one `heartbeat_interval_ms` later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// How often to send heartbeats from now on, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// After how long without a heartbeat the worker counts as missing, in milliseconds.
    pub heartbeat_grace_ms: u64,
}

impl HeartbeatAnswer {
    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}

/// A component's liveness as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Liveness {
    /// Heartbeating and healthy.
    Ready,
    /// Heartbeating but reporting a problem (e.g. its container engine is down); or a worker
    /// past its deadline at a time when most workers went silent at once, which the manager
    /// blames on itself or the network rather than on them (its message says so).
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
    /// The host volumes it offers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_volumes: BTreeMap<String, HostVolumeOffer>,
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
    pub usage: Option<Usage>,
    /// What the tasks it runs use now, together (the sum of their newest samples), from the same
    /// metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_usage: Option<Usage>,
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
    /// The tasks of this instance that ended for good (`Completed` or `Failed`), as the manager
    /// recorded them: a worker never starts them again, even one that restarted and finds no
    /// trace of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended: Vec<TaskName>,
    /// The job version the instance runs (its containers see it as `ORK_VERSION`).
    #[serde(default)]
    pub version: u64,
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
    /// Every named volume the worker is to remove, in full in each answer (a delta's too): the
    /// only way a worker ever removes one. It confirms each removal
    /// (`POST /v1/workers/{id}/volumes/removed`); until then the instruction stays here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_to_remove: Vec<super::VolumeRef>,
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
    /// Updates that were refused (unknown instance, illegal transition), with the reason. A
    /// report for a task the manager already marked `Lost` (its worker was judged down and it
    /// was replaced) is stale: it is left out without being listed here, except its stop.
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
