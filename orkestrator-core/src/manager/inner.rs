//! The manager's shared core, under the façade and its rooms: the state and everything kept
//! beside it ([`Inner`]), and how a request goes through it — prepared under the state lock,
//! sealed into a batch for the committer, answered once durable (see [`commit`](super::commit)).
//! After a failed commit, memory is rebuilt from the store here.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::api::{ApiError, ManagerPeer, Registered};
use crate::clock::{Clock, Now};
use crate::events::{Event, EventKind};
use crate::metrics::MetricsWindow;
use crate::store::{Store, StoreOp};

use super::commit::{Batch, Durability, Publisher, Stats, Ticket, Txn};
use super::config::ManagerConfig;
use super::deadlines::Pace;
use super::locks::{lock, write_lock};
use super::state::State;
use super::tokens::TokenStore;

/// A manager's result: an error is an API error.
pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

/// What the manager and its rooms share.
pub(crate) struct Inner {
    pub config: ManagerConfig,
    /// Where the time comes from: every decision takes `now` from here.
    pub clock: Arc<dyn Clock>,
    pub state: Mutex<Locked>,
    pub store: Arc<dyn Store>,
    pub committer: mpsc::UnboundedSender<Batch>,
    /// The index of the last durable commit.
    pub durable: AtomicU64,
    pub events: broadcast::Sender<Event>,
    pub publisher: Mutex<Publisher>,
    pub stats: Mutex<Stats>,
    /// Metrics from workers: not state, never committed.
    pub metrics: Mutex<MetricsWindow>,
    /// Who may call: taken after `state` when both are needed, alone to check a credential.
    pub tokens: RwLock<TokenStore>,
    /// The manager's own credential for calling workers' endpoints (logs).
    pub endpoint_token: RwLock<Option<String>>,
    /// The managers sharing the store, as the embedding process last told (for health).
    pub peers: RwLock<Vec<ManagerPeer>>,
    pub started: Instant,
}

/// What the state lock guards: the state, and beside it the durability bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Locked {
    pub state: State,
    pub durability: Durability,
}

impl Deref for Locked {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// The 503 of a request that comes while memory is being rebuilt.
pub(crate) fn rebuilding() -> ApiError {
    ApiError::unavailable(
        "store_unavailable",
        "the manager is reloading its state after a failed store commit; retry shortly",
    )
}

impl Inner {
    /// The index of the last durable commit.
    pub fn durable_index(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Both kinds of time, now.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    pub fn lock(&self) -> MutexGuard<'_, Locked> {
        lock(&self.state)
    }

    /// Prepares a change under the lock and seals it; the caller awaits the ticket.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Txn, &ManagerConfig, Now) -> ApiResult<R>,
    ) -> ApiResult<(Ticket, R)> {
        let mut st = self.lock();
        if st.durability.rebuilding {
            return Err(rebuilding());
        }
        let now = self.now();
        let mut txn = Txn::default();
        let r = f(&mut st.state, &mut txn, &self.config, now);
        // Whatever was changed is committed, even when the request as a whole failed, so memory
        // and store never part.
        let ticket = self.seal(&mut st, txn);
        r.map(|r| (ticket, r))
    }

    /// Computes an answer under the lock; it may be given once what it saw is durable.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> ApiResult<R>) -> ApiResult<(Ticket, R)> {
        let st = self.lock();
        if st.durability.rebuilding {
            return Err(rebuilding());
        }
        let r = f(&st.state)?;
        Ok((self.ticket_for_head(&st), r))
    }

    pub fn ticket_for_head(&self, st: &Locked) -> Ticket {
        if self.durable_index() >= st.head {
            Ticket(None)
        } else {
            Ticket(st.durability.last_batch.clone())
        }
    }

    /// Seals a prepared change: a new index, its ops on their way to the store. An empty change
    /// waits for the last batch (what it compared against).
    pub fn seal(&self, st: &mut Locked, txn: Txn) -> Ticket {
        if txn.is_empty() {
            return self.ticket_for_head(st);
        }
        self.seal_always(st, txn)
    }

    pub fn seal_always(&self, st: &mut Locked, txn: Txn) -> Ticket {
        st.head += 1;
        let mut ops = txn.ops;
        for key in &txn.touched {
            if let Some(i) = st.instance(key) {
                ops.push(StoreOp::PutInstance(i.record(&key.0, key.1)));
            }
        }
        if txn.instance_numbers_advanced {
            ops.push(StoreOp::SetNextInstance(st.next_instance));
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        let batch = Batch {
            generation: st.durability.generation,
            index: st.head,
            ops,
            events: txn.events,
            done: tx,
        };
        // If the committer is gone the sender drops here and the ticket reports it.
        let _ = self.committer.send(batch);
        st.durability.last_batch = Some(rx.clone());
        Ticket(Some(rx))
    }

    /// What a scheduler's registration answers: the configured pace.
    pub fn registered(&self, credential: Option<String>) -> Registered {
        self.registered_at(
            Pace {
                interval: self.config.heartbeat_interval,
                grace: self.config.heartbeat_grace,
            },
            credential,
        )
    }

    /// What a registration answers, at `pace`.
    pub fn registered_at(&self, pace: Pace, credential: Option<String>) -> Registered {
        Registered {
            heartbeat_interval_ms: pace.interval.as_millis() as u64,
            heartbeat_grace_ms: pace.grace.as_millis() as u64,
            credential,
        }
    }

    /// Publishes one event now, under the publisher's lock (so ids rise in the order sent).
    pub fn publish_soft(&self, kind: EventKind) {
        let mut p = lock(&self.publisher);
        p.seq += 1;
        let e = Event {
            index: p.index,
            seq: p.seq,
            at: self.clock.wall(),
            kind,
        };
        self.send(&mut p, e);
    }

    /// Sends one event: counted, kept in the window, on the bus.
    pub fn send(&self, p: &mut Publisher, e: Event) {
        lock(&self.stats).telemetry.saw(&e);
        p.log.push(e.clone());
        let _ = self.events.send(e);
    }
}

/// After a failed commit: memory is rebuilt from what the store holds. Returns the new
/// generation; batches of older generations are refused.
pub(crate) async fn rebuild(inner: &Arc<Inner>, why: &str) -> u64 {
    let generation = {
        let mut st = lock(&inner.state);
        let d = &mut st.durability;
        d.generation += 1;
        d.rebuilding = true;
        d.last_batch = None;
        d.generation
    };
    loop {
        match inner.store.load().await {
            Ok(mut snap) => {
                let tokens = TokenStore::load(std::mem::take(&mut snap.tokens).into_values());
                let mut st = lock(&inner.state);
                let fresh = State::from_snapshot(snap, inner.clock.instant(), &inner.config);
                st.replace_durable(fresh);
                write_lock(&inner.tokens).replace_durable(tokens);
                st.durability.generation = generation;
                st.durability.rebuilding = false;
                inner.durable.store(st.head, Ordering::Release);
                tracing::info!(
                    index = st.head,
                    "memory rebuilt from the store after: {why}"
                );
                return generation;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the store; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
