//! Compose files as they are: a Compose project ([`load`]) carried over into one job
//! ([`convert`]), each service a task of it, so that they run together on one worker and reach
//! each other by name.
//!
//! The reference is the Compose Specification. Every key of a file is accounted for
//! ([`KEYS`]): carried over, ignored with a warning saying why, or refused with the reason and
//! the key's path (`services.web.cap_add`). `--strict` makes the warnings refusals.
//!
//! Inside, bottom-up: `text` (interpolation, env files, shell words, units), `yaml` (a file
//! read into a JSON value), `keys` (the table of every key), `merge` (Compose's merge rules),
//! `load` (files, variables, `extends`, `env_file`, profiles), `parts` (options and what the
//! mapping gathers), `ports`, `service` and `storage` (one service as one task) and `convert`
//! (the job, checked by the job parser).

mod convert;
mod error;
mod keys;
mod load;
mod merge;
mod parts;
mod ports;
mod service;
mod storage;
pub(crate) mod text;
mod yaml;

pub use convert::{Conversion, builds, convert};
pub use error::{ComposeError, Note};
pub use keys::{Disposition, KEYS, disposition};
pub use load::{DEFAULT_FILES, LoadOptions, MAX_COMPOSE_FILE_BYTES, Project, dns_label, load};
pub use parts::{BuildPlan, ConvertOptions, DEFAULT_CPU, DEFAULT_MEMORY, ImageHealth, SecretPlan};
pub use ports::MAX_PORT_RANGE;
pub use storage::secret_name;

/// Whether a file's text is a Compose file rather than a job file: a mapping with `services`
/// and without `tasks`. `run -f` uses it to point at `compose up`.
pub fn looks_like_compose(text: &str) -> bool {
    match yaml::read(text) {
        Ok(serde_json::Value::Object(m)) => m.contains_key("services") && !m.contains_key("tasks"),
        _ => false,
    }
}
