//! `c1m`: C1M in a box. Simulated workers register, heartbeat and watch; then jobs are submitted
//! and the clock runs until the workers have reported every task `Running` (counted from the
//! acknowledged reports, so no polling loads the manager), confirmed at the end by the job list.
//! Every worker registers with the join token and then presents a credential of its own (issue
//! 11): the manager checks as many credentials as there are workers, each under its own
//! per-credential limits; the submitter and the job list use the operator token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{CpuWindow, Managed, cores};
use crate::client::{Api, list_all};
use crate::load::job_body;
use crate::manager_proc::Launcher;
use crate::report::{Report, Table, bytes, count, dur, rate};
use crate::sim::{Fleet, FleetConfig, Size};

/// The c1m scenario.
pub struct C1m {
    /// Simulated workers.
    pub workers: usize,
    /// Jobs submitted.
    pub jobs: u64,
    /// Instances per job.
    pub count: u64,
    /// Connections shared by the heartbeats.
    pub heartbeat_conns: usize,
    /// How long to wait for every task to be Running.
    pub timeout: Duration,
    /// Quiet time (heartbeats only) over which the heartbeats' CPU is measured.
    pub idle_window: Duration,
    /// Whether to check the absolute floors (never in the quick mode).
    pub floors: bool,
}

/// Connections that submit the jobs.
const SUBMITTERS: usize = 4;

impl C1m {
    /// Runs it.
    pub async fn run(&self, launcher: &Launcher) -> Result<Report> {
        let total = self.jobs * self.count;
        let mut report = Report::new("c1m");
        let needed = (self.workers + self.heartbeat_conns + 256) as u64;
        let (fds, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
        if fds < needed {
            bail!(
                "{} workers need about {needed} open files here (one watch connection each), but \
                 the limit is {fds}: raise the hard limit (ulimit -Hn) or use fewer --workers",
                self.workers
            );
        }
        let m = Managed::start(launcher, &[]).await?;
        let mut fleet = Fleet::new(
            &m.api,
            FleetConfig {
                workers: self.workers,
                prefix: "cw".into(),
                size: Size::Big,
                heartbeat_conns: self.heartbeat_conns.min(self.workers.max(1)),
                interval: Duration::from_secs(1),
                tolerant: false,
            },
        );
        fleet.start_heartbeats();
        let registered = fleet.register_all(16).await?;
        fleet.start_watchers();
        let watching = Instant::now();
        while fleet.stats().watch_answers < self.workers as u64 {
            if let Some(e) = fleet.fatal() {
                bail!("a simulated worker failed: {e}");
            }
            if watching.elapsed() > Duration::from_secs(300) {
                bail!("the workers' first watches were not all answered within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let watching = watching.elapsed();

        // Heartbeats (and idle long-polls) alone.
        let idle = CpuWindow::start(&m.proc)?;
        let hb0 = fleet.stats().heartbeats;
        tokio::time::sleep(self.idle_window).await;
        let (idle_m, idle_g, idle_wall) = idle.read(&m.proc)?;
        let hb_rate = rate(fleet.stats().heartbeats - hb0, idle_wall);
        let rss_idle = m.proc.rss()?;
        let setup = fleet.stats();
        fleet.reset_max_gap();

        let busy = CpuWindow::start(&m.proc)?;
        let start = Instant::now();
        let submitted_at = Arc::new(AtomicU64::new(0));
        let mut submitters = spawn_submitters(&m.api, self.jobs, self.count, submitted_at.clone());
        let mut last_print = Instant::now();
        let mut submit_error = None;
        loop {
            let s = fleet.stats();
            if s.running >= total {
                break;
            }
            if let Some(e) = fleet.fatal() {
                bail!("a simulated worker failed: {e}");
            }
            while let Some(r) = submitters.try_join_next() {
                if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
                    submit_error = Some(e);
                }
            }
            if let Some(e) = submit_error.take() {
                return Err(e);
            }
            if start.elapsed() > self.timeout {
                let mut conn = m.api.open().await?;
                let down = list_all(&mut conn, "/v1/workers")
                    .await?
                    .iter()
                    .filter(|w| w.get("status").and_then(Value::as_str) == Some("Down"))
                    .count();
                bail!(
                    "only {} of {} tasks Running after {:?}; the manager counts {down} of {} \
                     workers Down; longest heartbeat gap {}, slowest heartbeat answer {}",
                    count(s.running),
                    count(total),
                    self.timeout,
                    self.workers,
                    dur(s.max_gap),
                    dur(s.slowest_heartbeat),
                );
            }
            if last_print.elapsed() >= Duration::from_secs(5) {
                last_print = Instant::now();
                eprintln!(
                    "scale: c1m {:>5.0}s: {} of {} tasks Running; manager RSS {}",
                    start.elapsed().as_secs_f64(),
                    count(s.running),
                    count(total),
                    bytes(m.proc.rss()? as f64)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all_running = start.elapsed();
        let (busy_m, busy_g, busy_wall) = busy.read(&m.proc)?;
        while let Some(r) = submitters.join_next().await {
            r??;
        }
        let submit_time = Duration::from_micros(submitted_at.load(Ordering::Relaxed));
        let rss_end = m.proc.rss()?;
        let rss_peak = m.proc.peak_rss()?;
        let stats = fleet.stats();
        let rejection = fleet.first_rejection();

        // Confirm from the manager's side: every job's phase.
        let mut conn = m.api.open().await?;
        let listed = list_all(&mut conn, "/v1/jobs").await?;
        let running_jobs = listed
            .iter()
            .filter(|j| {
                j.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with("c1m-"))
            })
            .filter(|j| j.get("phase").and_then(Value::as_str) == Some("Running"))
            .count() as u64;
        drop(fleet);

        let mut t = Table::new(
            "C1M in a box: simulated workers over HTTP, durable manager",
            &[
                "workers",
                "tasks",
                "submitted in",
                "all Running in",
                "tasks/s",
                "manager cores",
                "generator cores",
                "manager RSS end (peak)",
            ],
        );
        t.row(vec![
            count(self.workers as u64),
            count(total),
            dur(submit_time),
            dur(all_running),
            format!("{:.0}", rate(total, all_running)),
            cores(busy_m, busy_wall),
            cores(busy_g, busy_wall),
            format!("{} ({})", bytes(rss_end as f64), bytes(rss_peak as f64)),
        ]);
        report.tables.push(t);
        let hb_share = idle_m.as_secs_f64() / idle_wall.as_secs_f64();
        report.notes.push(format!(
            "setup (registration, first watches, heartbeats alone): longest heartbeat gap {}, \
             slowest heartbeat answer {}.",
            dur(setup.max_gap),
            dur(setup.slowest_heartbeat),
        ));
        report.notes.push(format!(
            "registration: {} workers in {}; first watches answered {} later. Heartbeats alone \
             ({:.0}/s over {} connections, idle long-polls open, {}): manager {:.1}% of one core, \
             generator {:.1}%; manager RSS then {}. From the first submission on: longest heartbeat gap {} \
             (slowest answer {}); {} watch answers, \
             {} status reports, {} rejected updates{}.",
            count(self.workers as u64),
            dur(registered),
            dur(watching),
            hb_rate,
            self.heartbeat_conns.min(self.workers.max(1)),
            dur(idle_wall),
            hb_share * 100.0,
            idle_g.as_secs_f64() / idle_wall.as_secs_f64() * 100.0,
            bytes(rss_idle as f64),
            dur(stats.max_gap),
            dur(stats.slowest_heartbeat),
            count(stats.watch_answers),
            count(stats.status_reports),
            stats.rejected,
            rejection
                .map(|r| format!(" (first: {r})"))
                .unwrap_or_default(),
        ));
        report.check(
            "jobs Running in GET /v1/jobs",
            format!("{running_jobs} of {}", self.jobs),
            "all",
            running_jobs == self.jobs,
        );
        report.check(
            "rejected task updates",
            stats.rejected.to_string(),
            "0",
            stats.rejected == 0,
        );
        // The grace in force: what the manager's answers gave (3 s before the first answer, or
        // from a manager that gives none).
        let grace = if stats.grace.is_zero() {
            Duration::from_secs(3)
        } else {
            stats.grace
        };
        report.check(
            "longest heartbeat gap from the first submission on",
            dur(stats.max_gap),
            &format!(
                "< {} (the grace in force; interval {})",
                dur(grace),
                dur(stats.interval)
            ),
            stats.max_gap < grace,
        );
        if self.floors && total == 100_000 {
            report.check(
                "100,000 tasks Running",
                dur(all_running),
                "≤ 60 s",
                all_running <= Duration::from_secs(60),
            );
        }
        if self.floors && total >= 1_000_000 {
            report.check(
                "manager peak RSS at 1,000,000 tasks",
                bytes(rss_peak as f64),
                "≤ 1.5 GiB",
                rss_peak <= 1536 << 20,
            );
        }
        report.set(
            "result",
            json!({
                "workers": self.workers,
                "jobs": self.jobs,
                "count": self.count,
                "tasks": total,
                "registration_s": registered.as_secs_f64(),
                "submitted_s": submit_time.as_secs_f64(),
                "all_running_s": all_running.as_secs_f64(),
                "manager_cpu_s": busy_m.as_secs_f64(),
                "generator_cpu_s": busy_g.as_secs_f64(),
                "heartbeats_per_s": hb_rate,
                "heartbeat_manager_core_share": hb_share,
                "heartbeat_generator_core_share": idle_g.as_secs_f64() / idle_wall.as_secs_f64(),
                "setup_max_heartbeat_gap_ms": setup.max_gap.as_millis() as u64,
                "setup_slowest_heartbeat_ms": setup.slowest_heartbeat.as_millis() as u64,
                "rss_idle": rss_idle,
                "rss_end": rss_end,
                "rss_peak": rss_peak,
                "jobs_running": running_jobs,
                "fleet": stats.json(),
            }),
        );
        Ok(report)
    }
}

/// Submits jobs `c1m-0` … over [`SUBMITTERS`] connections (operator token); stores when the last
/// was answered (µs after the start) in `done_at`.
fn spawn_submitters(
    api: &Api,
    jobs: u64,
    count: u64,
    done_at: Arc<AtomicU64>,
) -> JoinSet<Result<()>> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..SUBMITTERS {
        let next = next.clone();
        let done_at = done_at.clone();
        let mut conn = api.conn();
        set.spawn(async move {
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return Ok(());
                }
                let name = format!("c1m-{j}");
                conn.post("/v1/jobs", job_body(&name, count))
                    .await
                    .with_context(|| format!("submitting job {name}"))?;
                done_at.fetch_max(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        });
    }
    set
}
