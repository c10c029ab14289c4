//! `decay`: submissions at concurrency 64 with few tasks present, then with many pending tasks
//! present (no workers: the embedded scheduler finds them unschedulable), in one manager.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::{CpuWindow, Managed, cores};
use crate::load::{LoadResult, preload, submit_load};
use crate::manager_proc::Launcher;
use crate::report::{Report, Table, count, dur, us};

/// The decay scenario.
pub struct Decay {
    /// Pending tasks present at the baseline level (0: an empty manager).
    pub base_tasks: u64,
    /// Pending tasks pre-loaded in all before the second level.
    pub tasks: u64,
    /// Load per level.
    pub duration: Duration,
    /// Connections used to pre-load.
    pub preload_conns: usize,
    /// The least ratio of the second level's throughput to the first's.
    pub floor: f64,
}

/// Concurrency of both levels.
const CONCURRENCY: usize = 64;
/// CPU share of one core under which the manager counts as done with a pre-load (not 0: with
/// 100,000 pending tasks today's manager stays about 8% busy in the background).
const IDLE: f64 = 0.25;
/// How long a manager may take to absorb a pre-load.
const SETTLE: Duration = Duration::from_secs(120);

impl Decay {
    /// Runs it.
    pub async fn run(&self, launcher: &Launcher) -> Result<Report> {
        let m = Managed::start(launcher, &[]).await?;
        let mut report = Report::new("decay");
        let mut table = Table::new(
            "Submissions at concurrency 64 as pending tasks accumulate (no workers)",
            &[
                "tasks present",
                "requests",
                "per second",
                "p50",
                "p99",
                "manager cores",
            ],
        );
        let mut present = 0;
        if self.base_tasks > 0 {
            let p = preload(&m.api, self.base_tasks, self.preload_conns, "base").await?;
            present += p.tasks;
            m.proc.settle(IDLE, SETTLE).await?;
        }
        let base_present = present;
        let (r0, c0) = level(&m, &format!("d0-{present}"), self.duration).await?;
        table.row(row(present, &r0, &c0));
        present += r0.requests;
        let extra = self.tasks.saturating_sub(present);
        let p = preload(&m.api, extra, self.preload_conns, "pre").await?;
        present += p.tasks;
        let settled = m.proc.settle(IDLE, SETTLE).await?;
        report.notes.push(format!(
            "pre-load: {} tasks in {} jobs in {} ({:.0} tasks/s), then {} until the manager was idle",
            count(p.tasks),
            count(p.jobs),
            dur(p.elapsed),
            crate::report::rate(p.tasks, p.elapsed),
            dur(settled),
        ));
        let (r1, c1) = level(&m, "d1", self.duration).await?;
        table.row(row(present, &r1, &c1));
        let ratio = if r0.throughput() > 0.0 {
            r1.throughput() / r0.throughput()
        } else {
            0.0
        };
        report.tables.push(table);
        report.check(
            &format!(
                "throughput with {} tasks / with {}",
                count(present),
                count(base_present)
            ),
            format!("{ratio:.2}×"),
            &format!("≥ {:.1}×", self.floor),
            ratio >= self.floor,
        );
        report.set("baseline", r0.json());
        report.set("loaded", r1.json());
        report.set("preload", p.json());
        report.set("tasks_present", present.into());
        report.set("ratio", json!(ratio));
        Ok(report)
    }
}

async fn level(m: &Managed, prefix: &str, d: Duration) -> Result<(LoadResult, String)> {
    let cpu = CpuWindow::start(&m.proc)?;
    let r = submit_load(&m.api, CONCURRENCY, d, prefix).await?;
    let (mcpu, _, wall) = cpu.read(&m.proc)?;
    Ok((r, cores(mcpu, wall)))
}

fn row(present: u64, r: &LoadResult, cores: &str) -> Vec<String> {
    vec![
        count(present),
        count(r.requests),
        format!("{:.0}", r.throughput()),
        us(r.latency.p50),
        us(r.latency.p99),
        cores.to_string(),
    ]
}
