//! `orkestrator logs JOB [--task T] [--index N] [--tail N] [--since WHEN] [-f]`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use orkestrator_core::api::LogsQuery;
use orkestrator_core::ids::JobId;
use tokio::io::AsyncWriteExt as _;

use crate::cli::{LogsArgs, Output};
use crate::output::{exit, fail};

pub async fn run(a: LogsArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let job = JobId::new(a.job);
    let q = LogsQuery {
        task: a.task,
        index: Some(a.index),
        tail: Some(a.tail),
        since: a.since,
        follow: a.follow,
    };
    if a.follow {
        if matches!(a.output, Output::Json) {
            return Err(fail(
                exit::USAGE,
                "--follow prints the output as it comes; it has no JSON form (leave out -o json)",
            ));
        }
        return follow(&client, &job, &q).await;
    }
    let logs = client.logs(&job, &q).await?;
    match a.output {
        Output::Json => crate::outln!("{}", serde_json::to_string_pretty(&logs)?),
        Output::Table => {
            crate::errln!(
                "task {} of instance {} ({}) on worker {}:",
                logs.task,
                logs.index,
                logs.instance,
                logs.worker
            );
            let mut out = std::io::stdout().lock();
            let written = out.write_all(logs.text.as_bytes()).and_then(|()| {
                if !logs.text.is_empty() && !logs.text.ends_with('\n') {
                    out.write_all(b"\n")?;
                }
                out.flush()
            });
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("cannot write to standard output")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the output as it arrives until the job ends, Ctrl-C, or standard output is closed
/// (all three end quietly, with success).
async fn follow(
    client: &orkestrator_runtime::HttpTransport,
    job: &JobId,
    q: &LogsQuery,
) -> Result<ExitCode> {
    let stop = crate::signals::shutdown_signal();
    tokio::pin!(stop);
    let mut stream = tokio::select! {
        _ = &mut stop => return Ok(ExitCode::SUCCESS),
        s = client.follow_logs(job, q) => s?,
    };
    let mut out = tokio::io::stdout();
    loop {
        let chunk = tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            c = stream.next() => c,
        };
        let bytes = match chunk {
            None => return Ok(ExitCode::SUCCESS),
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(e).context(format!("following the output of {job}")),
        };
        let written = async {
            out.write_all(&bytes).await?;
            out.flush().await
        };
        match written.await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e).context("cannot write to standard output"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::{Cli, Command};
    use crate::output::{Exit, exit};

    #[tokio::test]
    async fn follow_with_json_output_is_a_usage_error() {
        let cli = Cli::try_parse_from(["orkestrator", "logs", "web", "-f", "-o", "json"]).unwrap();
        let Command::Logs(a) = cli.command else {
            panic!("not logs: {:?}", cli.command);
        };
        let e = super::run(a).await.unwrap_err();
        let x = e.downcast_ref::<Exit>().expect("an exit code");
        assert_eq!(x.code, exit::USAGE, "{e}");
        assert!(x.message.contains("no JSON form"), "{e}");
    }
}
