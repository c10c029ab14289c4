//! Validation: turns a raw job (the file shape as written) into a [`Job`](crate::spec::Job),
//! collecting every problem with its field path and, where there is one, the fix.
//!
//! By section of the job: `job` (name, count, constraints, tasks, network), `together` (what
//! ties tasks together: `depends_on` and the rules across tasks, the network, stopping),
//! `storage` (the job's volumes, a task's mounts and secrets, and the paths they take),
//! `task`, `files`, `ports`, `resources`, `restart`, `health`; below them `names` and `scalars`
//! (the checks and readings the sections share) and `limits` (the limits, and which rules
//! apply).

mod extras;
mod files;
mod health;
mod job;
mod limits;
mod names;
mod ports;
mod resources;
mod restart;
mod scalars;
mod storage;
mod task;
mod together;
mod words;

pub(crate) use files::Sources;
pub(crate) use job::check;
pub(crate) use limits::Rules;
pub use limits::{
    MAX_ALIASES, MAX_ATTEMPTS, MAX_BACKOFF, MAX_COMMAND_ARG_BYTES, MAX_COMMAND_ARGS,
    MAX_COMMAND_BYTES, MAX_CONSTRAINTS, MAX_COUNT, MAX_CPU, MAX_DISK, MAX_ENV_BYTES,
    MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ENV_VARS, MAX_EXTRA_HOSTS, MAX_FILE_BYTES,
    MAX_FILES_PER_TASK, MAX_IMAGE_BYTES, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_MEMORY,
    MAX_MOUNTS_PER_TASK, MAX_PATH_BYTES, MAX_PIDS, MAX_PORTS, MAX_PROBE_PATH_BYTES,
    MAX_SECRET_NAME_BYTES, MAX_SECRETS_PER_TASK, MAX_SHM, MAX_TASK_LABEL_BYTES, MAX_TASK_LABELS,
    MAX_TASKS, MAX_TMPFS, MAX_VOLUMES, MIN_CPU, MIN_MEMORY,
};
