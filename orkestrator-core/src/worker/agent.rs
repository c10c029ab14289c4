//! The agent's loops — register, heartbeat, watch assignments, reconcile, wait for exits — and the
//! carrying out of each [`plan`](super::plan)'s actions with the [`Runtime`] and the
//! [`WorkerApi`](crate::transport::WorkerApi).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::checks;
use super::config::{ENGINE_ID_LABEL, ResourceProbe, WorkerConfig};
use super::container::container_spec;
use super::files;
use super::health::ProbeOutcome;
use super::metrics::{self, LatestMetrics};
use super::network;
use super::plan::{self, Action, Now};
use super::secrets;
use super::tracks::{TaskKey, Tracks};
use crate::api::*;
use crate::clock::now_millis;
use crate::error::Result;
use crate::ids::{InstanceId, WorkerId};
use crate::runtime::{ContainerInfo, Runtime, labels};
use crate::scheduler::is_unknown_component;
use crate::spec::{Resources, Task};
use crate::transport::WorkerApi;
use crate::units::format_duration;

/// What the agent's loops share.
pub(crate) struct Agent<T, R> {
    config: WorkerConfig,
    transport: Arc<T>,
    runtime: Arc<R>,
    probe: Arc<dyn ResourceProbe>,
    /// What the manager assigned, merged from every watch answer; `None` before the first.
    assignments: Mutex<Option<BTreeMap<InstanceId, Assignment>>>,
    /// Wakes the reconcile loop (new assignments, an exit, a stop done, a check done).
    wake: Notify,
    /// Wakes the health-check loop (a reconcile pass may have changed which checks fall due).
    checks_wake: Notify,
    tracks: Mutex<Tracks>,
    /// Running containers with a task waiting for their exit.
    watching: Mutex<HashSet<String>>,
    /// Containers being stopped and removed in the background.
    stopping: Mutex<HashSet<String>>,
    /// The newest metrics sampled.
    latest: LatestMetrics,
    /// Held while an instance's network and files are looked up, made or removed: two
    /// instances never pick the same subnet, two tasks of one instance never make two
    /// networks, and nothing is removed under a task being started.
    networks: tokio::sync::Mutex<network::Known>,
    /// Whether networks are being removed in the background (one removal run at a time).
    retiring: std::sync::atomic::AtomicBool,
    /// The named volumes the manager's latest answer tells this worker to remove.
    volumes_to_remove: Mutex<Vec<VolumeRef>>,
    /// Whether volumes are being removed in the background (one removal run at a time).
    removing_volumes: std::sync::atomic::AtomicBool,
}

fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes one watch answer into what the agent holds: a full answer replaces it, a delta merges.
/// An answer at the index already held (a long poll that timed out) changes nothing. Returns
/// whether anything was taken.
pub(crate) fn take_answer(
    held: &mut Option<BTreeMap<InstanceId, Assignment>>,
    index: &mut u64,
    answer: Assignments,
) -> bool {
    if answer.index == *index {
        return false;
    }
    *index = answer.index;
    answer.apply_to(held.get_or_insert_default());
    true
}

impl<T: WorkerApi, R: Runtime> Agent<T, R> {
    /// An agent that has not registered yet.
    pub(crate) fn new(
        config: WorkerConfig,
        transport: Arc<T>,
        runtime: Arc<R>,
        probe: Arc<dyn ResourceProbe>,
    ) -> Self {
        Agent {
            tracks: Mutex::new(Tracks::new(config.seed)),
            config,
            transport,
            runtime,
            probe,
            assignments: Mutex::new(None),
            wake: Notify::new(),
            checks_wake: Notify::new(),
            watching: Mutex::new(HashSet::new()),
            stopping: Mutex::new(HashSet::new()),
            latest: LatestMetrics::default(),
            networks: tokio::sync::Mutex::new(network::Known::default()),
            retiring: std::sync::atomic::AtomicBool::new(false),
            volumes_to_remove: Mutex::new(Vec::new()),
            removing_volumes: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The handle on the newest metrics sampled.
    pub(crate) fn latest_metrics(&self) -> LatestMetrics {
        self.latest.clone()
    }

    /// Registers, then runs the heartbeat, watch and reconcile loops until `shutdown` resolves.
    ///
    /// Ends early with the manager's refusal when it refuses the worker for good
    /// ([`Error::is_refused_for_good`](crate::error::Error::is_refused_for_good)).
    pub(crate) async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        let interval = tokio::select! {
            r = self.register() => r?,
            _ = &mut shutdown => return Ok(()),
        };
        tokio::select! {
            r = self.heartbeat_loop(interval) => r,
            r = self.watch_loop() => r,
            _ = self.clone().reconcile_loop() => Ok(()),
            _ = self.health_loop() => Ok(()),
            _ = self.metrics_loop() => Ok(()),
            _ = shutdown => Ok(()),
        }
    }

    fn id(&self) -> &WorkerId {
        &self.config.id
    }

    fn resources(&self) -> WorkerResources {
        let allocated = {
            let held = lock(&self.assignments);
            let tracks = lock(&self.tracks);
            held.iter()
                .flat_map(|h| h.values())
                .filter(|a| a.desired == Desired::Run && !instance_ended(a, &tracks))
                .fold(Resources::ZERO, |acc, a| {
                    acc.saturating_add(&a.job.resources())
                })
        };
        WorkerResources {
            total: self.probe.total(),
            allocated,
            available: self.probe.available(),
        }
    }

    /// Registers, retrying with a backoff while the manager cannot be reached or cannot take it
    /// yet; a refusal for good ([`Error::is_refused_for_good`](crate::error::Error::is_refused_for_good))
    /// is returned.
    async fn register(&self) -> Result<Duration> {
        let mut delay = Duration::from_millis(100);
        loop {
            let labels = self.labels().await;
            let req = RegisterWorker {
                id: self.id().clone(),
                address: self.config.address.clone(),
                labels,
                host_volumes: self
                    .config
                    .host_volumes
                    .iter()
                    .map(|(name, v)| (name.clone(), v.offer()))
                    .collect(),
                resources: self.resources(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            match self.transport.register_worker(&req).await {
                Ok(r) => {
                    tracing::info!(worker = %self.id(), "registered with the manager");
                    return Ok(r.heartbeat_interval());
                }
                Err(e) if e.is_refused_for_good() => {
                    tracing::error!(worker = %self.id(), error = %e, "the manager refuses this worker; stopping");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(worker = %self.id(), error = %e, "registration failed; retrying in {}", format_duration(delay));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The labels to register with: the operator's, and the built-in [`ENGINE_ID_LABEL`] with
    /// the engine's ID when the runtime has one (it overrides an operator's label of that key).
    async fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.config.labels.clone();
        match self.runtime.engine_id().await {
            Ok(Some(id)) => {
                if let Some(given) = labels.get(ENGINE_ID_LABEL).filter(|g| **g != id) {
                    tracing::warn!(worker = %self.id(), given = %given, engine = %id, "the label {ENGINE_ID_LABEL} is built in: the engine's ID replaces the value given");
                }
                labels.insert(ENGINE_ID_LABEL.to_owned(), id);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(worker = %self.id(), error = %e, "cannot read the engine's ID; registering without the {ENGINE_ID_LABEL} label");
            }
        }
        labels
    }

    /// Heartbeats at the interval the manager's last answer gave (it widens with the number of
    /// workers), the first one `interval` after registering.
    async fn heartbeat_loop(&self, mut interval: Duration) -> Result<()> {
        let mut next = Instant::now() + interval;
        loop {
            tokio::time::sleep_until(next).await;
            let sent = Instant::now();
            let ping = self.runtime.ping().await;
            let hb = WorkerHeartbeat {
                resources: self.resources(),
                healthy: ping.is_ok(),
                message: ping.err().map(|e| e.to_string()),
            };
            match self.transport.worker_heartbeat(self.id(), &hb).await {
                Ok(answer) => {
                    let asked = answer.heartbeat_interval();
                    if asked != interval && !asked.is_zero() {
                        tracing::info!(worker = %self.id(), "the manager asks for a heartbeat every {}", format_duration(asked));
                        interval = asked;
                    }
                }
                Err(e) if is_unknown_component(&e) => {
                    tracing::warn!(worker = %self.id(), "the manager does not know this worker; registering again");
                    interval = self.register().await?;
                }
                Err(e) => tracing::warn!(worker = %self.id(), error = %e, "heartbeat failed"),
            }
            // The next one an interval after this one was sent; at once if that has passed.
            next = (sent + interval).max(Instant::now());
        }
    }

    async fn watch_loop(&self) -> Result<()> {
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
                    let told = a.volumes_to_remove.clone();
                    if take_answer(&mut lock(&self.assignments), &mut index, a) {
                        // Every answer taken lists all the removals in full.
                        *lock(&self.volumes_to_remove) = told;
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    if is_unknown_component(&e) {
                        self.register().await?;
                        // The next answer is a full one.
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
            // What is due to be checked may have changed.
            self.checks_wake.notify_one();
            // A backoff ends on time rather than on the next tick (checks have their own loop).
            let wake_at = lock(&self.tracks)
                .next_restart()
                .map_or(next, |t| t.min(next));
            tokio::select! {
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep_until(wake_at) => {},
            }
        }
    }

    /// Runs the health checks as they fall due, outside the reconcile pass: each task's first
    /// check one interval after its container started, the next one interval after the previous
    /// one ended.
    async fn health_loop(&self) {
        loop {
            let due_at = {
                let held = lock(&self.assignments);
                held.as_ref()
                    .and_then(|h| checks::next_due(h, &lock(&self.tracks)))
            };
            let due = async {
                match due_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.checks_wake.notified() => {},
                _ = due => {},
            }
            self.run_health_checks().await;
        }
    }

    /// Every `metrics_interval`, samples the running task containers and the host and sends one
    /// report (see [`metrics`]). Never returns when metrics are off.
    async fn metrics_loop(&self) {
        if self.config.metrics_interval.is_zero() {
            return std::future::pending().await;
        }
        let mut sampler = metrics::Sampler::default();
        let mut tick = tokio::time::interval(self.config.metrics_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let targets = metrics::targets(lock(&self.assignments).as_ref(), &lock(&self.tracks));
            let (t, r) = (self.transport.as_ref(), self.runtime.as_ref());
            metrics::pass(
                &mut sampler,
                self.id(),
                t,
                r,
                &self.probe,
                &self.latest,
                targets,
            )
            .await;
        }
    }

    /// Starts a waiter for every running container that has none: when it exits, the agent
    /// reconciles at once (restart policies act within milliseconds, not on the next tick).
    fn watch_exits(self: &Arc<Self>) {
        let running = lock(&self.tracks).running_containers();
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

    /// One pass: plan what makes the containers match the assignments, and carry it out.
    async fn reconcile(self: &Arc<Self>) -> Result<()> {
        let Some(held) = lock(&self.assignments).clone() else {
            // Nothing is known yet: never touch containers before the first answer.
            return Ok(());
        };
        let listed = self
            .runtime
            .list(&[(labels::WORKER, self.id().as_str())])
            .await?;
        let now = Now {
            at: Instant::now(),
            unix_ms: now_millis(),
        };
        let mut held = held;
        // Never two instances on one volume: a replacement waits for its predecessor here.
        for id in super::volumes::waiting_for_predecessor(&held, &listed) {
            tracing::debug!(worker = %self.id(), instance = %id, "waiting for the instance it replaces to stop (they share named volumes)");
            held.remove(&id);
        }
        let plan = plan::plan(&held, &listed, &mut lock(&self.tracks), now);
        let held = Arc::new(held);
        let mut updates = Vec::new();
        // Stops run in the background; starts and restarts all at once, so that a job's tasks
        // start together and one slow start (an image pull) does not hold up the others.
        let mut work = tokio::task::JoinSet::new();
        for action in plan.actions {
            match action {
                Action::Report(u) => updates.push(u),
                Action::Stop { container, grace } => self.spawn_stop(container, grace, true),
                Action::Halt { container, grace } => self.spawn_stop(container, grace, false),
                Action::RemoveGhost {
                    container,
                    instance,
                    task,
                } => {
                    if !lock(&self.stopping).contains(&container) {
                        tracing::info!(worker = %self.id(), %instance, %task, %container, "removing a container that is not assigned here");
                    }
                    self.spawn_stop(container, None, true);
                }
                task_work @ (Action::Start { .. }
                | Action::StartCreated { .. }
                | Action::RestartAt { .. }) => {
                    let (s, held) = (self.clone(), held.clone());
                    work.spawn(async move { s.carry_out(&held, task_work).await });
                }
            }
        }
        let started = !work.is_empty();
        if started {
            // Tell the manager what is starting before waiting for it.
            self.send(std::mem::take(&mut updates)).await;
        }
        while let Some(r) = work.join_next().await {
            if let Ok(Some(u)) = r {
                updates.push(u);
            }
        }
        self.send(updates).await;
        if started {
            // Tasks waiting for what just started look again at once.
            self.wake.notify_one();
        }
        self.retire(held, listed);
        self.remove_volumes();
        Ok(())
    }

    /// Removes, in the background, the named volumes the manager told this worker to remove,
    /// and confirms each one removed; one that cannot go yet (in use) is tried again on the
    /// next pass. The manager's word is the only reason a volume is ever removed.
    fn remove_volumes(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        let told = lock(&self.volumes_to_remove).clone();
        if told.is_empty() || self.removing_volumes.swap(true, Ordering::AcqRel) {
            return;
        }
        let s = self.clone();
        tokio::spawn(async move {
            let done = super::volumes::remove_told(s.runtime.as_ref(), s.id(), &told).await;
            if !done.is_empty() {
                let confirm = VolumesRemoved { volumes: done };
                match s.transport.volumes_removed(s.id(), &confirm).await {
                    Ok(()) => lock(&s.volumes_to_remove).retain(|v| !confirm.volumes.contains(v)),
                    Err(e) => {
                        tracing::warn!(worker = %s.id(), error = %e, "cannot confirm volume removals; trying again")
                    }
                }
            }
            s.removing_volumes.store(false, Ordering::Release);
        });
    }

    /// Removes, in the background, the networks and config files of instances that no longer
    /// run here and have no container left (orphans of a restart included). The engine takes a
    /// few hundred milliseconds per network: reconcile passes go on meanwhile, and a pass while
    /// a removal run is under way starts none.
    fn retire(
        self: &Arc<Self>,
        held: Arc<BTreeMap<InstanceId, Assignment>>,
        listed: Vec<ContainerInfo>,
    ) {
        use std::sync::atomic::Ordering;
        if self.retiring.swap(true, Ordering::AcqRel) {
            return;
        }
        let s = self.clone();
        tokio::spawn(async move {
            s.retire_now(&held, &listed).await;
            s.retiring.store(false, Ordering::Release);
        });
    }

    async fn retire_now(&self, held: &BTreeMap<InstanceId, Assignment>, listed: &[ContainerInfo]) {
        let networks = match network::mine(self.runtime.as_ref(), self.id()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(worker = %self.id(), error = %e, "cannot list networks");
                Vec::new()
            }
        };
        let leftovers =
            networks
                .iter()
                .map(|(_, i)| i.clone())
                .chain(network::instances_with_files(
                    self.config.files_dir.as_deref(),
                    self.config.secrets_dir.as_deref(),
                ));
        for instance in network::retired(held, listed, leftovers) {
            // Under the lock that starts take, and only if the instance is still not to run
            // here: an assignment that came meanwhile keeps its network and files.
            let mut known = self.networks.lock().await;
            let wanted = lock(&self.assignments).as_ref().is_some_and(|now| {
                now.get(&InstanceId::new(instance.clone()))
                    .is_some_and(|a| a.desired == Desired::Run)
            });
            if wanted {
                continue;
            }
            let id = networks
                .iter()
                .find(|(_, i)| *i == instance)
                .map(|(id, _)| id.as_str());
            network::remove_retired(self.runtime.as_ref(), &self.config, id, &instance).await;
            known.forget(&instance);
        }
    }

    /// Carries out one start or removal of a task; returns the update it leads to, if any.
    async fn carry_out(
        &self,
        held: &BTreeMap<InstanceId, Assignment>,
        action: Action,
    ) -> Option<TaskUpdate> {
        let (key, replace, attempt) = match action {
            Action::RestartAt { remove, .. } => {
                let _ = self.runtime.remove(&remove).await;
                return None;
            }
            Action::StartCreated { key, container } => {
                let e = self.runtime.start(&container).await.err()?;
                let (a, task) = find(held, &key)?;
                return self.start_failed(a, task, &e);
            }
            Action::Start {
                key,
                attempt,
                replace,
            } => (key, replace, attempt),
            Action::Report(_)
            | Action::Stop { .. }
            | Action::Halt { .. }
            | Action::RemoveGhost { .. } => return None,
        };
        let (a, task) = find(held, &key)?;
        if let Some(id) = replace {
            let _ = self.runtime.remove(&id).await;
        }
        match self.start_container(a, task, attempt).await {
            Ok(id) => plan::started(&mut lock(&self.tracks), a, task, id, Instant::now()),
            Err(e) => {
                // The network may be what failed (removed behind the worker's back): ask the
                // engine again next time.
                self.networks.lock().await.forget(a.instance.as_str());
                self.start_failed(a, task, &e)
            }
        }
    }

    async fn start_container(&self, a: &Assignment, task: &Task, attempt: u32) -> Result<String> {
        self.runtime.ensure_image(&task.image).await?;
        let mut spec = container_spec(self.id(), a, &a.job, task, attempt);
        // A task's secrets are asked of the manager once per instance and task: a restart, or
        // a start after the worker restarted, finds them written.
        let secrets_dir = self.config.secrets_dir.as_deref();
        let delivered =
            if !task.secrets.is_empty() && secrets::written(secrets_dir, a, task).is_none() {
                Some(
                    self.transport
                        .instance_secrets(self.id(), &a.instance)
                        .await?,
                )
            } else {
                None
            };
        {
            let mut known = self.networks.lock().await;
            network::ensure(self.runtime.as_ref(), &self.config, a, &mut known).await?;
            spec.mounts = files::write(self.config.files_dir.as_deref(), a, task)?;
            if let Some(delivered) = &delivered {
                spec.mounts
                    .extend(secrets::write(secrets_dir, a, task, delivered)?);
            } else if !task.secrets.is_empty() {
                let written = secrets::written(secrets_dir, a, task).ok_or_else(|| {
                    crate::Error::runtime(
                        crate::error::RuntimeErrorKind::Other,
                        format!(
                            "the secrets of task {} went while it started; trying again",
                            task.name
                        ),
                    )
                })?;
                spec.mounts.extend(written);
            }
        }
        spec.mounts
            .extend(super::volumes::mounts(self.runtime.as_ref(), &self.config, a, task).await?);
        // The engine charges a tmpfs's pages to the container's memory: its limit covers both.
        if spec.resources.memory.bytes() > 0 {
            spec.resources.memory = task.memory_with_tmpfs(&a.job);
        }
        let id = self.runtime.create(&spec).await?;
        self.runtime.start(&id).await?;
        Ok(id)
    }

    fn start_failed(&self, a: &Assignment, task: &Task, e: &crate::Error) -> Option<TaskUpdate> {
        if plan::engine_unavailable(e) {
            tracing::warn!(worker = %self.id(), error = %e, "container engine unavailable");
        }
        let now = Now {
            at: Instant::now(),
            unix_ms: now_millis(),
        };
        plan::start_failed(&mut lock(&self.tracks), a, task, e, now)
    }

    /// Runs the health checks that are due, concurrently, and stops what turns unhealthy (its
    /// exit then goes through the restart policy on a later pass).
    async fn run_health_checks(&self) {
        let (due, graces) = {
            let held = lock(&self.assignments);
            let Some(held) = held.as_ref() else {
                return;
            };
            let due = checks::due_checks(held, &lock(&self.tracks), Instant::now());
            let graces: BTreeMap<TaskKey, Duration> = due
                .iter()
                .filter_map(|d| {
                    let (_, task) = find(held, &d.key)?;
                    Some((d.key.clone(), task.stop_grace?))
                })
                .collect();
            (due, graces)
        };
        if due.is_empty() {
            return;
        }
        checks::run_checks(&self.runtime, due, |d, result| {
            let mut tracks = lock(&self.tracks);
            let Some(tr) = tracks.get_mut(&d.key).filter(|tr| d.still_current(tr)) else {
                return;
            };
            let (instance, task) = &d.key;
            let Some(result) = result else {
                tracing::debug!(worker = %self.id(), %instance, %task, "the image's HEALTHCHECK has no verdict yet");
                tr.health.no_result(&d.check, Instant::now());
                return;
            };
            let why = result.as_ref().err().cloned().unwrap_or_default();
            match tr.health.record(&d.check, result, Instant::now()) {
                ProbeOutcome::Passed => {}
                ProbeOutcome::Booting => {
                    tracing::debug!(worker = %self.id(), %instance, %task, "health check failed within the start period: {why}");
                }
                ProbeOutcome::Failed { failures } => {
                    tracing::info!(worker = %self.id(), %instance, %task, failures, "health check failed: {why}");
                }
                ProbeOutcome::Unhealthy { failures, .. } => {
                    tracing::info!(worker = %self.id(), %instance, %task, failures, "health check failed: {why}; stopping the container");
                    let rt = self.runtime.clone();
                    let grace = graces.get(&d.key).copied().unwrap_or(self.config.stop_grace);
                    tokio::spawn(async move {
                        let _ = rt.stop(&d.container, grace).await;
                    });
                }
            }
        })
        .await;
        // Report the new verdicts promptly.
        self.wake.notify_one();
    }

    /// Stops a container in the background, giving it `grace` (or the worker's `--stop-grace`),
    /// and removes it when `remove` says so (once: a container being stopped is not stopped
    /// again); the agent reconciles again when it is down. Nothing waits for it, so a long grace
    /// period never holds up other work.
    fn spawn_stop(self: &Arc<Self>, id: String, grace: Option<Duration>, remove: bool) {
        if !lock(&self.stopping).insert(id.clone()) {
            return;
        }
        let s = self.clone();
        let grace = grace.unwrap_or(self.config.stop_grace);
        tokio::spawn(async move {
            let r = async {
                s.runtime.stop(&id, grace).await?;
                if remove {
                    s.runtime.remove(&id).await?;
                }
                Ok::<_, crate::Error>(())
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(worker = %s.id(), container = %id, error = %e, "cannot stop or remove container");
            }
            lock(&s.stopping).remove(&id);
            s.wake.notify_one();
        });
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
                lock(&self.tracks).unreport(&updates);
            }
        }
    }
}

/// Whether every task of `a` ended for good: until then the instance holds its whole
/// reservation, as the manager counts it.
pub(super) fn instance_ended(a: &Assignment, tracks: &Tracks) -> bool {
    a.job
        .tasks
        .iter()
        .all(|t| a.ended.contains(&t.name) || tracks.is_done(&(a.instance.clone(), t.name.clone())))
}

/// The assignment and task spec of `key` in `held`.
fn find<'a>(
    held: &'a BTreeMap<InstanceId, Assignment>,
    key: &TaskKey,
) -> Option<(&'a Assignment, &'a Task)> {
    let a = held.get(&key.0)?;
    let task = a.job.tasks.iter().find(|t| t.name == key.1)?;
    Some((a, task))
}
