//! The cluster room: the health summary and the managers sharing the store, and the upkeep
//! that runs in the background — failure detection (liveness) and garbage collection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::{ApiError, HealthReport, JobPhase, ManagerPeer};
use crate::auth::Subject;
use crate::ids::JobId;
use crate::store::StoreOp;

use crate::gc_report::GcReport;
use crate::manager::deadlines::pass_every;
use crate::manager::gc;
use crate::manager::inner::{ApiResult, Inner};
use crate::manager::liveness;
use crate::manager::locks::{lock, read_lock, write_lock};
use crate::manager::views;

/// The cluster as a whole, from [`Manager::cluster`](crate::manager::Manager::cluster).
#[derive(Clone, Copy)]
pub struct Cluster<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Cluster<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Cluster { inner }
    }

    /// The health of every component and job, summarised.
    pub async fn health(&self) -> ApiResult<HealthReport> {
        let inner = self.inner;
        let stats = lock(&inner.stats).report();
        let grace = inner.config.heartbeat_grace;
        let now = inner.clock.instant();
        let uptime = now.duration_since(inner.started);
        let durable = inner.durable_index();
        let (t, mut h) =
            inner.read(|st| Ok(views::health(st, grace, uptime, durable, stats, now)))?;
        t.durable().await?;
        h.managers = read_lock(&inner.peers).clone();
        Ok(h)
    }

    /// Tells the manager which managers share its store and which leads, for
    /// [`Cluster::health`] (the process that runs the election keeps it current).
    pub fn set_managers(&self, peers: Vec<ManagerPeer>) {
        *write_lock(&self.inner.peers) = peers;
    }

    /// Detects workers whose heartbeats stopped (their live instances are marked `Lost` and
    /// replaced elsewhere), schedulers that stopped, leases past their timeout, and moves rolling
    /// updates on. Call it periodically ([`Cluster::run_liveness_checks`] does).
    pub async fn check_liveness(&self) {
        check_liveness(self.inner, None).await;
    }

    /// Runs [`Cluster::check_liveness`] twice per heartbeat interval, forever. A pass that comes
    /// later than that measures how long the manager stalled (its runtime starved, its state
    /// lock held, its store holding commits): that time is counted out of the workers' deadlines.
    pub fn run_liveness_checks(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = Arc::clone(self.inner);
        async move {
            let every = pass_every(&inner.config);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut previous = None;
            loop {
                tick.tick().await;
                previous = Some(check_liveness(&inner, previous).await);
            }
        }
    }

    /// Removes what ended more than `older_than` ago: jobs that are stopped, completed or failed
    /// (with their instances and specs), replaced instances of live jobs, spec versions no
    /// instance runs, and workers down for that long.
    pub async fn gc(&self, older_than: Duration) -> ApiResult<GcReport> {
        collect(self.inner, older_than, None).await
    }

    /// Collects job `job` now, whatever `gc_after` says: it must have ended (stopped,
    /// completed or failed, with no container left). What `compose down -v` uses before it
    /// removes the secrets the job pinned. A 404 for an unknown job, a 409 for one that has
    /// not ended.
    pub async fn gc_job(&self, job: &JobId) -> ApiResult<GcReport> {
        let ended = self.inner.read(|st| {
            let e = st
                .jobs
                .get(job)
                .ok_or_else(|| ApiError::not_found("job", job.as_str()))?;
            Ok(matches!(
                e.phase,
                JobPhase::Stopped | JobPhase::Completed | JobPhase::Failed
            ) && e.tally.unfinished == 0
                && !e.instances.values().any(|i| i.assigned()))
        })?;
        if !ended.1 {
            return Err(ApiError::conflict(format!(
                "job {job} has not ended: stop it (`orkestrator stop {job} --wait`) before collecting it"
            )));
        }
        collect(self.inner, Duration::ZERO, Some(job)).await
    }

    /// Runs [`Cluster::gc`] with the configured `gc_after`, every `gc_after / 4` (at most every
    /// minute), forever.
    pub fn run_gc(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = Arc::clone(self.inner);
        async move {
            let after = inner.config.gc_after;
            let every = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = collect(&inner, after, None).await {
                    tracing::warn!(error = %e, "garbage collection was not committed");
                }
            }
        }
    }
}

/// One liveness pass, committed; returns when it ran (under the state lock), for the next
/// pass to measure the manager's stall from.
async fn check_liveness(inner: &Inner, previous: Option<Instant>) -> Instant {
    let mut soft = Vec::new();
    let mut ran = inner.clock.instant();
    let r = inner.write(|st, txn, cfg, now| {
        ran = now.instant;
        soft = liveness::check(st, txn, cfg, now, previous);
        Ok(())
    });
    for e in soft {
        inner.publish_soft(e);
    }
    if let Ok((t, ())) = r
        && let Err(e) = t.durable().await
    {
        tracing::warn!(error = %e, "liveness changes were not committed");
    }
    ran
}

/// One garbage collection, committed; what it removed leaves the metrics window too.
async fn collect(inner: &Inner, older_than: Duration, only: Option<&JobId>) -> ApiResult<GcReport> {
    let mut removed = gc::Removed::default();
    let (t, r) = inner.write(|st, txn, _, now| {
        let r = gc::collect(st, txn, older_than, only, &mut removed, now.wall);
        let mut tokens = write_lock(&inner.tokens);
        for w in &removed.workers {
            let id = tokens
                .credential_of(&Subject::Worker(w.clone()))
                .map(|r| r.id.clone());
            if let Some(id) = id {
                tokens.remove(&id);
                txn.ops.push(StoreOp::DeleteToken(id));
            }
        }
        Ok(r)
    })?;
    t.durable().await?;
    let mut m = lock(&inner.metrics);
    for j in &removed.jobs {
        m.remove_job(j);
    }
    for w in &removed.workers {
        m.remove_worker(w);
    }
    Ok(r)
}
