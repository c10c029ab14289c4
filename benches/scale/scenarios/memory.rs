//! `memory`: the manager's RSS growth over an empty manager of the same run, per pending task and
//! per registered (heartbeating) worker, each in a manager of its own.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use super::Managed;
use crate::load::preload;
use crate::manager_proc::{Launcher, dir_size};
use crate::report::{Report, Table, bytes, count, dur};
use crate::sim::{Fleet, FleetConfig, Size};

/// The memory scenario.
pub struct Memory {
    /// Pending tasks pre-loaded (no workers).
    pub tasks: u64,
    /// Workers registered, heartbeating (none: that part is left out).
    pub workers: Option<usize>,
    /// Connections shared by the heartbeats.
    pub heartbeat_conns: usize,
    /// Connections used to pre-load and to register.
    pub preload_conns: usize,
    /// The most RSS growth per task allowed, bytes.
    pub task_bound: f64,
}

/// The most RSS growth per worker allowed, bytes.
const WORKER_BOUND: f64 = 4096.0;

/// RSS of a manager that has answered a few requests (with the operator token) and is idle.
async fn idle_rss(m: &Managed) -> Result<u64> {
    let mut c = m.api.open().await?;
    for _ in 0..5 {
        c.get("/v1/health").await?;
    }
    m.proc.settle(0.25, Duration::from_secs(30)).await?;
    m.proc.rss()
}

impl Memory {
    /// Runs it.
    pub async fn run(&self, launcher: &Launcher) -> Result<Report> {
        let mut report = Report::new("memory");
        let mut table = Table::new(
            "Manager RSS growth over an empty manager of the same run",
            &[
                "what",
                "how many",
                "RSS empty",
                "RSS after",
                "growth",
                "per item",
            ],
        );

        let m = Managed::start(launcher, &[]).await?;
        let empty = idle_rss(&m).await?;
        let p = preload(&m.api, self.tasks, self.preload_conns, "mem").await?;
        let settled = m.proc.settle(0.25, Duration::from_secs(120)).await?;
        let after = m.proc.rss()?;
        let per_task = (after as f64 - empty as f64) / self.tasks.max(1) as f64;
        let store = dir_size(m.dir.path());
        drop(m);
        table.row(vec![
            "pending tasks (jobs of 1,000)".into(),
            count(self.tasks),
            bytes(empty as f64),
            bytes(after as f64),
            bytes(after as f64 - empty as f64),
            bytes(per_task),
        ]);
        report.notes.push(format!(
            "tasks: pre-loaded in {}, idle {} later; store on disk {} ({} per task)",
            dur(p.elapsed),
            dur(settled),
            bytes(store as f64),
            bytes(store as f64 / self.tasks.max(1) as f64),
        ));
        report.check(
            "RSS growth per pending task",
            bytes(per_task),
            &format!("≤ {}", bytes(self.task_bound)),
            per_task <= self.task_bound,
        );
        report.set(
            "tasks",
            json!({
                "tasks": self.tasks,
                "rss_empty": empty,
                "rss_after": after,
                "bytes_per_task": per_task,
                "store_bytes": store,
                "preload": p.json(),
            }),
        );

        if let Some(w) = self.workers.filter(|w| *w > 0) {
            let m = Managed::start(launcher, &[]).await?;
            let empty = idle_rss(&m).await?;
            let mut fleet = Fleet::new(
                &m.api,
                FleetConfig {
                    workers: w,
                    prefix: "mw".into(),
                    size: Size::Tiny,
                    heartbeat_conns: self.heartbeat_conns.min(w),
                    interval: Duration::from_secs(1),
                    tolerant: false,
                },
            );
            fleet.start_heartbeats();
            let took = fleet.register_all(self.preload_conns).await?;
            // Two full heartbeat rounds after the last registration.
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            if let Some(e) = fleet.fatal() {
                bail!("a simulated worker failed: {e}");
            }
            let after = m.proc.rss()?;
            let stats = fleet.stats();
            drop(fleet);
            let per_worker = (after as f64 - empty as f64) / w as f64;
            table.row(vec![
                "registered workers, heartbeating".into(),
                count(w as u64),
                bytes(empty as f64),
                bytes(after as f64),
                bytes(after as f64 - empty as f64),
                bytes(per_worker),
            ]);
            report.notes.push(format!(
                "workers: registered in {} with the join token, each then heartbeating with its \
                 own credential (its token record is in the figure); heartbeats over {} shared \
                 connections (their buffers are in the figure, amortised; no long-poll \
                 connections open)",
                dur(took),
                self.heartbeat_conns.min(w),
            ));
            report.check(
                "RSS growth per worker",
                bytes(per_worker),
                &format!("≤ {}", bytes(WORKER_BOUND)),
                per_worker <= WORKER_BOUND,
            );
            report.set(
                "workers",
                json!({
                    "workers": w,
                    "rss_empty": empty,
                    "rss_after": after,
                    "bytes_per_worker": per_worker,
                    "heartbeat_conns": self.heartbeat_conns.min(w),
                    "fleet": stats.json(),
                }),
            );
        }
        report.tables.push(table);
        Ok(report)
    }
}
