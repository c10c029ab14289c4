//! `orkestrator logs JOB [--task T] [--index N] [--tail N]`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::LogsQuery;
use orkestrator_core::ids::JobId;

use crate::cli::{LogsArgs, Output};

pub async fn run(a: LogsArgs) -> Result<ExitCode> {
    let client = super::client(&a.addr)?;
    let q = LogsQuery {
        task: a.task,
        index: Some(a.index),
        tail: Some(a.tail),
        ..LogsQuery::default()
    };
    let logs = client.logs(&JobId::new(a.job), &q).await?;
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&logs)?),
        Output::Table => {
            eprintln!(
                "task {} of instance {} ({}) on worker {}:",
                logs.task, logs.index, logs.instance, logs.worker
            );
            let mut out = std::io::stdout().lock();
            out.write_all(logs.text.as_bytes())?;
            if !logs.text.is_empty() && !logs.text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
