//! The arguments of the commands that work on jobs and watch the cluster: `run`, `status`,
//! `stop`, `restart`, `logs`, `validate`, `events` and `top`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use orkestrator_core::events::{StreamStart, Topic};

use super::common::{ManagerAddr, Output, OutputArgs, duration};

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
    /// The job file (`.yaml`, `.yml`, `.toml`, `.json`; `-` for standard input).
    #[arg(short, long, value_name = "FILE", required_unless_present = "path")]
    pub file: Option<PathBuf>,
    /// The job file, as a positional argument.
    #[arg(value_name = "FILE", conflicts_with = "file")]
    pub path: Option<PathBuf>,
    /// Wait until the job is Running or Completed (exit 1 if it fails).
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A job to show in detail; all jobs if left out.
    pub job: Option<String>,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The job.
    pub job: String,
    /// Wait until its containers are gone.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "2m", value_parser = duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The job.
    pub job: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job.
    pub job: String,
    /// The task (may be left out when the job has one task).
    #[arg(short, long)]
    pub task: Option<String>,
    /// Which copy of the job (0-based).
    #[arg(short, long, default_value_t = 0)]
    pub index: u32,
    /// How many of the last lines (1 to 10000).
    #[arg(short = 'n', long, default_value_t = 100)]
    pub tail: usize,
    /// Only output written since then: a duration ago (10m, 1h30m) or a time
    /// (2024-05-01T12:00:00Z, or Unix seconds).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Keep printing the output as it is written, on into the task's next container when it is
    /// restarted or replaced, until the job stops (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Output format (`json` only without --follow).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The job file (`.yaml`, `.yml`, `.toml`, `.json`; `-` for standard input).
    #[arg(short, long, value_name = "FILE", required_unless_present = "path")]
    pub file: Option<PathBuf>,
    /// The job file, as a positional argument.
    #[arg(value_name = "FILE", conflicts_with = "file")]
    pub path: Option<PathBuf>,
    /// Print the job as Orkestrator reads it (defaults filled in), in this format.
    #[arg(long, value_enum, conflicts_with = "output")]
    pub print: Option<PrintFormat>,
    /// Output format of the verdict (`json`: valid, the job's name, needs, or the problems).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this job's events (its job and task topics).
    #[arg(long, conflicts_with = "key", value_name = "JOB")]
    pub job: Option<String>,
    /// Only these topics: job, task, worker, scheduler, manager (comma-separated, repeatable).
    #[arg(long = "topic", value_delimiter = ',', value_name = "TOPIC")]
    pub topics: Vec<Topic>,
    /// Only events about this key: a job name, a worker id or a scheduler id.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Start with the events of this commit index (`N`), or after this event id (`N.S`), instead
    /// of with the next event. Events the manager no longer holds are reported as a reset.
    #[arg(long, value_name = "N|N.S")]
    pub from_index: Option<StreamStart>,
    /// Output format (`json`: one JSON object per line).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Only this job's tasks.
    #[arg(conflicts_with = "workers")]
    pub job: Option<String>,
    /// Show the workers (host CPU and memory) instead of the tasks.
    #[arg(long)]
    pub workers: bool,
    /// How often to refresh.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub interval: Duration,
    /// Print one snapshot and exit (also what happens when standard output is not a terminal).
    #[arg(long)]
    pub once: bool,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// A format to print a job in.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PrintFormat {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}
