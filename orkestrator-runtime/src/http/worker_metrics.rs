//! The worker's Prometheus endpoint, `GET /metrics` on its own small HTTP endpoint, in the
//! OpenMetrics text format when `Accept` asks for it, and Prometheus text 0.0.4 otherwise.
//!
//! What it serves comes from the worker's newest metrics pass
//! ([`orkestrator_core::worker::LatestMetrics`]), so a scrape never calls the
//! engine:
//!
//! - the host: `ork_node_cpu_cores_used`, `ork_node_cpu_cores`, `ork_node_memory_used_bytes`,
//!   `ork_node_memory_total_bytes`, `ork_node_disk_used_bytes`, `ork_node_disk_total_bytes`,
//!   `ork_node_load1`, `ork_node_load5`, `ork_node_load15`, labelled `ork_worker`;
//! - every task with a running container, under cAdvisor's names so that existing dashboards
//!   and recording rules apply: `container_cpu_usage_seconds_total`,
//!   `container_memory_working_set_bytes`, `container_spec_memory_limit_bytes`,
//!   `container_network_receive_bytes_total`, `container_network_transmit_bytes_total`,
//!   `container_fs_reads_bytes_total`, `container_fs_writes_bytes_total`, plus
//!   `ork_task_cpu_cores` and `ork_task_restarts`; labelled `ork_worker`, `ork_job`, `ork_task`,
//!   `ork_index` (never `job` or `instance`, which Prometheus sets on every scraped series); the
//!   same families as the manager's `/metrics` ([`prom`](super::prom) defines them for both);
//! - the time of the newest pass, `ork_worker_metrics_sampled_timestamp_seconds`;
//! - the latency of every call the worker makes to the container engine,
//!   `ork_engine_call_duration_seconds{call="stats"|"create"|...}` (a histogram), measured by
//!   [`InstrumentedRuntime`], a decorator around any [`Runtime`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use orkestrator_core::Result;
use orkestrator_core::ids::WorkerId;
use orkestrator_core::runtime::{
    ContainerInfo, ContainerSpec, ContainerStats, LogOptions, LogStream, NetworkInfo, NetworkSpec,
    Runtime,
};
use orkestrator_core::spec::Probe;
use orkestrator_core::worker::LatestMetrics;
use orkestrator_core::worker::metrics::WorkerSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::prom::{encode_task_families, negotiate, task_labels};

type CallLabels = [(&'static str, &'static str); 1];

fn call_histogram() -> Histogram {
    // 0.5 ms up to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The latency of engine calls, by call (cheap to clone: clones share the figures).
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            calls: Family::new_with_constructor(call_histogram),
        }
    }
}

impl EngineMetrics {
    /// No calls yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one `call` that took `took`.
    pub fn observe(&self, call: &'static str, took: Duration) {
        self.calls
            .get_or_create(&[("call", call)])
            .observe(took.as_secs_f64());
    }
}

/// A [`Runtime`] that times every call of the one it wraps into an [`EngineMetrics`]
/// (`ping`, `ensure_image`, `create`, `start`, `stop`, `remove`, `inspect`, `list`, `stats`,
/// `logs`, `stream_logs` until the stream opens, `probe`, `create_network`, `remove_network`,
/// `list_networks`). `wait`, which lasts as long as the
/// container runs, is passed through untimed.
#[derive(Debug)]
pub struct InstrumentedRuntime<R> {
    inner: R,
    engine: EngineMetrics,
}

impl<R: Runtime> InstrumentedRuntime<R> {
    /// Wraps `inner`, recording into `engine`.
    pub fn new(inner: R, engine: EngineMetrics) -> Self {
        InstrumentedRuntime { inner, engine }
    }

    /// The runtime wrapped.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Where the calls are recorded.
    pub fn engine(&self) -> &EngineMetrics {
        &self.engine
    }

    async fn timed<F: Future>(&self, call: &'static str, f: F) -> F::Output {
        let start = Instant::now();
        let out = f.await;
        self.engine.observe(call, start.elapsed());
        out
    }
}

#[async_trait]
impl<R: Runtime> Runtime for InstrumentedRuntime<R> {
    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn engine_id(&self) -> Result<Option<String>> {
        // Once per registration: not a call worth a latency series of its own.
        self.inner.engine_id().await
    }
    async fn ensure_image(&self, image: &str) -> Result<()> {
        self.timed("ensure_image", self.inner.ensure_image(image))
            .await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        self.timed("create", self.inner.create(spec)).await
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.timed("start", self.inner.start(id)).await
    }
    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.timed("stop", self.inner.stop(id, grace)).await
    }
    async fn remove(&self, id: &str) -> Result<()> {
        self.timed("remove", self.inner.remove(id)).await
    }
    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.timed("inspect", self.inner.inspect(id)).await
    }
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        self.timed("list", self.inner.list(labels)).await
    }
    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        self.timed("stats", self.inner.stats(id)).await
    }
    async fn logs(&self, id: &str, tail: usize) -> Result<String> {
        self.timed("logs", self.inner.logs(id, tail)).await
    }
    async fn probe(
        &self,
        id: &str,
        probe: &Probe,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        self.timed("probe", self.inner.probe(id, probe, timeout))
            .await
    }
    async fn stream_logs(&self, id: &str, options: &LogOptions) -> Result<LogStream> {
        // Timed until the stream is open, not while it is read.
        self.timed("stream_logs", self.inner.stream_logs(id, options))
            .await
    }
    async fn wait(&self, id: &str) -> Result<()> {
        self.inner.wait(id).await
    }
    async fn create_network(&self, spec: &NetworkSpec) -> Result<String> {
        self.timed("create_network", self.inner.create_network(spec))
            .await
    }
    async fn remove_network(&self, id: &str) -> Result<()> {
        self.timed("remove_network", self.inner.remove_network(id))
            .await
    }
    async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkInfo>> {
        self.timed("list_networks", self.inner.list_networks(labels))
            .await
    }
    async fn create_volume(
        &self,
        spec: &orkestrator_core::runtime::VolumeSpec,
    ) -> Result<orkestrator_core::runtime::VolumeInfo> {
        self.timed("create_volume", self.inner.create_volume(spec))
            .await
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.timed("remove_volume", self.inner.remove_volume(name))
            .await
    }
    async fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<orkestrator_core::runtime::VolumeInfo>> {
        self.timed("list_volumes", self.inner.list_volumes(labels))
            .await
    }
}

/// What a worker's `/metrics` serves from.
#[derive(Debug, Clone)]
pub struct WorkerMetricsSource {
    /// The worker.
    pub worker: WorkerId,
    /// Its newest metrics pass.
    pub latest: LatestMetrics,
    /// Its engine calls.
    pub engine: EngineMetrics,
}

/// The newest pass, encoded on each scrape.
#[derive(Debug)]
struct SnapshotCollector {
    worker: WorkerId,
    snapshot: Option<Arc<WorkerSnapshot>>,
}

/// Writes one family: a descriptor, then one sample per row.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<Unit>),
    rows: impl Iterator<Item = (Vec<(&'static str, String)>, M)>,
) -> std::result::Result<(), std::fmt::Error> {
    let mut rows = rows.peekable();
    let Some((_, first)) = rows.peek() else {
        return Ok(());
    };
    let kind = first.metric_type();
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in rows {
        value.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::result::Result<(), std::fmt::Error> {
        let Some(s) = &self.snapshot else {
            return Ok(());
        };
        let me = || vec![("ork_worker", self.worker.to_string())];
        let n = &s.node;
        family(
            &mut enc,
            (
                "ork_worker_metrics_sampled_timestamp",
                "When the worker's newest metrics pass ended.",
                Some(Unit::Seconds),
            ),
            std::iter::once((me(), ConstGauge::new(n.at as f64 / 1000.0))),
        )?;
        let node_gauges: [(&str, &str, Option<Unit>, f64); 9] = [
            (
                "ork_node_cpu_cores_used",
                "CPU in use on the host, in cores.",
                None,
                n.cpu_cores_used,
            ),
            (
                "ork_node_cpu_cores",
                "The host's cores.",
                None,
                n.cpu_cores_total,
            ),
            (
                "ork_node_memory_used",
                "Memory in use on the host.",
                Some(Unit::Bytes),
                n.memory_used_bytes as f64,
            ),
            (
                "ork_node_memory_total",
                "The host's memory.",
                Some(Unit::Bytes),
                n.memory_total_bytes as f64,
            ),
            (
                "ork_node_disk_used",
                "Disk in use on the filesystem holding the engine's data.",
                Some(Unit::Bytes),
                n.disk_used_bytes as f64,
            ),
            (
                "ork_node_disk_total",
                "Size of the filesystem holding the engine's data.",
                Some(Unit::Bytes),
                n.disk_total_bytes as f64,
            ),
            (
                "ork_node_load1",
                "Load average over 1 minute.",
                None,
                n.load1,
            ),
            (
                "ork_node_load5",
                "Load average over 5 minutes.",
                None,
                n.load5,
            ),
            (
                "ork_node_load15",
                "Load average over 15 minutes.",
                None,
                n.load15,
            ),
        ];
        for (name, help, unit, v) in node_gauges {
            family(
                &mut enc,
                (name, help, unit),
                std::iter::once((me(), ConstGauge::new(v))),
            )?;
        }

        let rows: Vec<_> = s
            .tasks
            .iter()
            .map(|t| {
                let labels = task_labels(&self.worker, &t.id.job, &t.id.task, t.id.index);
                (labels, t.sample)
            })
            .collect();
        encode_task_families(&mut enc, &rows)
    }
}

/// Encodes everything `source` holds in the OpenMetrics text format (ending with `# EOF`).
pub fn encode(source: &WorkerMetricsSource) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector {
        worker: source.worker.clone(),
        snapshot: source.latest.get(),
    }));
    registry.register_with_unit(
        "ork_engine_call_duration",
        "How long the worker's calls to the container engine took, by call.",
        Unit::Seconds,
        source.engine.calls.clone(),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// `GET /metrics`.
pub fn router(source: WorkerMetricsSource) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(source)
}

async fn scrape(State(s): State<WorkerMetricsSource>, headers: HeaderMap) -> Response {
    negotiate(encode(&s), headers.get(header::ACCEPT))
}

#[cfg(test)]
mod tests {
    use orkestrator_core::fake::FakeRuntime;
    use orkestrator_core::ids::{InstanceId, JobId, TaskName};
    use orkestrator_core::metrics::{NodeSample, TaskSample};
    use orkestrator_core::worker::metrics::{SampledTask, SampledTaskId};

    use super::*;

    fn source() -> WorkerMetricsSource {
        let latest = LatestMetrics::default();
        latest.set(WorkerSnapshot {
            worker: WorkerId::new("w1"),
            node: NodeSample {
                at: 1_700_000_000_000,
                cpu_cores_used: 0.75,
                cpu_cores_total: 2.0,
                memory_used_bytes: 1 << 30,
                memory_total_bytes: 4 << 30,
                load1: 0.5,
                ..NodeSample::default()
            },
            tasks: vec![SampledTask {
                id: SampledTaskId {
                    job: JobId::new("web"),
                    index: 2,
                    instance: InstanceId::new("web-7"),
                    task: TaskName::new("main"),
                    container: "c1".into(),
                },
                sample: TaskSample {
                    cpu_seconds_total: 12.5,
                    cpu_cores: 0.25,
                    memory_working_set_bytes: 64 << 20,
                    memory_limit_bytes: 128 << 20,
                    network_rx_bytes: 10,
                    restarts: 1,
                    ..TaskSample::default()
                },
            }],
        });
        WorkerMetricsSource {
            worker: WorkerId::new("w1"),
            latest,
            engine: EngineMetrics::new(),
        }
    }

    #[test]
    fn names_types_and_labels_follow_cadvisor_and_openmetrics() {
        let s = source();
        s.engine.observe("stats", Duration::from_millis(3));
        let text = encode(&s);
        for line in [
            "# TYPE container_cpu_usage_seconds counter",
            "# UNIT container_cpu_usage_seconds seconds",
            "# TYPE container_memory_working_set_bytes gauge",
            "# TYPE container_network_receive_bytes counter",
            "# TYPE ork_engine_call_duration_seconds histogram",
            "# TYPE ork_node_cpu_cores_used gauge",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        let labels = r#"{ork_worker="w1",ork_job="web",ork_task="main",ork_index="2"}"#;
        for sample in [
            format!("container_cpu_usage_seconds_total{labels} 12.5"),
            format!("container_memory_working_set_bytes{labels} {}", 64 << 20),
            format!("container_spec_memory_limit_bytes{labels} {}", 128 << 20),
            format!("container_network_receive_bytes_total{labels} 10.0"),
            format!("ork_task_restarts{labels} 1.0"),
            r#"ork_node_memory_total_bytes{ork_worker="w1"} 4294967296"#.to_string(),
            r#"ork_engine_call_duration_seconds_count{call="stats"} 1"#.to_string(),
        ] {
            let name = sample.split(['{', ' ']).next().unwrap();
            let got: Vec<&str> = text.lines().filter(|l| l.starts_with(name)).collect();
            assert!(
                got.iter().any(|l| number_eq(l, &sample)),
                "no {sample:?}; {name} lines: {got:?}"
            );
        }
        for reserved in ["job", "instance"] {
            for before in ['{', ','] {
                let l = format!("{before}{reserved}=");
                assert!(!text.contains(&l), "a {reserved} label in\n{text}");
            }
        }
        assert!(text.ends_with("# EOF\n"));
    }

    /// The same series with the same value (the encoder may write `1` or `1.0`).
    fn number_eq(line: &str, want: &str) -> bool {
        let split = |l: &str| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse::<f64>().unwrap())
        };
        split(line) == split(want)
    }

    #[test]
    fn no_pass_yet_serves_only_the_engine() {
        let s = WorkerMetricsSource {
            worker: WorkerId::new("w1"),
            latest: LatestMetrics::default(),
            engine: EngineMetrics::new(),
        };
        assert_eq!(encode(&s), "# EOF\n");
        s.engine.observe("list", Duration::from_millis(1));
        let text = encode(&s);
        assert!(
            !text.contains("container_") && !text.contains("ork_node"),
            "{text}"
        );
        assert!(
            text.contains("ork_engine_call_duration_seconds_count{call=\"list\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_decorator_times_each_call_by_name() {
        let rt = InstrumentedRuntime::new(FakeRuntime::new(), EngineMetrics::new());
        rt.ping().await.unwrap();
        rt.ping().await.unwrap();
        let _ = rt.inspect("nope").await;
        let _ = rt.stats("nope").await;
        let text = encode(&WorkerMetricsSource {
            worker: WorkerId::new("w1"),
            latest: LatestMetrics::default(),
            engine: rt.engine().clone(),
        });
        let count = |call: &str| {
            let key = format!("ork_engine_call_duration_seconds_count{{call=\"{call}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .map_or(0, |v| v.parse::<u64>().unwrap())
        };
        assert_eq!(count("ping"), 2, "{text}");
        assert_eq!(count("inspect"), 1);
        assert_eq!(count("stats"), 1);
        assert_eq!(count("create"), 0);
    }
}
