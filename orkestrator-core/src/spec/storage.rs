//! What a task keeps and is given beyond its image: the job's [`Volume`]s (`volumes:`), where a
//! task mounts them ([`Mount`], `mounts:`) and the secrets it reads ([`SecretRef`],
//! `secrets:`).
//!
//! A job file never names a host path: a `type: host` volume names a directory that a worker's
//! operator offers by name (`worker --host-volume NAME=/path`), and everything else lives in
//! places the worker chooses and owns.

use serde::{Deserialize, Serialize};

use crate::units::ByteSize;

/// A volume of the job: `volumes: { data: { type: volume, size: 1Gi } }`. Each instance has
/// its own; tasks of the instance mount it by name ([`Mount`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Volume {
    /// What kind of volume it is, with the keys that only that kind takes.
    pub kind: VolumeKind,
    /// Whether every mount of it is read-only (`read_only: true`).
    pub read_only: bool,
}

/// The kind of a [`Volume`] (`type:` in the file), with the keys that apply to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VolumeKind {
    /// `type: volume` (the default): a Docker named volume on the worker, one per job, instance
    /// index and volume name, which outlives the containers that mount it.
    Volume {
        /// `size`: reserved against the worker's disk, but not enforced (the engine's local
        /// driver has no quotas). None reserves nothing.
        size: Option<ByteSize>,
        /// `retain: true`: kept when the job's garbage is collected, and found again by a job
        /// of the same name, instance index and volume name.
        retain: bool,
        /// What happens to the instance when the worker holding the volume is down.
        on_worker_loss: OnWorkerLoss,
    },
    /// `type: tmpfs`: in memory, one per container, gone with it.
    Tmpfs {
        /// `size` (default [`Volume::DEFAULT_TMPFS_SIZE`]), enforced, and counted in the
        /// task's memory limit and reservation (see [`Task::memory_with_tmpfs`]).
        ///
        /// [`Task::memory_with_tmpfs`]: crate::spec::Task::memory_with_tmpfs
        size: ByteSize,
    },
    /// `type: host`: a directory that the worker's operator offers by name.
    Host {
        /// `source`: the name of the host volume (`worker --host-volume NAME=/path`), never a
        /// path.
        source: String,
    },
}

impl VolumeKind {
    /// The name used in job files: `volume`, `tmpfs` or `host`.
    pub fn as_str(&self) -> &'static str {
        match self {
            VolumeKind::Volume { .. } => "volume",
            VolumeKind::Tmpfs { .. } => "tmpfs",
            VolumeKind::Host { .. } => "host",
        }
    }
}

impl Volume {
    /// The size of a tmpfs that names none.
    pub const DEFAULT_TMPFS_SIZE: ByteSize = ByteSize::mib(64);

    /// The size of a tmpfs volume; none for other kinds.
    pub fn tmpfs_size(&self) -> Option<ByteSize> {
        match self.kind {
            VolumeKind::Tmpfs { size } => Some(size),
            _ => None,
        }
    }
}

impl Serialize for Volume {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.kind.as_str())?;
        match &self.kind {
            VolumeKind::Volume {
                size,
                retain,
                on_worker_loss,
            } => {
                if let Some(size) = size {
                    m.serialize_entry("size", size)?;
                }
                if *retain {
                    m.serialize_entry("retain", &true)?;
                }
                if *on_worker_loss != OnWorkerLoss::default() {
                    m.serialize_entry("on_worker_loss", on_worker_loss)?;
                }
            }
            VolumeKind::Tmpfs { size } => m.serialize_entry("size", size)?,
            VolumeKind::Host { source } => m.serialize_entry("source", source)?,
        }
        if self.read_only {
            m.serialize_entry("read_only", &true)?;
        }
        m.end()
    }
}

/// What happens to an instance whose `type: volume` volume lives on a worker that is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnWorkerLoss {
    /// The instance waits for that worker to come back (the default): its data is there.
    #[default]
    Wait,
    /// The instance starts elsewhere with an empty volume; the old copy is kept, and listed as
    /// an orphan when its worker comes back.
    Recreate,
}

impl OnWorkerLoss {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            OnWorkerLoss::Wait => "wait",
            OnWorkerLoss::Recreate => "recreate",
        }
    }
}

/// Where a task mounts one of its job's volumes:
/// `mounts: [{ volume: data, path: /var/lib/db, read_only: false, subpath: db }]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Mount {
    /// The name of the volume, a key of the job's `volumes`.
    pub volume: String,
    /// Where it appears in the container: an absolute path, normalised.
    pub path: String,
    /// Whether this mount is read-only. A mount is read-only if the mount, the volume or (for
    /// a host volume) the worker's offer says so.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// A directory below the volume's root to mount instead of the root: relative, without
    /// `..`, normalised; for `volume` and `host` volumes only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// A secret a task reads from a file:
/// `secrets: [{ name: db-password, path: /run/secrets/db-password, mode: "0400" }]`.
///
/// The file is owned by the task's `user`, and the value never appears in the job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// The secret's name (`orkestrator secret create NAME`).
    pub name: String,
    /// Where its file appears in the container (default `/run/secrets/NAME`).
    pub path: String,
    /// The file's permission bits (default `0o400`).
    pub mode: u32,
    /// The version of the secret this job version uses. The manager sets it when it accepts
    /// the job (the latest version then) and when `secret update` makes a new job version; a
    /// version written in a job file is replaced, unless the file is exactly an earlier kept
    /// version of the job (going back to it brings back its secret values).
    pub version: Option<u64>,
}

impl SecretRef {
    /// The permission bits of a secret's file that names no `mode`.
    pub const DEFAULT_MODE: u32 = 0o400;
    /// The directory of a secret's file that names no `path`.
    pub const DEFAULT_DIR: &'static str = "/run/secrets";

    /// The path of the secret `name`'s file when it names none: `/run/secrets/NAME`.
    pub fn default_path(name: &str) -> String {
        format!("{}/{name}", Self::DEFAULT_DIR)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SecretRef", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("mode", &format!("{:04o}", self.mode))?;
        if let Some(v) = self.version {
            st.serialize_field("version", &v)?;
        } else {
            st.skip_field("version")?;
        }
        st.end()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
