//! `orkestrator health [-o json]`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::Liveness;
use orkestrator_core::transport::Transport;

use crate::cli::{Output, OutputArgs};

pub async fn run(a: OutputArgs) -> Result<ExitCode> {
    let client = super::client(&a.addr)?;
    let h = client.health().await?;
    if a.output == Output::Json {
        super::print_json(&h)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "manager     {} (version {}, index {})",
        h.manager.status, h.manager.version, h.manager.index
    );
    for s in &h.schedulers {
        println!(
            "scheduler   {:<20} {} ({}, seen {})",
            s.id,
            s.status,
            s.algorithm,
            super::ago(s.last_seen_ms_ago)
        );
    }
    for w in &h.workers {
        println!(
            "worker      {:<20} {}{}",
            w.id,
            w.status,
            w.message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
    }
    for j in &h.jobs {
        println!(
            "job         {:<20} {}{}",
            j.name,
            j.phase,
            j.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let all_ready = h.workers.iter().all(|w| w.status == Liveness::Ready)
        && h.schedulers.iter().all(|s| s.status == Liveness::Ready);
    Ok(if all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
