//! An in-memory [`Runtime`] for tests, examples and simulations. Containers are records; what they
//! do when started is scripted, and time is tokio's, so under a paused clock exits happen at exact
//! instants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::{Error, Result, RuntimeErrorKind};
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStats, LogOptions, LogStream, Runtime,
};
use crate::spec::Probe;

mod networks;
#[cfg(test)]
mod tests;
mod volumes;

pub use networks::StopRecord;

/// What a started container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Runs until stopped.
    RunForever,
    /// Exits with `code` after `after`.
    ExitAfter {
        /// How long it runs.
        after: Duration,
        /// Its exit code.
        code: i64,
    },
}

type Script = dyn Fn(&ContainerSpec) -> Behavior + Send + Sync;

/// The in-memory runtime. Clones share state.
#[derive(Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<FakeState>>,
    script: Arc<Script>,
    /// Bumped whenever a container writes output or stops, to wake log followers.
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

#[derive(Default)]
struct FakeState {
    next_id: u64,
    containers: BTreeMap<String, FakeContainer>,
    missing_images: BTreeSet<String>,
    unavailable: bool,
    starts: u64,
    unhealthy_jobs: BTreeSet<String>,
    /// Networks by id.
    networks: BTreeMap<String, crate::runtime::NetworkInfo>,
    /// Every stop of a running container, in order.
    stops: Vec<StopRecord>,
    /// How many times networks were listed with each label key among the filters.
    network_lists: BTreeMap<String, u64>,
    /// Named volumes by name.
    volumes: BTreeMap<String, crate::runtime::VolumeInfo>,
    /// What [`Runtime::engine_id`] answers.
    engine_id: Option<String>,
}

struct FakeContainer {
    spec: ContainerSpec,
    state: ContainerState,
    exit_at: Option<(Instant, i64)>,
    /// What it wrote, in the order written, with when (for `since`).
    output: Vec<(std::time::SystemTime, String)>,
    /// The engine's health status it reports ([`ContainerInfo::health`]).
    health: Option<String>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// A runtime whose containers run until stopped, except that a command
    /// `["exit", "N"]` exits with code N at once and `["sleep-exit", "SECS", "N"]` exits with N
    /// after SECS seconds.
    pub fn new() -> Self {
        Self::with_script(default_script)
    }

    /// A runtime whose containers do what `script` says.
    pub fn with_script(
        script: impl Fn(&ContainerSpec) -> Behavior + Send + Sync + 'static,
    ) -> Self {
        FakeRuntime {
            inner: Arc::new(Mutex::new(FakeState::default())),
            script: Arc::new(script),
            changed: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Makes container `id` write `text` to its output (what [`Runtime::stream_logs`] serves).
    /// Only a running container writes; returns whether it did.
    pub fn write_output(&self, id: &str, text: &str) -> bool {
        let wrote = {
            let mut st = self.lock();
            let now = Instant::now();
            match st.containers.get_mut(id) {
                Some(c) => {
                    let running = info(id, c, now).state == ContainerState::Running;
                    if running {
                        c.output
                            .push((std::time::SystemTime::now(), text.to_owned()));
                    }
                    running
                }
                None => false,
            }
        };
        if wrote {
            self.bump();
        }
        wrote
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `image` unavailable (as if it could not be pulled).
    pub fn remove_image(&self, image: &str) {
        self.lock().missing_images.insert(image.to_owned());
    }

    /// Makes every health check of `job`'s containers fail (`true`) or pass again.
    pub fn set_unhealthy(&self, job: &str, unhealthy: bool) {
        let mut st = self.lock();
        if unhealthy {
            st.unhealthy_jobs.insert(job.to_owned());
        } else {
            st.unhealthy_jobs.remove(job);
        }
    }

    /// Sets the engine's health status that inspecting container `id` reports (`starting`,
    /// `healthy`, `unhealthy`, or none for a container without a `HEALTHCHECK`); returns
    /// whether the container exists.
    pub fn set_health(&self, id: &str, health: Option<&str>) -> bool {
        match self.lock().containers.get_mut(id) {
            Some(c) => {
                c.health = health.map(str::to_owned);
                true
            }
            None => false,
        }
    }

    /// Sets the engine id that [`Runtime::engine_id`] answers (none by default).
    pub fn set_engine_id(&self, id: Option<&str>) {
        self.lock().engine_id = id.map(str::to_owned);
    }

    /// Makes the engine unreachable (`true`) or reachable again.
    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
    }

    /// Kills a container from outside, as `docker kill` would (exit code 137).
    pub fn kill(&self, id: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.state = ContainerState::Exited {
                code: 137,
                reason: None,
            };
            c.exit_at = None;
        }
        self.bump();
    }

    /// Every container (any state), refreshed to the current instant.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        let mut st = self.lock();
        let now = Instant::now();
        st.containers
            .iter_mut()
            .map(|(id, c)| info(id, c, now))
            .collect()
    }

    /// The spec container `id` was created with.
    pub fn spec(&self, id: &str) -> Option<ContainerSpec> {
        self.lock().containers.get(id).map(|c| c.spec.clone())
    }

    /// How many containers run now.
    pub fn running(&self) -> usize {
        self.containers()
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .count()
    }

    /// How many times any container was started.
    pub fn starts(&self) -> u64 {
        self.lock().starts
    }

    fn check(st: &FakeState) -> Result<()> {
        if st.unavailable {
            Err(Error::runtime(
                RuntimeErrorKind::Unavailable,
                "fake engine is down",
            ))
        } else {
            Ok(())
        }
    }
}

fn not_found(id: &str) -> Error {
    Error::runtime(RuntimeErrorKind::NotFound, format!("no container {id}"))
}

fn default_script(spec: &ContainerSpec) -> Behavior {
    let c: Vec<&str> = spec.command.iter().map(String::as_str).collect();
    match c.as_slice() {
        ["exit", code] => Behavior::ExitAfter {
            after: Duration::ZERO,
            code: code.parse().unwrap_or(1),
        },
        ["sleep-exit", secs, code] => Behavior::ExitAfter {
            after: Duration::from_secs_f64(secs.parse().unwrap_or(1.0)),
            code: code.parse().unwrap_or(1),
        },
        _ => Behavior::RunForever,
    }
}

fn info(id: &str, c: &mut FakeContainer, now: Instant) -> ContainerInfo {
    if let Some((at, code)) = c.exit_at
        && now >= at
    {
        c.state = ContainerState::Exited { code, reason: None };
        c.exit_at = None;
    }
    ContainerInfo {
        id: id.to_owned(),
        name: c.spec.name.clone(),
        labels: c.spec.labels.clone(),
        state: c.state.clone(),
        health: c.health.clone(),
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn engine_id(&self) -> Result<Option<String>> {
        let st = self.lock();
        Self::check(&st)?;
        Ok(st.engine_id.clone())
    }

    async fn ping(&self) -> Result<()> {
        Self::check(&self.lock())
    }

    async fn create_network(&self, spec: &crate::runtime::NetworkSpec) -> Result<String> {
        let mut st = self.lock();
        Self::check(&st)?;
        st.create_network(spec)
    }

    async fn remove_network(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        Self::check(&st)?;
        let now = Instant::now();
        st.remove_network(id, now)
    }

    async fn list_networks(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<crate::runtime::NetworkInfo>> {
        let mut st = self.lock();
        Self::check(&st)?;
        for (k, _) in labels {
            *st.network_lists.entry((*k).to_owned()).or_default() += 1;
        }
        Ok(st.list_networks(labels))
    }

    async fn create_volume(
        &self,
        spec: &crate::runtime::VolumeSpec,
    ) -> Result<crate::runtime::VolumeInfo> {
        let mut st = self.lock();
        Self::check(&st)?;
        Ok(st.create_volume(spec))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        Self::check(&st)?;
        st.remove_volume(name)
    }

    async fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<crate::runtime::VolumeInfo>> {
        let st = self.lock();
        Self::check(&st)?;
        Ok(st.list_volumes(labels))
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        let st = self.lock();
        Self::check(&st)?;
        if st.missing_images.contains(image) {
            return Err(Error::runtime(
                RuntimeErrorKind::ImageNotFound,
                format!("image {image} is not present and cannot be pulled"),
            ));
        }
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let mut st = self.lock();
        Self::check(&st)?;
        if st.missing_images.contains(&spec.image) {
            return Err(Error::runtime(
                RuntimeErrorKind::ImageNotFound,
                format!("no such image: {}", spec.image),
            ));
        }
        if st.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(Error::runtime(
                RuntimeErrorKind::Rejected,
                format!("name {} is in use", spec.name),
            ));
        }
        st.check_network(&spec.network)?;
        st.attach_volumes(spec);
        st.next_id += 1;
        let id = format!("fake{:08}", st.next_id);
        st.containers.insert(
            id.clone(),
            FakeContainer {
                spec: spec.clone(),
                state: ContainerState::Created,
                exit_at: None,
                output: Vec::new(),
                health: None,
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        Self::check(&st)?;
        st.starts += 1;
        let script = self.script.clone();
        let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        c.state = ContainerState::Running;
        c.exit_at = match script(&c.spec) {
            Behavior::RunForever => None,
            Behavior::ExitAfter { after, code } => Some((Instant::now() + after, code)),
        };
        Ok(())
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        // A container whose command starts with `ignore-term` ignores SIGTERM, as a shell or
        // `sleep` running as PID 1 does: it dies of SIGKILL once the grace period is over,
        // unless an init runs as PID 1 (`init: true`) and passes the signal on.
        let ignores_term = {
            let mut st = self.lock();
            Self::check(&st)?;
            let now = Instant::now();
            let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
            let running = info(id, c, now).state == ContainerState::Running;
            let ignores = running
                && !c.spec.init
                && c.spec.command.first().map(String::as_str) == Some("ignore-term");
            if running {
                let record = StopRecord {
                    container: c.spec.name.clone(),
                    task: c.spec.labels.get(crate::runtime::labels::TASK).cloned(),
                    signal: c
                        .spec
                        .stop_signal
                        .clone()
                        .unwrap_or_else(|| "SIGTERM".into()),
                    grace,
                    at: now,
                };
                st.stops.push(record);
            }
            ignores
        };
        if ignores_term {
            tokio::time::sleep(grace).await;
        }
        let mut st = self.lock();
        let now = Instant::now();
        let Some(c) = st.containers.get_mut(id) else {
            return Ok(());
        };
        info(id, c, now);
        if c.state == ContainerState::Running {
            // `clean-term` shuts down cleanly on SIGTERM (exit 0); others die of the signal.
            let clean = c.spec.command.first().map(String::as_str) == Some("clean-term");
            let code = if ignores_term {
                137
            } else if clean {
                0
            } else {
                143
            };
            c.state = ContainerState::Exited { code, reason: None };
            c.exit_at = None;
        }
        drop(st);
        self.bump();
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        Self::check(&st)?;
        st.containers.remove(id);
        drop(st);
        self.bump();
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let mut st = self.lock();
        Self::check(&st)?;
        let now = Instant::now();
        let c = st.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        Ok(info(id, c, now))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let mut st = self.lock();
        Self::check(&st)?;
        let now = Instant::now();
        Ok(st
            .containers
            .iter_mut()
            .filter(|(_, c)| {
                labels
                    .iter()
                    .all(|(k, v)| c.spec.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(id, c)| info(id, c, now))
            .collect())
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let st = self.lock();
        Self::check(&st)?;
        let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok(ContainerStats {
            cpu_cores: 0.0,
            memory_bytes: 1 << 20,
            memory_limit_bytes: c.spec.resources.memory.bytes(),
            ..ContainerStats::default()
        })
    }

    async fn probe(
        &self,
        id: &str,
        _probe: &Probe,
        _timeout: Duration,
    ) -> std::result::Result<(), String> {
        let st = self.lock();
        let c = st
            .containers
            .get(id)
            .ok_or_else(|| format!("no container {id}"))?;
        let job = c
            .spec
            .labels
            .get(crate::runtime::labels::JOB)
            .cloned()
            .unwrap_or_default();
        if st.unhealthy_jobs.contains(&job) {
            Err("scripted failure".into())
        } else {
            Ok(())
        }
    }

    async fn wait(&self, id: &str) -> Result<()> {
        loop {
            let exit_at = {
                let mut st = self.lock();
                Self::check(&st)?;
                let now = Instant::now();
                match st.containers.get_mut(id) {
                    None => return Ok(()),
                    Some(c) => {
                        info(id, c, now);
                        if c.state != ContainerState::Running {
                            return Ok(());
                        }
                        c.exit_at.map(|(at, _)| at)
                    }
                }
            };
            // Exits scripted at an instant are waited for exactly; kills and stops are noticed
            // within 100 ms.
            let poll = Instant::now() + Duration::from_millis(100);
            tokio::time::sleep_until(exit_at.map_or(poll, |t| t.min(poll))).await;
        }
    }

    async fn logs(&self, id: &str, _tail: usize) -> Result<String> {
        let st = self.lock();
        Self::check(&st)?;
        let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok(format!("{} {}\n", c.spec.image, c.spec.command.join(" ")))
    }

    /// What [`FakeRuntime::write_output`] wrote; following ends once the container stops (an
    /// exit, a stop, a kill or its removal).
    async fn stream_logs(&self, id: &str, options: &LogOptions) -> Result<LogStream> {
        let since = options.since.unwrap_or(0);
        let keep = |t: &std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
                >= since
        };
        let (first, next) = {
            let st = self.lock();
            Self::check(&st)?;
            let c = st.containers.get(id).ok_or_else(|| not_found(id))?;
            let text: String = c
                .output
                .iter()
                .filter(|(t, _)| keep(t))
                .map(|(_, s)| s.as_str())
                .collect();
            (last_lines(&text, options.tail).to_owned(), c.output.len())
        };
        let head = futures_util::stream::iter(
            Some(Ok(first.into_bytes()))
                .filter(|r: &Result<Vec<u8>>| r.as_ref().is_ok_and(|b| !b.is_empty())),
        );
        if !options.follow {
            return Ok(Box::pin(head));
        }
        let rt = self.clone();
        let rx = self.changed.subscribe();
        let id = id.to_owned();
        let rest =
            futures_util::stream::unfold((rt, rx, id, next), |(rt, mut rx, id, next)| async move {
                loop {
                    rx.borrow_and_update();
                    let exit_at = {
                        let mut st = rt.lock();
                        let now = Instant::now();
                        let c = st.containers.get_mut(&id)?;
                        if c.output.len() > next {
                            let out = c.output[next].1.clone().into_bytes();
                            return Some((Ok(out), (rt.clone(), rx, id, next + 1)));
                        }
                        if info(&id, c, now).state != ContainerState::Running {
                            return None;
                        }
                        c.exit_at.map(|(at, _)| at)
                    };
                    match exit_at {
                        Some(at) => {
                            tokio::select! {
                                _ = rx.changed() => {}
                                _ = tokio::time::sleep_until(at) => {}
                            }
                        }
                        None => {
                            rx.changed().await.ok()?;
                        }
                    }
                }
            });
        Ok(Box::pin(futures_util::StreamExt::chain(head, rest)))
    }
}

/// The last `tail` lines of `text` (all of it for `None`).
fn last_lines(text: &str, tail: Option<usize>) -> &str {
    let Some(n) = tail else {
        return text;
    };
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((at, _)) => &text[at + 1..],
        None => text,
    }
}
