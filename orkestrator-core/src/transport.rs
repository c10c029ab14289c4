//! The manager's API as a worker, scheduler or client sees it.
//!
//! The API is split by audience: [`ClientApi`] (clients), [`WorkerApi`] (workers) and
//! [`SchedulerApi`] (schedulers); [`Transport`] is all three. The HTTP client in
//! `orkestrator-runtime` implements them over the wire;
//! [`LocalTransport`](crate::local::LocalTransport) calls a [`Manager`](crate::manager::Manager) in
//! the same process. Component code is written against the traits, so it runs over both: a
//! worker asks only for [`WorkerApi`], a scheduler only for [`SchedulerApi`].

use std::time::Duration;

use async_trait::async_trait;

use crate::api::*;
use crate::error::Result;
use crate::events::{EventFilter, StreamItem, StreamStart};
use crate::ids::{InstanceId, JobId, SchedulerId, WorkerId};
use crate::metrics::{JobMetrics, MetricsAccepted, MetricsReport, WorkerMetrics};
use crate::secrets::InstanceSecrets;
use crate::spec::Job;

/// A stream of the manager's events (see [`ClientApi::events`]). It ends when the connection
/// does; resume with [`StreamStart::After`] the last event's position.
pub type EventStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<StreamItem>> + Send + 'static>>;

/// Every item of a paged list: asks for pages of the largest size until the last one.
async fn every_page<T, F, Fut>(mut page: F) -> Result<Vec<T>>
where
    F: FnMut(ListQuery) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut q = ListQuery::first(ListQuery::MAX_LIMIT);
    let mut all = Vec::new();
    loop {
        let p = page(q.clone()).await?;
        all.extend(p.items);
        match p.next {
            Some(t) => q.after = Some(t),
            None => return Ok(all),
        }
    }
}

/// The manager's API, all of it: what clients, workers and schedulers call. Implemented for
/// every type that implements the three audiences' traits ([`ClientApi`], [`WorkerApi`],
/// [`SchedulerApi`]); a component asks only for the audience it belongs to.
pub trait Transport: ClientApi + WorkerApi + SchedulerApi {}

impl<T: ClientApi + WorkerApi + SchedulerApi + ?Sized> Transport for T {}

/// The manager's API as a client (the CLI, the dashboard, an operator's program) sees it: jobs,
/// workers, health, events and metrics windows.
#[async_trait]
pub trait ClientApi: Send + Sync + 'static {
    /// Submits (creates or updates) a job.
    async fn submit_job(&self, job: &Job) -> Result<SubmitResponse>;
    /// One page of the job list (by name).
    async fn list_jobs_page(&self, q: &ListQuery) -> Result<Page<JobSummary>>;
    /// Every job: pages through the list.
    async fn list_jobs(&self) -> Result<Vec<JobSummary>> {
        every_page(|q| async move { self.list_jobs_page(&q).await }).await
    }
    /// Gets one job.
    async fn get_job(&self, job: &JobId) -> Result<JobView>;
    /// Stops a job: its containers are stopped and removed.
    async fn stop_job(&self, job: &JobId) -> Result<JobView>;
    /// Restarts a job under its current version: a running job's instances are replaced one at
    /// a time; an ended job starts every instance again at once.
    async fn restart_job(&self, job: &JobId) -> Result<SubmitResponse>;
    /// One page of the worker list (by id).
    async fn list_workers_page(&self, q: &ListQuery) -> Result<Page<WorkerView>>;
    /// Every worker: pages through the list.
    async fn list_workers(&self) -> Result<Vec<WorkerView>> {
        every_page(|q| async move { self.list_workers_page(&q).await }).await
    }
    /// Collects garbage now: what ended longer ago than the manager's `gc_after`.
    async fn gc(&self) -> Result<crate::gc_report::GcReport>;
    /// The health of every component and job.
    async fn health(&self) -> Result<HealthReport>;

    /// Follows the manager's events from `start` that pass `filter` (`GET /v1/events`): those it
    /// still holds first, then live ones. A start older than the manager's window gives a
    /// [`StreamItem::Reset`] first.
    async fn events(&self, start: StreamStart, filter: &EventFilter) -> Result<EventStream>;
    /// The metrics window of a job's tasks (`GET /v1/jobs/{job}/metrics`).
    async fn job_metrics(&self, job: &JobId) -> Result<JobMetrics>;
    /// The metrics window of a worker and its tasks (`GET /v1/workers/{id}/metrics`).
    async fn worker_metrics(&self, worker: &WorkerId) -> Result<WorkerMetrics>;
}

/// The manager's API as a worker sees it: registering, heartbeats, assignments, status and
/// metrics reports, and the secrets of its instances.
#[async_trait]
pub trait WorkerApi: Send + Sync + 'static {
    /// Registers (or re-registers) a worker.
    async fn register_worker(&self, req: &RegisterWorker) -> Result<Registered>;
    /// A worker's heartbeat; the answer is the pace to keep from now on.
    async fn worker_heartbeat(
        &self,
        worker: &WorkerId,
        hb: &WorkerHeartbeat,
    ) -> Result<HeartbeatAnswer>;
    /// Waits until the worker's assignments change past `index` (or `wait` passes), then returns
    /// them. `index` 0 returns at once.
    async fn watch_assignments(
        &self,
        worker: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> Result<Assignments>;
    /// Reports task state changes.
    async fn report_status(
        &self,
        worker: &WorkerId,
        updates: &[TaskUpdate],
    ) -> Result<ReportResponse>;

    /// Confirms that the worker removed named volumes its assignments told it to remove
    /// (`POST /v1/workers/{id}/volumes/removed`).
    async fn volumes_removed(&self, worker: &WorkerId, removed: &VolumesRemoved) -> Result<()>;

    /// Publishes one metrics report (`POST /v1/workers/{id}/metrics`): never committed, kept in
    /// the manager's rolling window.
    async fn report_metrics(
        &self,
        worker: &WorkerId,
        report: &MetricsReport,
    ) -> Result<MetricsAccepted>;

    /// The secret values of the tasks of `instance`, an instance assigned to `worker`
    /// (`GET /v1/workers/{id}/instances/{instance}/secrets`); refused for any other instance.
    async fn instance_secrets(
        &self,
        worker: &WorkerId,
        instance: &InstanceId,
    ) -> Result<InstanceSecrets>;
}

/// The manager's API as a scheduler sees it: registering, heartbeats, work to place and
/// decisions.
#[async_trait]
pub trait SchedulerApi: Send + Sync + 'static {
    /// Registers (or re-registers) a scheduler.
    async fn register_scheduler(&self, req: &RegisterScheduler) -> Result<Registered>;
    /// A scheduler's heartbeat.
    async fn scheduler_heartbeat(&self, scheduler: &SchedulerId) -> Result<()>;
    /// Waits for instances to place (past `index`, or until `wait` passes) and leases them.
    async fn scheduling_work(
        &self,
        scheduler: &SchedulerId,
        index: u64,
        wait: Duration,
    ) -> Result<SchedulingWork>;
    /// Publishes placement decisions; the manager commits those that still fit.
    async fn submit_decisions(
        &self,
        scheduler: &SchedulerId,
        decisions: &[Decision],
    ) -> Result<Vec<DecisionResult>>;
}
