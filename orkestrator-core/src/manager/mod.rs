//! The manager: desired state (jobs), observed state (what workers report), and the rules that
//! connect them. Transport-agnostic: the HTTP server and the in-process transport both call these
//! methods.
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
//! The rooms: [`state`](self) (memory and its indexes), `commit` (group commit), `jobs`
//! (submissions, stops, task reports), `reconcile` (the pure rules of rollouts and replacements),
//! `placement` (scheduler work, leases and decisions), `liveness` (registrations, heartbeats,
//! failure detection), `views` (what reads return), `gc` (garbage collection).

mod commit;
mod gc;
mod jobs;
mod liveness;
mod load;
mod logs;
mod placement;
pub mod reconcile;
mod replica;
mod state;
mod stream;
pub mod telemetry;
pub mod tokens;
mod views;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::api::*;
use crate::auth::{CreateToken, IssuedToken, Principal, Role, Subject, TokenInfo};
use crate::events::{Event, EventFilter, EventLog, Position, StreamStart};
use crate::ids::{JobId, SchedulerId, WorkerId};
use crate::metrics::{
    JobMetrics, MetricsAccepted, MetricsReport, MetricsWindow, Placement, WorkerMetrics,
};
use crate::spec::Job;
use crate::store::{Store, StoreOp};

use commit::{Batch, Publisher, Stats, Ticket, Txn};
use state::State;

pub use commit::{StoreFailure, store_failure};
pub use gc::GcReport;
pub use liveness::{
    MAX_COMPONENT_ID_BYTES, MAX_COMPONENT_TEXT_BYTES, MAX_WORKER_ADDRESS_BYTES, MAX_WORKER_LABELS,
    REGISTRATION_LIMIT,
};
pub use replica::Replica;
pub use stream::EventSubscription;

/// Manager settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// How often components should heartbeat. Default 1 s.
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before a component is `Down`. Default 3 s.
    pub heartbeat_grace: Duration,
    /// How long a scheduler holds pending instances before they go to another. Default 10 s.
    pub lease_timeout: Duration,
    /// Longest long-poll a caller may ask for. Default 60 s.
    pub max_wait: Duration,
    /// How long a replacement must run during a rolling update before the next instance is
    /// replaced. Default 5 s.
    pub min_healthy_time: Duration,
    /// How long ended jobs, replaced instances, unused spec versions and down workers are kept
    /// before garbage collection removes them. Default 1 h.
    pub gc_after: Duration,
    /// The most pending instances one scheduler's request for work gets. Default 2,000.
    pub max_work: usize,
    /// How many recent events the manager keeps for streams to resume from. Default 50,000.
    pub event_window: usize,
    /// How many metrics samples the manager keeps per task and per worker. Default 60 (five
    /// minutes at the workers' default 5 s interval).
    pub metrics_window: usize,
    /// The most tasks whose figures `/metrics` exposes (so that a million tasks cannot make it
    /// unbounded). Default 10,000.
    pub metrics_max_series: usize,
    /// How long after it starts (a new leader, after a failover) the manager waits before it
    /// judges any worker `Down`, so that workers have time to find it (Nomad renews every
    /// heartbeat timer on failover the same way). Default 0: only the heartbeat grace.
    pub failover_grace: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_grace: Duration::from_secs(3),
            lease_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            min_healthy_time: Duration::from_secs(5),
            gc_after: Duration::from_secs(3600),
            max_work: 2_000,
            event_window: 50_000,
            metrics_window: 60,
            metrics_max_series: 10_000,
            failover_grace: Duration::ZERO,
        }
    }
}

/// The manager. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: ManagerConfig,
    state: Mutex<State>,
    store: Arc<dyn Store>,
    committer: mpsc::UnboundedSender<Batch>,
    /// The index of the last durable commit.
    durable: AtomicU64,
    events: broadcast::Sender<Event>,
    publisher: Mutex<Publisher>,
    stats: Mutex<Stats>,
    /// Metrics from workers: not state, never committed.
    metrics: Mutex<MetricsWindow>,
    /// Who may call: taken after `state` when both are needed, alone to check a credential.
    tokens: std::sync::RwLock<tokens::Tokens>,
    /// The manager's own credential for calling workers' endpoints (logs).
    endpoint_token: std::sync::RwLock<Option<String>>,
    /// The managers sharing the store, as the embedding process last told (for health).
    peers: std::sync::RwLock<Vec<crate::api::ManagerPeer>>,
    started: Instant,
}

type ApiResult<T> = std::result::Result<T, ApiError>;

impl Manager {
    /// A manager that loads its state from `store`. It makes one commit before it returns (so
    /// that the state index after a restart never repeats one shown before) and spawns its
    /// committer on the current tokio runtime.
    pub async fn new(config: ManagerConfig, store: Arc<dyn Store>) -> crate::Result<Self> {
        let mut snap = store.load().await?;
        let tokens = tokens::Tokens::load(std::mem::take(&mut snap.tokens).into_values());
        let now = Instant::now();
        let mut state = State::from_snapshot(snap, now);
        state.judge_workers_after = Some(now + config.failover_grace);
        let index = state.head;
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            config: config.clone(),
            state: Mutex::new(state),
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
            tokens: std::sync::RwLock::new(tokens),
            endpoint_token: std::sync::RwLock::new(None),
            peers: std::sync::RwLock::new(Vec::new()),
            started: now,
        });
        tokio::spawn(commit::run(Arc::downgrade(&inner), rx));
        let m = Manager { inner };
        let boot = {
            let mut st = m.lock();
            m.seal_always(&mut st, Txn::default())
        };
        boot.durable()
            .await
            .map_err(|e| crate::Error::Store(e.message))?;
        Ok(m)
    }

    /// The manager's settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// Subscribes to the event bus: every event from now on, in id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A stream of events from `start` that pass `filter`: first those the manager's window
    /// holds, then live ones, none missed and none twice. Starting before the window gives a
    /// [`Reset`](crate::events::Reset) first.
    pub fn events(&self, start: StreamStart, filter: EventFilter) -> EventSubscription {
        EventSubscription::open(&self.inner, start, filter)
    }

    /// The index of the last durable commit.
    pub fn durable_index(&self) -> u64 {
        self.inner.durable.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        commit::lock(&self.inner.state)
    }

    /// Prepares a change under the lock and seals it; the caller awaits the ticket.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Txn, &ManagerConfig) -> ApiResult<R>,
    ) -> ApiResult<(Ticket, R)> {
        let mut st = self.lock();
        if st.rebuilding {
            return Err(rebuilding());
        }
        let mut txn = Txn::default();
        let r = f(&mut st, &mut txn, &self.inner.config);
        // Whatever was changed is committed, even when the request as a whole failed, so memory
        // and store never part.
        let ticket = self.seal(&mut st, txn);
        r.map(|r| (ticket, r))
    }

    /// Computes an answer under the lock; it may be given once what it saw is durable.
    fn read<R>(&self, f: impl FnOnce(&State) -> ApiResult<R>) -> ApiResult<(Ticket, R)> {
        let st = self.lock();
        if st.rebuilding {
            return Err(rebuilding());
        }
        let r = f(&st)?;
        Ok((self.ticket_for_head(&st), r))
    }

    fn ticket_for_head(&self, st: &State) -> Ticket {
        if self.durable_index() >= st.head {
            Ticket(None)
        } else {
            Ticket(st.last_batch.clone())
        }
    }

    /// Seals a prepared change: a new index, its ops on their way to the store. An empty change
    /// waits for the last batch (what it compared against).
    fn seal(&self, st: &mut State, txn: Txn) -> Ticket {
        if txn.is_empty() {
            return self.ticket_for_head(st);
        }
        self.seal_always(st, txn)
    }

    fn seal_always(&self, st: &mut State, txn: Txn) -> Ticket {
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
            generation: st.generation,
            index: st.head,
            ops,
            events: txn.events,
            done: tx,
        };
        // If the committer is gone the sender drops here and the ticket reports it.
        let _ = self.inner.committer.send(batch);
        st.last_batch = Some(rx.clone());
        Ticket(Some(rx))
    }

    // -----------------------------------------------------------------------------------------
    // Jobs

    /// Creates or updates a job. An identical re-submission is a no-op (`unchanged`).
    pub async fn submit_job(&self, job: Job) -> ApiResult<SubmitResponse> {
        let (t, r) = self.write(|st, txn, cfg| {
            let mut r = jobs::submit(st, txn, cfg, job);
            // Sealing takes the next index unless nothing changed.
            r.index = st.head + u64::from(!txn.is_empty());
            Ok(r)
        })?;
        t.durable().await?;
        Ok(r)
    }

    /// Stops a job: its instances' containers are stopped and removed.
    pub async fn stop_job(&self, name: &JobId) -> ApiResult<JobView> {
        let (t, v) = self.write(|st, txn, _| {
            jobs::stop(st, txn, name)?;
            let mut v =
                views::job_view(st, name).ok_or_else(|| ApiError::not_found("job", name))?;
            v.index = st.head + u64::from(!txn.is_empty());
            Ok(v)
        })?;
        t.durable().await?;
        Ok(v)
    }

    /// One page of the job list, by name.
    pub async fn list_jobs(&self, q: &ListQuery) -> ApiResult<Page<JobSummary>> {
        let (t, page) = self.read(|st| views::job_page(st, q))?;
        t.durable().await?;
        Ok(page)
    }

    /// One job.
    pub async fn get_job(&self, name: &JobId) -> ApiResult<JobView> {
        let (t, mut v) = self
            .read(|st| views::job_view(st, name).ok_or_else(|| ApiError::not_found("job", name)))?;
        t.durable().await?;
        self.add_job_usage(&mut v);
        Ok(v)
    }

    /// Fills each running task's current CPU and memory in from the metrics window.
    fn add_job_usage(&self, v: &mut JobView) {
        let m = commit::lock(&self.inner.metrics);
        for i in &mut v.instances {
            let Some((job, number)) = state::parse_id(&i.id) else {
                continue;
            };
            i.usage = i
                .tasks
                .keys()
                .filter_map(|t| Some((t.clone(), m.task_usage(&job, number, t)?)))
                .collect();
        }
    }

    /// Where the output of `task` of instance `index` of `job` can be read: its worker's endpoint
    /// and its container. `task` may be left out when the job has one task.
    pub async fn log_source(
        &self,
        job: &JobId,
        task: Option<&str>,
        index: u32,
    ) -> ApiResult<LogSource> {
        let (t, s) = self.read(|st| views::log_source(st, job, task, index))?;
        t.durable().await?;
        Ok(s)
    }

    // -----------------------------------------------------------------------------------------
    // Workers

    /// Registers or re-registers a worker, for a trusted in-process caller (no credential is
    /// issued).
    pub async fn register_worker(&self, req: RegisterWorker) -> ApiResult<Registered> {
        let (t, ()) = self.write(|st, txn, _| liveness::register_worker(st, txn, req))?;
        t.durable().await?;
        Ok(self.registered(None))
    }

    /// Registers or re-registers a worker for `by`, as Kubernetes' NodeRestriction would: a join
    /// token registers a new name (or one registered before credentials existed) and gets the
    /// worker's own credential; the worker's credential re-registers only itself; an operator
    /// may take any name (and gets a new credential for it, revoking the old one).
    pub async fn register_worker_as(
        &self,
        req: RegisterWorker,
        by: &Principal,
    ) -> ApiResult<Registered> {
        let subject = Subject::Worker(req.id.clone());
        let (t, credential) = self.write(|st, txn, _| {
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
            liveness::register_worker(st, txn, req)?;
            if !issue {
                return Ok(None);
            }
            issue_credential(&mut tokens, txn, subject).map(Some)
        })?;
        t.durable().await?;
        Ok(self.registered(credential))
    }

    fn registered(&self, credential: Option<String>) -> Registered {
        Registered {
            heartbeat_interval_ms: self.inner.config.heartbeat_interval.as_millis() as u64,
            heartbeat_grace_ms: self.inner.config.heartbeat_grace.as_millis() as u64,
            credential,
        }
    }

    /// Records a worker's heartbeat (soft state: nothing is written to the store).
    pub async fn worker_heartbeat(&self, id: &WorkerId, hb: WorkerHeartbeat) -> ApiResult<()> {
        let (t, soft) = {
            let mut st = self.lock();
            if st.rebuilding {
                return Err(rebuilding());
            }
            let soft = liveness::heartbeat(&mut st, &self.inner.config, id, hb)?;
            // Acknowledge only once the registration it updates is durable.
            let reg = st.workers.get(id).map_or(0, |w| w.reg_index);
            let t = if reg <= self.durable_index() {
                Ticket(None)
            } else {
                Ticket(st.last_batch.clone())
            };
            (t, soft)
        };
        for e in soft {
            commit::publish_soft(&self.inner, e);
        }
        t.durable().await
    }

    /// One page of the worker list, by id.
    pub async fn list_workers(&self, q: &ListQuery) -> ApiResult<Page<WorkerView>> {
        let grace = self.inner.config.heartbeat_grace;
        let (t, mut page) = self.read(|st| views::worker_page(st, q, grace))?;
        t.durable().await?;
        let m = commit::lock(&self.inner.metrics);
        for w in &mut page.items {
            w.usage = m.node_usage(&w.id);
        }
        Ok(page)
    }

    /// Waits (up to `wait`) until the worker's assignments change past `index`, then returns
    /// what changed (everything, for index 0 or an index too old to answer with changes).
    pub async fn watch_assignments(
        &self,
        id: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> ApiResult<Assignments> {
        let deadline = Instant::now() + wait.min(self.inner.config.max_wait);
        loop {
            let step = {
                let st = self.lock();
                if st.rebuilding {
                    return Err(rebuilding());
                }
                let w = st
                    .workers
                    .get(id)
                    .ok_or_else(|| ApiError::not_found("worker", id))?;
                if index == 0 || w.assign_index > index || index > st.head {
                    Ok((
                        views::assignments(&st, id, index),
                        self.ticket_for_head(&st),
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
                let st = self.lock();
                st.rebuilding || st.workers.get(id).is_none_or(|w| w.assign_index > index)
            };
            if changed {
                continue;
            }
            tokio::select! {
                _ = &mut woken => continue,
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(Assignments { index, full: false, instances: vec![], removed: vec![] });
                }
            }
        }
    }

    /// Applies a worker's task updates; refuses unknown instances and illegal transitions.
    pub async fn report_status(
        &self,
        worker: &WorkerId,
        updates: Vec<TaskUpdate>,
    ) -> ApiResult<ReportResponse> {
        let (t, r) = self.write(|st, txn, cfg| jobs::report(st, txn, cfg, worker, updates))?;
        t.durable().await?;
        Ok(r)
    }

    // -----------------------------------------------------------------------------------------
    // Schedulers

    /// Registers or re-registers a scheduler for `by`: like [`Manager::register_worker_as`],
    /// except that a join token may also take the name of a scheduler that is not live (a
    /// scheduler keeps its credential only in memory, so a restarted one joins again).
    pub async fn register_scheduler_as(
        &self,
        req: RegisterScheduler,
        by: &Principal,
    ) -> ApiResult<Registered> {
        let subject = Subject::Scheduler(req.id.clone());
        let (t, (credential, soft)) = self.write(|st, txn, _| {
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
            let soft = liveness::register_scheduler(st, req)?;
            let credential = if issue {
                Some(issue_credential(&mut tokens, txn, subject)?)
            } else {
                None
            };
            Ok((credential, soft))
        })?;
        for e in soft {
            commit::publish_soft(&self.inner, e);
        }
        t.durable().await?;
        Ok(self.registered(credential))
    }

    /// Registers or re-registers a scheduler (soft state), for a trusted in-process caller.
    pub async fn register_scheduler(&self, req: RegisterScheduler) -> ApiResult<Registered> {
        let (t, soft) = {
            let mut st = self.lock();
            let soft = liveness::register_scheduler(&mut st, req)?;
            (self.ticket_for_head(&st), soft)
        };
        for e in soft {
            commit::publish_soft(&self.inner, e);
        }
        t.durable().await?;
        Ok(self.registered(None))
    }

    /// Records a scheduler's heartbeat.
    pub async fn scheduler_heartbeat(&self, id: &SchedulerId) -> ApiResult<()> {
        let mut st = self.lock();
        liveness::scheduler_heartbeat(&mut st, id)
    }

    /// Waits (up to `wait`) for instances to place, leases up to `max_work` of them to
    /// `scheduler` and returns them with a snapshot of the ready workers.
    pub async fn scheduling_work(
        &self,
        scheduler: &SchedulerId,
        wait: Duration,
    ) -> ApiResult<SchedulingWork> {
        let deadline = Instant::now() + wait.min(self.inner.config.max_wait);
        loop {
            let step = {
                let mut st = self.lock();
                if st.rebuilding {
                    return Err(rebuilding());
                }
                match placement::take_work(&mut st, &self.inner.config, scheduler)? {
                    Some(work) => Ok((work, self.ticket_for_head(&st))),
                    None => Err(st.work.clone()),
                }
            };
            let notify = match step {
                Ok((work, t)) => {
                    t.durable().await?;
                    return Ok(work);
                }
                Err(n) => n,
            };
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let ready = !self.lock().ready.is_empty();
            if ready {
                continue;
            }
            tokio::select! {
                _ = &mut woken => continue,
                _ = tokio::time::sleep_until(deadline) => {
                    let index = self.lock().head;
                    return Ok(SchedulingWork { index, pending: vec![], workers: vec![] });
                }
            }
        }
    }

    /// Commits a scheduler's decisions that still fit (optimistic concurrency); refuses the rest.
    pub async fn submit_decisions(
        &self,
        scheduler: &SchedulerId,
        decisions: Vec<Decision>,
    ) -> ApiResult<Vec<DecisionResult>> {
        let (t, r) =
            self.write(|st, txn, cfg| placement::decide(st, txn, cfg, scheduler, decisions))?;
        t.durable().await?;
        Ok(r)
    }

    // -----------------------------------------------------------------------------------------
    // Tokens

    /// Who `token` (a bearer token) is: a 401 for a malformed, unknown or revoked one.
    pub fn authenticate(&self, token: &str) -> ApiResult<Principal> {
        read_lock(&self.inner.tokens).authenticate(token)
    }

    /// Who a dashboard session is, while it and its token last.
    pub fn authenticate_session(&self, session: &str) -> ApiResult<Principal> {
        read_lock(&self.inner.tokens).authenticate_session(session, Instant::now())
    }

    /// Signs in with `token`: a new session id (for an HttpOnly cookie) standing for it, and
    /// what the token is. Component credentials and join tokens cannot sign in.
    pub fn open_session(&self, token: &str) -> ApiResult<(String, TokenInfo)> {
        let mut tokens = write_lock(&self.inner.tokens);
        let p = tokens.authenticate(token)?;
        if !matches!(p.role, Role::Operator | Role::Read) {
            return Err(tokens::forbidden(
                "forbidden",
                format!(
                    "a {} token cannot sign in to the dashboard: use an operator or read token",
                    p.role
                ),
            ));
        }
        let info = tokens
            .get(&p.token)
            .map(|r| r.info())
            .ok_or_else(|| tokens::unauthenticated("the token was revoked"))?;
        let (_, session) = crate::auth::generate(Role::Read, None, None).map_err(ApiError::from)?;
        tokens.open_session(&session, &p.token, Instant::now());
        Ok((session, info))
    }

    /// Signs a dashboard session out.
    pub fn close_session(&self, session: &str) {
        write_lock(&self.inner.tokens).close_session(session);
    }

    /// Whether the token (or session's token) a principal came with still exists: an open stream
    /// of a revoked one ends.
    pub fn still_valid(&self, p: &Principal) -> bool {
        p.token.is_empty() || read_lock(&self.inner.tokens).get(&p.token).is_some()
    }

    /// What the API shows of the token a principal came with.
    pub fn token_info(&self, p: &Principal) -> ApiResult<TokenInfo> {
        read_lock(&self.inner.tokens)
            .get(&p.token)
            .map(|r| r.info())
            .ok_or_else(|| tokens::unauthenticated("the token was revoked"))
    }

    /// Creates an operator, read or join token. Its secret is in the answer and nowhere else.
    pub async fn create_token(&self, req: CreateToken) -> ApiResult<IssuedToken> {
        tokens::check_user_role(&req.role)?;
        if let Some(n) = &req.name {
            liveness::within("name", n.len(), crate::auth::MAX_TOKEN_NAME, "bytes")?;
        }
        let (t, issued) = self.write(|_, txn, _| {
            let (record, token) =
                crate::auth::generate(req.role, req.name, None).map_err(ApiError::from)?;
            let info = record.info();
            txn.ops.push(StoreOp::PutToken(record.clone()));
            write_lock(&self.inner.tokens).put(record);
            Ok(IssuedToken { info, token })
        })?;
        t.durable().await?;
        Ok(issued)
    }

    /// Every token and component credential (never their secrets), oldest first.
    pub async fn list_tokens(&self) -> ApiResult<Vec<TokenInfo>> {
        let (t, ()) = self.read(|_| Ok(()))?;
        t.durable().await?;
        let mut all: Vec<TokenInfo> = read_lock(&self.inner.tokens)
            .all()
            .map(|r| r.info())
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// Revokes a token or credential: it stops working at once (dashboard sessions opened with
    /// it too).
    pub async fn revoke_token(&self, id: &str) -> ApiResult<TokenInfo> {
        let (t, info) = self.write(|_, txn, _| {
            let r = write_lock(&self.inner.tokens)
                .remove(id)
                .ok_or_else(|| ApiError::not_found("token", id))?;
            txn.ops.push(StoreOp::DeleteToken(r.id.clone()));
            Ok(r.info())
        })?;
        t.durable().await?;
        Ok(info)
    }

    /// Creates each `(role, name)` token that the store does not hold yet, all in one commit,
    /// and answers the secrets of those it created (`None` for those that were there). For
    /// several managers on one store: whichever leads first creates the operator and join
    /// tokens; the others never make their own.
    pub async fn bootstrap_tokens_once(
        &self,
        wanted: &[(Role, &str)],
    ) -> ApiResult<Vec<Option<String>>> {
        let (t, made) = self.write(|_, txn, _| {
            let mut tokens = write_lock(&self.inner.tokens);
            let mut made = Vec::with_capacity(wanted.len());
            for (role, name) in wanted {
                let there = tokens
                    .all()
                    .any(|r| r.role == *role && r.name.as_deref() == Some(*name));
                if there {
                    made.push(None);
                    continue;
                }
                let (record, token) =
                    crate::auth::generate(role.clone(), Some((*name).to_owned()), None)
                        .map_err(ApiError::from)?;
                txn.ops.push(StoreOp::PutToken(record.clone()));
                tokens.put(record);
                made.push(Some(token));
            }
            Ok(made)
        })?;
        t.durable().await?;
        Ok(made)
    }

    /// Makes sure a token of `role` named `name` exists whose text is `existing` (read from the
    /// file the server keeps it in). If `existing` is missing or no longer valid, the tokens
    /// of that name are revoked and a new one made; its text is returned to be written out.
    pub async fn bootstrap_token(
        &self,
        role: Role,
        name: &str,
        existing: Option<&str>,
    ) -> ApiResult<Option<String>> {
        if let Some(text) = existing
            && let Ok(p) = self.authenticate(text)
            && p.role == role
            && self
                .token_info(&p)
                .is_ok_and(|i| i.name.as_deref() == Some(name))
        {
            return Ok(None);
        }
        let (t, token) = self.write(|_, txn, _| {
            let mut tokens = write_lock(&self.inner.tokens);
            let old: Vec<String> = tokens
                .all()
                .filter(|r| r.role == role && r.name.as_deref() == Some(name))
                .map(|r| r.id.clone())
                .collect();
            for id in old {
                tokens.remove(&id);
                txn.ops.push(StoreOp::DeleteToken(id));
            }
            let (record, token) =
                crate::auth::generate(role, Some(name.to_owned()), None).map_err(ApiError::from)?;
            txn.ops.push(StoreOp::PutToken(record.clone()));
            tokens.put(record);
            Ok(token)
        })?;
        t.durable().await?;
        Ok(Some(token))
    }

    /// Sets the credential the manager presents to workers' endpoints.
    pub fn set_endpoint_token(&self, token: Option<String>) {
        *write_lock(&self.inner.endpoint_token) = token;
    }

    /// The credential the manager presents to workers' endpoints, if it has one.
    pub fn endpoint_token(&self) -> Option<String> {
        read_lock(&self.inner.endpoint_token).clone()
    }

    // -----------------------------------------------------------------------------------------
    // Health, liveness, GC

    /// The health of every component and job, summarised.
    pub async fn health(&self) -> ApiResult<HealthReport> {
        let stats = commit::lock(&self.inner.stats).report();
        let grace = self.inner.config.heartbeat_grace;
        let uptime = self.inner.started.elapsed();
        let durable = self.durable_index();
        let (t, mut h) = self.read(|st| Ok(views::health(st, grace, uptime, durable, stats)))?;
        t.durable().await?;
        h.managers = read_lock(&self.inner.peers).clone();
        Ok(h)
    }

    /// Tells the manager which managers share its store and which leads, for
    /// [`Manager::health`] (the process that runs the election keeps it current).
    pub fn set_managers(&self, peers: Vec<crate::api::ManagerPeer>) {
        *write_lock(&self.inner.peers) = peers;
    }

    /// Detects workers whose heartbeats stopped (their live instances are marked `Lost` and
    /// replaced elsewhere), schedulers that stopped, leases past their timeout, and moves rolling
    /// updates on. Call it periodically ([`Manager::run_liveness_checks`] does).
    pub async fn check_liveness(&self) {
        let mut soft = Vec::new();
        let r = self.write(|st, txn, cfg| {
            soft = liveness::check(st, txn, cfg);
            Ok(())
        });
        for e in soft {
            commit::publish_soft(&self.inner, e);
        }
        if let Ok((t, ())) = r
            && let Err(e) = t.durable().await
        {
            tracing::warn!(error = %e, "liveness changes were not committed");
        }
    }

    /// Runs [`Manager::check_liveness`] twice per heartbeat interval, forever.
    pub async fn run_liveness_checks(self) {
        let every = (self.inner.config.heartbeat_interval / 2).max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check_liveness().await;
        }
    }

    /// Removes what ended more than `older_than` ago: jobs that are stopped, completed or failed
    /// (with their instances and specs), replaced instances of live jobs, spec versions no
    /// instance runs, and workers down for that long.
    pub async fn gc(&self, older_than: Duration) -> ApiResult<GcReport> {
        let mut removed = gc::Removed::default();
        let (t, r) = self.write(|st, txn, _| {
            let r = gc::collect(st, txn, older_than, &mut removed);
            let mut tokens = write_lock(&self.inner.tokens);
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
        let mut m = commit::lock(&self.inner.metrics);
        for j in &removed.jobs {
            m.remove_job(j);
        }
        for w in &removed.workers {
            m.remove_worker(w);
        }
        Ok(r)
    }

    // -----------------------------------------------------------------------------------------
    // Metrics (not state: never committed)

    /// Records a worker's metrics report. Samples of instances not placed on this worker are
    /// ignored (and counted).
    pub async fn report_metrics(
        &self,
        worker: &WorkerId,
        report: MetricsReport,
    ) -> ApiResult<MetricsAccepted> {
        report.check()?;
        let places: Vec<Option<Placement>> = {
            let st = self.lock();
            if !st.workers.contains_key(worker) {
                return Err(ApiError::not_found("worker", worker));
            }
            report
                .tasks
                .iter()
                .map(|t| {
                    let key = state::parse_id(&t.instance)?;
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
        let mut m = commit::lock(&self.inner.metrics);
        Ok(m.record(worker, report, |_| places.next().flatten()))
    }

    /// The metrics window of `job`'s tasks (the last `last` samples of each, or all).
    pub async fn job_metrics(&self, job: &JobId, last: Option<usize>) -> ApiResult<JobMetrics> {
        if !self.lock().jobs.contains_key(job) {
            return Err(ApiError::not_found("job", job));
        }
        Ok(commit::lock(&self.inner.metrics).job(job, last))
    }

    /// The metrics window of `worker`'s host and tasks.
    pub async fn worker_metrics(
        &self,
        worker: &WorkerId,
        last: Option<usize>,
    ) -> ApiResult<WorkerMetrics> {
        if !self.lock().workers.contains_key(worker) {
            return Err(ApiError::not_found("worker", worker));
        }
        Ok(commit::lock(&self.inner.metrics)
            .worker(worker, last)
            .unwrap_or_else(|| WorkerMetrics {
                worker: worker.clone(),
                node: Vec::new(),
                tasks: Vec::new(),
            }))
    }

    /// What the committer has measured (commit latency, batch sizes, placements and their
    /// waits, events by type), for exporters.
    pub fn telemetry(&self) -> telemetry::Telemetry {
        commit::lock(&self.inner.stats).telemetry.clone()
    }

    /// The counts by state right now, for exporters (no store access; a short lock).
    pub fn gauges(&self) -> telemetry::Gauges {
        let grace = self.inner.config.heartbeat_grace;
        let mut g = {
            let st = self.lock();
            let mut g = telemetry::Gauges::default();
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
                    .entry(liveness::liveness(true, s.last_seen, grace))
                    .or_default() += 1;
            }
            g
        };
        g.durable_index = self.durable_index();
        g.event_window = commit::lock(&self.inner.publisher).log.len() as u64;
        g.metrics_series = commit::lock(&self.inner.metrics).task_series() as u64;
        g
    }

    /// Runs `f` over the metrics window (for exporters such as Prometheus).
    pub fn with_metrics<R>(&self, f: impl FnOnce(&MetricsWindow) -> R) -> R {
        f(&commit::lock(&self.inner.metrics))
    }

    /// Runs [`Manager::gc`] with the configured `gc_after`, every `gc_after / 4` (at most every
    /// minute), forever.
    pub async fn run_gc(self) {
        let after = self.inner.config.gc_after;
        let every = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.gc(after).await {
                tracing::warn!(error = %e, "garbage collection was not committed");
            }
        }
    }
}

/// A task series is dropped when its worker has sent this many reports without it.
const METRICS_STALE_REPORTS: u64 = 3;

fn rebuilding() -> ApiError {
    ApiError::unavailable(
        "store_unavailable",
        "the manager is reloading its state after a failed store commit; retry shortly",
    )
}

/// After a failed commit: memory is rebuilt from what the store holds. Returns the new
/// generation; batches of older generations are refused.
fn read_lock<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Issues `subject` a new credential, revoking the one it had.
fn issue_credential(
    tokens: &mut tokens::Tokens,
    txn: &mut Txn,
    subject: Subject,
) -> ApiResult<String> {
    if let Some(old) = tokens.credential_of(&subject).map(|r| r.id.clone()) {
        tokens.remove(&old);
        txn.ops.push(StoreOp::DeleteToken(old));
    }
    let role = match subject {
        Subject::Worker(_) => Role::Worker,
        Subject::Scheduler(_) => Role::Scheduler,
    };
    let (record, token) =
        crate::auth::generate(role, None, Some(subject)).map_err(ApiError::from)?;
    txn.ops.push(StoreOp::PutToken(record.clone()));
    tokens.put(record);
    Ok(token)
}

fn cannot_register(by: &Principal, what: &str) -> ApiError {
    tokens::forbidden(
        "forbidden",
        format!(
            "a {} token cannot register {what}: use the join token (--join-token, --join-token-file or ORKESTRATOR_JOIN_TOKEN)",
            by.role
        ),
    )
}

pub(crate) async fn rebuild(inner: &Arc<Inner>, why: &str) -> u64 {
    let generation = {
        let mut st = commit::lock(&inner.state);
        st.generation += 1;
        st.rebuilding = true;
        st.last_batch = None;
        st.generation
    };
    loop {
        match inner.store.load().await {
            Ok(mut snap) => {
                let tokens = tokens::Tokens::load(std::mem::take(&mut snap.tokens).into_values());
                let mut st = commit::lock(&inner.state);
                let fresh = State::from_snapshot(snap, Instant::now());
                st.replace_durable(fresh);
                write_lock(&inner.tokens).replace_durable(tokens);
                st.generation = generation;
                st.rebuilding = false;
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
