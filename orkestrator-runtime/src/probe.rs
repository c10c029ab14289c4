//! The host resource probe: what this machine has, and what is free right now (sysinfo).
//!
//! A worker reports [`host_resources`] when it registers and [`HostProbe::available`] with its
//! heartbeats. CPU is counted in millicores (one core = `1000m`), memory and disk in bytes; disk
//! is the filesystem that holds the Docker data root (`/var/lib/docker`), or `/` when there is
//! none.
//!
//! These functions read `/proc` and the mount table: they block briefly, so call them from
//! `tokio::task::spawn_blocking` in async code.

use std::path::{Path, PathBuf};

use orkestrator_core::metrics::NodeSample;
use orkestrator_core::spec::Resources;
use orkestrator_core::units::{ByteSize, Cpu};
use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};

/// Docker's default data root; its filesystem is the one containers write to.
pub const DOCKER_DATA_ROOT: &str = "/var/lib/docker";

/// The total resources of this host: every CPU, all memory, the whole disk that holds the
/// Docker data root (see [`default_data_root`]).
pub fn host_resources() -> Resources {
    host_resources_at(&default_data_root())
}

/// Like [`host_resources`], counting the disk of the filesystem that holds `path`.
pub fn host_resources_at(path: &Path) -> Resources {
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok();
    let cores = system
        .as_ref()
        .map(|s| s.cpus().len())
        .filter(|n| *n > 0)
        .unwrap_or_else(fallback_cpu_count);
    let memory = system.as_ref().map_or(0, System::total_memory);
    let (disk_total, _) = disk_space(path);
    Resources {
        cpu: Cpu::from_cores(cores as u64),
        memory: ByteSize::b(memory),
        disk: ByteSize::b(disk_total),
    }
}

/// What is free on this host now: idle CPU, available memory, available disk.
///
/// Measuring CPU use takes two samples [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] apart, so this
/// call sleeps that long (about 200 ms); a [`HostProbe`] kept between calls does not.
pub fn host_available() -> Resources {
    let mut probe = HostProbe::new();
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    probe.available()
}

/// The Docker data root if it exists on this host, else `/`.
pub fn default_data_root() -> PathBuf {
    let docker = Path::new(DOCKER_DATA_ROOT);
    if docker.exists() {
        docker.to_path_buf()
    } else {
        PathBuf::from("/")
    }
}

/// A reusable probe: it keeps the previous CPU sample, so each [`available`](Self::available)
/// call measures CPU use since the last one without sleeping.
pub struct HostProbe {
    system: Option<System>,
    disks: Option<Disks>,
    path: PathBuf,
}

impl std::fmt::Debug for HostProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostProbe")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Default for HostProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl HostProbe {
    /// A probe counting the disk of the Docker data root (see [`default_data_root`]); takes the
    /// first CPU sample.
    pub fn new() -> Self {
        Self::at(default_data_root())
    }

    /// A probe counting the disk of the filesystem that holds `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        let disks =
            Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
                .ok();
        HostProbe {
            system,
            disks,
            path: path.into(),
        }
    }

    /// The totals: see [`host_resources`].
    pub fn total(&mut self) -> Resources {
        let (cores, memory) = match &mut self.system {
            Some(s) => {
                s.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
                (s.cpus().len(), s.total_memory())
            }
            None => (0, 0),
        };
        let cores = if cores > 0 {
            cores
        } else {
            fallback_cpu_count()
        };
        let disk = self.refresh_disk().0;
        Resources {
            cpu: Cpu::from_cores(cores as u64),
            memory: ByteSize::b(memory),
            disk: ByteSize::b(disk),
        }
    }

    /// What is free now: total CPU minus the share busy since the previous call (or since the
    /// probe was made), available memory (free plus reclaimable cache), available disk.
    pub fn available(&mut self) -> Resources {
        let (cpu, memory) = match &mut self.system {
            Some(s) => {
                s.refresh_cpu_usage();
                s.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
                let cores = s.cpus().len().max(1) as f64;
                let busy = f64::from(s.global_cpu_usage()).clamp(0.0, 100.0) / 100.0;
                let idle_millis = (cores * (1.0 - busy) * 1000.0).round() as u64;
                (Cpu::from_millis(idle_millis), s.available_memory())
            }
            None => (Cpu::from_cores(fallback_cpu_count() as u64), 0),
        };
        let disk = self.refresh_disk().1;
        Resources {
            cpu,
            memory: ByteSize::b(memory),
            disk: ByteSize::b(disk),
        }
    }

    /// A sample of the host for the worker's metrics: CPU busy since the previous call (or since
    /// the probe was made) in cores, memory in use (total minus available), the disk of the
    /// probe's path, load averages. `at` is left 0 for the caller to stamp.
    pub fn node(&mut self) -> NodeSample {
        let (cpu_cores_used, cpu_cores_total, memory_used_bytes, memory_total_bytes) =
            match &mut self.system {
                Some(s) => {
                    s.refresh_cpu_usage();
                    s.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
                    let cores = s.cpus().len().max(1) as f64;
                    let busy = f64::from(s.global_cpu_usage()).clamp(0.0, 100.0) / 100.0;
                    let total = s.total_memory();
                    (
                        cores * busy,
                        cores,
                        total.saturating_sub(s.available_memory()),
                        total,
                    )
                }
                None => (0.0, fallback_cpu_count() as f64, 0, 0),
            };
        let (disk_total, disk_free) = self.refresh_disk();
        let load = System::load_average().unwrap_or(sysinfo::LoadAvg {
            one: 0.0,
            five: 0.0,
            fifteen: 0.0,
        });
        NodeSample {
            at: 0,
            cpu_cores_used,
            cpu_cores_total,
            memory_used_bytes,
            memory_total_bytes,
            disk_used_bytes: disk_total.saturating_sub(disk_free),
            disk_total_bytes: disk_total,
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
        }
    }

    /// `(total, available)` bytes of the filesystem holding the probe's path.
    fn refresh_disk(&mut self) -> (u64, u64) {
        match &mut self.disks {
            Some(d) => {
                d.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
                space_of(d, &self.path)
            }
            None => (0, 0),
        }
    }
}

fn fallback_cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `(total, available)` bytes of the filesystem holding `path` (zero when unknown).
fn disk_space(path: &Path) -> (u64, u64) {
    match Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage()) {
        Ok(d) => space_of(&d, path),
        Err(_) => (0, 0),
    }
}

/// The disk whose mount point is the longest prefix of `path`.
fn space_of(disks: &Disks, path: &Path) -> (u64, u64) {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    disks
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map_or((0, 0), |d| (d.total_space(), d.available_space()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_plausible() {
        let total = host_resources();
        assert!(total.cpu.millis() >= 1000, "{total:?}");
        assert_eq!(total.cpu.millis() % 1000, 0);
        assert!(total.memory.bytes() > 0, "{total:?}");
        assert!(
            total.disk.bytes() > 0,
            "no disk found for {:?}",
            default_data_root()
        );
    }

    #[test]
    fn available_fits_in_total() {
        let total = host_resources();
        let free = host_available();
        assert!(free.cpu <= total.cpu, "{free:?} vs {total:?}");
        assert!(free.memory <= total.memory, "{free:?} vs {total:?}");
        assert!(free.memory.bytes() > 0);
        assert!(free.disk <= total.disk, "{free:?} vs {total:?}");
        assert!(free.disk.bytes() > 0);
    }

    #[test]
    fn a_node_sample_is_plausible_and_sees_a_busy_core() {
        let mut probe = HostProbe::at("/");
        // Keep one core busy between the two CPU readings.
        let until = std::time::Instant::now() + 2 * sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;
        let mut spins = 0u64;
        while std::time::Instant::now() < until {
            spins = std::hint::black_box(spins + 1);
        }
        let n = probe.node();
        assert!(n.cpu_cores_total >= 1.0, "{n:?}");
        assert!(
            n.cpu_cores_used > 0.5 && n.cpu_cores_used <= n.cpu_cores_total,
            "{n:?}"
        );
        assert!(
            n.memory_used_bytes > 0 && n.memory_used_bytes < n.memory_total_bytes,
            "{n:?}"
        );
        assert!(
            n.disk_used_bytes > 0 && n.disk_used_bytes <= n.disk_total_bytes,
            "{n:?}"
        );
        assert!(n.load1 >= 0.0 && n.load15 >= 0.0, "{n:?}");
    }

    #[test]
    fn reusable_probe_measures_without_sleeping() {
        let mut probe = HostProbe::at("/");
        let total = probe.total();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let free = probe.available();
        assert!(free.cpu <= total.cpu);
        assert!(free.disk <= total.disk && total.disk.bytes() > 0);
    }
}
