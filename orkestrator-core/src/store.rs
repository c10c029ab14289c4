//! The manager's durable state.
//!
//! The manager keeps its state in memory and writes every change through a [`Store`] before it
//! acknowledges it, so a restarted manager reloads exactly what it acknowledged. [`MemoryStore`]
//! is for tests and simulations; `orkestrator-runtime` has a redb-backed store, and a highly
//! available manager will add etcd.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::api::{Desired, Millis, RegisterWorker, TaskStatus};
use crate::error::{Error, Result};
use crate::ids::{InstanceId, JobId, TaskName, WorkerId};
use crate::spec::Job;

/// A job as the manager keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The current spec.
    pub spec: Job,
    /// The spec version: 1, then +1 on every changed submission.
    pub version: u64,
    /// When it was first submitted.
    pub submitted_at: Millis,
    /// Whether a user stopped it.
    pub stopped: bool,
    /// Counter for instance ids, so a replacement never reuses an id.
    pub next_generation: u64,
}

/// An instance as the manager keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub id: InstanceId,
    /// Its job.
    pub job: JobId,
    /// The job spec version it runs.
    pub version: u64,
    /// The spec it runs.
    pub spec: Job,
    /// Which copy of the job.
    pub index: u32,
    /// Its worker, once placed.
    pub worker: Option<WorkerId>,
    /// Whether it should run.
    pub desired: Desired,
    /// Why it is not placed, when it is not.
    pub pending_reason: Option<String>,
    /// Each task's observed status.
    pub tasks: BTreeMap<TaskName, TaskStatus>,
}

/// One change to the stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOp {
    /// Insert or replace a job.
    PutJob(JobRecord),
    /// Insert or replace an instance.
    PutInstance(InstanceRecord),
    /// Delete an instance.
    DeleteInstance(InstanceId),
    /// Insert or replace a worker's registration.
    PutWorker(RegisterWorker),
}

/// Everything a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The state index of the last commit.
    pub index: u64,
    /// Jobs by name.
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Instances by id.
    pub instances: BTreeMap<InstanceId, InstanceRecord>,
    /// Worker registrations by id.
    pub workers: BTreeMap<WorkerId, RegisterWorker>,
}

impl Snapshot {
    /// Applies one operation.
    pub fn apply(&mut self, op: StoreOp) {
        match op {
            StoreOp::PutJob(j) => {
                self.jobs.insert(j.spec.name.clone(), j);
            }
            StoreOp::PutInstance(i) => {
                self.instances.insert(i.id.clone(), i);
            }
            StoreOp::DeleteInstance(id) => {
                self.instances.remove(&id);
            }
            StoreOp::PutWorker(w) => {
                self.workers.insert(w.id.clone(), w);
            }
        }
    }
}

/// Durable storage for the manager's state. `commit` must be atomic and durable when it returns.
pub trait Store: Send + Sync + 'static {
    /// Loads everything (empty on first start).
    fn load(&self) -> Result<Snapshot>;
    /// Atomically applies `ops` and records `index` as the state index.
    fn commit(&self, index: u64, ops: &[StoreOp]) -> Result<()>;
}

/// An in-memory store: for tests, examples and simulations (a "restart" reloads from it).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Snapshot>,
    fail: Mutex<Option<String>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following commit fail with `message` (or succeed again with `None`).
    pub fn fail_commits(&self, message: Option<String>) {
        *self.fail.lock().unwrap_or_else(|e| e.into_inner()) = message;
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot> {
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn commit(&self, index: u64, ops: &[StoreOp]) -> Result<()> {
        if let Some(m) = self.fail.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(Error::Store(m));
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for op in ops {
            s.apply(op.clone());
        }
        s.index = index;
        Ok(())
    }
}
