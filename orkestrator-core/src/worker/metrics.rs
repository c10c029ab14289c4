//! The worker's metrics loop: every `metrics_interval` it samples the container of every task it
//! runs (a few at a time), works out each one's CPU from its own consecutive samples, adds a
//! sample of its host, and sends the manager one [`MetricsReport`]. Metrics are not state: a
//! report that cannot be sent is logged and dropped, never retried.
//!
//! The newest sample is also kept in a [`LatestMetrics`] handle, which the worker's own endpoint
//! reads to serve Prometheus.
//!
//! CPU comes from deltas: `cpu_cores = Δ cpu_seconds_total / Δ wall time` between two samples of
//! the same container, so the runtime only needs one cheap read per container per interval
//! (Docker's one-shot stats). A container's first sample has no predecessor: it carries the
//! runtime's own figure ([`ContainerStats::cpu_cores`](crate::runtime::ContainerStats), 0 for a
//! one-shot read).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::time::Instant;

use super::config::ResourceProbe;
use super::tracks::Tracks;
use crate::api::{Assignment, Desired};
use crate::clock::now_millis;
use crate::ids::{InstanceId, JobId, TaskName, WorkerId};
use crate::metrics::{MetricsReport, NodeSample, TaskMetrics, TaskSample};
use crate::runtime::{ContainerStats, Runtime};
use crate::transport::WorkerApi;

/// How many containers are sampled at once. Docker answers a one-shot stats call on the next
/// tick of its stats collector (once a second, for every container asked about), so a call is
/// mostly waiting, not work: with 8 in flight a round of 100 containers took 13 s, longer than
/// the interval; with all in flight, one tick (see BENCHMARKS.md, "Worker metrics sampling").
/// The bound keeps a very full worker from opening thousands of engine connections at once.
pub const SAMPLE_CONCURRENCY: usize = 128;

/// One task the worker runs, as its metrics name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledTaskId {
    /// The job.
    pub job: JobId,
    /// Which copy of the job.
    pub index: u32,
    /// The instance.
    pub instance: InstanceId,
    /// The task.
    pub task: TaskName,
    /// The task's container.
    pub container: String,
}

/// One task's newest sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledTask {
    /// Which task.
    pub id: SampledTaskId,
    /// Its sample.
    pub sample: TaskSample,
}

/// Everything one metrics pass measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSnapshot {
    /// The worker.
    pub worker: WorkerId,
    /// Its host.
    pub node: NodeSample,
    /// Its tasks with a running container that answered.
    pub tasks: Vec<SampledTask>,
}

impl WorkerSnapshot {
    /// The report sent to the manager.
    pub fn report(&self) -> MetricsReport {
        MetricsReport {
            node: self.node,
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskMetrics {
                    instance: t.id.instance.clone(),
                    task: t.id.task.clone(),
                    sample: t.sample,
                })
                .collect(),
        }
    }
}

/// A shared handle on a worker's newest [`WorkerSnapshot`] (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct LatestMetrics(Arc<Mutex<Option<Arc<WorkerSnapshot>>>>);

impl LatestMetrics {
    /// The newest snapshot, if a pass has completed.
    pub fn get(&self) -> Option<Arc<WorkerSnapshot>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the newest snapshot.
    pub fn set(&self, s: WorkerSnapshot) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(s));
    }
}

/// One container to sample, with the task's restart count.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    id: SampledTaskId,
    restarts: u32,
}

/// The task containers to sample: every task of an instance assigned to run whose container runs.
pub(crate) fn targets(
    held: Option<&BTreeMap<InstanceId, Assignment>>,
    tracks: &Tracks,
) -> Vec<Target> {
    let mut out = Vec::new();
    for a in held.into_iter().flat_map(|h| h.values()) {
        if a.desired != Desired::Run {
            continue;
        }
        for t in &a.job.tasks {
            let key = (a.instance.clone(), t.name.clone());
            let Some(tr) = tracks.get(&key) else {
                continue;
            };
            if tr.restart.running_since().is_none() || tr.restart.is_done() {
                continue;
            }
            let Some(container) = tr.container() else {
                continue;
            };
            out.push(Target {
                id: SampledTaskId {
                    job: a.job.name.clone(),
                    index: a.index,
                    instance: a.instance.clone(),
                    task: t.name.clone(),
                    container: container.to_owned(),
                },
                restarts: tr.restart.attempts(),
            });
        }
    }
    out
}

/// CPU in cores between a previous reading `(when, cpu_seconds_total)` and this one; without a
/// usable previous reading (none, no time passed, or the counter went back), `fallback`.
pub fn cpu_cores_between(
    prev: Option<(Instant, f64)>,
    now: Instant,
    cpu_seconds_total: f64,
    fallback: f64,
) -> f64 {
    match prev {
        Some((then, before)) if now > then && cpu_seconds_total >= before => {
            (cpu_seconds_total - before) / (now - then).as_secs_f64()
        }
        _ => fallback,
    }
}

/// Samples task containers, remembering each one's previous CPU reading.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    prev: HashMap<String, (Instant, f64)>,
}

impl Sampler {
    /// Samples every target ([`SAMPLE_CONCURRENCY`] at a time) and the host.
    pub(crate) async fn sample<R: Runtime>(
        &mut self,
        worker: &WorkerId,
        runtime: &R,
        probe: &Arc<dyn ResourceProbe>,
        targets: Vec<Target>,
    ) -> WorkerSnapshot {
        let probe = probe.clone();
        // Reading the host blocks briefly (/proc, the mount table): off the async threads.
        let node = tokio::task::spawn_blocking(move || probe.node());
        let read: Vec<(Target, crate::Result<ContainerStats>, Instant, u64)> =
            futures_util::stream::iter(targets)
                .map(|t| async move {
                    let r = runtime.stats(&t.id.container).await;
                    (t, r, Instant::now(), now_millis())
                })
                .buffer_unordered(SAMPLE_CONCURRENCY)
                .collect()
                .await;
        let mut tasks = Vec::with_capacity(read.len());
        let mut seen = HashMap::with_capacity(read.len());
        for (t, r, when, at) in read {
            let s = match r {
                Ok(s) => s,
                Err(e) => {
                    // Most often the container just exited: the next pass leaves it out.
                    tracing::debug!(worker = %worker, container = %t.id.container, error = %e, "cannot sample container");
                    continue;
                }
            };
            let prev = self.prev.get(&t.id.container).copied();
            let cpu_cores = cpu_cores_between(prev, when, s.cpu_seconds_total, s.cpu_cores);
            seen.insert(t.id.container.clone(), (when, s.cpu_seconds_total));
            tasks.push(SampledTask {
                sample: TaskSample {
                    at,
                    cpu_cores,
                    cpu_seconds_total: s.cpu_seconds_total,
                    memory_working_set_bytes: s.memory_bytes,
                    memory_limit_bytes: s.memory_limit_bytes,
                    network_rx_bytes: s.network_rx_bytes,
                    network_tx_bytes: s.network_tx_bytes,
                    block_read_bytes: s.block_read_bytes,
                    block_write_bytes: s.block_write_bytes,
                    restarts: t.restarts,
                },
                id: t.id,
            });
        }
        // Containers not sampled this time are gone (or will be sampled afresh).
        self.prev = seen;
        tasks.sort_by(|a, b| (&a.id.instance, &a.id.task).cmp(&(&b.id.instance, &b.id.task)));
        let mut node = node.await.unwrap_or_default();
        node.at = now_millis();
        WorkerSnapshot {
            worker: worker.clone(),
            node,
            tasks,
        }
    }
}

/// One pass: sample, publish to `latest`, send to the manager (a failure is logged and the
/// report dropped).
pub(crate) async fn pass<T: WorkerApi, R: Runtime>(
    sampler: &mut Sampler,
    worker: &WorkerId,
    transport: &T,
    runtime: &R,
    probe: &Arc<dyn ResourceProbe>,
    latest: &LatestMetrics,
    targets: Vec<Target>,
) {
    let snapshot = sampler.sample(worker, runtime, probe, targets).await;
    let report = snapshot.report();
    latest.set(snapshot);
    match transport.report_metrics(worker, &report).await {
        Ok(a) if a.ignored > 0 => {
            tracing::debug!(worker = %worker, accepted = a.accepted, ignored = a.ignored, "some task samples were ignored");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(worker = %worker, error = %e, "cannot send metrics; dropped"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cpu_comes_from_the_delta_over_wall_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(cpu_cores_between(Some((t0, 10.0)), t1, 12.0, 0.0), 0.5);
        assert_eq!(cpu_cores_between(None, t1, 12.0, 0.25), 0.25);
        assert_eq!(cpu_cores_between(Some((t1, 10.0)), t1, 12.0, 0.0), 0.0);
        assert_eq!(cpu_cores_between(Some((t0, 10.0)), t1, 9.0, 0.1), 0.1);
    }
}
