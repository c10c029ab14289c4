//! `scale`: the manager at scale (issue 9), measured from outside over HTTP.
//!
//! Starts a release `orkestrator server` as a child process on a fresh data directory (durable),
//! drives it with lean HTTP/1.1 requesters and simulated workers, reads its CPU and memory from
//! `/proc`, prints a table per scenario (and `--json`), and exits non-zero when a bound fails.

mod client;
mod load;
mod manager_proc;
mod report;
mod scenarios;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use manager_proc::Launcher;

const ABOUT: &str = "\
The manager at scale (issue 9), measured from outside over HTTP on loopback.

Build the manager first: `cargo build --release -p orkestrator-bin`; then
`cargo run --release -p orkestrator-benches --bin scale -- SCENARIO [options]`.
The manager runs as a child process (`orkestrator server --data-dir TMP`, durable), found next to
this program in target/release, or given with --orkestrator-bin / ORKESTRATOR_BIN. Any non-2xx
answer fails a run. Exits 1 when a bound is not met (unless --report-only), 2 on an error.";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Durable submissions at each --concurrency: throughput, p50, p99, store commit latency.
    Submit,
    /// Submissions at 64 into an empty manager, then with --tasks pending tasks present: the ratio.
    Decay,
    /// RSS growth per pending task (--tasks) and per registered worker (--workers).
    Memory,
    /// kill -9 with --tasks in the store and --workers heartbeating: time to the first
    /// acknowledged write, and no worker down.
    Restart,
    /// C1M in a box: --workers simulated workers, --jobs × --count tasks until all Running.
    C1m,
    /// Small versions of all of them for CI (bounds relative to the same run only).
    Quick,
}

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "scale", about = ABOUT)]
pub struct Opts {
    /// The scenario.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The release `orkestrator` binary (default: next to this program).
    #[arg(long, env = "ORKESTRATOR_BIN")]
    pub orkestrator_bin: Option<PathBuf>,
    /// Where data directories are made (default: the system's temporary directory).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// An extra flag for `orkestrator server` (repeatable), e.g. `--manager-arg=--scheduler=binpack`.
    #[arg(long = "manager-arg", allow_hyphen_values = true)]
    pub manager_args: Vec<String>,
    /// Seconds of load per measured level.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Concurrency levels of `submit` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub concurrency: Vec<usize>,
    /// Pending tasks pre-loaded (`decay`, `memory`, `restart`), as jobs of count 1,000.
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// Pending tasks present for `decay`'s baseline level (0: an empty manager).
    #[arg(long, default_value_t = 0)]
    pub base_tasks: u64,
    /// Simulated workers (default: 10,000 for memory and c1m, 1,000 for restart).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Jobs submitted by `c1m`.
    #[arg(long, default_value_t = 1_000)]
    pub jobs: u64,
    /// Instances per job of `c1m` (at most 1,000).
    #[arg(long, default_value_t = 1_000)]
    pub count: u64,
    /// Connections shared by the simulated workers' heartbeats (each sends its workers'
    /// heartbeats one after another, so the manager must answer one within
    /// conns / workers seconds for every worker to keep its 1 s rhythm).
    #[arg(long, default_value_t = 256)]
    pub heartbeat_conns: usize,
    /// Connections used to pre-load tasks and register workers.
    #[arg(long, default_value_t = 4)]
    pub preload_conns: usize,
    /// Seconds `c1m` waits for every task to be Running before it fails.
    #[arg(long, default_value_t = 900.0)]
    pub timeout: f64,
    /// Seconds a manager may take to answer its first `GET /v1/health`.
    #[arg(long, default_value_t = 120.0)]
    pub start_deadline: f64,
    /// Print the figures as one JSON object on standard output (the tables then go to standard
    /// error).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 even when a bound is not met (the verdicts are printed all the same).
    #[arg(long)]
    pub report_only: bool,
}

impl Opts {
    /// `--duration` as a duration.
    pub fn level(&self) -> Duration {
        Duration::from_secs_f64(self.duration.max(0.1))
    }
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(&opts)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scale: {:?} failed: {e:#}", opts.scenario);
            ExitCode::from(2)
        }
    }
}

async fn run(opts: &Opts) -> Result<ExitCode> {
    raise_fd_limit();
    let launcher = Launcher {
        bin: Launcher::find_bin(opts.orkestrator_bin.clone())?,
        data_root: opts.data_root.clone().unwrap_or_else(std::env::temp_dir),
        extra_args: opts.manager_args.clone(),
        start_deadline: Duration::from_secs_f64(opts.start_deadline),
    };
    let started = chrono_free_stamp();
    let load_before = load_average();
    let mut report = scenarios::run(opts, &launcher).await?;
    let load_after = load_average();
    report.notes.push(format!(
        "machine: {} cores; load average (1 min) {load_before} at the start, {load_after} at the end",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    if opts.json {
        // Standard output stays one JSON object; the tables go to standard error.
        eprint!("{}", report.render());
    } else {
        print!("{}", report.render());
    }
    if opts.json {
        let mut v = report.json();
        v["started_unix_s"] = started.into();
        v["load_average_start"] = load_before.into();
        v["load_average_end"] = load_after.into();
        println!("{v}");
    }
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in &failures {
        eprintln!(
            "scale: bound not met: {}: measured {}, bound {}",
            f.what, f.measured, f.bound
        );
    }
    Ok(if opts.report_only {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The 1-minute load average (`/proc/loadavg`), as written there.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}

/// Seconds since the Unix epoch.
fn chrono_free_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Thousands of simulated workers need thousands of sockets: soft limit → hard limit.
fn raise_fd_limit() {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard) {
                eprintln!("scale: cannot raise the open-files limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("scale: cannot read the open-files limit: {e}"),
    }
}
