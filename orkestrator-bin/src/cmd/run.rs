//! `orkestrator run -f FILE [--wait]` (and the seed's `-client -file FILE`). Files' `source` is
//! read (relative to the job file) into their content before the job is sent.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::Error;
use orkestrator_core::api::SubmitOutcome;
use orkestrator_core::spec::{MAX_SPEC_BYTES, load_job_file};
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, RunArgs};
use crate::follow::{Goal, wait};
use crate::output::exit;

pub async fn run(a: RunArgs) -> Result<ExitCode> {
    let path = a.file.or(a.path).expect("clap requires a file");
    if crate::cmd::compose::is_compose_file(&path) {
        errln!(
            "{}: this is a Compose file: use `orkestrator compose up -f {}` (it also builds the images and creates the secrets)",
            path.display(),
            path.display()
        );
        return Ok(ExitCode::from(exit::USAGE));
    }
    // Validate locally first: the same errors as `validate`, without a round trip.
    let job = match load_job_file(&path) {
        Ok(j) => j,
        Err(Error::Invalid(problems)) => {
            errln!(
                "{}: invalid job spec ({} problems):",
                path.display(),
                problems.len()
            );
            for p in problems.iter() {
                errln!("  {p}");
            }
            return Ok(ExitCode::from(exit::USAGE));
        }
        Err(e) => {
            errln!("{}: {e}", path.display());
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    // Files' `source` is read into the job: what is sent may be larger than the file.
    let sent = serde_json::to_vec(&job)?.len();
    if sent > MAX_SPEC_BYTES {
        errln!(
            "{}: the job is {sent} bytes as sent, with the content of its files; the manager takes at most {MAX_SPEC_BYTES} (MAX_SPEC_BYTES): make its files smaller",
            path.display()
        );
        return Ok(ExitCode::from(exit::USAGE));
    }
    let client = crate::connect::client(&a.addr)?;
    let r = client.submit_job(&job).await?;
    if a.output == Output::Json && !a.wait {
        crate::output::print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = outcome(r.outcome);
    if a.output == Output::Table {
        outln!("job {} {what} (version {})", r.job, r.version);
    }
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait(&client, &r.job, r.index, Goal::Running, a.timeout, a.output).await
}

/// What a submission did, in words (`run` and `compose up` say it alike).
pub(crate) fn outcome(o: SubmitOutcome) -> &'static str {
    match o {
        SubmitOutcome::Created => "submitted",
        SubmitOutcome::Updated => "updated",
        SubmitOutcome::Unchanged => "unchanged (identical spec already submitted)",
        SubmitOutcome::Restarted => "restarted (identical spec; the job had ended)",
    }
}
