//! The workers room: registrations (with the rule of who may register which name), heartbeats,
//! the worker list, assignment watches and task reports.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{
    ApiError, Assignments, HeartbeatAnswer, ListQuery, Page, RegisterWorker, Registered,
    ReportResponse, TaskUpdate, VolumesRemoved, WorkerHeartbeat, WorkerView,
};
use crate::auth::{Principal, Role, Subject};
use crate::ids::WorkerId;

use crate::manager::commit::Ticket;
use crate::manager::inner::{ApiResult, Inner, rebuilding};
use crate::manager::jobs;
use crate::manager::liveness;
use crate::manager::locks::{lock, write_lock};
use crate::manager::tokens::{self, cannot_register, issue_credential};
use crate::manager::views;
use crate::manager::volumes;

/// The manager's workers, from [`Manager::workers`](crate::manager::Manager::workers).
#[derive(Clone, Copy)]
pub struct Workers<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Workers<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Workers { inner }
    }

    /// Registers or re-registers a worker, for a trusted in-process caller (no credential is
    /// issued).
    pub async fn register(&self, req: RegisterWorker) -> ApiResult<Registered> {
        let (t, pace) = self.inner.write(|st, txn, cfg, now| {
            liveness::register_worker(st, txn, cfg, req, now)?;
            Ok(liveness::worker_pace(st, cfg))
        })?;
        t.durable().await?;
        Ok(self.inner.registered_at(pace, None))
    }

    /// Registers or re-registers a worker for `by`, as Kubernetes' NodeRestriction would: a join
    /// token registers a new name (or one registered before credentials existed) and gets the
    /// worker's own credential; the worker's credential re-registers only itself; an operator
    /// may take any name (and gets a new credential for it, revoking the old one).
    pub async fn register_as(&self, req: RegisterWorker, by: &Principal) -> ApiResult<Registered> {
        let subject = Subject::Worker(req.id.clone());
        let (t, (credential, pace)) = self.inner.write(|st, txn, cfg, now| {
            let mut tokens = write_lock(&self.inner.tokens);
            let issue = match by.role {
                Role::Operator => true,
                Role::Worker if by.is_worker(&req.id) => false,
                Role::Worker => {
                    return Err(tokens::forbidden(
                        "not_yourself",
                        format!(
                            "this credential belongs to another worker; it cannot register as worker \"{}\"",
                            req.id
                        ),
                    ));
                }
                Role::Join => {
                    if tokens.credential_of(&subject).is_some() {
                        return Err(tokens::forbidden(
                            "name_taken",
                            format!(
                                "worker \"{}\" is registered with a credential of its own: restart it with its --data-dir (where it keeps that credential), pick another --name, or have an operator revoke the old credential (orkestrator token list / token revoke ID)",
                                req.id
                            ),
                        ));
                    }
                    true
                }
                _ => return Err(cannot_register(by, "workers")),
            };
            liveness::register_worker(st, txn, cfg, req, now)?;
            let pace = liveness::worker_pace(st, cfg);
            if !issue {
                return Ok((None, pace));
            }
            issue_credential(&mut tokens, txn, subject, now.wall).map(|c| (Some(c), pace))
        })?;
        t.durable().await?;
        Ok(self.inner.registered_at(pace, credential))
    }

    /// Records a worker's heartbeat (soft state: nothing is written to the store) and answers
    /// the pace it is to keep: the interval widens with the number of workers.
    pub async fn heartbeat(
        &self,
        id: &WorkerId,
        hb: WorkerHeartbeat,
    ) -> ApiResult<HeartbeatAnswer> {
        // The heartbeat counts from its arrival: a wait for the state lock is the manager's.
        let arrived = self.inner.now();
        let (t, soft, pace) = {
            let mut st = self.inner.lock();
            if st.durability.rebuilding {
                return Err(rebuilding());
            }
            let (soft, pace) = liveness::heartbeat(&mut st, &self.inner.config, id, hb, arrived)?;
            // Acknowledge only once the registration it updates is durable.
            let reg = st.workers.get(id).map_or(0, |w| w.reg_index);
            let t = if reg <= self.inner.durable_index() {
                Ticket(None)
            } else {
                Ticket(st.durability.last_batch.clone())
            };
            (t, soft, pace)
        };
        for e in soft {
            self.inner.publish_soft(e);
        }
        t.durable().await?;
        Ok(HeartbeatAnswer {
            heartbeat_interval_ms: pace.interval.as_millis() as u64,
            heartbeat_grace_ms: pace.grace.as_millis() as u64,
        })
    }

    /// One page of the worker list, by id.
    pub async fn list(&self, q: &ListQuery) -> ApiResult<Page<WorkerView>> {
        let now = self.inner.now();
        let (t, mut page) = self.inner.read(|st| views::worker_page(st, q, now))?;
        t.durable().await?;
        let m = lock(&self.inner.metrics);
        for w in &mut page.items {
            w.usage = m.node_usage(&w.id);
            w.tasks_usage = m.tasks_usage(&w.id);
        }
        Ok(page)
    }

    /// Waits (up to `wait`) until the worker's assignments change past `index`, then returns
    /// what changed (everything, for index 0 or an index too old to answer with changes).
    pub async fn watch(&self, id: &WorkerId, index: u64, wait: Duration) -> ApiResult<Assignments> {
        let deadline = self.inner.clock.instant() + wait.min(self.inner.config.max_wait);
        loop {
            let step = {
                let st = self.inner.lock();
                if st.durability.rebuilding {
                    return Err(rebuilding());
                }
                let w = st
                    .workers
                    .get(id)
                    .ok_or_else(|| ApiError::not_found("worker", id))?;
                if index == 0 || w.assign_index > index || index > st.head {
                    Ok((
                        views::assignments(&st, id, index),
                        self.inner.ticket_for_head(&st),
                    ))
                } else {
                    Err(w.notify.clone())
                }
            };
            let notify = match step {
                Ok((a, t)) => {
                    t.durable().await?;
                    return Ok(a);
                }
                Err(n) => n,
            };
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Re-check: a change between the check and `enable` would otherwise be missed.
            let changed = {
                let st = self.inner.lock();
                st.durability.rebuilding
                    || st.workers.get(id).is_none_or(|w| w.assign_index > index)
            };
            if changed {
                continue;
            }
            tokio::select! {
                _ = &mut woken => continue,
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(Assignments { index, full: false, instances: vec![], removed: vec![], volumes_to_remove: vec![] });
                }
            }
        }
    }

    /// A worker confirms it removed volumes its assignments told it to remove: their records go.
    pub async fn volumes_removed(
        &self,
        worker: &WorkerId,
        removed: VolumesRemoved,
    ) -> ApiResult<()> {
        let (t, ()) = self.inner.write(|st, txn, _, _| {
            if !st.workers.contains_key(worker) {
                return Err(ApiError::not_found("worker", worker));
            }
            volumes::removed(st, txn, worker, &removed.volumes);
            Ok(())
        })?;
        t.durable().await?;
        Ok(())
    }

    /// Applies a worker's task updates; refuses unknown instances and illegal transitions.
    pub async fn report(
        &self,
        worker: &WorkerId,
        updates: Vec<TaskUpdate>,
    ) -> ApiResult<ReportResponse> {
        let (t, r) = self
            .inner
            .write(|st, txn, cfg, now| jobs::report(st, txn, cfg, worker, updates, now))?;
        t.durable().await?;
        Ok(r)
    }
}
