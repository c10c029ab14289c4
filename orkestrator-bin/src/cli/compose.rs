//! The arguments of `compose up`, `compose down` and `compose convert`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::common::{ManagerAddr, Output, duration};
use super::jobs::PrintFormat;

/// `compose`: run a Compose file as a job.
#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Build the file's images, create its secrets, and submit it as one job (each service a
    /// task, all on one worker).
    Up(ComposeUpArgs),
    /// Stop the project's job; `-v` also removes its volumes and the secrets `up` created.
    Down(ComposeDownArgs),
    /// Print the job the file becomes (warnings and refusals on standard error).
    Convert(ComposeConvertArgs),
}

/// What reads a project: its files, name, variables and profiles.
#[derive(Debug, Args, Clone)]
pub struct ProjectArgs {
    /// The Compose file (repeat to merge several, later ones winning). Default: compose.yaml,
    /// compose.yml, docker-compose.yml or docker-compose.yaml in the current directory.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The project's name (and the job's). Default: COMPOSE_PROJECT_NAME, then the file's
    /// `name:`, then the directory's name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// A variables file to read instead of the project's `.env`.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// A profile to activate (repeatable; COMPOSE_PROFILES adds more).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Make every warning an error: refuse the file unless all of it carries over.
    #[arg(long)]
    pub strict: bool,
}

/// `compose up`.
#[derive(Debug, Args)]
pub struct ComposeUpArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Wait until the job is Running (or Completed); exit 1 if it fails.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub timeout: Duration,
    /// Push built images to this registry (`host:port`) and name them there, so that workers
    /// on any host pull them. Without it, a job with built images runs only on workers of the
    /// engine that built them.
    #[arg(long, value_name = "REGISTRY")]
    pub push: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `compose down`.
#[derive(Debug, Args)]
pub struct ComposeDownArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Also remove the project's volumes, and the secrets `up` created.
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// How long to wait for the job's containers to be gone.
    #[arg(long, default_value = "2m", value_parser = duration)]
    pub timeout: Duration,
    /// Where the manager is.
    #[command(flatten)]
    pub addr: ManagerAddr,
}

/// `compose convert`.
#[derive(Debug, Args)]
pub struct ComposeConvertArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The job file's format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: PrintFormat,
}
