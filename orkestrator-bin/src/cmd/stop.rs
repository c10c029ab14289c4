//! `orkestrator stop JOB [--wait] [-o json]`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::JobPhase;
use orkestrator_core::ids::JobId;
use orkestrator_core::transport::ClientApi;

use super::follow::{Goal, wait};
use crate::cli::{Output, StopArgs};

pub async fn run(a: StopArgs) -> Result<ExitCode> {
    let client = super::client(&a.addr)?;
    let id = JobId::new(a.job);
    let v = client.stop_job(&id).await?;
    if a.output == Output::Table {
        outln!(
            "job {} {}",
            v.name,
            if v.phase == JobPhase::Stopped {
                "stopped"
            } else {
                "stopping"
            }
        );
    }
    if !a.wait {
        if a.output == Output::Json {
            super::print_json(&v)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    wait(&client, &id, v.index, Goal::Stopped, a.timeout, a.output).await
}
