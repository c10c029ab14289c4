//! The scheduler component: pulls unassigned instances and a snapshot of the workers from the
//! manager, places them with a [`Scheduler`], and publishes the decisions.

use std::sync::Arc;
use std::time::Duration;

use super::parts::{Placement, Scheduler};
use super::request::Request;
use crate::api::{Decision, DecisionOutcome, PendingInstance, RegisterScheduler, WorkerSnapshot};
use crate::error::{Error, Result};
use crate::ids::{SchedulerId, WorkerId};
use crate::transport::SchedulerApi;

/// The scheduler component: registers with the manager, heartbeats, pulls unassigned instances
/// and the workers' free resources, places them with a [`Scheduler`] and publishes the decisions.
/// Runs embedded in the manager (over the in-process transport) or as its own process (over HTTP).
pub struct SchedulerAgent<T: SchedulerApi> {
    id: SchedulerId,
    transport: Arc<T>,
    algorithm: Arc<dyn Scheduler>,
    wait: Duration,
}

impl<T: SchedulerApi> SchedulerAgent<T> {
    /// A scheduler component named `id` that talks to the manager through `transport`.
    pub fn new(id: SchedulerId, transport: Arc<T>, algorithm: Arc<dyn Scheduler>) -> Self {
        SchedulerAgent {
            id,
            transport,
            algorithm,
            wait: Duration::from_secs(30),
        }
    }

    /// Sets how long one long-poll for work may wait.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Runs until `shutdown` resolves. Transport errors are retried with backoff; a refusal for
    /// good when registering ([`Error::is_refused_for_good`]) ends it with that error.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        tokio::pin!(shutdown);
        tokio::select! {
            r = self.run_forever() => r,
            _ = &mut shutdown => Ok(()),
        }
    }

    /// Registers, retrying with a backoff while the manager cannot be reached or cannot take it
    /// yet; a refusal for good ([`Error::is_refused_for_good`]: a name taken, an unknown join
    /// token, not a manager there) is returned, since asking again cannot change the answer.
    async fn register(&self) -> Result<Duration> {
        let req = RegisterScheduler {
            id: self.id.clone(),
            algorithm: self.algorithm.name().to_owned(),
        };
        let mut delay = Duration::from_millis(100);
        loop {
            match self.transport.register_scheduler(&req).await {
                Ok(r) => {
                    tracing::info!(scheduler = %self.id, "registered with the manager");
                    return Ok(r.heartbeat_interval());
                }
                Err(e) if e.is_refused_for_good() => {
                    tracing::error!(scheduler = %self.id, error = %e, "the manager refuses this scheduler; stopping");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(scheduler = %self.id, error = %e, "registration failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn run_forever(&self) -> Result<()> {
        let interval = self.register().await?;
        let heartbeat = {
            let t = self.transport.clone();
            let id = self.id.clone();
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = t.scheduler_heartbeat(&id).await {
                        tracing::debug!(scheduler = %id, error = %e, "heartbeat failed");
                        if is_unknown_component(&e) {
                            let req = RegisterScheduler {
                                id: id.clone(),
                                algorithm: String::new(),
                            };
                            let _ = t.register_scheduler(&req).await;
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = heartbeat => Ok(()),
            r = self.work_loop() => r,
        }
    }

    async fn work_loop(&self) -> Result<()> {
        let mut index = 0;
        let mut delay = Duration::from_millis(100);
        loop {
            let work = match self
                .transport
                .scheduling_work(&self.id, index, self.wait)
                .await
            {
                Ok(w) => w,
                Err(Error::Shutdown) => return Ok(()),
                Err(e) => {
                    tracing::warn!(scheduler = %self.id, error = %e, "cannot fetch work; retrying");
                    if is_unknown_component(&e) {
                        self.register().await?;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            delay = Duration::from_millis(100);
            index = work.index;
            if work.pending.is_empty() {
                continue;
            }
            let decisions = decide(self.algorithm.as_ref(), &work.pending, work.workers);
            match self.transport.submit_decisions(&self.id, &decisions).await {
                Ok(results) => {
                    for r in results.iter().filter(|r| !r.accepted) {
                        tracing::debug!(instance = %r.instance, reason = ?r.reason, "decision refused");
                    }
                }
                Err(e) => {
                    tracing::warn!(scheduler = %self.id, error = %e, "cannot publish decisions")
                }
            }
        }
    }
}

/// Places each pending instance in turn, updating the snapshot as it goes so that one batch never
/// over-commits a worker (through [`Scheduler::place_batch`], so that a scheduler can index the
/// batch once).
///
/// An instance pinned to the worker holding its volume data ([`PendingInstance::pinned`]) is
/// not the algorithm's to place: it goes to that worker if it fits there, and is unschedulable
/// with the reason otherwise.
pub fn decide(
    algorithm: &dyn Scheduler,
    pending: &[PendingInstance],
    mut workers: Vec<WorkerSnapshot>,
) -> Vec<Decision> {
    let mut placements: Vec<Option<Placement>> = pending
        .iter()
        .map(|p| {
            let pin = p.pinned.as_ref()?;
            let req = Request::new(&p.job, p.index);
            Some(place_pinned(&req, pin, &mut workers))
        })
        .collect();
    let free: Vec<usize> = (0..pending.len())
        .filter(|k| placements[*k].is_none())
        .collect();
    let reqs: Vec<Request<'_>> = free
        .iter()
        .map(|k| Request::new(&pending[*k].job, pending[*k].index))
        .collect();
    let chosen = algorithm.place_batch(&reqs, &mut workers);
    debug_assert_eq!(chosen.len(), reqs.len(), "one placement per request");
    for (k, placement) in free.into_iter().zip(chosen) {
        placements[k] = Some(placement);
    }
    pending
        .iter()
        .zip(placements)
        .map(|(p, placement)| (p, placement.expect("every request placed")))
        .map(|(p, placement)| Decision {
            instance: p.instance.clone(),
            outcome: match placement {
                Placement::Worker(worker) => DecisionOutcome::Place { worker },
                Placement::Unschedulable(reason) => DecisionOutcome::Unschedulable { reason },
            },
        })
        .collect()
}

/// Whether the manager said it does not know this component (it restarted, or forgot us), or no
/// longer takes its credential (revoked, or a manager that lost its state): registering again
/// fixes both (the transport then presents the join token).
pub(crate) fn is_unknown_component(e: &Error) -> bool {
    matches!(e, Error::Api(a) if matches!(a.kind, crate::api::ErrorKind::NotFound | crate::api::ErrorKind::Unauthenticated))
}

/// Places a request on the worker it is pinned to, if that worker is ready and it fits there.
fn place_pinned(req: &Request<'_>, pin: &WorkerId, workers: &mut [WorkerSnapshot]) -> Placement {
    let Some(w) = workers.iter_mut().find(|w| &w.id == pin) else {
        return Placement::Unschedulable(pinned_unavailable(req.index, pin));
    };
    match super::check_fit(req, w) {
        Ok(()) => {
            super::commit_to_snapshot(w, req);
            Placement::Worker(pin.clone())
        }
        Err(why) => Placement::Unschedulable(format!(
            "volume data of instance {} lives on worker {pin}, where it does not fit now: {}",
            req.index, why.reason
        )),
    }
}

/// Why an instance whose volume data lives on a worker that is not ready waits: `volume data of
/// instance 2 lives on worker w1, which is down`.
pub fn pinned_unavailable(index: u32, worker: &WorkerId) -> String {
    format!("volume data of instance {index} lives on worker {worker}, which is down")
}
