//! The metrics room: workers' metrics reports (not state: never committed), the windows of a
//! job's or a worker's figures, and the manager's own measurements for exporters.

use std::sync::Arc;

use crate::api::{ApiError, JobPhase, Liveness};
use crate::ids::{JobId, WorkerId};
use crate::metrics::{
    JobMetrics, MetricsAccepted, MetricsReport, MetricsWindow, Placement, WorkerMetrics,
};

use crate::ids::parse_id;
use crate::manager::deadlines::liveness;
use crate::manager::inner::{ApiResult, Inner};
use crate::manager::locks::lock;
use crate::manager::telemetry::{Gauges, Telemetry};

/// The manager's metrics, from [`Manager::metrics`](crate::manager::Manager::metrics).
#[derive(Clone, Copy)]
pub struct Metrics<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Metrics<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Metrics { inner }
    }

    /// Records a worker's metrics report. Samples of instances not placed on this worker are
    /// ignored (and counted).
    pub async fn report(
        &self,
        worker: &WorkerId,
        report: MetricsReport,
    ) -> ApiResult<MetricsAccepted> {
        report.check()?;
        let places: Vec<Option<Placement>> = {
            let st = self.inner.lock();
            if !st.workers.contains_key(worker) {
                return Err(ApiError::not_found("worker", worker));
            }
            report
                .tasks
                .iter()
                .map(|t| {
                    let key = parse_id(&t.instance)?;
                    let i = st.instance(&key)?;
                    (i.worker.as_ref() == Some(worker)).then(|| Placement {
                        job: key.0.clone(),
                        number: key.1,
                        index: i.index,
                    })
                })
                .collect()
        };
        let mut places = places.into_iter();
        let mut m = lock(&self.inner.metrics);
        Ok(m.record(worker, report, |_| places.next().flatten()))
    }

    /// The metrics window of `job`'s tasks (the last `last` samples of each, or all).
    pub async fn job(&self, job: &JobId, last: Option<usize>) -> ApiResult<JobMetrics> {
        if !self.inner.lock().jobs.contains_key(job) {
            return Err(ApiError::not_found("job", job));
        }
        Ok(lock(&self.inner.metrics).job(job, last))
    }

    /// The metrics window of `worker`'s host and tasks.
    pub async fn worker(&self, worker: &WorkerId, last: Option<usize>) -> ApiResult<WorkerMetrics> {
        if !self.inner.lock().workers.contains_key(worker) {
            return Err(ApiError::not_found("worker", worker));
        }
        Ok(lock(&self.inner.metrics)
            .worker(worker, last)
            .unwrap_or_else(|| WorkerMetrics {
                worker: worker.clone(),
                node: Vec::new(),
                tasks: Vec::new(),
            }))
    }

    /// What the committer has measured (commit latency, batch sizes, placements and their
    /// waits, events by type), for exporters.
    pub fn telemetry(&self) -> Telemetry {
        lock(&self.inner.stats).telemetry.clone()
    }

    /// The counts by state right now, for exporters (no store access; a short lock).
    pub fn gauges(&self) -> Gauges {
        let grace = self.inner.config.heartbeat_grace;
        let mut g = {
            let st = self.inner.lock();
            let now = self.inner.clock.instant();
            let mut g = Gauges::default();
            let unready = st.counts.unready.len() as u64;
            g.workers.insert(
                Liveness::Ready,
                (st.workers.len() as u64).saturating_sub(unready),
            );
            for id in &st.counts.unready {
                if let Some(w) = st.workers.get(id) {
                    *g.workers.entry(w.liveness).or_default() += 1;
                }
            }
            for s in crate::state::TaskState::ALL {
                g.tasks.insert(s, st.counts.tasks[s as usize]);
            }
            for p in JobPhase::ALL {
                g.jobs
                    .insert(p, st.counts.phases.get(&p).copied().unwrap_or(0));
            }
            for s in st.schedulers.values() {
                *g.schedulers
                    .entry(liveness(true, s.last_seen, grace, now))
                    .or_default() += 1;
            }
            g
        };
        g.durable_index = self.inner.durable_index();
        g.event_window = lock(&self.inner.publisher).log.len() as u64;
        g.metrics_series = lock(&self.inner.metrics).task_series() as u64;
        g
    }

    /// Runs `f` over the metrics window (for exporters such as Prometheus).
    pub fn with_window<R>(&self, f: impl FnOnce(&MetricsWindow) -> R) -> R {
        f(&lock(&self.inner.metrics))
    }
}
