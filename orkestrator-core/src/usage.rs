//! The current CPU and memory of a task or a worker, as listings show it (a leaf below the API's
//! wire types; the samples it is taken from are in `metrics`, which re-exports it).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// The current CPU and memory of a task or a worker: the newest sample, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// CPU in use, in cores.
    pub cpu_cores: f64,
    /// Memory in use (a task's working set; a host's used memory), in bytes.
    pub memory_bytes: u64,
    /// When it was measured.
    pub at: Millis,
}
