//! What a garbage collection removed: the answer of `POST /v1/gc` (re-exported by `manager`,
//! which collects).

use serde::{Deserialize, Serialize};

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Jobs removed with everything of theirs.
    pub jobs: u64,
    /// Instances removed.
    pub instances: u64,
    /// Spec versions removed.
    pub specs: u64,
    /// Workers removed.
    pub workers: u64,
    /// Named volumes whose workers were told to remove them.
    #[serde(default)]
    pub volumes: u64,
}
