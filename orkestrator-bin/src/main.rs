//! The `orkestrator` command: a thin layer over `orkestrator-core` and `orkestrator-runtime`.
//! Parse flags, wire the pieces, print results; no business logic here.

#[macro_use]
mod output;
mod cli;
mod cmd;
mod connect;
mod creds;
mod dirs;
mod follow;
mod launch;
mod limits;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormat};
use output::{Exit, StdoutClosed, exit};

fn main() -> ExitCode {
    let args = cli::translate_seed_args(std::env::args().collect());
    let cli = Cli::parse_from(args);
    let daemon = matches!(
        cli.command,
        Command::Server(_) | Command::Worker(_) | Command::Scheduler(_) | Command::Dev(_)
    );
    init_tracing(daemon, cli.log_format);
    limits::raise_open_files_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(cmd::dispatch(cli.command));
    // Pending tasks (a progress bar's ticker, a stream being read) must not outlive the answer.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            match e.downcast_ref::<Exit>() {
                Some(x) if x.message.is_empty() => {}
                Some(x) => errln!("error: {}", x.message),
                None if e.downcast_ref::<StdoutClosed>().is_some() => {}
                None => errln!("error: {e:#}"),
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code for an error that ended a command (the scheme is in `--help`).
fn exit_code(e: &anyhow::Error) -> u8 {
    use orkestrator_core::Error;
    for cause in e.chain() {
        if cause.downcast_ref::<StdoutClosed>().is_some() {
            return exit::OK;
        }
        if let Some(x) = cause.downcast_ref::<Exit>() {
            return x.code;
        }
        if let Some(err) = cause.downcast_ref::<Error>() {
            return match err {
                Error::Unreachable { .. } => exit::UNREACHABLE,
                Error::Api(_) => exit::REFUSED,
                Error::Read { .. }
                | Error::UnknownFormat { .. }
                | Error::Syntax { .. }
                | Error::Invalid(_)
                | Error::Tls { .. } => exit::USAGE,
                _ => exit::FAILED,
            };
        }
    }
    exit::FAILED
}

fn init_tracing(daemon: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = if daemon { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("ORKESTRATOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(output::color_stderr()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init(),
    };
}
