//! Observability figures (issue 10), scripted, each against a baseline measured in the same run:
//!
//! - `window`: the manager's memory per task for the metrics window — RSS growth of this process
//!   while a [`MetricsWindow`] fills with `--tasks` series of a full window each, against the
//!   window's own accounting ([`MetricsWindow::SAMPLE_BYTES`] a sample).
//! - `events`: the event stream's throughput to `--subscribers` SSE clients over real HTTP on
//!   loopback (a manager on the in-memory store, served by the real router), against one
//!   subscriber in the same run: every client must receive every event of `--jobs` submissions.
//!   Each subscriber presents a read token of its own (issue 11), as separate dashboards would,
//!   so none shares another's per-credential stream limit.
//!
//! ```text
//! cargo run --release -p orkestrator-benches --bin observability -- [window|events|all]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::StreamExt;
use orkestrator_benches::rss_bytes;
use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::events::{EventFilter, EventKind, StreamItem, StreamStart};
use orkestrator_core::ids::{InstanceId, JobId, TaskName, WorkerId};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::metrics::{
    MetricsReport, MetricsWindow, NodeSample, Placement, TaskMetrics, TaskSample,
};
use orkestrator_core::spec::{Format, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_runtime::http::client::HttpTransport;

#[derive(Debug, Parser)]
#[command(name = "observability", about = "Observability benchmarks (issue 10)")]
struct Opts {
    /// What to run: window, events or all.
    #[arg(default_value = "all")]
    what: String,
    /// Task series for `window`.
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Samples per series for `window`.
    #[arg(long, default_value_t = 60)]
    window: usize,
    /// Subscribers for `events`.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Jobs submitted for `events` (one event each, at least).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Rounds of `events`; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Fills a window with `tasks` series of `len` samples each, from 100 workers; returns the RSS
/// growth per task.
fn window(tasks: usize, len: usize) -> f64 {
    let before = rss_bytes();
    let mut w = MetricsWindow::new(len, 3);
    let workers = 100;
    let per = tasks / workers;
    for round in 0..len as u64 {
        for wk in 0..workers {
            let worker = WorkerId::new(format!("worker-{wk:03}"));
            let report = MetricsReport {
                node: NodeSample {
                    at: round,
                    ..NodeSample::default()
                },
                tasks: (0..per)
                    .map(|t| TaskMetrics {
                        instance: InstanceId::new(format!("job{wk}x{t}-0-{}", wk * per + t)),
                        task: TaskName::new("main"),
                        sample: TaskSample {
                            at: round,
                            cpu_cores: 0.5,
                            cpu_seconds_total: round as f64,
                            memory_working_set_bytes: 1 << 20,
                            memory_limit_bytes: 1 << 30,
                            ..TaskSample::default()
                        },
                    })
                    .collect(),
            };
            w.record(&worker, report, |id| {
                let (job, rest) = id.as_str().split_once("-0-")?;
                Some(Placement {
                    job: JobId::new(job),
                    number: rest.parse().ok()?,
                    index: 0,
                })
            });
        }
    }
    assert_eq!(w.task_series(), per * workers);
    let grown = rss_bytes().saturating_sub(before);
    let per_task = grown as f64 / (per * workers) as f64;
    std::hint::black_box(&w);
    per_task
}

async fn start_manager() -> Result<(Manager, u16)> {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new())).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let served = m.clone();
    tokio::spawn(async move {
        let _ = orkestrator_runtime::http::server::serve(listener, served, std::future::pending())
            .await;
    });
    Ok((m, port))
}

/// One round: `subscribers` SSE clients, `jobs` submissions; returns (events, seconds until the
/// last client had them all).
async fn events_round(subscribers: usize, jobs: usize, tag: &str) -> Result<(u64, f64)> {
    let (m, port) = start_manager().await?;
    let mut transports = Vec::new();
    for _ in 0..subscribers {
        let read = m
            .tokens()
            .create(CreateToken {
                role: Role::Read,
                name: Some("observability bench subscriber".into()),
            })
            .await?;
        transports
            .push(HttpTransport::new(&format!("127.0.0.1:{port}"))?.with_token(Some(read.token)));
    }
    // From past the tokens' own writes: the streams carry the submissions alone.
    let start = m.durable_index() + 1;
    let mut clients = Vec::new();
    for http in &transports {
        let s = http
            .events(StreamStart::Index(start), &EventFilter::default())
            .await?;
        clients.push(s);
    }
    let spec = |i: usize| {
        parse_job(
            &format!("name: {tag}{i}\ntasks: [{{name: t, image: x:1}}]"),
            Format::Yaml,
        )
    };
    let began = Instant::now();
    let submitters: Vec<_> = (0..8)
        .map(|k| {
            let m = m.clone();
            let specs: Vec<_> = (k..jobs).step_by(8).map(spec).collect();
            tokio::spawn(async move {
                for s in specs {
                    m.jobs().submit(s?).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for s in submitters {
        s.await??;
    }
    let head = m.durable_index();
    // Every client reads until it has an event at the last index, checking that events come in
    // order, none twice, one per submitted job.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut jobs = std::collections::BTreeSet::new();
                let mut last = None;
                while let Some(item) = s.next().await {
                    match item? {
                        StreamItem::Event(e) => {
                            if last.is_some_and(|p| e.position() <= p) {
                                bail!("out of order or repeated: {:?} then {}", last, e.id());
                            }
                            last = Some(e.position());
                            if let EventKind::JobSubmitted { job, .. } = &e.kind
                                && !jobs.insert(job.clone())
                            {
                                bail!("{job} submitted twice");
                            }
                            if e.index >= head {
                                return anyhow::Ok(jobs.len() as u64);
                            }
                        }
                        StreamItem::Reset(r) => bail!("unexpected reset: {}", r.message),
                        StreamItem::Bookmark(_) => {}
                    }
                }
                bail!("the stream ended early after {} jobs", jobs.len())
            })
        })
        .collect();
    let mut counts = Vec::new();
    for r in readers {
        counts.push(
            tokio::time::timeout(Duration::from_secs(300), r)
                .await
                .context("a subscriber did not get every event within 300 s")???,
        );
    }
    let took = began.elapsed().as_secs_f64();
    let n = counts[0];
    if counts.iter().any(|c| *c != jobs as u64) {
        bail!("a subscriber missed submissions: {counts:?} of {jobs}");
    }
    Ok((n, took))
}

async fn events(opts: &Opts) -> Result<()> {
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut count = 0;
    for r in 0..opts.rounds {
        let (n1, t1) = events_round(1, opts.jobs, &format!("a{r}-")).await?;
        let (n, t) = events_round(opts.subscribers, opts.jobs, &format!("b{r}-")).await?;
        count = n;
        println!(
            "round {r}: 1 subscriber {n1} events in {t1:.2} s; {} subscribers {n} events each in {t:.2} s",
            opts.subscribers
        );
        one.push(n1 as f64 / t1);
        many.push(n as f64 / t);
    }
    let (one, many) = (median(one), median(many));
    println!(
        "events: {count} per subscriber; median {one:.0} events/s to 1 subscriber, {many:.0} events/s to each of {} ({:.0} deliveries/s); ratio {:.2}x",
        opts.subscribers,
        many * opts.subscribers as f64,
        many / one
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    if matches!(opts.what.as_str(), "window" | "all") {
        let per = window(opts.tasks, opts.window);
        let accounted = (MetricsWindow::SAMPLE_BYTES * opts.window) as f64;
        println!(
            "window: {} tasks x {} samples: RSS growth {per:.0} B/task; samples alone {accounted:.0} B/task ({} B a sample); overhead {:.2}x",
            opts.tasks,
            opts.window,
            MetricsWindow::SAMPLE_BYTES,
            per / accounted
        );
    }
    if matches!(opts.what.as_str(), "events" | "all") {
        events(&opts).await?;
    }
    if !matches!(opts.what.as_str(), "window" | "events" | "all") {
        bail!(
            "unknown benchmark {:?}: use window, events or all",
            opts.what
        );
    }
    Ok(())
}
