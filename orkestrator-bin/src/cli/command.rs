//! The command line: the subcommands and the options every command takes.

use clap::{Parser, Subcommand, ValueEnum};

use super::admin::{
    SecretCommand, StoreArgs, TlsArgs, TokenCommand, VolumeCommand, VolumeListArgs,
};
use super::common::OutputArgs;
use super::daemons::{DevArgs, SchedulerArgs, ServerArgs, WorkerArgs};
use super::jobs::{
    EventsArgs, LogsArgs, RestartArgs, RunArgs, StatusArgs, StopArgs, TopArgs, ValidateArgs,
};

/// Orkestrator: a container orchestrator. Run a manager, workers and schedulers; submit jobs.
#[derive(Debug, Parser)]
#[command(name = "orkestrator", version, about, long_about = None, after_help = after_help())]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How to write logs (on standard error): `text` for people, `json` for one JSON object a
    /// line (for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "ORKESTRATOR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// The top-level `--help` epilogue: the original flags and the exit codes.
fn after_help() -> String {
    format!("{SEED_HELP}\n\n{}", crate::output::EXIT_CODES_HELP)
}

const SEED_HELP: &str = "\
The original flags work too:
  orkestrator -server -port 5555               (= server --port 5555)
  orkestrator -worker -port 5555               (= worker --manager http://127.0.0.1:5555)
  orkestrator -client -file job.yaml -port 5555 (= run -f job.yaml --manager http://127.0.0.1:5555)";

/// The subcommands.
// Parsed once per process: the size of the largest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the manager (the API server), with an embedded scheduler.
    Server(ServerArgs),
    /// Run a worker: runs assigned tasks on the local Docker engine.
    Worker(WorkerArgs),
    /// Run a scheduler as its own process.
    Scheduler(SchedulerArgs),
    /// Run manager, scheduler and one worker in one process (a local cluster for trying things).
    Dev(DevArgs),
    /// Submit a job file.
    Run(RunArgs),
    /// Run a Compose file as it is: `compose up`, `compose down`, `compose convert`.
    #[command(subcommand)]
    Compose(super::compose::ComposeCommand),
    /// Show jobs, or one job in detail.
    Status(StatusArgs),
    /// Stop a job: its containers are stopped and removed.
    Stop(StopArgs),
    /// Restart a job under its current version (no new version): a running job's instances are
    /// replaced one at a time, as a new version rolls out; an ended one starts them all at once.
    Restart(RestartArgs),
    /// Show the last lines a job's task wrote (stdout and stderr), read from its worker.
    Logs(LogsArgs),
    /// List workers and their resources.
    Workers(OutputArgs),
    /// Show the health of every component and job.
    Health(OutputArgs),
    /// Collect garbage now: remove jobs, instances and workers that ended longer ago than the
    /// manager's --gc-after.
    Gc(OutputArgs),
    /// Check a job file without submitting it.
    Validate(ValidateArgs),
    /// Follow the manager's events (jobs, tasks, workers, schedulers) as they happen.
    Events(EventsArgs),
    /// Create, list and revoke the manager's tokens (operators only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, update, list and remove secrets, kept encrypted by the manager (operators only).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// List secrets (as `secret list`): names, versions, sizes and times, never values.
    Secrets(OutputArgs),
    /// List and remove named volumes (where each instance's data lives).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// List named volumes (as `volume list`).
    Volumes(VolumeListArgs),
    /// A live view of the jobs' tasks (or the workers') with their CPU and memory use.
    Top(TopArgs),
    /// Create the cluster's TLS certificates (a CA and the manager's), or issue more from its CA.
    Tls(TlsArgs),
    /// Work on a manager's stored state: `store copy` moves a cluster from redb onto etcd.
    Store(StoreArgs),
}

#[cfg(test)]
mod tests {
    use super::super::seed::translate_seed_args;
    use super::*;

    #[test]
    fn every_translation_parses() {
        for line in [
            "orkestrator -server -port 5555",
            "orkestrator -worker -port 5555",
            "orkestrator -client -file job.yaml -port 5555",
        ] {
            let args = translate_seed_args(line.split_whitespace().map(String::from).collect());
            Cli::try_parse_from(args).unwrap();
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
