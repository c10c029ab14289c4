//! One module per command.

mod dev;
mod gc;
mod health;
mod logs;
mod run;
mod scheduler;
mod server;
mod status;
mod stop;
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
    }
}

/// The HTTP client for the manager at `addr`.
fn client(addr: &ManagerAddr) -> Result<HttpTransport> {
    Ok(HttpTransport::new(&addr.manager)?)
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
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints rows as an aligned table; the first row is the header.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
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
