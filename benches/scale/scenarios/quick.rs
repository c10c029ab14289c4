//! `quick`: small versions of every scenario for CI. Its bounds compare figures of the same run
//! only (a ratio against a baseline, bytes per item against an empty manager), never an absolute
//! time: CI machines are too noisy for those.

use std::time::Duration;

use anyhow::Result;

use super::{C1m, Decay, Memory, Submit};
use crate::Opts;
use crate::manager_proc::Launcher;
use crate::report::Report;

/// Adds a part's report, or its error as a failed bound (the other parts still run).
fn take(report: &mut Report, part: &str, r: Result<Report>) {
    match r {
        Ok(r) => report.absorb(r),
        Err(e) => {
            eprintln!("scale: quick: {part} failed: {e:#}");
            report.notes.push(format!("{part} failed: {e:#}"));
            report.check(
                &format!("{part} ran to the end"),
                "error (see above)".into(),
                "no error",
                false,
            );
        }
    }
}

/// How long the quick c1m part may take at most (seconds): a guard against a hang, far above
/// what a manager that scales needs for 20,000 tasks, not a bound on its speed.
const QUICK_C1M_TIMEOUT: f64 = 60.0;

/// Runs the quick mode.
pub async fn run(opts: &Opts, launcher: &Launcher) -> Result<Report> {
    let started = std::time::Instant::now();
    let level = Duration::from_secs(3);
    let mut report = Report::new("quick");

    let part = |name: &str| {
        eprintln!(
            "scale: quick: {name} ({:.0} s so far)",
            started.elapsed().as_secs_f64()
        )
    };

    part("submit at concurrency 16");
    let r = Submit {
        levels: vec![16],
        duration: level,
        floors: false,
    }
    .run(launcher)
    .await;
    take(&mut report, "submit", r);
    part("decay, 100 vs 100,000 tasks present");
    let r = Decay {
        base_tasks: 100,
        tasks: 100_000,
        duration: level,
        preload_conns: opts.preload_conns,
        floor: 0.5,
    }
    .run(launcher)
    .await;
    take(&mut report, "decay", r);
    part("memory at 100,000 tasks");
    let r = Memory {
        tasks: 100_000,
        workers: None,
        heartbeat_conns: opts.heartbeat_conns,
        preload_conns: opts.preload_conns,
        task_bound: 4096.0,
    }
    .run(launcher)
    .await;
    take(&mut report, "memory", r);
    part("c1m, 200 workers and 20,000 tasks");
    let r = C1m {
        workers: 200,
        jobs: 20,
        count: 1_000,
        heartbeat_conns: opts.heartbeat_conns.min(16),
        timeout: Duration::from_secs_f64(opts.timeout.min(QUICK_C1M_TIMEOUT)),
        idle_window: Duration::from_secs(2),
        floors: false,
    }
    .run(launcher)
    .await;
    take(&mut report, "c1m", r);
    report.notes.push(format!(
        "quick mode took {:.0} s in all",
        started.elapsed().as_secs_f64()
    ));
    Ok(report)
}
