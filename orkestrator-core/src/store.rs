//! The manager's durable state.
//!
//! The manager keeps its state in memory and writes every change through a [`Store`] before it
//! acknowledges it, so a restarted manager reloads exactly what it acknowledged. Commits are
//! grouped: the manager's committer gathers every change prepared while the previous commit was
//! being written into one [`Store::commit`]. The trait is asynchronous so that a network store
//! (etcd) fits it as well as an embedded one.
//!
//! [`MemoryStore`] is for tests and simulations; `orkestrator-runtime` has a redb-backed store.
//!
//! What is stored: jobs (without their specs), one copy of each job spec version, instances
//! (referring to their spec by version), worker registrations, tokens (as digests), secret versions (sealed) with
//! their key check, named volumes (where each instance's data lives), and two counters (the state index
//! and the next instance number). Liveness, leases and metrics are soft state and never stored.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::api::{Desired, RegisterWorker, TaskStatus, VolumeRecord, VolumeRef};
use crate::auth::TokenRecord;
use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{InstanceId, JobId, WorkerId};
use crate::secrets::{SecretKey, SecretRecord};
use crate::spec::Job;

/// The version of the stored records' shape. Stores write it and refuse a newer one.
pub const FORMAT: u64 = 2;

/// A job as the manager keeps it (its specs are stored apart, one record per version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's name.
    pub name: JobId,
    /// The current spec version: 1, then +1 on every changed submission.
    pub version: u64,
    /// When it was first submitted.
    pub submitted_at: Millis,
    /// Whether a user stopped it.
    pub stopped: bool,
    /// When it was stopped or last finished, for garbage collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Millis>,
    /// Set by a restart of a running job: its instances numbered below this, started before the
    /// restart, are replaced one at a time, as by a new version (which a restart does not make).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_below: Option<u64>,
}

/// An instance as the manager keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub id: InstanceId,
    /// Its job.
    pub job: JobId,
    /// The job spec version it runs (the spec is the job's record of that version).
    pub version: u64,
    /// Which copy of the job.
    pub index: u32,
    /// Its worker, once placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// Whether it should run.
    pub desired: Desired,
    /// Why it is not placed, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// Each task's observed status, in the order of the spec's tasks.
    pub tasks: Vec<TaskStatus>,
}

/// One change to the stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOp {
    /// Insert or replace a job.
    PutJob(JobRecord),
    /// Delete a job (its specs and instances are deleted by their own ops).
    DeleteJob(JobId),
    /// Insert a job spec version.
    PutSpec {
        /// The job.
        job: JobId,
        /// The version.
        version: u64,
        /// The spec.
        spec: Arc<Job>,
    },
    /// Delete a job spec version.
    DeleteSpec {
        /// The job.
        job: JobId,
        /// The version.
        version: u64,
    },
    /// Insert or replace an instance.
    PutInstance(InstanceRecord),
    /// Delete an instance.
    DeleteInstance(InstanceId),
    /// Insert or replace a worker's registration.
    PutWorker(RegisterWorker),
    /// Delete a worker's registration.
    DeleteWorker(WorkerId),
    /// Record the next instance number (instance ids are never reused, even after GC).
    SetNextInstance(u64),
    /// Insert or replace a token (its digest, never its secret).
    PutToken(TokenRecord),
    /// Delete (revoke) a token.
    DeleteToken(String),
    /// Insert or replace one version of a secret (sealed, never plain).
    PutSecret(SecretRecord),
    /// Delete one version of a secret.
    DeleteSecret {
        /// The secret.
        name: String,
        /// The version.
        version: u64,
    },
    /// Record the key check of the key the secrets are sealed with.
    SetSecretKeyCheck(Vec<u8>),
    /// Insert or replace a named volume's record.
    PutVolume(VolumeRecord),
    /// Delete a named volume's record (its worker removed it).
    DeleteVolume {
        /// Which volume.
        of: VolumeRef,
        /// On which worker.
        worker: WorkerId,
    },
}

/// Everything a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The state index of the last commit.
    pub index: u64,
    /// The next instance number.
    pub next_instance: u64,
    /// Jobs by name.
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Job specs by job and version.
    pub specs: BTreeMap<(JobId, u64), Arc<Job>>,
    /// Instances by id.
    pub instances: BTreeMap<InstanceId, InstanceRecord>,
    /// Worker registrations by id.
    pub workers: BTreeMap<WorkerId, RegisterWorker>,
    /// Tokens and component credentials by id.
    pub tokens: BTreeMap<String, TokenRecord>,
    /// Secret versions (sealed) by name and version.
    pub secrets: BTreeMap<(String, u64), SecretRecord>,
    /// The key check of the key the secrets are sealed with, once a key was used.
    pub secret_key_check: Option<Vec<u8>>,
    /// Named volumes by volume and worker.
    pub volumes: BTreeMap<(VolumeRef, WorkerId), VolumeRecord>,
}

impl Snapshot {
    /// What re-encrypts every secret of this state (a store's, loaded while no manager runs on
    /// it) from `old` to `new`: each version sealed again under `new` (same name, version and
    /// times) and the new key's check. An error if `old` is not the key of the store.
    pub fn reseal_secrets(&self, old: &SecretKey, new: &SecretKey) -> Result<Vec<StoreOp>> {
        if let Some(check) = &self.secret_key_check
            && !old.matches_check(check)
        {
            return Err(Error::SecretKey(
                "the old key is not the key this store's secrets are sealed with: give the key file the manager runs with".into(),
            ));
        }
        let mut ops = Vec::with_capacity(self.secrets.len() + 1);
        for r in self.secrets.values() {
            let value = old.open(&r.name, r.version, &r.sealed)?;
            let mut again = r.clone();
            again.sealed = new.seal(&r.name, r.version, &value)?;
            ops.push(StoreOp::PutSecret(again));
        }
        ops.push(StoreOp::SetSecretKeyCheck(new.key_check()?));
        Ok(ops)
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: StoreOp) {
        match op {
            StoreOp::PutJob(j) => {
                self.jobs.insert(j.name.clone(), j);
            }
            StoreOp::DeleteJob(name) => {
                self.jobs.remove(&name);
            }
            StoreOp::PutSpec { job, version, spec } => {
                self.specs.insert((job, version), spec);
            }
            StoreOp::DeleteSpec { job, version } => {
                self.specs.remove(&(job, version));
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
            StoreOp::DeleteWorker(id) => {
                self.workers.remove(&id);
            }
            StoreOp::SetNextInstance(n) => self.next_instance = n,
            StoreOp::PutToken(t) => {
                self.tokens.insert(t.id.clone(), t);
            }
            StoreOp::DeleteToken(id) => {
                self.tokens.remove(&id);
            }
            StoreOp::PutSecret(r) => {
                self.secrets.insert((r.name.clone(), r.version), r);
            }
            StoreOp::DeleteSecret { name, version } => {
                self.secrets.remove(&(name, version));
            }
            StoreOp::SetSecretKeyCheck(c) => self.secret_key_check = Some(c),
            StoreOp::PutVolume(v) => {
                self.volumes.insert((v.of.clone(), v.worker.clone()), v);
            }
            StoreOp::DeleteVolume { of, worker } => {
                self.volumes.remove(&(of, worker));
            }
        }
    }
}

/// Durable storage for the manager's state.
///
/// `commit` must be atomic (all of `ops` or none) and durable when it returns `Ok`. The manager
/// calls it from one task at a time, in index order, never while holding its state lock; an
/// implementation that blocks (a local database) must move the work off the async runtime's
/// threads (e.g. `tokio::task::spawn_blocking`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Loads everything (empty on first start).
    async fn load(&self) -> Result<Snapshot>;
    /// Atomically applies `ops` and records `index` as the state index.
    async fn commit(&self, index: u64, ops: Vec<StoreOp>) -> Result<()>;
    /// The most one commit may hold. The committer splits a group of changes so that each
    /// commit fits (a single change never splits: one that does not fit alone is refused).
    fn limits(&self) -> CommitLimits {
        CommitLimits::UNLIMITED
    }
    /// What `op` counts against [`CommitLimits::bytes`] (its encoded size). Only called when
    /// the limits are not unlimited.
    fn op_bytes(&self, op: &StoreOp) -> usize {
        let _ = op;
        0
    }
}

/// How much one [`Store::commit`] may hold: a network store's transaction limits (etcd's
/// `--max-txn-ops` and `--max-request-bytes`), less what the store adds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitLimits {
    /// The most operations.
    pub ops: usize,
    /// The most encoded bytes, as [`Store::op_bytes`] counts them.
    pub bytes: usize,
}

impl CommitLimits {
    /// No limit (an embedded store).
    pub const UNLIMITED: CommitLimits = CommitLimits {
        ops: usize::MAX,
        bytes: usize::MAX,
    };

    /// Whether these are [`CommitLimits::UNLIMITED`].
    pub fn is_unlimited(&self) -> bool {
        *self == Self::UNLIMITED
    }
}

/// An in-memory store: for tests, examples and simulations (a "restart" reloads from it). With the
/// `testing` feature it can be told to fail or hold commits, to test what the manager does when
/// its store fails.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Snapshot>,
    fail: Mutex<FailPlan>,
    gate: tokio::sync::RwLock<()>,
}

#[derive(Debug, Default)]
struct FailPlan {
    /// Fail every commit with this message.
    always: Option<String>,
    /// Fail this many commits from now on, then succeed again.
    next: u32,
    /// Commits attempted so far.
    attempts: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following commit fail with `message` (or succeed again with `None`).
    #[cfg(feature = "testing")]
    pub fn fail_commits(&self, message: Option<String>) {
        lock(&self.fail).always = message;
    }

    /// Makes the next `n` commits fail, then succeed again.
    #[cfg(feature = "testing")]
    pub fn fail_next_commits(&self, n: u32) {
        lock(&self.fail).next = n;
    }

    /// How many commits were attempted (failed ones included).
    #[cfg(feature = "testing")]
    pub fn commit_attempts(&self) -> u64 {
        lock(&self.fail).attempts
    }

    /// Holds every commit until the returned guard is dropped (to line up changes in one batch).
    #[cfg(feature = "testing")]
    pub async fn hold_commits(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// What the store holds now.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.state).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self) -> Result<Snapshot> {
        Ok(self.snapshot())
    }

    async fn commit(&self, index: u64, ops: Vec<StoreOp>) -> Result<()> {
        let _held = self.gate.read().await;
        {
            let mut f = lock(&self.fail);
            f.attempts += 1;
            if let Some(m) = f.always.clone() {
                return Err(Error::Store(m));
            }
            if f.next > 0 {
                f.next -= 1;
                return Err(Error::Store("injected commit failure".into()));
            }
        }
        let mut s = lock(&self.state);
        for op in ops {
            s.apply(op);
        }
        s.index = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32]).unwrap()
    }

    #[test]
    fn reseal_moves_every_version_to_the_new_key() {
        let mut snap = Snapshot::default();
        let v = SecretValue::new(b"rotate-me".to_vec());
        for version in [1, 2] {
            snap.apply(StoreOp::PutSecret(SecretRecord {
                name: "a".into(),
                version,
                size: 9,
                created_at: 5,
                sealed: key(1).seal("a", version, &v).unwrap(),
            }));
        }
        snap.secret_key_check = Some(key(1).key_check().unwrap());
        assert!(
            snap.reseal_secrets(&key(3), &key(2)).is_err(),
            "a wrong old key"
        );
        for op in snap.reseal_secrets(&key(1), &key(2)).unwrap() {
            snap.apply(op);
        }
        assert!(key(2).matches_check(snap.secret_key_check.as_ref().unwrap()));
        for ((name, version), r) in &snap.secrets {
            assert_eq!(key(2).open(name, *version, &r.sealed).unwrap(), v);
            assert!(key(1).open(name, *version, &r.sealed).is_err());
        }
    }
}
