//! Placement: the [`Scheduler`] plug point, a built-in, and the [`SchedulerAgent`] component that
//! pulls work from the manager and publishes decisions.
//!
//! A scheduler is a pure function of a job and a snapshot of the workers. The manager commits a
//! decision only if it still fits when it arrives (an optimistic check), so a slow or remote
//! scheduler can never over-commit a worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{Decision, DecisionOutcome, RegisterScheduler, WorkerSnapshot};
use crate::error::{Error, Result};
use crate::ids::{SchedulerId, WorkerId};
use crate::spec::{Job, Resources};
use crate::transport::Transport;

/// Where a job goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this worker.
    Worker(WorkerId),
    /// Nowhere: the reason, grouped by cause (e.g. `2 workers: insufficient memory (need 2Gi, max
    /// free 1Gi)`).
    Unschedulable(String),
}

/// A placement algorithm: sync, pure and object-safe.
pub trait Scheduler: Send + Sync {
    /// The algorithm's name.
    fn name(&self) -> &str;
    /// Chooses a worker for one instance of `job` among `workers`.
    fn place(&self, job: &Job, workers: &[WorkerSnapshot]) -> Placement;
}

/// Why a worker cannot take a job, or `None` if it can. Checks free resources (total − allocated)
/// and host-port collisions.
pub fn misfit(job: &Job, need: &Resources, w: &WorkerSnapshot) -> Option<String> {
    let free = w.free();
    if need.memory > free.memory {
        return Some(format!(
            "insufficient memory (need {}, free {})",
            need.memory.human(),
            free.memory.human()
        ));
    }
    if need.cpu > free.cpu {
        return Some(format!(
            "insufficient cpu (need {}, free {})",
            need.cpu, free.cpu
        ));
    }
    if need.disk > free.disk {
        return Some(format!(
            "insufficient disk (need {}, free {})",
            need.disk.human(),
            free.disk.human()
        ));
    }
    for (port, proto) in job.host_ports() {
        if w.ports_in_use.contains(&(port, proto)) {
            return Some(format!("host port {port}/{} in use", proto.as_str()));
        }
    }
    None
}

/// Groups per-worker reasons into one line: `2 workers: insufficient memory …; 1 worker: …`.
pub fn explain(reasons: &[(WorkerId, String)]) -> String {
    if reasons.is_empty() {
        return "no ready workers".to_owned();
    }
    // Group by the reason's kind (the text before the parenthesis) so that "need 2Gi, free 1Gi"
    // and "need 2Gi, free 512Mi" count together.
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, r) in reasons {
        let kind = r.split(" (").next().unwrap_or(r);
        groups.entry(kind).or_default().push(r);
    }
    let mut parts: Vec<(usize, String)> = groups
        .into_iter()
        .map(|(kind, rs)| {
            let n = rs.len();
            let text = if n == 1 {
                rs[0].to_owned()
            } else {
                kind.to_owned() + &detail_range(&rs)
            };
            (
                n,
                format!("{n} worker{}: {text}", if n == 1 { "" } else { "s" }),
            )
        })
        .collect();
    parts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join("; ")
}

/// For a group of "insufficient X (need A, free B)" reasons: " (need A, max free B)".
fn detail_range(rs: &[&str]) -> String {
    let parsed: Vec<(&str, &str)> = rs
        .iter()
        .filter_map(|r| {
            let inner = r.split_once(" (need ")?.1.strip_suffix(')')?;
            inner.split_once(", free ")
        })
        .collect();
    if parsed.len() != rs.len() {
        return String::new();
    }
    let need = parsed[0].0;
    // Free amounts are rendered; pick the largest by parsing back where possible.
    let max_free = parsed
        .iter()
        .map(|(_, f)| *f)
        .max_by_key(|f| {
            crate::units::ByteSize::parse(f)
                .map(|b| b.bytes())
                .or_else(|_| crate::units::Cpu::parse(f).map(|c| c.millis()))
                .unwrap_or(0)
        })
        .unwrap_or("");
    format!(" (need {need}, max free {max_free})")
}

/// The built-in scheduler: resource fit and host ports, then the worker with the most free memory
/// (relative to its size) wins, spreading load. Ties go to the worker with fewer instances, then
/// the smaller id, so decisions are deterministic.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastLoaded;

impl Scheduler for LeastLoaded {
    fn name(&self) -> &str {
        "least-loaded"
    }

    fn place(&self, job: &Job, workers: &[WorkerSnapshot]) -> Placement {
        let need = job.resources();
        let mut reasons = Vec::new();
        let mut best: Option<(&WorkerSnapshot, u64)> = None;
        for w in workers {
            if let Some(why) = misfit(job, &need, w) {
                reasons.push((w.id.clone(), why));
                continue;
            }
            let score = load_score(&need, w);
            let better = match best {
                None => true,
                Some((b, bs)) => {
                    score > bs || (score == bs && (w.instances, &w.id) < (b.instances, &b.id))
                }
            };
            if better {
                best = Some((w, score));
            }
        }
        match best {
            Some((w, _)) => Placement::Worker(w.id.clone()),
            None => Placement::Unschedulable(explain(&reasons)),
        }
    }
}

/// 0..=1_000_000: the mean fraction of cpu and memory left free after placing `need` on `w`.
fn load_score(need: &Resources, w: &WorkerSnapshot) -> u64 {
    let free_after = w.free().saturating_sub(need);
    let frac = |free: u64, total: u64| {
        if total == 0 {
            0
        } else {
            free as u128 * 1_000_000 / total as u128
        }
    };
    let cpu = frac(free_after.cpu.millis(), w.total.cpu.millis());
    let mem = frac(free_after.memory.bytes(), w.total.memory.bytes());
    ((cpu + mem) / 2) as u64
}

/// The scheduler component: registers with the manager, heartbeats, pulls unassigned instances
/// and the workers' free resources, places them with a [`Scheduler`] and publishes the decisions.
/// Runs embedded in the manager (over the in-process transport) or as its own process (over HTTP).
pub struct SchedulerAgent<T: Transport> {
    id: SchedulerId,
    transport: Arc<T>,
    algorithm: Arc<dyn Scheduler>,
    wait: Duration,
}

impl<T: Transport> SchedulerAgent<T> {
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

    /// Runs until `shutdown` resolves. Transport errors are retried with backoff.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        tokio::pin!(shutdown);
        tokio::select! {
            r = self.run_forever() => r,
            _ = &mut shutdown => Ok(()),
        }
    }

    async fn register(&self) -> Duration {
        let req = RegisterScheduler {
            id: self.id.clone(),
            algorithm: self.algorithm.name().to_owned(),
        };
        let mut delay = Duration::from_millis(100);
        loop {
            match self.transport.register_scheduler(&req).await {
                Ok(r) => return r.heartbeat_interval(),
                Err(e) => {
                    tracing::warn!(scheduler = %self.id, error = %e, "registration failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn run_forever(&self) -> Result<()> {
        let interval = self.register().await;
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
                        self.register().await;
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
/// over-commits a worker.
pub fn decide(
    algorithm: &dyn Scheduler,
    pending: &[crate::api::PendingInstance],
    mut workers: Vec<WorkerSnapshot>,
) -> Vec<Decision> {
    pending
        .iter()
        .map(|p| {
            let outcome = match algorithm.place(&p.job, &workers) {
                Placement::Worker(id) => {
                    if let Some(w) = workers.iter_mut().find(|w| w.id == id) {
                        w.allocated = w.allocated.saturating_add(&p.job.resources());
                        w.ports_in_use.extend(p.job.host_ports());
                        w.instances += 1;
                    }
                    DecisionOutcome::Place { worker: id }
                }
                Placement::Unschedulable(reason) => DecisionOutcome::Unschedulable { reason },
            };
            Decision {
                instance: p.instance.clone(),
                outcome,
            }
        })
        .collect()
}

/// Whether the manager said it does not know this component (it restarted, or forgot us).
pub(crate) fn is_unknown_component(e: &Error) -> bool {
    matches!(e, Error::Api(a) if a.status == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Format, parse_job};
    use crate::units::{ByteSize, Cpu};

    fn worker(id: &str, cpu: u64, mem_mib: u64, used_mem_mib: u64) -> WorkerSnapshot {
        WorkerSnapshot {
            id: WorkerId::new(id),
            labels: Default::default(),
            total: Resources {
                cpu: Cpu::from_millis(cpu),
                memory: ByteSize::mib(mem_mib),
                disk: ByteSize::gib(10),
            },
            allocated: Resources {
                cpu: Cpu::ZERO,
                memory: ByteSize::mib(used_mem_mib),
                disk: ByteSize::ZERO,
            },
            ports_in_use: Default::default(),
            instances: 0,
        }
    }

    fn job(mem: &str) -> Job {
        parse_job(
            &format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    resources: {{ memory: {mem}, cpu: 100m }}\n"),
            Format::Yaml,
        )
        .unwrap()
    }

    #[test]
    fn picks_least_loaded_fitting_worker() {
        let ws = vec![
            worker("a", 1000, 1024, 900),
            worker("b", 1000, 1024, 100),
            worker("c", 1000, 1024, 500),
        ];
        assert_eq!(
            LeastLoaded.place(&job("64Mi"), &ws),
            Placement::Worker(WorkerId::new("b"))
        );
    }

    #[test]
    fn explains_when_nothing_fits() {
        let ws = vec![
            worker("a", 1000, 1024, 0),
            worker("b", 1000, 512, 0),
            worker("c", 50, 4096, 0),
        ];
        let Placement::Unschedulable(why) = LeastLoaded.place(&job("2Gi"), &ws) else {
            panic!()
        };
        assert_eq!(
            why,
            "2 workers: insufficient memory (need 2Gi, max free 1Gi); 1 worker: insufficient cpu (need 100m, free 50m)"
        );
        let Placement::Unschedulable(why) = LeastLoaded.place(&job("2Gi"), &[]) else {
            panic!()
        };
        assert_eq!(why, "no ready workers");
    }

    #[test]
    fn batch_decisions_do_not_overcommit() {
        let ws = vec![worker("a", 4000, 1024, 0)];
        let j = job("600Mi");
        let pending: Vec<_> = (0..2)
            .map(|i| crate::api::PendingInstance {
                instance: crate::ids::InstanceId::new(format!("j-{i}")),
                index: i,
                job: j.clone(),
            })
            .collect();
        let d = decide(&LeastLoaded, &pending, ws);
        assert!(matches!(d[0].outcome, DecisionOutcome::Place { .. }));
        assert!(matches!(
            d[1].outcome,
            DecisionOutcome::Unschedulable { .. }
        ));
    }

    #[test]
    fn host_port_collision_is_a_misfit() {
        let j = parse_job(
            "name: j\ntasks:\n  - name: t\n    image: a:1\n    ports: [{container: 80, host: 8080}]\n",
            Format::Yaml,
        )
        .unwrap();
        let mut w = worker("a", 4000, 1024, 0);
        w.ports_in_use.insert((8080, crate::spec::Protocol::Tcp));
        assert_eq!(
            misfit(&j, &j.resources(), &w).as_deref(),
            Some("host port 8080/tcp in use")
        );
    }
}
