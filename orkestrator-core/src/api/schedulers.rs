//! Schedulers: registration, the work handed to them and their decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::{InstanceId, JobId, SchedulerId, WorkerId};
use crate::spec::model::{Job, Protocol, Resources};
use crate::units::{ByteSize, Cpu};
use crate::usage::Usage;

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
    /// The host volumes it offers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_volumes: BTreeMap<String, super::workers::HostVolumeOffer>,
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
    /// What its host was last measured to use, from the metrics pipeline; `None` until the
    /// worker has reported metrics. Reservations (`allocated`) say what was promised; this says
    /// what is used, for a scheduler that wants to weigh both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredUse>,
}

/// A worker's host's measured use, in the units of [`Resources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredUse {
    /// CPU in use.
    pub cpu: Cpu,
    /// Memory in use.
    pub memory: ByteSize,
    /// When it was measured (milliseconds since the Unix epoch).
    pub at: Millis,
}

impl From<Usage> for MeasuredUse {
    fn from(u: Usage) -> Self {
        MeasuredUse {
            cpu: Cpu::from_millis((u.cpu_cores.max(0.0) * 1000.0).round() as u64),
            memory: ByteSize::b(u.memory_bytes),
            at: u.at,
        }
    }
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
    /// The worker that holds this instance index's named volumes: it is placed there or
    /// nowhere (the manager refuses any other worker). While that worker is not among the ready
    /// ones, the instance is unschedulable with the reason `volume data of instance 2 lives on
    /// worker w1, which is down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<WorkerId>,
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
