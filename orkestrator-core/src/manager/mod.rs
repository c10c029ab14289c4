//! The manager: desired state (jobs), observed state (what workers report), and the rules that
//! connect them. Transport-agnostic: the HTTP server and the in-process transport both call it.
//!
//! How a request is served:
//!
//! ```text
//! request ──> prepare under the state lock (validate, change memory, record ops and events; no I/O)
//!         ──> the committer gathers every prepared change into one durable Store commit
//!         ──> events published (stamped with their change's index), the request answered
//! ```
//!
//! A read is computed under the lock and answered once everything it saw is durable, so nothing
//! that is not yet durable is ever shown. A failed commit answers its changes (and every change
//! prepared on top of them) with 503 and memory is rebuilt from the store.
//!
//! [`Manager`] is a thin façade: its operations are grouped by room, each a small type borrowing
//! the manager — [`Manager::jobs`], [`Manager::workers`], [`Manager::schedulers`],
//! [`Manager::tokens`], [`Manager::secrets`], [`Manager::metrics`], [`Manager::events`], [`Manager::cluster`]. A new
//! concern gets a new room in `rooms/`, not more methods here.
//!
//! Underneath, bottom-up: `key`, `locks`, `config`, `deadlines` (the pure rules of liveness and
//! leases) and `reconcile` (the pure rules of rollouts and replacements); `commit` (durability
//! bookkeeping: changes, batches, tickets), `state` (memory and its indexes, apart from the
//! bookkeeping) and `tokens` (credentials); the decisions, which take `now` as a value: `jobs`
//! (submissions, stops, task reports), `placement` (scheduler work, leases and decisions),
//! `liveness` (registrations, heartbeats, failure detection), `views` (what reads return), `gc`
//! (garbage collection); `inner` (the shared core: prepare, seal, rebuild), the `committer`,
//! event `stream`s and `logs`; then the rooms, and this façade on top.

mod commit;
mod committer;
mod config;
mod deadlines;
mod gc;
mod inner;
mod jobs;
mod liveness;
mod load;
mod locks;
mod logs;
mod placement;
mod reconcile;
mod replica;
mod rooms;
mod state;
mod stream;
pub mod telemetry;
pub mod tokens;
mod views;
mod volume_index;
mod volumes;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, mpsc};

use crate::clock::{Clock, SystemClock};
use crate::events::{EventLog, Position};
use crate::metrics::MetricsWindow;
use crate::store::Store;

use commit::{Publisher, Stats, Txn};
use config::METRICS_STALE_REPORTS;
use inner::{Inner, Locked};
use state::State;

pub use crate::gc_report::GcReport;
pub use config::ManagerConfig;
pub use liveness::{
    MAX_COMPONENT_ID_BYTES, MAX_COMPONENT_TEXT_BYTES, MAX_HOST_VOLUMES, MAX_WORKER_ADDRESS_BYTES,
    MAX_WORKER_LABELS, REGISTRATION_LIMIT,
};
pub use replica::Replica;
pub use rooms::{Cluster, Events, Jobs, Metrics, Schedulers, Secrets, Tokens, Volumes, Workers};
pub use stream::EventSubscription;

/// The manager. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl Manager {
    /// A manager that loads its state from `store`, on the system clock. It makes one commit
    /// before it returns (so that the state index after a restart never repeats one shown
    /// before) and spawns its committer on the current tokio runtime.
    pub async fn new(config: ManagerConfig, store: Arc<dyn Store>) -> crate::Result<Self> {
        Self::with_clock(config, store, Arc::new(SystemClock)).await
    }

    /// Like [`Manager::new`], with time from `clock` (a
    /// [`TokioClock`](crate::clock::TokioClock) in tests and simulations).
    pub async fn with_clock(
        config: ManagerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> crate::Result<Self> {
        let mut snap = store.load().await?;
        let key_check = rooms::check_secret_key(config.secret_key.as_ref(), &snap)?;
        let tokens = tokens::TokenStore::load(std::mem::take(&mut snap.tokens).into_values());
        let now = clock.instant();
        let mut state = State::from_snapshot(snap, now, &config);
        state.judge_workers_after = Some(now + config.failover_grace);
        let index = state.head;
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            config: config.clone(),
            clock,
            state: Mutex::new(Locked {
                state,
                durability: Default::default(),
            }),
            store,
            committer: tx,
            durable: AtomicU64::new(index),
            events,
            publisher: Mutex::new(Publisher {
                index,
                seq: 0,
                // Every event from the boot commit on is known; what came before is not.
                log: EventLog::new(
                    config.event_window,
                    Position::before_index(index + 1).unwrap_or_default(),
                ),
            }),
            stats: Mutex::new(Stats::default()),
            metrics: Mutex::new(MetricsWindow::new(
                config.metrics_window,
                METRICS_STALE_REPORTS,
            )),
            tokens: RwLock::new(tokens),
            endpoint_token: RwLock::new(None),
            peers: RwLock::new(Vec::new()),
            started: now,
        });
        tokio::spawn(committer::run(Arc::downgrade(&inner), rx));
        let boot = {
            let mut st = inner.lock();
            let mut txn = Txn::default();
            txn.ops.extend(key_check);
            inner.seal_always(&mut st, txn)
        };
        boot.durable()
            .await
            .map_err(|e| crate::Error::Store(e.message))?;
        Ok(Manager { inner })
    }

    /// The manager's settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The clock the manager takes time from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The index of the last durable commit.
    pub fn durable_index(&self) -> u64 {
        self.inner.durable_index()
    }

    /// Jobs: submit, stop, list, get, and where their tasks' output is.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs::new(&self.inner)
    }

    /// Workers: registrations, heartbeats, the list, assignment watches and task reports.
    pub fn workers(&self) -> Workers<'_> {
        Workers::new(&self.inner)
    }

    /// Schedulers: registrations, heartbeats, work and decisions.
    pub fn schedulers(&self) -> Schedulers<'_> {
        Schedulers::new(&self.inner)
    }

    /// Tokens: who may call, dashboard sessions, and the tokens operators manage.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens::new(&self.inner)
    }

    /// Secrets: create, update, list and remove them (sealed at rest under the manager's key).
    pub fn secrets(&self) -> Secrets<'_> {
        Secrets::new(&self.inner)
    }

    /// Named volumes: where each instance index's data lives, and their removal.
    pub fn volumes(&self) -> Volumes<'_> {
        Volumes::new(&self.inner)
    }

    /// Metrics: workers' reports, the metrics windows, and figures for exporters.
    pub fn metrics(&self) -> Metrics<'_> {
        Metrics::new(&self.inner)
    }

    /// Events: the live bus and resumable streams.
    pub fn events(&self) -> Events<'_> {
        Events::new(&self.inner)
    }

    /// The cluster as a whole: health, the managers sharing the store, liveness checks and
    /// garbage collection.
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster::new(&self.inner)
    }
}
