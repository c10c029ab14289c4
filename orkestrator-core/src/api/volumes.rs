//! Named volumes as the manager keeps track of them: where each instance's data lives
//! ([`VolumeRecord`]), what the volume list shows ([`VolumeView`]) and what a worker is told to
//! remove and confirms it removed ([`VolumeRef`]).
//!
//! A `type: volume` volume is one Docker named volume per job, instance index and volume name
//! on the worker that ran the instance. The manager records it when it places the instance, sends
//! that instance index back to the same worker, and alone decides when it is removed: a worker
//! removes a volume only when its assignments list it in `volumes_to_remove`.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::{JobId, WorkerId};

/// One volume of one instance index of a job, on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeRef {
    /// The job.
    pub job: JobId,
    /// The instance index.
    pub index: u32,
    /// The volume's name in the job's `volumes`.
    pub volume: String,
}

impl VolumeRef {
    /// The name of the Docker volume that holds it on `worker` (see [`volume_name`]).
    pub fn docker_name(&self, worker: &WorkerId) -> String {
        volume_name(worker.as_str(), self.job.as_str(), self.index, &self.volume)
    }
}

/// The engine's name of volume `volume` of instance `index` of `job` on `worker`:
/// `ork-{worker}-{job}-{index}-{volume}`. The worker is part of it, as of its networks' names:
/// workers sharing one engine never share a volume, and a copy left on a worker that was down
/// (an orphan) stays apart from the new one.
pub fn volume_name(worker: &str, job: &str, index: u32, volume: &str) -> String {
    use crate::ids::engine_safe;
    format!(
        "ork-{}-{}-{index}-{}",
        engine_safe(worker),
        engine_safe(job),
        engine_safe(volume)
    )
}

impl std::fmt::Display for VolumeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.job, self.index, self.volume)
    }
}

/// Where a volume stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    /// It holds the data of its job's instance of that index, which goes back to its worker.
    #[default]
    Active,
    /// An old copy: its instance was recreated on another worker (`on_worker_loss: recreate`)
    /// while its worker was down. Kept until an operator removes it (`orkestrator volume rm`).
    Orphan,
    /// Its worker has been told to remove it, and has not confirmed yet.
    Removing,
}

impl VolumeState {
    /// The name shown in lists.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Active => "active",
            VolumeState::Orphan => "orphan",
            VolumeState::Removing => "removing",
        }
    }
}

/// A volume as the manager keeps it (and stores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Which volume.
    #[serde(flatten)]
    pub of: VolumeRef,
    /// The worker that holds it.
    pub worker: WorkerId,
    /// Where it stands.
    pub state: VolumeState,
    /// `retain: true` in the spec that last placed it: kept when its job's garbage is collected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
    /// When it was first placed.
    pub created_at: Millis,
}

/// A volume in `GET /v1/volumes` and `orkestrator volume list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    /// The job.
    pub job: JobId,
    /// The instance index.
    pub index: u32,
    /// The volume's name in the job's `volumes`.
    pub volume: String,
    /// The worker that holds it.
    pub worker: WorkerId,
    /// `active`, `retained` (active, kept after its job was collected), `orphan` or
    /// `removing`.
    pub state: String,
    /// Whether an instance that mounts it is running (or starting) on its worker now.
    pub in_use: bool,
    /// Whether it is kept when its job's garbage is collected.
    pub retain: bool,
    /// Its Docker volume on the worker.
    pub name: String,
    /// When it was first placed.
    pub created_at: Millis,
}

/// The volume list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeList {
    /// The volumes, by job, index, volume and worker.
    pub volumes: Vec<VolumeView>,
}

/// A worker's confirmation that it removed volumes it was told to remove.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumesRemoved {
    /// The volumes, each gone from the worker (or never made there).
    pub volumes: Vec<VolumeRef>,
}
