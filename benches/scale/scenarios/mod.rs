//! The scenarios, one file each, and what they share.

mod c1m;
mod decay;
mod memory;
mod quick;
mod restart;
mod submit;

use std::time::Duration;

use anyhow::Result;

use crate::client::Api;
use crate::manager_proc::{Launcher, ManagerProc};
use crate::report::Report;
use crate::{Opts, Scenario};

pub use c1m::C1m;
pub use decay::Decay;
pub use memory::Memory;
pub use restart::Restart;
pub use submit::Submit;

/// Runs the scenario the options name.
pub async fn run(opts: &Opts, launcher: &Launcher) -> Result<Report> {
    let workers = |default: usize| opts.workers.unwrap_or(default);
    match opts.scenario {
        Scenario::Submit => {
            Submit {
                levels: opts.concurrency.clone(),
                duration: opts.level(),
                floors: true,
            }
            .run(launcher)
            .await
        }
        Scenario::Decay => {
            Decay {
                base_tasks: opts.base_tasks,
                tasks: opts.tasks,
                duration: opts.level(),
                preload_conns: opts.preload_conns,
                floor: 0.8,
            }
            .run(launcher)
            .await
        }
        Scenario::Memory => {
            Memory {
                tasks: opts.tasks,
                workers: Some(workers(10_000)),
                heartbeat_conns: opts.heartbeat_conns,
                preload_conns: opts.preload_conns,
                task_bound: 1024.0,
            }
            .run(launcher)
            .await
        }
        Scenario::Restart => {
            Restart {
                tasks: opts.tasks,
                workers: workers(1_000),
                heartbeat_conns: opts.heartbeat_conns,
                preload_conns: opts.preload_conns,
                floors: true,
            }
            .run(launcher)
            .await
        }
        Scenario::C1m => {
            C1m {
                workers: workers(10_000),
                jobs: opts.jobs,
                count: opts.count.clamp(1, crate::load::MAX_COUNT),
                heartbeat_conns: opts.heartbeat_conns,
                timeout: Duration::from_secs_f64(opts.timeout),
                idle_window: Duration::from_secs(5),
                floors: true,
            }
            .run(launcher)
            .await
        }
        Scenario::Quick => quick::run(opts, launcher).await,
    }
}

/// A manager on a data directory of its own; both go away together (the process first).
pub struct Managed {
    /// The manager.
    pub proc: ManagerProc,
    /// Where it listens and the tokens it wrote (they outlast a restart on the same directory).
    pub api: Api,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

impl Managed {
    /// Starts a manager with the default flags plus `args` on a fresh data directory, and reads
    /// the operator and join tokens it wrote there.
    pub async fn start(launcher: &Launcher, args: &[&str]) -> Result<Self> {
        let dir = launcher.data_dir()?;
        let proc = launcher.start(dir.path(), args).await?;
        let api = Api::read(proc.addr, dir.path()).map_err(|e| e.context(proc.log_tail()))?;
        if !api.has_tokens() {
            eprintln!(
                "scale: the manager wrote no tokens in its data directory (a build from before \
                 issue 11?): requests carry none"
            );
        }
        Ok(Managed { proc, api, dir })
    }
}

/// The manager's and the generator's CPU over a stretch of a run.
pub struct CpuWindow {
    manager: Duration,
    generator: Duration,
    start: std::time::Instant,
}

impl CpuWindow {
    /// Starts counting now.
    pub fn start(m: &ManagerProc) -> Result<Self> {
        Ok(CpuWindow {
            manager: m.cpu()?,
            generator: crate::manager_proc::self_cpu()?,
            start: std::time::Instant::now(),
        })
    }

    /// (manager CPU, generator CPU, wall time) since the start.
    pub fn read(&self, m: &ManagerProc) -> Result<(Duration, Duration, Duration)> {
        Ok((
            m.cpu()?.saturating_sub(self.manager),
            crate::manager_proc::self_cpu()?.saturating_sub(self.generator),
            self.start.elapsed(),
        ))
    }
}

/// CPU time as a share of one core over `wall` ("0.85 cores").
pub fn cores(cpu: Duration, wall: Duration) -> String {
    if wall.is_zero() {
        return "n/a".into();
    }
    format!("{:.2}", cpu.as_secs_f64() / wall.as_secs_f64())
}
