//! `orkestrator restart JOB [-o json]`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::JobPhase;
use orkestrator_core::ids::JobId;
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, RestartArgs};

pub async fn run(a: RestartArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let id = JobId::new(a.job);
    // Whether the job had ended says how it starts again (the answer is the same either way).
    let ended = matches!(
        client.get_job(&id).await?.phase,
        JobPhase::Stopped | JobPhase::Stopping | JobPhase::Failed | JobPhase::Completed
    );
    let r = client.restart_job(&id).await?;
    match a.output {
        Output::Json => crate::output::print_json(&r)?,
        Output::Table => outln!(
            "job {} restarted (version {}, unchanged): {}",
            r.job,
            r.version,
            if ended {
                "every instance starts again"
            } else {
                "its instances are replaced one at a time"
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
