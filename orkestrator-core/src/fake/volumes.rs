//! The fake runtime's named volumes, kept as the engine's local driver keeps them: creating one
//! that exists returns it, a container mounting a missing one creates it (as Docker does), and
//! one that a container (in any state) mounts cannot be removed.

use super::{FakeRuntime, FakeState};
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::runtime::{ContainerSpec, MountSource, VolumeInfo, VolumeSpec};

impl FakeState {
    pub(super) fn create_volume(&mut self, spec: &VolumeSpec) -> VolumeInfo {
        self.volumes
            .entry(spec.name.clone())
            .or_insert_with(|| VolumeInfo {
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                mountpoint: None,
            })
            .clone()
    }

    pub(super) fn remove_volume(&mut self, name: &str) -> Result<()> {
        let used = self.containers.values().any(|c| {
            c.spec
                .mounts
                .iter()
                .any(|m| m.source == MountSource::Volume(name.to_owned()))
        });
        if used {
            return Err(Error::runtime(
                RuntimeErrorKind::Rejected,
                format!("cannot remove volume {name}: it is in use"),
            ));
        }
        self.volumes.remove(name);
        Ok(())
    }

    pub(super) fn list_volumes(&self, labels: &[(&str, &str)]) -> Vec<VolumeInfo> {
        self.volumes
            .values()
            .filter(|v| labels.iter().all(|(k, val)| v.label(k) == Some(*val)))
            .cloned()
            .collect()
    }

    /// A container that mounts a volume the engine does not have gets a new, unlabelled one.
    pub(super) fn attach_volumes(&mut self, spec: &ContainerSpec) {
        for m in &spec.mounts {
            if let MountSource::Volume(name) = &m.source {
                self.create_volume(&VolumeSpec {
                    name: name.clone(),
                    labels: Default::default(),
                });
            }
        }
    }
}

impl FakeRuntime {
    /// Every volume, as [`Runtime::list_volumes`](crate::runtime::Runtime::list_volumes) would
    /// list them without a filter.
    pub fn volumes(&self) -> Vec<VolumeInfo> {
        self.lock().list_volumes(&[])
    }
}
