//! Task and node metrics: what a worker samples and publishes, and the manager's bounded rolling
//! window of them.
//!
//! Metrics are not state: they never go through the durable commit path. A worker sends one
//! [`MetricsReport`] per interval (`--metrics-interval`, default 5 s); the manager keeps the last
//! [`MetricsWindow::len`] samples of every task and every worker in memory, and forgets a task's
//! series when its worker has sent a few reports without it (the task ended or moved), or when
//! its job or worker is removed.
//!
//! Memory: one task sample is held in [`MetricsWindow::SAMPLE_BYTES`] bytes (compact: figures as
//! `f32`/`u64`, the limit kept once per series), so the default window of 60 samples costs about
//! 3.9 KiB per task plus the series' key, apart from the manager's per-task state.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::{InstanceId, JobId, TaskName, WorkerId};

pub use crate::usage::Usage;

/// One sample of one task's container, as the worker measured it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskSample {
    /// When it was measured (milliseconds since the Unix epoch).
    pub at: Millis,
    /// CPU in use, in cores (1.0 = one core busy), averaged since the previous sample.
    pub cpu_cores: f64,
    /// CPU time used since the container started, in seconds.
    pub cpu_seconds_total: f64,
    /// Memory working set (usage minus inactive file cache), in bytes.
    pub memory_working_set_bytes: u64,
    /// The container's memory limit, in bytes (0: none).
    pub memory_limit_bytes: u64,
    /// Bytes received on the container's network interfaces.
    pub network_rx_bytes: u64,
    /// Bytes sent on the container's network interfaces.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// How many times the task has been restarted.
    pub restarts: u32,
}

/// One task's sample in a worker's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// The instance.
    pub instance: InstanceId,
    /// The task.
    pub task: TaskName,
    /// The sample.
    #[serde(flatten)]
    pub sample: TaskSample,
}

/// One sample of a worker's host.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeSample {
    /// When it was measured.
    pub at: Millis,
    /// CPU in use on the host, in cores.
    pub cpu_cores_used: f64,
    /// The host's cores.
    pub cpu_cores_total: f64,
    /// Memory in use on the host, in bytes.
    pub memory_used_bytes: u64,
    /// The host's memory, in bytes.
    pub memory_total_bytes: u64,
    /// Disk in use (the disk holding the engine's data), in bytes.
    pub disk_used_bytes: u64,
    /// That disk's size, in bytes.
    pub disk_total_bytes: u64,
    /// Load average over 1 minute.
    pub load1: f64,
    /// Load average over 5 minutes.
    pub load5: f64,
    /// Load average over 15 minutes.
    pub load15: f64,
}

/// What a worker publishes once per metrics interval: its host and every task it runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsReport {
    /// The host.
    pub node: NodeSample,
    /// The tasks with a running container.
    #[serde(default)]
    pub tasks: Vec<TaskMetrics>,
}

impl MetricsReport {
    /// The largest figure a report may carry in a CPU or load field (far above any host, well
    /// inside what the window keeps as `f32`).
    pub const MAX_FIGURE: f64 = 1e12;

    /// Refuses a report with a CPU or load figure that is negative, not finite or over
    /// [`MetricsReport::MAX_FIGURE`]: a 400 naming the field.
    pub fn check(&self) -> Result<(), crate::api::ApiError> {
        let n = &self.node;
        let mut fields: Vec<(String, f64)> = vec![
            ("node.cpu_cores_used".into(), n.cpu_cores_used),
            ("node.cpu_cores_total".into(), n.cpu_cores_total),
            ("node.load1".into(), n.load1),
            ("node.load5".into(), n.load5),
            ("node.load15".into(), n.load15),
        ];
        for (i, t) in self.tasks.iter().enumerate() {
            fields.push((format!("tasks[{i}].sample.cpu_cores"), t.sample.cpu_cores));
            fields.push((
                format!("tasks[{i}].sample.cpu_seconds_total"),
                t.sample.cpu_seconds_total,
            ));
        }
        for (field, v) in fields {
            if !(v.is_finite() && (0.0..=Self::MAX_FIGURE).contains(&v)) {
                return Err(crate::api::ApiError::bad_request(
                    "invalid_metrics",
                    format!(
                        "{field}: {v} is not a figure between 0 and {:e}",
                        Self::MAX_FIGURE
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The manager's answer to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MetricsAccepted {
    /// Task samples kept.
    pub accepted: u32,
    /// Task samples dropped: their instance is unknown or not placed on this worker.
    pub ignored: u32,
}

/// The window of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSeries {
    /// The job.
    pub job: JobId,
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// The task.
    pub task: TaskName,
    /// The worker that measured it.
    pub worker: WorkerId,
    /// Samples, oldest first.
    pub samples: Vec<TaskSample>,
}

impl TaskSeries {
    /// The newest sample.
    pub fn last(&self) -> Option<&TaskSample> {
        self.samples.last()
    }
}

/// `GET /v1/jobs/{job}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMetrics {
    /// The job.
    pub job: JobId,
    /// Its tasks' windows, by instance and task.
    pub tasks: Vec<TaskSeries>,
}

/// `GET /v1/workers/{id}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerMetrics {
    /// The worker.
    pub worker: WorkerId,
    /// Its host's samples, oldest first.
    pub node: Vec<NodeSample>,
    /// Its tasks' windows.
    pub tasks: Vec<TaskSeries>,
}

impl From<&TaskSample> for Usage {
    fn from(s: &TaskSample) -> Self {
        Usage {
            cpu_cores: s.cpu_cores,
            memory_bytes: s.memory_working_set_bytes,
            at: s.at,
        }
    }
}

impl From<&NodeSample> for Usage {
    fn from(s: &NodeSample) -> Self {
        Usage {
            cpu_cores: s.cpu_cores_used,
            memory_bytes: s.memory_used_bytes,
            at: s.at,
        }
    }
}

/// A task sample as the window holds it.
#[derive(Debug, Clone, Copy)]
struct Compact {
    at: Millis,
    cpu_seconds_total: f64,
    cpu_cores: f32,
    restarts: u32,
    memory: u64,
    rx: u64,
    tx: u64,
    read: u64,
    write: u64,
}

impl Compact {
    fn of(s: &TaskSample) -> Self {
        Compact {
            at: s.at,
            cpu_seconds_total: s.cpu_seconds_total,
            cpu_cores: s.cpu_cores as f32,
            restarts: s.restarts,
            memory: s.memory_working_set_bytes,
            rx: s.network_rx_bytes,
            tx: s.network_tx_bytes,
            read: s.block_read_bytes,
            write: s.block_write_bytes,
        }
    }

    fn sample(&self, limit: u64) -> TaskSample {
        TaskSample {
            at: self.at,
            cpu_cores: f64::from(self.cpu_cores),
            cpu_seconds_total: self.cpu_seconds_total,
            memory_working_set_bytes: self.memory,
            memory_limit_bytes: limit,
            network_rx_bytes: self.rx,
            network_tx_bytes: self.tx,
            block_read_bytes: self.read,
            block_write_bytes: self.write,
            restarts: self.restarts,
        }
    }
}

/// Where a task sample belongs, as the manager's state says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The job.
    pub job: JobId,
    /// The instance's number (its key in the job).
    pub number: u64,
    /// Which copy of the job.
    pub index: u32,
}

/// The key of a series: job, instance number, task (so that one job's series are adjacent).
type SeriesKey = (JobId, u64, TaskName);

#[derive(Debug)]
struct Series {
    instance: InstanceId,
    index: u32,
    worker: WorkerId,
    limit: u64,
    /// The worker's report count when it was last sampled.
    seen: u64,
    samples: VecDeque<Compact>,
}

#[derive(Debug, Default)]
struct Node {
    samples: VecDeque<NodeSample>,
    tasks: BTreeSet<SeriesKey>,
    reports: u64,
}

/// The manager's bounded rolling window of metrics: the last `len` samples of each task and
/// each worker.
#[derive(Debug)]
pub struct MetricsWindow {
    len: usize,
    stale_after: u64,
    tasks: BTreeMap<SeriesKey, Series>,
    nodes: HashMap<WorkerId, Node>,
}

impl MetricsWindow {
    /// Bytes one held task sample costs.
    pub const SAMPLE_BYTES: usize = std::mem::size_of::<Compact>();

    /// A window of `len` samples per series (at least 1); a task's series is dropped once its
    /// worker has sent `stale_after_reports` reports without it.
    pub fn new(len: usize, stale_after_reports: u64) -> Self {
        MetricsWindow {
            len: len.max(1),
            stale_after: stale_after_reports.max(1),
            tasks: BTreeMap::new(),
            nodes: HashMap::new(),
        }
    }

    /// Samples kept per series.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.nodes.is_empty()
    }

    /// Task series held.
    pub fn task_series(&self) -> usize {
        self.tasks.len()
    }

    /// Records `worker`'s report; `place` says where each task sample belongs (`None`: not an
    /// instance placed on this worker, the sample is ignored). Series of this worker left out of
    /// its last `stale_after_reports` reports are dropped.
    pub fn record(
        &mut self,
        worker: &WorkerId,
        report: MetricsReport,
        mut place: impl FnMut(&InstanceId) -> Option<Placement>,
    ) -> MetricsAccepted {
        let len = self.len;
        let node = self.nodes.entry(worker.clone()).or_default();
        node.reports += 1;
        let now = node.reports;
        if node.samples.len() == len {
            node.samples.pop_front();
        }
        node.samples.push_back(report.node);
        let mut out = MetricsAccepted::default();
        for t in report.tasks {
            let Some(p) = place(&t.instance) else {
                out.ignored += 1;
                continue;
            };
            let key = (p.job, p.number, t.task);
            let s = self.tasks.entry(key.clone()).or_insert_with(|| Series {
                instance: t.instance.clone(),
                index: p.index,
                worker: worker.clone(),
                limit: 0,
                seen: now,
                samples: VecDeque::with_capacity(len),
            });
            if s.worker != *worker {
                // The instance moved (or a stale report): start its series afresh.
                if let Some(old) = self.nodes.get_mut(&s.worker) {
                    old.tasks.remove(&key);
                }
                s.worker = worker.clone();
                s.samples.clear();
            }
            if s.samples.len() == len {
                s.samples.pop_front();
            }
            s.limit = t.sample.memory_limit_bytes;
            s.seen = now;
            s.samples.push_back(Compact::of(&t.sample));
            out.accepted += 1;
            self.nodes.get_mut(worker).map(|n| n.tasks.insert(key));
        }
        self.drop_stale(worker, now);
        out
    }

    fn drop_stale(&mut self, worker: &WorkerId, now: u64) {
        let Some(node) = self.nodes.get_mut(worker) else {
            return;
        };
        let stale_after = self.stale_after;
        let tasks = &mut self.tasks;
        node.tasks.retain(|k| {
            let keep = tasks
                .get(k)
                .is_some_and(|s| now.saturating_sub(s.seen) < stale_after);
            if !keep {
                tasks.remove(k);
            }
            keep
        });
    }

    /// Forgets a worker and its tasks' series.
    pub fn remove_worker(&mut self, worker: &WorkerId) {
        if let Some(n) = self.nodes.remove(worker) {
            for k in n.tasks {
                self.tasks.remove(&k);
            }
        }
    }

    /// Forgets every series of `job`.
    pub fn remove_job(&mut self, job: &JobId) {
        let keys: Vec<SeriesKey> = self.job_range(job).map(|(k, _)| k.clone()).collect();
        for k in keys {
            if let Some(s) = self.tasks.remove(&k)
                && let Some(n) = self.nodes.get_mut(&s.worker)
            {
                n.tasks.remove(&k);
            }
        }
    }

    fn job_range(&self, job: &JobId) -> impl Iterator<Item = (&SeriesKey, &Series)> {
        let start = (job.clone(), 0u64, TaskName::new(""));
        self.tasks
            .range(start..)
            .take_while(move |(k, _)| k.0 == *job)
    }

    fn series(key: &SeriesKey, s: &Series, last: Option<usize>) -> TaskSeries {
        let skip = last.map_or(0, |n| s.samples.len().saturating_sub(n));
        TaskSeries {
            job: key.0.clone(),
            instance: s.instance.clone(),
            index: s.index,
            task: key.2.clone(),
            worker: s.worker.clone(),
            samples: s
                .samples
                .iter()
                .skip(skip)
                .map(|c| c.sample(s.limit))
                .collect(),
        }
    }

    /// The windows of `job`'s tasks (the last `last` samples of each, or all).
    pub fn job(&self, job: &JobId, last: Option<usize>) -> JobMetrics {
        JobMetrics {
            job: job.clone(),
            tasks: self
                .job_range(job)
                .map(|(k, s)| Self::series(k, s, last))
                .collect(),
        }
    }

    /// The window of `worker` and its tasks, if it has reported.
    pub fn worker(&self, worker: &WorkerId, last: Option<usize>) -> Option<WorkerMetrics> {
        let n = self.nodes.get(worker)?;
        let skip = last.map_or(0, |l| n.samples.len().saturating_sub(l));
        Some(WorkerMetrics {
            worker: worker.clone(),
            node: n.samples.iter().skip(skip).copied().collect(),
            tasks: n
                .tasks
                .iter()
                .filter_map(|k| self.tasks.get(k).map(|s| Self::series(k, s, last)))
                .collect(),
        })
    }

    /// The newest sample of `worker`'s host.
    pub fn node_usage(&self, worker: &WorkerId) -> Option<Usage> {
        self.nodes
            .get(worker)
            .and_then(|n| n.samples.back())
            .map(Usage::from)
    }

    /// What `worker`'s tasks use together: the sum of each one's newest sample (stamped with the
    /// newest of them), once the worker has reported.
    pub fn tasks_usage(&self, worker: &WorkerId) -> Option<Usage> {
        let n = self.nodes.get(worker)?;
        let mut sum = Usage::default();
        for s in n.tasks.iter().filter_map(|k| self.tasks.get(k)) {
            if let Some(c) = s.samples.back() {
                let u = Usage::from(&c.sample(s.limit));
                sum.cpu_cores += u.cpu_cores;
                sum.memory_bytes = sum.memory_bytes.saturating_add(u.memory_bytes);
                sum.at = sum.at.max(u.at);
            }
        }
        Some(sum)
    }

    /// The newest sample of a task.
    pub fn task_usage(&self, job: &JobId, number: u64, task: &TaskName) -> Option<Usage> {
        let s = self.tasks.get(&(job.clone(), number, task.clone()))?;
        s.samples.back().map(|c| Usage::from(&c.sample(s.limit)))
    }

    /// Every task's newest sample, up to `cap` series (for Prometheus); the second value counts
    /// series left out by the cap.
    pub fn latest(&self, cap: usize) -> (Vec<TaskSeries>, usize) {
        let out: Vec<TaskSeries> = self
            .tasks
            .iter()
            .take(cap)
            .map(|(k, s)| Self::series(k, s, Some(1)))
            .collect();
        let left = self.tasks.len().saturating_sub(out.len());
        (out, left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_with_figures_out_of_range_are_refused_naming_the_field() {
        let ok = MetricsReport::default();
        assert!(ok.check().is_ok());
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
            let mut r = MetricsReport::default();
            r.node.load5 = bad;
            let e = r.check().unwrap_err();
            assert_eq!(e.code, "invalid_metrics");
            assert!(e.message.contains("node.load5"), "{e}");
        }
        let mut r = MetricsReport::default();
        r.tasks.push(TaskMetrics {
            instance: "j-0-0".into(),
            task: "t".into(),
            sample: TaskSample {
                cpu_cores: 1e300,
                ..TaskSample::default()
            },
        });
        assert!(
            r.check()
                .unwrap_err()
                .message
                .contains("tasks[0].sample.cpu_cores")
        );
    }

    fn sample(at: Millis, cpu: f64, mem: u64) -> TaskSample {
        TaskSample {
            at,
            cpu_cores: cpu,
            memory_working_set_bytes: mem,
            memory_limit_bytes: 1 << 30,
            ..TaskSample::default()
        }
    }

    fn report(at: Millis, tasks: &[(&str, f64)]) -> MetricsReport {
        MetricsReport {
            node: NodeSample {
                at,
                cpu_cores_used: 1.0,
                ..NodeSample::default()
            },
            tasks: tasks
                .iter()
                .map(|(i, cpu)| TaskMetrics {
                    instance: InstanceId::new(*i),
                    task: TaskName::new("main"),
                    sample: sample(at, *cpu, 100),
                })
                .collect(),
        }
    }

    fn place(id: &InstanceId) -> Option<Placement> {
        let (job, rest) = id.as_str().split_once('-')?;
        Some(Placement {
            job: JobId::new(job),
            number: rest.parse().ok()?,
            index: 0,
        })
    }

    #[test]
    fn keeps_the_last_len_samples_oldest_first() {
        let mut w = MetricsWindow::new(3, 3);
        let me = WorkerId::new("w1");
        for i in 0..5u64 {
            w.record(&me, report(1000 + i, &[("web-1", i as f64)]), place);
        }
        let m = w.job(&JobId::new("web"), None);
        assert_eq!(m.tasks.len(), 1);
        let cpu: Vec<f64> = m.tasks[0].samples.iter().map(|s| s.cpu_cores).collect();
        assert_eq!(cpu, vec![2.0, 3.0, 4.0]);
        assert_eq!(m.tasks[0].samples[0].memory_limit_bytes, 1 << 30);
        assert_eq!(w.worker(&me, None).unwrap().node.len(), 3);
        assert_eq!(w.job(&JobId::new("web"), Some(1)).tasks[0].samples.len(), 1);
    }

    /// Issue 18, item 8: a worker's tasks' use together, apart from its host's.
    #[test]
    fn a_workers_tasks_use_is_the_sum_of_their_newest_samples() {
        let mut w = MetricsWindow::new(3, 3);
        let me = WorkerId::new("w1");
        assert_eq!(w.tasks_usage(&me), None);
        w.record(&me, report(1_000, &[("web-1", 0.5), ("db-2", 0.5)]), place);
        w.record(&me, report(2_000, &[("web-1", 0.25), ("db-2", 0.5)]), place);
        let u = w.tasks_usage(&me).unwrap();
        assert_eq!((u.cpu_cores, u.memory_bytes, u.at), (0.75, 200, 2_000));
        assert_eq!(w.node_usage(&me).unwrap().cpu_cores, 1.0);
    }

    #[test]
    fn unknown_instances_are_ignored_and_stale_series_dropped() {
        let mut w = MetricsWindow::new(10, 2);
        let me = WorkerId::new("w1");
        let a = w.record(&me, report(1_000, &[("web-1", 1.0), ("bad", 1.0)]), place);
        assert_eq!((a.accepted, a.ignored), (1, 1));
        w.record(&me, report(4_000, &[("db-2", 1.0)]), place);
        assert_eq!(w.task_series(), 2);
        // web-1 was left out of two reports.
        w.record(&me, report(7_000, &[("db-2", 1.0)]), place);
        assert!(w.job(&JobId::new("web"), None).tasks.is_empty());
        assert_eq!(w.job(&JobId::new("db"), None).tasks.len(), 1);
        w.remove_job(&JobId::new("db"));
        assert_eq!(w.task_series(), 0);
        assert!(w.worker(&me, None).unwrap().tasks.is_empty());
        w.remove_worker(&me);
        assert!(w.is_empty());
    }

    #[test]
    fn a_job_range_does_not_bleed_into_a_prefix_sibling() {
        let mut w = MetricsWindow::new(2, 3);
        let me = WorkerId::new("w1");
        w.record(&me, report(1, &[("web-1", 1.0), ("webx-1", 2.0)]), place);
        let m = w.job(&JobId::new("web"), None);
        assert_eq!(m.tasks.len(), 1);
        assert_eq!(m.tasks[0].job.as_str(), "web");
    }

    #[test]
    fn a_moved_instance_starts_afresh_on_its_new_worker() {
        let mut w = MetricsWindow::new(5, 3);
        let (a, b) = (WorkerId::new("a"), WorkerId::new("b"));
        w.record(&a, report(1, &[("web-1", 1.0)]), place);
        w.record(&b, report(2, &[("web-1", 2.0)]), place);
        let m = w.job(&JobId::new("web"), None);
        assert_eq!(m.tasks[0].worker, b);
        assert_eq!(m.tasks[0].samples.len(), 1);
        assert!(w.worker(&a, None).unwrap().tasks.is_empty());
    }
}
