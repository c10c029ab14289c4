//! `orkestrator gc [-o json]`: garbage collection now (`POST /v1/gc`).

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, OutputArgs};

pub async fn run(a: OutputArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let r = client.gc().await?;
    if a.output == Output::Json {
        crate::output::print_json(&r)?;
    } else {
        outln!(
            "removed {} jobs, {} instances, {} spec versions, {} workers",
            r.jobs,
            r.instances,
            r.specs,
            r.workers
        );
    }
    Ok(ExitCode::SUCCESS)
}
