//! `orkestrator run -f FILE [--wait]` (and the seed's `-client -file FILE`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use orkestrator_core::Error;
use orkestrator_core::api::{JobPhase, SubmitOutcome};
use orkestrator_core::spec::load_job_file;
use orkestrator_core::transport::Transport;

use crate::cli::{Output, RunArgs};

pub async fn run(a: RunArgs) -> Result<ExitCode> {
    let path = a.file.or(a.path).expect("clap requires a file");
    // Validate locally first: the same errors as `validate`, without a round trip.
    let job = match load_job_file(&path) {
        Ok(j) => j,
        Err(Error::Invalid(problems)) => {
            eprintln!(
                "{}: invalid job spec ({} problems):",
                path.display(),
                problems.len()
            );
            for p in problems.iter() {
                eprintln!("  {p}");
            }
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let client = super::client(&a.addr)?;
    let r = client.submit_job(&job).await?;
    if a.output == Output::Json && !a.wait {
        super::print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = match r.outcome {
        SubmitOutcome::Created => "submitted",
        SubmitOutcome::Updated => "updated",
        SubmitOutcome::Unchanged => "unchanged (identical spec already submitted)",
    };
    if a.output == Output::Table {
        println!("job {} {what} (version {})", r.job, r.version);
    }
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for(&client, &r.job, a.timeout, a.output).await
}

/// How long `Running` must hold before `--wait` calls it a success.
const SETTLE: Duration = Duration::from_secs(2);

/// Waits until the job is Running or Completed (0), Failed (1), or the timeout passes (1),
/// printing each phase change.
pub async fn wait_for(
    client: &impl Transport,
    job: &orkestrator_core::ids::JobId,
    timeout: Duration,
    output: Output,
) -> Result<ExitCode> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<(JobPhase, Option<String>)> = None;
    let mut running_since: Option<tokio::time::Instant> = None;
    loop {
        let v = client.get_job(job).await?;
        let reason = v.instances.first().and_then(|i| {
            i.pending_reason.clone().or_else(|| {
                i.tasks
                    .iter()
                    .find_map(|(n, t)| t.reason.as_ref().map(|r| format!("task {n}: {r}")))
            })
        });
        let now = (v.phase, reason.clone());
        if last.as_ref() != Some(&now) && output == Output::Table {
            match &reason {
                Some(r) => println!("{}: {} — {r}", v.name, v.phase),
                None => println!("{}: {}", v.name, v.phase),
            }
        }
        last = Some(now);
        running_since = match v.phase {
            JobPhase::Running => Some(running_since.unwrap_or_else(tokio::time::Instant::now)),
            _ => None,
        };
        // `Running` must hold for a moment: a task that exits right after it starts is reported
        // on the worker's next check, and `--wait` must not call such a job a success.
        let settled = running_since.is_some_and(|t| t.elapsed() >= SETTLE);
        match v.phase {
            JobPhase::Running if !settled => {}
            JobPhase::Running | JobPhase::Completed => {
                if output == Output::Json {
                    super::print_json(&v)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            JobPhase::Failed | JobPhase::Stopped => {
                if output == Output::Json {
                    super::print_json(&v)?;
                }
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "{}: still {} after {}",
                v.name,
                v.phase,
                orkestrator_core::units::format_duration(timeout)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
