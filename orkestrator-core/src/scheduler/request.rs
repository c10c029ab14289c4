//! What is being placed ([`Request`]), and recording a placement in a worker snapshot.

use crate::api::WorkerSnapshot;
use crate::spec::{Job, Protocol, Resources};

/// What is being placed: one instance of a job, with its needs worked out once.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The job.
    pub job: &'a Job,
    /// Which instance (0-based).
    pub index: u32,
    /// The resources one instance needs (the sum of its tasks').
    pub need: Resources,
    /// The host ports one instance binds.
    pub ports: Vec<(u16, Protocol)>,
    /// The host volumes it mounts (`worker --host-volume` names), each with whether every mount
    /// of it is read-only.
    pub host_volumes: Vec<(String, bool)>,
}

impl<'a> Request<'a> {
    /// A request to place instance `index` of `job`.
    pub fn new(job: &'a Job, index: u32) -> Self {
        Request {
            job,
            index,
            need: job.resources(),
            ports: job.host_ports().collect(),
            host_volumes: job
                .host_volumes()
                .into_iter()
                .map(|(name, read_only)| (name.to_owned(), read_only))
                .collect(),
        }
    }
}

/// Records a placement in a worker snapshot: what a scheduler does between the decisions of one
/// batch so that it never over-commits a worker.
pub fn commit_to_snapshot(w: &mut WorkerSnapshot, req: &Request<'_>) {
    w.allocated = w.allocated.saturating_add(&req.need);
    w.ports_in_use.extend(req.ports.iter().copied());
    w.instances += 1;
    *w.jobs.entry(req.job.name.clone()).or_insert(0) += 1;
}
