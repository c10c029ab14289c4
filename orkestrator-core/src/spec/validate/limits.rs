//! The limits a job spec is held to, and which of them apply ([`Rules`]).

use std::time::Duration;

use crate::spec::problems::Problems;
use crate::units::{ByteSize, Cpu};

/// Largest CPU a task may ask for.
pub const MAX_CPU: Cpu = Cpu::from_cores(1024);
/// Smallest CPU a submitted task may ask for: the kernel's smallest CFS quota is 1 ms per 100 ms
/// period, so Docker refuses a limit under 0.01 CPU (`cpu.cfs_quota_us: invalid argument`).
pub const MIN_CPU: Cpu = Cpu::from_millis(10);
/// Smallest memory a task may ask for (Docker refuses limits under 6 MiB).
pub const MIN_MEMORY: ByteSize = ByteSize::mib(6);
/// Largest memory a task may ask for.
pub const MAX_MEMORY: ByteSize = ByteSize::gib(16 * 1024);
/// Largest disk a task may ask for.
pub const MAX_DISK: ByteSize = ByteSize::gib(1024 * 1024);
/// Most instances a job may ask for.
pub const MAX_COUNT: u32 = 1000;
/// Most restart attempts a policy may allow.
pub const MAX_ATTEMPTS: u32 = 10_000;
/// Longest backoff duration.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// Most tasks a job may have.
pub const MAX_TASKS: usize = 64;
/// Most constraints a job may have.
pub const MAX_CONSTRAINTS: usize = 64;
/// Longest label key, in bytes (a constraint's `label`, a worker's label key).
pub const MAX_LABEL_KEY_BYTES: usize = 253;
/// Longest label value, in bytes (a constraint's `equals` or `not_equals`, a worker's label
/// value).
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// Longest image reference, in bytes.
pub const MAX_IMAGE_BYTES: usize = 255;
/// Most elements a command (`command`, a health check's `exec`) may have.
pub const MAX_COMMAND_ARGS: usize = 1024;
/// Longest single element of a command, in bytes.
pub const MAX_COMMAND_ARG_BYTES: usize = 64 * 1024;
/// Most bytes a command's elements may hold in all.
pub const MAX_COMMAND_BYTES: usize = 128 * 1024;
/// Most environment variables a task may have.
pub const MAX_ENV_VARS: usize = 256;
/// Longest environment variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Longest environment variable value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;
/// Most bytes a task's environment may hold in all (names and values).
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// Most ports a task may list.
pub const MAX_PORTS: usize = 256;
/// Longest HTTP health check path, in bytes.
pub const MAX_PROBE_PATH_BYTES: usize = 2048;

/// Most config files a task may carry (`files`).
pub const MAX_FILES_PER_TASK: usize = 16;
/// Most bytes one config file may hold (its content, once decoded from base64). A job file is
/// at most [`MAX_SPEC_BYTES`](crate::spec::MAX_SPEC_BYTES) in all, so that the files of one job
/// hold less than that together (base64 writes 3 bytes as 4 characters).
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Longest path (a file's `path`, `working_dir`), in bytes: the longest Linux takes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Most volumes a job may declare (`volumes`).
pub const MAX_VOLUMES: usize = 32;
/// Most mounts a task may have (`mounts`).
pub const MAX_MOUNTS_PER_TASK: usize = 32;
/// Most secrets a task may read (`secrets`).
pub const MAX_SECRETS_PER_TASK: usize = 32;
/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_BYTES: usize = 253;
/// Largest `type: tmpfs` volume: its size counts in its task's memory, which is at most
/// [`MAX_MEMORY`].
pub const MAX_TMPFS: ByteSize = ByteSize::gib(64);

/// Most processes a task may allow itself (`resources.pids`).
pub const MAX_PIDS: u32 = 1 << 20;

/// Largest `shm_size` a task may ask for: the container's `/dev/shm` is a tmpfs whose pages
/// count against its memory limit, so a larger one could never fill.
pub const MAX_SHM: ByteSize = ByteSize::gib(64);
/// Most network aliases a task may have (`aliases`).
pub const MAX_ALIASES: usize = 32;
/// Most container labels a task may set (`labels`).
pub const MAX_TASK_LABELS: usize = 64;
/// Most bytes a task's container labels may hold in all (keys and values).
pub const MAX_TASK_LABEL_BYTES: usize = 16 * 1024;
/// Most `extra_hosts` entries a task may have.
pub const MAX_EXTRA_HOSTS: usize = 64;

/// Longest health check interval.
pub const MAX_HEALTH_INTERVAL: Duration = Duration::from_secs(3600);

/// Which rules a spec is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// A spec submitted now: every rule.
    Submission,
    /// A spec read back as a value (the manager's store, an assignment sent to a worker): what
    /// was accepted once stays readable, so rules added since (such as [`MIN_CPU`]) are not
    /// applied again; the runtime copes with such values.
    Stored,
}

/// Reports, for a submission, that `path` holds `n` `what`s where at most `max` are allowed;
/// returns whether it did.
pub(super) fn over_limit(
    p: &mut Problems,
    rules: Rules,
    path: &str,
    n: usize,
    max: usize,
    what: &str,
) -> bool {
    if rules != Rules::Submission || n <= max {
        return false;
    }
    p.push(path, format!("{n} {what}; at most {max} are allowed"));
    true
}
