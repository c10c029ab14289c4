//! One module per command.

mod compose;
mod dev;
mod events;
mod gc;
mod ha;
mod health;
mod logs;
mod restart;
mod run;
mod scheduler;
mod secret;
mod server;
mod status;
mod stop;
mod store;
mod tls;
mod token;
mod top;
mod validate;
mod volume;
mod worker;
mod workers;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Command;

/// Runs one command.
pub async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Server(a) => server::run(a).await,
        Command::Worker(a) => worker::run(a).await,
        Command::Scheduler(a) => scheduler::run(a).await,
        Command::Dev(a) => dev::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Compose(c) => compose::run(c).await,
        Command::Status(a) => status::run(a).await,
        Command::Stop(a) => stop::run(a).await,
        Command::Restart(a) => restart::run(a).await,
        Command::Logs(a) => logs::run(a).await,
        Command::Workers(a) => workers::run(a).await,
        Command::Health(a) => health::run(a).await,
        Command::Gc(a) => gc::run(a).await,
        Command::Validate(a) => validate::run(a).await,
        Command::Events(a) => events::run(a).await,
        Command::Top(a) => top::run(a).await,
        Command::Token(c) => token::run(c).await,
        Command::Secret(c) => secret::run(c).await,
        Command::Secrets(a) => secret::run(crate::cli::SecretCommand::List(a)).await,
        Command::Volume(c) => volume::run(c).await,
        Command::Volumes(a) => volume::run(crate::cli::VolumeCommand::List(a)).await,
        Command::Tls(a) => tls::run(a),
        Command::Store(a) => store::run(a).await,
    }
}
