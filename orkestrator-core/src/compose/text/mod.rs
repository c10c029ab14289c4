//! The text-level pieces of reading a Compose file, each a pure function with no I/O:
//!
//! - [`interpolate`]: `${VAR}`-style variable interpolation as the Compose Specification gives it;
//! - [`dotenv`]: `.env` and `env_file` files;
//! - [`words`]: splitting a string `command` or `entrypoint` into words as a POSIX shell would;
//! - [`units`]: Compose durations, byte sizes and CPU counts, and their rendering in
//!   Orkestrator's own job-file units.

pub(crate) mod dotenv;
pub(crate) mod interpolate;
pub(crate) mod units;
pub(crate) mod words;
