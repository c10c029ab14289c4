//! One module per command.

mod dev;
mod events;
mod follow;
mod gc;
mod health;
mod logs;
mod run;
mod scheduler;
mod server;
mod status;
mod stop;
mod top;
mod validate;
mod worker;
mod workers;

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_runtime::HttpTransport;

use crate::cli::{Command, ManagerAddr};

/// Runs one command.
pub async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Server(a) => server::run(a).await,
        Command::Worker(a) => worker::run(a).await,
        Command::Scheduler(a) => scheduler::run(a).await,
        Command::Dev(a) => dev::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Status(a) => status::run(a).await,
        Command::Stop(a) => stop::run(a).await,
        Command::Logs(a) => logs::run(a).await,
        Command::Workers(a) => workers::run(a).await,
        Command::Health(a) => health::run(a).await,
        Command::Gc(a) => gc::run(a).await,
        Command::Validate(a) => validate::run(a),
        Command::Events(a) => events::run(a).await,
        Command::Top(a) => top::run(a).await,
    }
}

/// The HTTP client for the manager at `addr`.
fn client(addr: &ManagerAddr) -> Result<HttpTransport> {
    HttpTransport::new(&addr.manager)
        .map_err(|e| crate::output::fail(crate::output::exit::USAGE, format!("--manager: {e}")))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Prints a value as pretty JSON.
fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a value as JSON on one line.
fn print_json_line<T: serde::Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// "3s ago", "2m ago".
fn ago(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else {
        format!("{}h ago", s / 3600)
    }
}
