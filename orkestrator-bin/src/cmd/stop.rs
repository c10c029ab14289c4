//! `orkestrator stop JOB [--wait] [-o json]`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::JobPhase;
use orkestrator_core::ids::JobId;
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, StopArgs};
use crate::follow::{Goal, wait};

pub async fn run(a: StopArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let id = JobId::new(a.job);
    let v = client.stop_job(&id).await?;
    let stopped = v.phase == JobPhase::Stopped;
    // With --wait, the wait says `stopped` when it is: said here too, it would be said twice.
    if a.output == Output::Table && !(a.wait && stopped) {
        outln!(
            "job {} {}",
            v.name,
            if stopped { "stopped" } else { "stopping" }
        );
    }
    if !a.wait {
        if a.output == Output::Json {
            crate::output::print_json(&v)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    wait(&client, &id, v.index, Goal::Stopped, a.timeout, a.output).await
}
