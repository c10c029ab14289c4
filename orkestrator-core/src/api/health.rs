//! Health: the summary of every component and job, the manager's own health and its store's
//! figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::jobs::{JobPhase, JobSummary};
use super::workers::{Liveness, WorkerView};
use crate::ids::SchedulerId;
use crate::state::TaskState;

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
