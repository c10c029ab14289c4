//! The schedulers room: registrations (with the rule of who may register which name),
//! heartbeats, work handed out under leases, and decisions committed if they still fit.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{
    Decision, DecisionResult, Liveness, MeasuredUse, RegisterScheduler, Registered, SchedulingWork,
};
use crate::auth::{Principal, Role, Subject};
use crate::ids::SchedulerId;

use crate::manager::inner::{ApiResult, Inner, rebuilding};
use crate::manager::liveness;
use crate::manager::locks::{lock, write_lock};
use crate::manager::placement;
use crate::manager::tokens::{self, cannot_register, issue_credential};

/// The manager's schedulers, from [`Manager::schedulers`](crate::manager::Manager::schedulers).
#[derive(Clone, Copy)]
pub struct Schedulers<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Schedulers<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Schedulers { inner }
    }

    /// Registers or re-registers a scheduler for `by`: like
    /// [`Workers::register_as`](super::Workers::register_as), except that a join token may also
    /// take the name of a scheduler that is not live (a scheduler keeps its credential only in
    /// memory, so a restarted one joins again).
    pub async fn register_as(
        &self,
        req: RegisterScheduler,
        by: &Principal,
    ) -> ApiResult<Registered> {
        let subject = Subject::Scheduler(req.id.clone());
        let (t, (credential, soft)) = self.inner.write(|st, txn, _, now| {
            let mut tokens = write_lock(&self.inner.tokens);
            let issue = match by.role {
                Role::Operator => true,
                Role::Scheduler if by.is_scheduler(&req.id) => false,
                Role::Scheduler => {
                    return Err(tokens::forbidden(
                        "not_yourself",
                        format!(
                            "this credential belongs to another scheduler; it cannot register as scheduler \"{}\"",
                            req.id
                        ),
                    ));
                }
                Role::Join => {
                    let live = st
                        .schedulers
                        .get(&req.id)
                        .is_some_and(|s| s.liveness != Liveness::Down);
                    if live && tokens.credential_of(&subject).is_some() {
                        return Err(tokens::forbidden(
                            "name_taken",
                            format!(
                                "scheduler \"{}\" is live with a credential of its own: pick another --name, or wait until it is down",
                                req.id
                            ),
                        ));
                    }
                    true
                }
                _ => return Err(cannot_register(by, "schedulers")),
            };
            let soft = liveness::register_scheduler(st, req, now)?;
            let credential = if issue {
                Some(issue_credential(&mut tokens, txn, subject, now.wall)?)
            } else {
                None
            };
            Ok((credential, soft))
        })?;
        for e in soft {
            self.inner.publish_soft(e);
        }
        t.durable().await?;
        Ok(self.inner.registered(credential))
    }

    /// Registers or re-registers a scheduler (soft state), for a trusted in-process caller.
    pub async fn register(&self, req: RegisterScheduler) -> ApiResult<Registered> {
        let (t, soft) = {
            let mut st = self.inner.lock();
            let now = self.inner.now();
            let soft = liveness::register_scheduler(&mut st, req, now)?;
            (self.inner.ticket_for_head(&st), soft)
        };
        for e in soft {
            self.inner.publish_soft(e);
        }
        t.durable().await?;
        Ok(self.inner.registered(None))
    }

    /// Records a scheduler's heartbeat.
    pub async fn heartbeat(&self, id: &SchedulerId) -> ApiResult<()> {
        let mut st = self.inner.lock();
        let now = self.inner.now();
        liveness::scheduler_heartbeat(&mut st, id, now)
    }

    /// Waits (up to `wait`) for instances to place, leases up to `max_work` of them to
    /// `scheduler` and returns them with a snapshot of the ready workers.
    pub async fn work(&self, scheduler: &SchedulerId, wait: Duration) -> ApiResult<SchedulingWork> {
        let deadline = self.inner.clock.instant() + wait.min(self.inner.config.max_wait);
        loop {
            let step = {
                let mut st = self.inner.lock();
                if st.durability.rebuilding {
                    return Err(rebuilding());
                }
                let now = self.inner.now();
                match placement::take_work(&mut st, &self.inner.config, scheduler, now)? {
                    Some(work) => Ok((work, self.inner.ticket_for_head(&st))),
                    None => Err(st.work.clone()),
                }
            };
            let notify = match step {
                Ok((mut work, t)) => {
                    t.durable().await?;
                    self.measure(&mut work);
                    return Ok(work);
                }
                Err(n) => n,
            };
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let ready = !self.inner.lock().ready.is_empty();
            if ready {
                continue;
            }
            tokio::select! {
                _ = &mut woken => continue,
                _ = tokio::time::sleep_until(deadline) => {
                    let index = self.inner.lock().head;
                    return Ok(SchedulingWork { index, pending: vec![], workers: vec![] });
                }
            }
        }
    }

    /// Gives each worker of `work` its host's newest measured use, from the metrics window.
    fn measure(&self, work: &mut SchedulingWork) {
        let window = lock(&self.inner.metrics);
        for w in &mut work.workers {
            w.measured = window.node_usage(&w.id).map(MeasuredUse::from);
        }
    }

    /// Commits a scheduler's decisions that still fit (optimistic concurrency); refuses the rest.
    pub async fn decide(
        &self,
        scheduler: &SchedulerId,
        decisions: Vec<Decision>,
    ) -> ApiResult<Vec<DecisionResult>> {
        let (t, r) = self
            .inner
            .write(|st, txn, _, now| placement::decide(st, txn, scheduler, decisions, now))?;
        t.durable().await?;
        Ok(r)
    }
}
