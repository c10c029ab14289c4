//! The in-process transport: calls a [`Manager`] in the same process. The same component code that
//! runs over HTTP runs over this, which makes whole clusters testable in one process under tokio's
//! paused clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::api::*;
use crate::error::{Error, Result};
use crate::events::{EventFilter, StreamStart};
use crate::ids::{JobId, SchedulerId, WorkerId};
use crate::manager::Manager;
use crate::metrics::{JobMetrics, MetricsAccepted, MetricsReport, WorkerMetrics};
use crate::spec::Job;
use crate::transport::{ClientApi, EventStream, SchedulerApi, WorkerApi};
use futures_util::StreamExt;

/// A [`Transport`](crate::transport::Transport) that calls a [`Manager`] directly. It can be cut off (every call fails as if
/// the manager were unreachable) to simulate partitions.
#[derive(Clone)]
pub struct LocalTransport {
    target: Arc<RwLock<Manager>>,
    cut: Arc<AtomicBool>,
}

impl LocalTransport {
    /// A transport to `manager`.
    pub fn new(manager: Manager) -> Self {
        LocalTransport {
            target: Arc::new(RwLock::new(manager)),
            cut: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Another link to the same manager, with its own cut switch (one per simulated host).
    pub fn link(&self) -> Self {
        LocalTransport {
            target: self.target.clone(),
            cut: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The manager behind it.
    pub fn manager(&self) -> Manager {
        self.target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Points this transport, and every link made from it, at another manager (a restarted one).
    pub fn set_manager(&self, manager: Manager) {
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = manager;
    }

    /// Cuts (`true`) or heals (`false`) the link: while cut, every call fails with
    /// [`Error::Unreachable`].
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.cut.load(Ordering::SeqCst) {
            Err(Error::Unreachable {
                addr: "in-process".into(),
                message: "link cut".into(),
            })
        } else {
            Ok(())
        }
    }
}

fn api<T>(r: std::result::Result<T, ApiError>) -> Result<T> {
    r.map_err(Error::Api)
}

#[async_trait]
impl ClientApi for LocalTransport {
    async fn submit_job(&self, job: &Job) -> Result<SubmitResponse> {
        self.check()?;
        api(self.manager().jobs().submit(job.clone()).await)
    }

    async fn list_jobs_page(&self, q: &ListQuery) -> Result<Page<JobSummary>> {
        self.check()?;
        api(self.manager().jobs().list(q).await)
    }

    async fn get_job(&self, job: &JobId) -> Result<JobView> {
        self.check()?;
        api(self.manager().jobs().get(job).await)
    }

    async fn stop_job(&self, job: &JobId) -> Result<JobView> {
        self.check()?;
        api(self.manager().jobs().stop(job).await)
    }

    async fn restart_job(&self, job: &JobId) -> Result<SubmitResponse> {
        self.check()?;
        api(self.manager().jobs().restart(job).await)
    }

    async fn list_workers_page(&self, q: &ListQuery) -> Result<Page<WorkerView>> {
        self.check()?;
        api(self.manager().workers().list(q).await)
    }

    async fn gc(&self) -> Result<crate::gc_report::GcReport> {
        self.check()?;
        let m = self.manager();
        let after = m.config().gc_after;
        api(m.cluster().gc(after).await)
    }

    async fn health(&self) -> Result<HealthReport> {
        self.check()?;
        api(self.manager().cluster().health().await)
    }

    async fn events(&self, start: StreamStart, filter: &EventFilter) -> Result<EventStream> {
        self.check()?;
        let sub = self.manager().events().stream(start, filter.clone());
        let first =
            futures_util::stream::iter([Ok(crate::events::StreamItem::Bookmark(sub.bookmark()))]);
        let cut = self.cut.clone();
        Ok(Box::pin(first.chain(futures_util::stream::unfold(
            sub,
            move |mut sub| {
                let cut = cut.clone();
                async move {
                    let item = sub.next().await?;
                    if cut.load(Ordering::SeqCst) {
                        return None;
                    }
                    Some((Ok(item), sub))
                }
            },
        ))))
    }

    async fn job_metrics(&self, job: &JobId) -> Result<JobMetrics> {
        self.check()?;
        api(self.manager().metrics().job(job, None).await)
    }

    async fn worker_metrics(&self, worker: &WorkerId) -> Result<WorkerMetrics> {
        self.check()?;
        api(self.manager().metrics().worker(worker, None).await)
    }
}

#[async_trait]
impl WorkerApi for LocalTransport {
    async fn report_metrics(
        &self,
        worker: &WorkerId,
        report: &MetricsReport,
    ) -> Result<MetricsAccepted> {
        self.check()?;
        api(self
            .manager()
            .metrics()
            .report(worker, report.clone())
            .await)
    }

    async fn register_worker(&self, req: &RegisterWorker) -> Result<Registered> {
        self.check()?;
        api(self.manager().workers().register(req.clone()).await)
    }

    async fn worker_heartbeat(
        &self,
        worker: &WorkerId,
        hb: &WorkerHeartbeat,
    ) -> Result<HeartbeatAnswer> {
        self.check()?;
        api(self.manager().workers().heartbeat(worker, hb.clone()).await)
    }

    async fn watch_assignments(
        &self,
        worker: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> Result<Assignments> {
        self.check()?;
        let r = api(self.manager().workers().watch(worker, index, wait).await);
        // A link cut while waiting loses the answer.
        self.check()?;
        r
    }

    async fn report_status(
        &self,
        worker: &WorkerId,
        updates: &[TaskUpdate],
    ) -> Result<ReportResponse> {
        self.check()?;
        api(self
            .manager()
            .workers()
            .report(worker, updates.to_vec())
            .await)
    }

    async fn volumes_removed(&self, worker: &WorkerId, removed: &VolumesRemoved) -> Result<()> {
        self.check()?;
        api(self
            .manager()
            .workers()
            .volumes_removed(worker, removed.clone())
            .await)
    }

    async fn instance_secrets(
        &self,
        worker: &WorkerId,
        instance: &crate::ids::InstanceId,
    ) -> Result<crate::secrets::InstanceSecrets> {
        self.check()?;
        api(self
            .manager()
            .secrets()
            .for_instance(worker, instance.as_str())
            .await)
    }
}

#[async_trait]
impl SchedulerApi for LocalTransport {
    async fn register_scheduler(&self, req: &RegisterScheduler) -> Result<Registered> {
        self.check()?;
        api(self.manager().schedulers().register(req.clone()).await)
    }

    async fn scheduler_heartbeat(&self, scheduler: &SchedulerId) -> Result<()> {
        self.check()?;
        api(self.manager().schedulers().heartbeat(scheduler).await)
    }

    async fn scheduling_work(
        &self,
        scheduler: &SchedulerId,
        _index: u64,
        wait: Duration,
    ) -> Result<SchedulingWork> {
        self.check()?;
        api(self.manager().schedulers().work(scheduler, wait).await)
    }

    async fn submit_decisions(
        &self,
        scheduler: &SchedulerId,
        decisions: &[Decision],
    ) -> Result<Vec<DecisionResult>> {
        self.check()?;
        api(self
            .manager()
            .schedulers()
            .decide(scheduler, decisions.to_vec())
            .await)
    }
}
