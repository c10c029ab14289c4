//! The manager's Prometheus endpoint, `GET /metrics`, in the OpenMetrics text format
//! (`prometheus-client`) when the scraper's `Accept` asks for it, and otherwise in the
//! Prometheus text format 0.0.4.
//!
//! What it exposes:
//! - counts by state, read at scrape time: `ork_jobs{phase}`, `ork_tasks{state}`,
//!   `ork_workers{liveness}`, `ork_schedulers{liveness}`, `ork_state_index`;
//! - from the committer: `ork_placements_total`, `ork_scheduling_latency_seconds` (how long an
//!   instance waited for its placement), `ork_store_commit_duration_seconds`,
//!   `ork_store_commit_batch_changes`, `ork_store_commit_batch_ops`,
//!   `ork_store_commit_failures_total`, `ork_events_total{type}`;
//! - from the API layer: `ork_api_request_duration_seconds{route, method, status}` (time to the
//!   answer's head: for a stream or long-poll, until it starts);
//! - every task's newest sample under cAdvisor's names (`container_cpu_usage_seconds_total`,
//!   `container_memory_working_set_bytes`, `container_spec_memory_limit_bytes`,
//!   `container_network_receive_bytes_total`, `container_network_transmit_bytes_total`,
//!   `container_fs_reads_bytes_total`, `container_fs_writes_bytes_total`) and
//!   `ork_task_cpu_cores`, `ork_task_restarts`, labelled `ork_worker`, `ork_job`, `ork_task`,
//!   `ork_index` (never `job` or `instance`, which Prometheus attaches to every target). At most
//!   [`ManagerConfig::metrics_max_series`](orkestrator_core::manager::ManagerConfig) tasks are
//!   exposed; `ork_metrics_series_dropped` counts the rest.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orkestrator_core::ids::{JobId, TaskName, WorkerId};
use orkestrator_core::manager::Manager;
use orkestrator_core::manager::telemetry::Histogram as CoreHistogram;
use orkestrator_core::metrics::TaskSample;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text format, of the manager's and the workers'
/// `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type RouteLabels = Vec<(&'static str, String)>;

/// The API's request-duration histograms, by route, method and status.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    requests: Family<RouteLabels, Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            requests: Family::new_with_constructor(|| {
                Histogram::new(
                    orkestrator_core::manager::telemetry::LATENCY_BUCKETS
                        .iter()
                        .copied(),
                )
            }),
        }
    }
}

/// Times one request (a middleware for `axum::middleware::from_fn_with_state`).
pub async fn time_request(State(m): State<ApiMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Known methods by name; anything else one label, so a client cannot grow the family.
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS
        | Method::PATCH => req.method().as_str(),
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let labels = vec![
        ("route", route),
        ("method", method),
        ("status", resp.status().as_u16().to_string()),
    ];
    m.requests
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// The registry behind `/metrics` for `manager`, with `api` timing the routes.
pub fn registry(manager: Manager, api: &ApiMetrics) -> Registry {
    let mut r = Registry::default();
    r.register(
        "ork_api_request_duration_seconds",
        "API request duration to the answer's head, by route, method and status",
        api.requests.clone(),
    );
    r.register_collector(Box::new(ManagerCollector { manager }));
    r
}

/// Serves `/metrics` from `registry`, in the format `accept` asks for (see [`negotiate`]).
pub fn render(registry: &Registry, accept: Option<&HeaderValue>) -> Response {
    let mut out = String::with_capacity(16 << 10);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}"),
        )
            .into_response();
    }
    negotiate(out, accept)
}

/// The content type of the Prometheus text format 0.0.4, served to a scraper that does not ask
/// for OpenMetrics.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics: one of its media ranges is
/// `application/openmetrics-text` with a quality above zero.
pub fn wants_openmetrics(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        media.eq_ignore_ascii_case("application/openmetrics-text")
            && parts.all(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_none_or(|q| q > 0.0)
            })
    })
}

/// An answer carrying `openmetrics` (an OpenMetrics exposition, as `prometheus-client` writes
/// it) as OpenMetrics when `accept` asks for it, and otherwise as Prometheus text 0.0.4.
pub fn negotiate(openmetrics: String, accept: Option<&HeaderValue>) -> Response {
    let (body, content_type) = if wants_openmetrics(accept) {
        (openmetrics, OPENMETRICS)
    } else {
        (to_prometheus_text(&openmetrics), PROMETHEUS_TEXT)
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Rewrites an OpenMetrics exposition as Prometheus text 0.0.4: a counter family is named with
/// its `_total` (as its samples are), `unknown` is `untyped`, and `# UNIT`, `_created` samples
/// and `# EOF` are left out, which that format does not have.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.push(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# TYPE ", "# HELP "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = descriptor {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let tail = if prefix == "# TYPE " && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            let total = if counters.contains(&name) {
                "_total"
            } else {
                ""
            };
            out.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if name
            .strip_suffix("_created")
            .is_some_and(|family| counters.contains(&family))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Reads the manager's counts, telemetry and metrics window at each scrape.
#[derive(Clone)]
struct ManagerCollector {
    manager: Manager,
}

impl std::fmt::Debug for ManagerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagerCollector")
    }
}

fn gauge_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut e = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (v, n) in values {
        e.encode_family(&[(label, v.as_str())])?
            .encode_gauge(&(n as i64))?;
    }
    Ok(())
}

fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &CoreHistogram,
) -> std::fmt::Result {
    let mut e = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let mut buckets = h.cumulative();
    buckets.push((f64::INFINITY, h.count()));
    // Per-bucket counts, as the encoder sums them itself.
    let mut prev = 0;
    let per: Vec<(f64, u64)> = buckets
        .into_iter()
        .map(|(b, c)| {
            let n = c - prev;
            prev = c;
            (b, n)
        })
        .collect();
    e.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum(), h.count(), &per, None)
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let mut e = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    e.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
}

impl Collector for ManagerCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let g = self.manager.metrics().gauges();
        gauge_family(
            &mut enc,
            "ork_jobs",
            "Jobs by phase",
            "phase",
            g.jobs.iter().map(|(p, n)| (format!("{p:?}"), *n)),
        )?;
        gauge_family(
            &mut enc,
            "ork_tasks",
            "Tasks by state",
            "state",
            g.tasks.iter().map(|(s, n)| (format!("{s:?}"), *n)),
        )?;
        gauge_family(
            &mut enc,
            "ork_workers",
            "Workers by liveness",
            "liveness",
            g.workers.iter().map(|(l, n)| (format!("{l:?}"), *n)),
        )?;
        gauge_family(
            &mut enc,
            "ork_schedulers",
            "Schedulers by liveness",
            "liveness",
            g.schedulers.iter().map(|(l, n)| (format!("{l:?}"), *n)),
        )?;
        for (name, help, v) in [
            (
                "ork_state_index",
                "The last durable commit index",
                g.durable_index,
            ),
            (
                "ork_event_window_events",
                "Events held for streams to resume from",
                g.event_window,
            ),
            (
                "ork_metrics_series",
                "Task series in the metrics window",
                g.metrics_series,
            ),
        ] {
            enc.encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&(v as i64))?;
        }

        let t = self.manager.metrics().telemetry();
        counter(
            &mut enc,
            "ork_placements",
            "Instances placed on workers",
            t.placements,
        )?;
        histogram(
            &mut enc,
            "ork_scheduling_latency_seconds",
            "How long an instance waited for its placement",
            &t.scheduling_seconds,
        )?;
        histogram(
            &mut enc,
            "ork_store_commit_duration_seconds",
            "Store commit latency",
            &t.commit_seconds,
        )?;
        histogram(
            &mut enc,
            "ork_store_commit_batch_changes",
            "Changes (requests) per store commit",
            &t.batch_changes,
        )?;
        histogram(
            &mut enc,
            "ork_store_commit_batch_ops",
            "Store operations per commit",
            &t.batch_ops,
        )?;
        counter(
            &mut enc,
            "ork_store_commit_failures",
            "Failed store commits",
            t.commit_failures,
        )?;
        {
            let mut e = enc.encode_descriptor(
                "ork_events",
                "Events published, by type",
                None,
                MetricType::Counter,
            )?;
            for (ty, n) in &t.events {
                e.encode_family(&[("type", *ty)])?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(n, None)?;
            }
        }
        self.encode_tasks(&mut enc)
    }
}

impl ManagerCollector {
    fn encode_tasks(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let cap = self.manager.config().metrics_max_series;
        let (series, dropped) = self.manager.metrics().with_window(|w| w.latest(cap));
        enc.encode_descriptor(
            "ork_metrics_series_dropped",
            "Task series left out of this exposition by --metrics-max-series",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(dropped as i64))?;
        let rows: Vec<(TaskLabels, TaskSample)> = series
            .iter()
            .filter_map(|s| {
                let last = *s.last()?;
                Some((task_labels(&s.worker, &s.job, &s.task, s.index), last))
            })
            .collect();
        encode_task_families(enc, &rows)
    }
}

/// The labels of one task's series, in this order: `ork_worker`, `ork_job`, `ork_task`,
/// `ork_index` (never `job` or `instance`, which Prometheus sets on every scraped series).
pub(crate) type TaskLabels = [(&'static str, String); 4];

/// The labels of the series of `task` of instance `index` of `job`, measured on `worker`.
pub(crate) fn task_labels(
    worker: &WorkerId,
    job: &JobId,
    task: &TaskName,
    index: u32,
) -> TaskLabels {
    [
        ("ork_worker", worker.to_string()),
        ("ork_job", job.to_string()),
        ("ork_task", task.to_string()),
        ("ork_index", index.to_string()),
    ]
}

/// Picks one figure of a task's sample.
type Pick = fn(&TaskSample) -> f64;

/// The per-task families, under cAdvisor's names where cAdvisor has one: name (without the
/// unit), help, unit, type, and the figure. With the unit the exposed family is
/// `<name>_<unit>`, and a counter's samples end in `_total`.
const TASK_FAMILIES: [(&str, &str, Option<Unit>, MetricType, Pick); 9] = [
    (
        "container_cpu_usage",
        "CPU time the task's container used.",
        Some(Unit::Seconds),
        MetricType::Counter,
        |x| x.cpu_seconds_total,
    ),
    (
        "container_memory_working_set",
        "The task's container's memory working set (usage minus inactive file cache).",
        Some(Unit::Bytes),
        MetricType::Gauge,
        |x| x.memory_working_set_bytes as f64,
    ),
    (
        "container_spec_memory_limit",
        "The task's container's memory limit (0: none).",
        Some(Unit::Bytes),
        MetricType::Gauge,
        |x| x.memory_limit_bytes as f64,
    ),
    (
        "container_network_receive",
        "Bytes the task's container received.",
        Some(Unit::Bytes),
        MetricType::Counter,
        |x| x.network_rx_bytes as f64,
    ),
    (
        "container_network_transmit",
        "Bytes the task's container sent.",
        Some(Unit::Bytes),
        MetricType::Counter,
        |x| x.network_tx_bytes as f64,
    ),
    (
        "container_fs_reads",
        "Bytes the task's container read from block devices.",
        Some(Unit::Bytes),
        MetricType::Counter,
        |x| x.block_read_bytes as f64,
    ),
    (
        "container_fs_writes",
        "Bytes the task's container wrote to block devices.",
        Some(Unit::Bytes),
        MetricType::Counter,
        |x| x.block_write_bytes as f64,
    ),
    (
        "ork_task_cpu_cores",
        "CPU the task's container used over the last sample interval, in cores.",
        None,
        MetricType::Gauge,
        |x| x.cpu_cores,
    ),
    (
        "ork_task_restarts",
        "How many times the task has been restarted.",
        None,
        MetricType::Gauge,
        |x| f64::from(x.restarts),
    ),
];

/// Writes the per-task families (`container_cpu_usage_seconds_total`,
/// `container_memory_working_set_bytes`, `container_spec_memory_limit_bytes`,
/// `container_network_receive_bytes_total`, `container_network_transmit_bytes_total`,
/// `container_fs_reads_bytes_total`, `container_fs_writes_bytes_total`, `ork_task_cpu_cores`,
/// `ork_task_restarts`), one sample per row in each; nothing without rows. Shared by the
/// manager's and the workers' `/metrics`.
pub(crate) fn encode_task_families(
    enc: &mut DescriptorEncoder<'_>,
    rows: &[(TaskLabels, TaskSample)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    for (name, help, unit, ty, pick) in TASK_FAMILIES {
        let mut e = enc.encode_descriptor(name, help, unit.as_ref(), ty)?;
        for (labels, sample) in rows {
            let f = e.encode_family(labels)?;
            match ty {
                MetricType::Counter => {
                    ConstCounter::new(pick(sample)).encode(f)?;
                }
                _ => ConstGauge::new(pick(sample)).encode(f)?,
            }
        }
    }
    Ok(())
}

/// `GET /metrics` of the manager's API: the registry the router was given as an extension.
pub(crate) async fn page(
    axum::Extension(registry): axum::Extension<Arc<Registry>>,
    headers: axum::http::HeaderMap,
) -> Response {
    render(&registry, headers.get(header::ACCEPT))
}

/// A router-ready `/metrics` handler over a shared registry.
pub fn handler(
    registry: Arc<Registry>,
) -> impl Fn(axum::http::HeaderMap) -> std::future::Ready<Response> + Clone {
    move |headers: axum::http::HeaderMap| {
        std::future::ready(render(&registry, headers.get(header::ACCEPT)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &'static str) -> HeaderValue {
        HeaderValue::from_static(v)
    }

    #[test]
    fn openmetrics_only_when_accept_asks_for_it() {
        assert!(wants_openmetrics(Some(&accept(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        ))));
        assert!(wants_openmetrics(Some(&accept(
            "text/plain;q=0.9, Application/OpenMetrics-Text; version=0.0.1; q=0.4"
        ))));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some(&accept("*/*"))));
        assert!(!wants_openmetrics(Some(&accept(
            "text/plain;version=0.0.4"
        ))));
        assert!(!wants_openmetrics(Some(&accept(
            "application/openmetrics-text;q=0"
        ))));
    }

    #[test]
    fn prometheus_text_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP ork_placements Placements.\n\
                  # TYPE ork_placements counter\n\
                  ork_placements_total 3\n\
                  ork_placements_created 1.5\n\
                  # HELP ork_wait_seconds Wait.\n\
                  # TYPE ork_wait_seconds histogram\n\
                  # UNIT ork_wait_seconds seconds\n\
                  ork_wait_seconds_sum 1.0\n\
                  ork_wait_seconds_count 2\n\
                  # TYPE ork_other unknown\n\
                  ork_other 1\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP ork_placements_total Placements.\n\
             # TYPE ork_placements_total counter\n\
             ork_placements_total 3\n\
             # HELP ork_wait_seconds Wait.\n\
             # TYPE ork_wait_seconds histogram\n\
             ork_wait_seconds_sum 1.0\n\
             ork_wait_seconds_count 2\n\
             # TYPE ork_other untyped\n\
             ork_other 1\n"
        );
        let resp = negotiate(om.to_owned(), None);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROMETHEUS_TEXT);
        let resp = negotiate(om.to_owned(), Some(&accept("application/openmetrics-text")));
        assert_eq!(resp.headers()[header::CONTENT_TYPE], OPENMETRICS);
    }
}
