//! The worker agent: registers with the manager, heartbeats its resources and health, watches its
//! assignments and reconciles them with the containers its [`Runtime`] runs — creating, restarting
//! (per the task's restart policy) and stopping containers, and reporting every state change.
//!
//! Containers carry labels with the worker, job, task and instance, so a restarted agent adopts
//! what is already running instead of starting duplicates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::*;
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::ids::{InstanceId, TaskName, WorkerId};
use crate::runtime::{ContainerInfo, ContainerSpec, ContainerState, Runtime, labels};
use crate::scheduler::is_unknown_component;
use crate::spec::{Job, Resources, Task};
use crate::state::TaskState;
use crate::transport::Transport;
use crate::units::format_duration;

/// Tells a worker what its host has.
pub trait ResourceProbe: Send + Sync + 'static {
    /// What the worker offers to tasks in all.
    fn total(&self) -> Resources;
    /// What the host has free right now.
    fn available(&self) -> Resources;
}

/// A probe with fixed numbers (for tests and simulations, or to cap what a worker offers).
#[derive(Debug, Clone, Copy)]
pub struct StaticProbe(pub Resources);

impl ResourceProbe for StaticProbe {
    fn total(&self) -> Resources {
        self.0
    }
    fn available(&self) -> Resources {
        self.0
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker's id (stable across restarts: it is how containers are adopted).
    pub id: WorkerId,
    /// Where the worker's own endpoint listens, if any.
    pub address: Option<String>,
    /// Labels for placement constraints.
    pub labels: BTreeMap<String, String>,
    /// How long `stop` waits after SIGTERM before SIGKILL. Default 10 s.
    pub stop_grace: Duration,
    /// How often containers are checked even without news. Default 1 s.
    pub reconcile_interval: Duration,
    /// Longest long-poll for assignments. Default 30 s.
    pub watch_wait: Duration,
    /// Seed for the restart jitter (default: derived from the id).
    pub seed: u64,
}

impl WorkerConfig {
    /// Defaults for a worker named `id`.
    pub fn new(id: impl Into<WorkerId>) -> Self {
        let id: WorkerId = id.into();
        let seed = id.as_str().bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        WorkerConfig {
            seed,
            id,
            address: None,
            labels: BTreeMap::new(),
            stop_grace: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(1),
            watch_wait: Duration::from_secs(30),
        }
    }
}

/// The worker agent.
pub struct WorkerAgent<T: Transport, R: Runtime> {
    shared: Arc<Shared<T, R>>,
}

struct Shared<T, R> {
    config: WorkerConfig,
    transport: Arc<T>,
    runtime: Arc<R>,
    probe: Arc<dyn ResourceProbe>,
    assignments: Mutex<Option<Assignments>>,
    wake: Notify,
    tracks: Mutex<HashMap<(InstanceId, TaskName), Track>>,
    engine_error: Mutex<Option<String>>,
    /// Running containers with a task waiting for their exit.
    watching: Mutex<std::collections::HashSet<String>>,
    /// Containers being stopped and removed in the background.
    stopping: Mutex<std::collections::HashSet<String>>,
    rng: std::sync::atomic::AtomicU64,
}

/// What the agent remembers about one task.
#[derive(Debug, Default)]
struct Track {
    restarts: u32,
    next_start: Option<Instant>,
    running_since: Option<Instant>,
    done: bool,
    reported: Option<TaskUpdate>,
    /// When the next health check is due.
    next_probe: Option<Instant>,
    /// Failed health checks in a row.
    probe_failures: u32,
    /// The last verdict of the health check.
    healthy: Option<bool>,
    /// Why the container was stopped as unhealthy (reported with its exit).
    unhealthy: Option<String>,
}

impl<T: Transport, R: Runtime> WorkerAgent<T, R> {
    /// A worker agent.
    pub fn new(
        config: WorkerConfig,
        transport: Arc<T>,
        runtime: Arc<R>,
        probe: Arc<dyn ResourceProbe>,
    ) -> Self {
        WorkerAgent {
            shared: Arc::new(Shared {
                transport,
                runtime,
                probe,
                assignments: Mutex::new(None),
                wake: Notify::new(),
                tracks: Mutex::new(HashMap::new()),
                engine_error: Mutex::new(None),
                watching: Mutex::new(Default::default()),
                stopping: Mutex::new(Default::default()),
                rng: std::sync::atomic::AtomicU64::new(config.seed),
                config,
            }),
        }
    }

    /// Runs until `shutdown` resolves. Containers keep running when the agent stops.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        let s = self.shared;
        let interval = s.register().await;
        let heartbeat = {
            let s = s.clone();
            async move { s.heartbeat_loop(interval).await }
        };
        let watch = {
            let s = s.clone();
            async move { s.watch_loop().await }
        };
        let reconcile = {
            let s = s.clone();
            async move { s.reconcile_loop().await }
        };
        tokio::select! {
            _ = heartbeat => {},
            _ = watch => {},
            _ = reconcile => {},
            _ = shutdown => {},
        }
        Ok(())
    }
}

fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Transport, R: Runtime> Shared<T, R> {
    fn id(&self) -> &WorkerId {
        &self.config.id
    }

    /// `d` scaled by a random factor in [0.9, 1.1], so that tasks that fail together do not
    /// restart in lockstep. Reproducible from [`WorkerConfig::seed`].
    fn jitter(&self, d: Duration) -> Duration {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        d.mul_f64(0.9 + 0.2 * unit)
    }

    async fn resources(&self) -> WorkerResources {
        let allocated = {
            let a = lock(&self.assignments);
            let tracks = lock(&self.tracks);
            a.as_ref()
                .map(|a| {
                    a.instances
                        .iter()
                        .filter(|i| i.desired == Desired::Run)
                        .flat_map(|i| {
                            i.job.tasks.iter().filter(|t| {
                                !tracks
                                    .get(&(i.instance.clone(), t.name.clone()))
                                    .is_some_and(|tr| tr.done)
                            })
                        })
                        .fold(Resources::ZERO, |acc, t| acc.saturating_add(&t.resources))
                })
                .unwrap_or(Resources::ZERO)
        };
        WorkerResources {
            total: self.probe.total(),
            allocated,
            available: self.probe.available(),
        }
    }

    async fn register(&self) -> Duration {
        let mut delay = Duration::from_millis(100);
        loop {
            let req = RegisterWorker {
                id: self.id().clone(),
                address: self.config.address.clone(),
                labels: self.config.labels.clone(),
                resources: self.resources().await,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            match self.transport.register_worker(&req).await {
                Ok(r) => {
                    tracing::info!(worker = %self.id(), "registered with the manager");
                    return r.heartbeat_interval();
                }
                Err(e) => {
                    tracing::warn!(worker = %self.id(), error = %e, "registration failed; retrying in {}", format_duration(delay));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn heartbeat_loop(&self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ping = self.runtime.ping().await;
            let message = match &ping {
                Ok(()) => None,
                Err(e) => Some(e.to_string()),
            };
            *lock(&self.engine_error) = message.clone();
            let hb = WorkerHeartbeat {
                resources: self.resources().await,
                healthy: ping.is_ok(),
                message,
            };
            match self.transport.worker_heartbeat(self.id(), &hb).await {
                Ok(()) => {}
                Err(e) if is_unknown_component(&e) => {
                    tracing::warn!(worker = %self.id(), "the manager does not know this worker; registering again");
                    self.register().await;
                }
                Err(e) => tracing::warn!(worker = %self.id(), error = %e, "heartbeat failed"),
            }
        }
    }

    async fn watch_loop(&self) {
        let mut index = 0;
        let mut delay = Duration::from_millis(100);
        loop {
            match self
                .transport
                .watch_assignments(self.id(), index, self.config.watch_wait)
                .await
            {
                Ok(a) => {
                    delay = Duration::from_millis(100);
                    let changed = a.index != index;
                    index = a.index;
                    if changed {
                        *lock(&self.assignments) = Some(a);
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    if is_unknown_component(&e) {
                        self.register().await;
                        index = 0;
                    } else {
                        tracing::warn!(worker = %self.id(), error = %e, "cannot watch assignments; retrying in {}", format_duration(delay));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn reconcile_loop(self: Arc<Self>) {
        loop {
            let next = Instant::now() + self.config.reconcile_interval;
            if let Err(e) = self.reconcile().await {
                tracing::warn!(worker = %self.id(), error = %e, "reconcile failed");
            }
            self.watch_exits();
            let wake_at = self.next_wake().map_or(next, |t| t.min(next));
            tokio::select! {
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep_until(wake_at) => {},
            }
        }
    }

    /// Starts a waiter for every running container that has none: when it exits, the agent
    /// reconciles at once (restart policies act within milliseconds, not on the next tick).
    fn watch_exits(self: &Arc<Self>) {
        let running: Vec<String> = lock(&self.tracks)
            .values()
            .filter(|t| t.running_since.is_some() && !t.done)
            .filter_map(|t| t.reported.as_ref().and_then(|u| u.container_id.clone()))
            .collect();
        let mut watching = lock(&self.watching);
        for id in running {
            if watching.insert(id.clone()) {
                let s = self.clone();
                tokio::spawn(async move {
                    let r = s.runtime.wait(&id).await;
                    if r.is_err() {
                        // The engine is unhappy: do not spin; the periodic check carries on.
                        tokio::time::sleep(s.config.reconcile_interval).await;
                    }
                    lock(&s.watching).remove(&id);
                    s.wake.notify_one();
                });
            }
        }
    }

    /// The earliest pending restart, so a backoff ends on time rather than on the next tick.
    fn next_wake(&self) -> Option<Instant> {
        lock(&self.tracks)
            .values()
            .flat_map(|t| [t.next_start, t.next_probe.filter(|_| t.unhealthy.is_none())])
            .flatten()
            .min()
    }

    /// One pass: make the containers match the assignments.
    async fn reconcile(self: &Arc<Self>) -> Result<()> {
        let Some(assigned) = lock(&self.assignments).clone() else {
            // Nothing is known yet: never touch containers before the first answer.
            return Ok(());
        };
        let mut containers: HashMap<(String, String), Vec<ContainerInfo>> = HashMap::new();
        let listed = self
            .runtime
            .list(&[(labels::WORKER, self.id().as_str())])
            .await?;
        for c in listed {
            let key = (
                c.label(labels::INSTANCE).unwrap_or("").to_owned(),
                c.label(labels::TASK).unwrap_or("").to_owned(),
            );
            containers.entry(key).or_default().push(c);
        }
        let mut updates = Vec::new();
        // First everything that goes away (leftovers, instances told to stop, containers of
        // instances not assigned here), so that resources are freed before new containers start.
        let mut to_run = Vec::new();
        for a in &assigned.instances {
            for task in &a.job.tasks {
                let key = (
                    a.instance.as_str().to_owned(),
                    task.name.as_str().to_owned(),
                );
                let mut cs = containers.remove(&key).unwrap_or_default();
                // Newest attempt first; anything older is a leftover.
                cs.sort_by_key(|c| {
                    std::cmp::Reverse(
                        c.label(labels::ATTEMPT)
                            .and_then(|a| a.parse::<u32>().ok())
                            .unwrap_or(0),
                    )
                });
                for extra in cs.iter().skip(1) {
                    self.spawn_stop(extra.id.clone());
                }
                let current = cs.into_iter().next();
                if a.desired == Desired::Stop {
                    self.stop_task(a, task, current, &mut updates);
                } else {
                    to_run.push((a, task, current));
                }
            }
        }
        for ((instance, task), cs) in containers {
            for c in cs {
                if !lock(&self.stopping).contains(&c.id) {
                    tracing::info!(worker = %self.id(), %instance, %task, container = %c.id, "removing a container that is not assigned here");
                }
                self.spawn_stop(c.id);
            }
        }
        // Then starts and restarts, all at once: a job's tasks start together, and one slow
        // start (an image pull) does not hold up the others.
        let mut actions = tokio::task::JoinSet::new();
        for (a, task, current) in to_run {
            let next = self.decide(a, task, current.as_ref(), &mut updates);
            if matches!(next, Next::Start { .. }) {
                let mut tracks = lock(&self.tracks);
                let tr = tracks
                    .entry((a.instance.clone(), task.name.clone()))
                    .or_default();
                let u = update(a, task, TaskState::Starting, tr.restarts);
                push_if_new(tr, u, &mut updates);
            }
            if !matches!(next, Next::Nothing) {
                let (s, a, task) = (self.clone(), a.clone(), task.clone());
                actions.spawn(async move { s.act(&a, &task, next).await });
            }
        }
        if !actions.is_empty() {
            // Tell the manager what is starting before waiting for it.
            self.send(std::mem::take(&mut updates)).await;
        }
        while let Some(r) = actions.join_next().await {
            if let Ok(mut u) = r {
                updates.append(&mut u);
            }
        }
        {
            let keep: std::collections::HashSet<&InstanceId> =
                assigned.instances.iter().map(|a| &a.instance).collect();
            lock(&self.tracks).retain(|(i, _), _| keep.contains(i));
        }
        self.run_health_checks(&assigned).await;
        self.send(updates).await;
        Ok(())
    }

    /// Runs the health checks that are due, concurrently. A task that fails its check `failures`
    /// times in a row is stopped; its exit then goes through the restart policy like any other.
    async fn run_health_checks(&self, assigned: &Assignments) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let tracks = lock(&self.tracks);
            for a in assigned
                .instances
                .iter()
                .filter(|a| a.desired == Desired::Run)
            {
                for task in &a.job.tasks {
                    let Some(hc) = &task.health_check else {
                        continue;
                    };
                    let key = (a.instance.clone(), task.name.clone());
                    let Some(tr) = tracks.get(&key) else { continue };
                    let container = tr.reported.as_ref().and_then(|u| u.container_id.clone());
                    if tr.running_since.is_none() || tr.done || tr.unhealthy.is_some() {
                        continue;
                    }
                    if let (Some(at), Some(id)) = (tr.next_probe, container)
                        && at <= now
                    {
                        due.push((key, id, hc.clone()));
                    }
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let mut probes = tokio::task::JoinSet::new();
        for (key, id, hc) in due {
            let rt = self.runtime.clone();
            probes.spawn(async move {
                let r = rt.probe(&id, &hc.probe, hc.timeout).await;
                (key, id, hc, r)
            });
        }
        while let Some(Ok((key, id, hc, r))) = probes.join_next().await {
            let mut tracks = lock(&self.tracks);
            let Some(tr) = tracks.get_mut(&key) else {
                continue;
            };
            tr.next_probe = Some(Instant::now() + hc.interval);
            match r {
                Ok(()) => {
                    tr.probe_failures = 0;
                    tr.healthy = Some(true);
                }
                Err(why) => {
                    tr.probe_failures += 1;
                    tracing::info!(worker = %self.id(), instance = %key.0, task = %key.1, failures = tr.probe_failures, "health check failed: {why}");
                    if tr.probe_failures >= hc.failures {
                        tr.healthy = Some(false);
                        tr.unhealthy = Some(format!(
                            "{} failed {} times in a row: {why}",
                            hc.probe, tr.probe_failures
                        ));
                        let rt = self.runtime.clone();
                        let grace = self.config.stop_grace;
                        tokio::spawn(async move {
                            let _ = rt.stop(&id, grace).await;
                        });
                    }
                }
            }
        }
        // Report the new verdicts promptly.
        self.wake.notify_one();
    }

    /// Stops and removes a container in the background (once: a container being stopped is not
    /// stopped again); the agent reconciles again when it is gone. Nothing waits for it, so a
    /// long grace period never holds up other work.
    fn spawn_stop(self: &Arc<Self>, id: String) {
        if !lock(&self.stopping).insert(id.clone()) {
            return;
        }
        let s = self.clone();
        tokio::spawn(async move {
            let r = async {
                s.runtime.stop(&id, s.config.stop_grace).await?;
                s.runtime.remove(&id).await
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(worker = %s.id(), container = %id, error = %e, "cannot remove container");
            }
            lock(&s.stopping).remove(&id);
            s.wake.notify_one();
        });
    }

    fn stop_task(
        self: &Arc<Self>,
        a: &Assignment,
        task: &Task,
        current: Option<ContainerInfo>,
        updates: &mut Vec<TaskUpdate>,
    ) {
        let key = (a.instance.clone(), task.name.clone());
        let mut tracks = lock(&self.tracks);
        let tr = tracks.entry(key).or_default();
        match current {
            Some(c) => {
                let mut u = update(a, task, TaskState::Stopping, tr.restarts);
                u.container_id = Some(c.id.clone());
                push_if_new(tr, u, updates);
                drop(tracks);
                self.spawn_stop(c.id);
                // Reported `Stopped` on the next pass, once the container is gone.
            }
            None => {
                let mut u = update(a, task, TaskState::Stopped, tr.restarts);
                u.reason = Some("stopped on request".into());
                push_if_new(tr, u, updates);
            }
        }
    }

    /// Carries out what [`Self::decide`] chose for one task; returns the updates to report.
    async fn act(&self, a: &Assignment, task: &Task, next: Next) -> Vec<TaskUpdate> {
        let mut updates = Vec::new();
        let key = (a.instance.clone(), task.name.clone());
        match next {
            Next::Nothing => {}
            Next::RemoveAndWait(id) => {
                let _ = self.runtime.remove(&id).await;
            }
            Next::StartCreated(id) => {
                if let Err(e) = self.runtime.start(&id).await {
                    self.start_failed(a, task, e, &mut updates);
                }
            }
            Next::Start { remove } => {
                if let Some(id) = remove {
                    let _ = self.runtime.remove(&id).await;
                }
                let restarts = {
                    let mut tracks = lock(&self.tracks);
                    let tr = tracks.entry(key.clone()).or_default();
                    tr.next_start = None;
                    tr.restarts
                };
                match self.start_container(a, task, restarts).await {
                    Ok(id) => {
                        let mut tracks = lock(&self.tracks);
                        let tr = tracks.entry(key).or_default();
                        tr.running_since = Some(Instant::now());
                        let mut u = update(a, task, TaskState::Running, restarts);
                        u.container_id = Some(id);
                        push_if_new(tr, u, &mut updates);
                    }
                    Err(e) => self.start_failed(a, task, e, &mut updates),
                }
            }
        }
        updates
    }

    /// Decides what to do with one task of a running instance, given its current container.
    fn decide(
        &self,
        a: &Assignment,
        task: &Task,
        current: Option<&ContainerInfo>,
        updates: &mut Vec<TaskUpdate>,
    ) -> Next {
        let now = Instant::now();
        let policy = task.restart;
        let mut tracks = lock(&self.tracks);
        let tr = tracks
            .entry((a.instance.clone(), task.name.clone()))
            .or_default();
        if let Some(n) = current
            .and_then(|c| c.label(labels::ATTEMPT))
            .and_then(|s| s.parse::<u32>().ok())
        {
            tr.restarts = tr.restarts.max(n);
        }
        if tr.done {
            return Next::Nothing;
        }
        let Some(c) = current else {
            return if tr.next_start.is_some_and(|t| now < t) {
                Next::Nothing
            } else {
                Next::Start { remove: None }
            };
        };
        match &c.state {
            ContainerState::Running => {
                let since = *tr.running_since.get_or_insert(now);
                if tr.restarts > 0 && now.duration_since(since) >= policy.backoff.reset_after {
                    tr.restarts = 0;
                }
                if let Some(hc) = &task.health_check
                    && tr.next_probe.is_none()
                {
                    tr.next_probe = Some(since + hc.interval);
                }
                let mut u = update(a, task, TaskState::Running, tr.restarts);
                u.container_id = Some(c.id.clone());
                u.healthy = tr.healthy;
                push_if_new(tr, u, updates);
                Next::Nothing
            }
            ContainerState::Created => Next::StartCreated(c.id.clone()),
            ContainerState::Other(_) => Next::Nothing,
            ContainerState::Exited { code, reason } => {
                tr.running_since = None;
                tr.next_probe = None;
                tr.probe_failures = 0;
                tr.healthy = None;
                let unhealthy = tr.unhealthy.take();
                // A container stopped for failing its health check failed, whatever it exited
                // with (a service that shuts down cleanly on SIGTERM exits 0).
                let failed = code != &0 || unhealthy.is_some();
                let reason = &unhealthy
                    .map(|u| format!("unhealthy: {u}"))
                    .or_else(|| reason.clone());
                let code = *code;
                let mut u;
                if policy.should_restart(if failed { code.max(1) } else { 0 }, tr.restarts) {
                    let delay = self
                        .jitter(policy.backoff.delay(tr.restarts))
                        .min(policy.backoff.max);
                    tr.restarts += 1;
                    tr.next_start = Some(now + delay);
                    u = update(a, task, TaskState::Restarting, tr.restarts);
                    u.next_start_at = Some(now_millis() + delay.as_millis() as u64);
                    u.reason = Some(format!(
                        "exited with code {code}{}; restart {} of {} in {}",
                        reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        tr.restarts,
                        policy.max_attempts,
                        format_duration(Duration::from_millis(delay.as_millis() as u64))
                    ));
                } else {
                    tr.done = true;
                    let state = if failed {
                        TaskState::Failed
                    } else {
                        TaskState::Completed
                    };
                    u = update(a, task, state, tr.restarts);
                    u.reason = match (failed, reason) {
                        (false, _) => None,
                        (true, Some(r)) => Some(format!("exited with code {code} ({r})")),
                        (true, None) if tr.restarts > 0 => Some(format!(
                            "exited with code {code} after {} restarts",
                            tr.restarts
                        )),
                        (true, None) => Some(format!("exited with code {code}")),
                    };
                }
                u.exit_code = Some(code);
                u.container_id = Some(c.id.clone());
                push_if_new(tr, u, updates);
                if tr.done {
                    // Keep the exited container (and its logs) until the job is stopped.
                    Next::Nothing
                } else if tr.next_start.is_some_and(|t| now < t) {
                    Next::RemoveAndWait(c.id.clone())
                } else {
                    Next::Start {
                        remove: Some(c.id.clone()),
                    }
                }
            }
        }
    }

    async fn start_container(&self, a: &Assignment, task: &Task, attempt: u32) -> Result<String> {
        self.runtime.ensure_image(&task.image).await?;
        let spec = container_spec(self.id(), a, &a.job, task, attempt);
        let id = self.runtime.create(&spec).await?;
        self.runtime.start(&id).await?;
        Ok(id)
    }

    /// A container that could not be created or started counts as a failed run.
    fn start_failed(&self, a: &Assignment, task: &Task, e: Error, updates: &mut Vec<TaskUpdate>) {
        let key = (a.instance.clone(), task.name.clone());
        let mut tracks = lock(&self.tracks);
        let tr = tracks.entry(key).or_default();
        if matches!(
            e,
            Error::Runtime {
                kind: RuntimeErrorKind::Unavailable,
                ..
            }
        ) {
            // Not the task's fault: try again when the engine is back.
            tracing::warn!(worker = %self.id(), error = %e, "container engine unavailable");
            return;
        }
        let policy = task.restart;
        let mut u;
        if policy.should_restart(1, tr.restarts) {
            let delay = self
                .jitter(policy.backoff.delay(tr.restarts))
                .min(policy.backoff.max);
            tr.restarts += 1;
            tr.next_start = Some(Instant::now() + delay);
            u = update(a, task, TaskState::Restarting, tr.restarts);
            u.next_start_at = Some(now_millis() + delay.as_millis() as u64);
            u.reason = Some(format!(
                "cannot start: {e}; retry {} of {} in {}",
                tr.restarts,
                policy.max_attempts,
                format_duration(Duration::from_millis(delay.as_millis() as u64))
            ));
        } else {
            tr.done = true;
            u = update(a, task, TaskState::Failed, tr.restarts);
            u.reason = Some(format!("cannot start: {e}"));
        }
        push_if_new(tr, u, updates);
    }

    /// Sends updates; on failure they are sent again on the next pass (the tracks forget them).
    async fn send(&self, updates: Vec<TaskUpdate>) {
        if updates.is_empty() {
            return;
        }
        match self.transport.report_status(self.id(), &updates).await {
            Ok(r) => {
                for rej in r.rejected {
                    tracing::debug!(worker = %self.id(), instance = %rej.instance, task = %rej.task, reason = %rej.reason, "update refused");
                }
            }
            Err(e) => {
                tracing::warn!(worker = %self.id(), error = %e, "cannot report task status; will retry");
                let mut tracks = lock(&self.tracks);
                for u in updates {
                    if let Some(tr) = tracks.get_mut(&(u.instance.clone(), u.task.clone()))
                        && tr.reported.as_ref() == Some(&u)
                    {
                        tr.reported = None;
                    }
                }
            }
        }
    }
}

/// What one reconcile pass does with one task.
enum Next {
    Nothing,
    /// Remove the exited container; the next start waits for the backoff.
    RemoveAndWait(String),
    /// Start a container that was created but never started.
    StartCreated(String),
    /// Create and start a container, removing the old one first.
    Start {
        remove: Option<String>,
    },
}

fn update(a: &Assignment, task: &Task, state: TaskState, restarts: u32) -> TaskUpdate {
    TaskUpdate {
        instance: a.instance.clone(),
        task: task.name.clone(),
        state,
        exit_code: None,
        reason: None,
        container_id: None,
        restarts,
        next_start_at: None,
        healthy: None,
    }
}

fn push_if_new(tr: &mut Track, u: TaskUpdate, updates: &mut Vec<TaskUpdate>) {
    if tr.reported.as_ref() != Some(&u) {
        tr.reported = Some(u.clone());
        updates.push(u);
    }
}

/// The container for one task of one instance: its name, limits and labels.
pub fn container_spec(
    worker: &WorkerId,
    a: &Assignment,
    job: &Job,
    task: &Task,
    attempt: u32,
) -> ContainerSpec {
    let labels = [
        (labels::WORKER, worker.as_str().to_owned()),
        (labels::JOB, job.name.as_str().to_owned()),
        (labels::TASK, task.name.as_str().to_owned()),
        (labels::INSTANCE, a.instance.as_str().to_owned()),
        (labels::ATTEMPT, attempt.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    ContainerSpec {
        name: format!(
            "ork-{}-{}-{}-{attempt}",
            container_safe(worker.as_str()),
            a.instance,
            task.name
        ),
        image: task.image.clone(),
        command: task.command.clone(),
        env: task.env.clone(),
        ports: task.ports.clone(),
        resources: task.resources,
        labels,
    }
}

/// `s` with every character Docker does not allow in a container name replaced by `_`.
fn container_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
