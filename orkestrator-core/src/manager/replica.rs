//! A read-only copy of a manager's durable state, as a follower keeps it: it answers job reads
//! the way the leader would, from the same views, and checks tokens against the same digests.
//! Soft state (liveness, leases, metrics) lives on the leader only, so a replica answers no
//! reads of it.

use crate::api::{ApiError, JobSummary, JobView, ListQuery, Page};
use crate::auth::Principal;
use crate::clock::{Clock, SystemClock};
use crate::ids::JobId;
use crate::store::Snapshot;

use super::config::ManagerConfig;
use super::state::State;
use super::{tokens, views};

/// A read-only copy of the durable state at one index.
pub struct Replica {
    state: State,
    tokens: tokens::TokenStore,
    index: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("index", &self.index)
            .field("jobs", &self.state.jobs.len())
            .finish()
    }
}

impl Replica {
    /// The state of `snap` (what a store holds at its index).
    pub fn from_snapshot(mut snap: Snapshot) -> Self {
        let index = snap.index;
        let tokens = tokens::TokenStore::load(std::mem::take(&mut snap.tokens).into_values());
        Replica {
            state: State::from_snapshot(snap, SystemClock.instant(), &ManagerConfig::default()),
            tokens,
            index,
        }
    }

    /// The state index it holds.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Who presents `token`; a 401 for one that is not valid.
    pub fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        self.tokens.authenticate(token)
    }

    /// `GET /v1/jobs`, as the leader answers it.
    pub fn list_jobs(&self, q: &ListQuery) -> Result<Page<JobSummary>, ApiError> {
        views::job_page(&self.state, q, SystemClock.wall())
    }

    /// `GET /v1/jobs/{job}`, as the leader answers it but without the tasks' live usage (metrics
    /// are the leader's).
    pub fn get_job(&self, name: &JobId) -> Result<JobView, ApiError> {
        views::job_view(&self.state, name).ok_or_else(|| ApiError::not_found("job", name))
    }
}
