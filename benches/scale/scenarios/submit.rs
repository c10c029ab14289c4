//! `submit`: durable submissions, one new one-task job per request, at several concurrencies
//! (jobs accumulate over the levels, as in the wrk runs).

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::{CpuWindow, Managed, cores};
use crate::load::{StoreStats, store_stats, submit_load};
use crate::manager_proc::Launcher;
use crate::report::{Report, Table, count, us};

/// The submit scenario.
pub struct Submit {
    /// Concurrency levels, run in this order against one manager.
    pub levels: Vec<usize>,
    /// Load per level.
    pub duration: Duration,
    /// Whether to check the absolute floors at 64 (never in the quick mode).
    pub floors: bool,
}

fn opt_us(v: Option<u64>) -> String {
    v.map(us).unwrap_or_else(|| "n/a".into())
}

impl Submit {
    /// Runs it.
    pub async fn run(&self, launcher: &Launcher) -> Result<Report> {
        let m = Managed::start(launcher, &[]).await?;
        let mut probe = m.api.open().await?;
        let mut report = Report::new("submit");
        let mut table = Table::new(
            "Durable submissions (one new one-task job per request, keep-alive, one connection per requester)",
            &[
                "concurrency",
                "requests",
                "per second",
                "p50",
                "p99",
                "max",
                "commit p50",
                "commit p99",
                "changes/commit",
                "manager cores",
                "generator cores",
            ],
        );
        let mut levels = Vec::new();
        for &c in &self.levels {
            let before = store_stats(&mut probe).await?;
            let cpu = CpuWindow::start(&m.proc)?;
            let r = submit_load(&m.api, c.max(1), self.duration, &format!("s{c}")).await?;
            let (mcpu, gcpu, wall) = cpu.read(&m.proc)?;
            let after = store_stats(&mut probe).await?;
            let batch = batch_figure(before, after);
            table.row(vec![
                c.to_string(),
                count(r.requests),
                format!("{:.0}", r.throughput()),
                us(r.latency.p50),
                us(r.latency.p99),
                us(r.latency.max),
                opt_us(after.map(|s| s.commit_p50_us)),
                opt_us(after.map(|s| s.commit_p99_us)),
                batch.map_or("n/a".into(), |b| format!("{b:.1}")),
                cores(mcpu, wall),
                cores(gcpu, wall),
            ]);
            let mut v = r.json();
            v["manager_cpu_s"] = mcpu.as_secs_f64().into();
            v["generator_cpu_s"] = gcpu.as_secs_f64().into();
            v["store"] = store_json(after, batch);
            levels.push(v);
            if self.floors && c == 64 {
                let tp = r.throughput();
                report.check(
                    "submissions/s at 64",
                    format!("{tp:.0}"),
                    "≥ 5,000 (target ≥ 10,000)",
                    tp >= 5_000.0,
                );
                report.check(
                    "submission p99 at 64",
                    us(r.latency.p99),
                    "< 25 ms (target < 10 ms)",
                    r.latency.p99 < 25_000,
                );
            }
        }
        report.tables.push(table);
        report.notes.push(format!(
            "{:?} per level; job bodies as shared/load/submit.lua, each request with the operator \
             token (Authorization: Bearer); store figures from GET /v1/health → manager.store \
             (n/a: not reported by this manager)",
            self.duration
        ));
        report.set("levels", Value::Array(levels));
        Ok(report)
    }
}

/// Changes per commit over a level, from two readings of the store's counters.
fn batch_figure(before: Option<StoreStats>, after: Option<StoreStats>) -> Option<f64> {
    let (b, a) = (before?, after?);
    let commits = a.commits.checked_sub(b.commits)?;
    let changes = a.changes.checked_sub(b.changes)?;
    (commits > 0).then(|| changes as f64 / commits as f64)
}

fn store_json(s: Option<StoreStats>, batch: Option<f64>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "commits": s.commits,
            "changes": s.changes,
            "commit_p50_us": s.commit_p50_us,
            "commit_p99_us": s.commit_p99_us,
            "batch_max": s.batch_max,
            "changes_per_commit": batch,
        }),
    }
}
