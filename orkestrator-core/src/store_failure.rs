//! How a failed store commit is told to a client: the kind of failure and its 503 (re-exported
//! by `manager`, whose committer reports them). Below the crate's error, which maps the store's
//! errors to the same answers.

use crate::api::ApiError;

/// How a store commit failed, as a client is told (all are 503s: nothing was acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// The store refused or could not take the commit: `store_unavailable`.
    Failed,
    /// The commit was sent but not answered (a timeout): `outcome_unknown`.
    OutcomeUnknown,
    /// This manager is no longer the leader: `not_leader`.
    NotLeader,
}

/// The 503 a client gets when the store failed its change.
pub fn store_failure(kind: StoreFailure, m: &str) -> ApiError {
    match kind {
        StoreFailure::Failed => ApiError::unavailable(
            "store_unavailable",
            format!(
                "the manager's store failed to commit ({m}); nothing of this request was kept: retry"
            ),
        ),
        StoreFailure::OutcomeUnknown => ApiError::unavailable(
            "outcome_unknown",
            format!(
                "outcome unknown: the store did not answer the commit ({m}); it may or may not \
                 have been applied, and the manager is reloading its state: read it back, or \
                 retry (a resubmitted spec is answered `unchanged` if it was kept)"
            ),
        ),
        StoreFailure::NotLeader => ApiError::unavailable(
            "not_leader",
            format!(
                "this manager is no longer the leader ({m}); nothing of this request was kept: \
                 retry, and it goes to the new leader"
            ),
        ),
    }
}
