//! The job model: what a user asks Orkestrator to run.
//!
//! A [`Job`] is one or more [`Task`]s placed together on one worker. Each task is one container.
//! Values of these types are always valid: the only way to build one from a file is
//! [`parse_job`] / [`load_job_file`], which check every rule and report every problem with its
//! field path. Serializing a `Job` produces the same file shape that parsing reads, so specs
//! round-trip through YAML, TOML and JSON.
//!
//! Inside, bottom-up: `format` and `problems` (leaves, which the crate's error also carries),
//! `tree` (any format read as values with their lines), `raw` (the file shape as written, read
//! from the tree with every unknown field and wrong type reported), `model` (the valid types,
//! with the rooms `together` and `storage` for the fields of later issues),
//! `validate` (raw → model, by section of the job) and `parse` (reading files, with the crate's
//! error).

pub(crate) mod format;
pub(crate) mod model;
mod parse;
pub(crate) mod problems;
mod raw;
pub(crate) mod storage;
pub(crate) mod together;
pub(crate) mod tree;
mod validate;

pub use format::Format;
pub use model::{
    Backoff, Constraint, ConstraintOp, HealthCheck, Job, PortMapping, Probe, Protocol, Resources,
    RestartMode, RestartPolicy, Task,
};
pub use parse::{MAX_SPEC_BYTES, load_job_file, parse_job, parse_job_in};
pub use problems::{Problem, Problems};
pub use storage::{Mount, OnWorkerLoss, SecretRef, Volume, VolumeKind};
pub use together::{Condition, ConfigFile, MAX_STOP_GRACE, Network, NetworkMode};
pub use validate::{
    MAX_ALIASES, MAX_ATTEMPTS, MAX_BACKOFF, MAX_COMMAND_ARG_BYTES, MAX_COMMAND_ARGS,
    MAX_COMMAND_BYTES, MAX_CONSTRAINTS, MAX_COUNT, MAX_CPU, MAX_DISK, MAX_ENV_BYTES,
    MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ENV_VARS, MAX_EXTRA_HOSTS, MAX_FILE_BYTES,
    MAX_FILES_PER_TASK, MAX_IMAGE_BYTES, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_MEMORY,
    MAX_MOUNTS_PER_TASK, MAX_PATH_BYTES, MAX_PIDS, MAX_PORTS, MAX_PROBE_PATH_BYTES,
    MAX_SECRET_NAME_BYTES, MAX_SECRETS_PER_TASK, MAX_SHM, MAX_TASK_LABEL_BYTES, MAX_TASK_LABELS,
    MAX_TASKS, MAX_TMPFS, MAX_VOLUMES, MIN_CPU, MIN_MEMORY,
};
