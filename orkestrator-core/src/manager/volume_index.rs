//! The index of the named volumes the manager knows of: each instance index's records by volume
//! and worker, and what each worker is told to remove. Only the index: the rules that change it
//! are in [`volumes`](super::volumes).

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{VolumeRecord, VolumeRef, VolumeState};
use crate::ids::{JobId, WorkerId};
use crate::spec::{Job, OnWorkerLoss, VolumeKind};

/// The named volumes the manager knows of, with the index of what each worker is to remove.
#[derive(Debug, Default)]
pub(crate) struct Volumes {
    /// By job and instance index, then volume name and worker.
    by_instance: BTreeMap<(JobId, u32), BTreeMap<(String, WorkerId), VolumeRecord>>,
    /// What each worker is told to remove.
    removing: BTreeMap<WorkerId, BTreeSet<VolumeRef>>,
}

/// The `type: volume` volumes of a spec, with their `retain` and `on_worker_loss`.
pub(super) fn named(spec: &Job) -> impl Iterator<Item = (&str, bool, OnWorkerLoss)> {
    spec.volumes.iter().filter_map(|(name, v)| match v.kind {
        VolumeKind::Volume {
            retain,
            on_worker_loss,
            ..
        } => Some((name.as_str(), retain, on_worker_loss)),
        _ => None,
    })
}

/// Whether a spec declares `volume` as a `type: volume` volume.
pub(super) fn declares(spec: &Job, volume: &str) -> bool {
    named(spec).any(|(n, _, _)| n == volume)
}

impl Volumes {
    /// Takes in a stored record.
    pub fn insert(&mut self, rec: VolumeRecord) {
        let removing = &mut self.removing;
        let slot = self
            .by_instance
            .entry((rec.of.job.clone(), rec.of.index))
            .or_default();
        if let Some(old) = slot.get(&(rec.of.volume.clone(), rec.worker.clone()))
            && old.state == VolumeState::Removing
            && let Some(set) = removing.get_mut(&old.worker)
        {
            set.remove(&old.of);
        }
        if rec.state == VolumeState::Removing {
            removing
                .entry(rec.worker.clone())
                .or_default()
                .insert(rec.of.clone());
        }
        slot.insert((rec.of.volume.clone(), rec.worker.clone()), rec);
    }

    pub fn remove(&mut self, of: &VolumeRef, worker: &WorkerId) -> Option<VolumeRecord> {
        let key = (of.job.clone(), of.index);
        let slot = self.by_instance.get_mut(&key)?;
        let rec = slot.remove(&(of.volume.clone(), worker.clone()))?;
        if slot.is_empty() {
            self.by_instance.remove(&key);
        }
        if let Some(set) = self.removing.get_mut(worker) {
            set.remove(of);
            if set.is_empty() {
                self.removing.remove(worker);
            }
        }
        Some(rec)
    }

    pub fn get(&self, of: &VolumeRef, worker: &WorkerId) -> Option<&VolumeRecord> {
        self.by_instance
            .get(&(of.job.clone(), of.index))?
            .get(&(of.volume.clone(), worker.clone()))
    }

    /// The records of one instance index of a job.
    pub fn of_instance(&self, job: &JobId, index: u32) -> impl Iterator<Item = &VolumeRecord> {
        self.by_instance
            .get(&(job.clone(), index))
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// The worker that holds the data of instance `index` of `job` under `spec`: the instance
    /// is placed there or nowhere.
    pub fn pin(&self, job: &JobId, index: u32, spec: &Job) -> Option<WorkerId> {
        self.of_instance(job, index)
            .find(|r| r.state == VolumeState::Active && declares(spec, &r.of.volume))
            .map(|r| r.worker.clone())
    }

    /// What `worker` is told to remove.
    pub fn removing_on(&self, worker: &WorkerId) -> Vec<VolumeRef> {
        self.removing
            .get(worker)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether any volume is known (for skipping work in clusters without any).
    pub fn is_empty(&self) -> bool {
        self.by_instance.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &VolumeRecord> {
        self.by_instance.values().flat_map(|m| m.values())
    }
}
