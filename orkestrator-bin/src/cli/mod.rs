//! Command-line definitions (clap derive) and the translation of the original single-dash flags.
//!
//! From the ground up: `common` (what many commands share: where the manager is, output, TLS
//! files, value parsers), the arguments of the daemons (`daemons`), of the commands that work on
//! jobs (`jobs`) and of the administration commands (`admin`), then `command` (the command line
//! itself); `seed` rewrites the original flags before clap sees them.

mod admin;
mod command;
mod common;
mod compose;
mod daemons;
mod jobs;
mod seed;

pub use admin::{
    SecretCommand, SecretRotateKeyArgs, SecretWriteArgs, StoreArgs, StoreCommand, StoreCopyArgs,
    TlsArgs, TlsCertArgs, TlsCommand, TlsInitArgs, TokenCommand, VolumeCommand,
};
pub use command::{Cli, Command, LogFormat};
pub use common::{JoinArgs, ManagerAddr, Output, OutputArgs, TlsFiles};
pub use compose::{
    ComposeCommand, ComposeConvertArgs, ComposeDownArgs, ComposeUpArgs, ProjectArgs,
};
pub use daemons::{DevArgs, EtcdArgs, SchedulerArgs, ServerArgs, WorkerArgs};
pub use jobs::{
    EventsArgs, LogsArgs, PrintFormat, RestartArgs, RunArgs, StatusArgs, StopArgs, TopArgs,
    ValidateArgs,
};
pub use seed::translate_seed_args;
