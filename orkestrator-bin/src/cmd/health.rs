//! `orkestrator health [-o json]`: the manager's summary (counts by state), the schedulers, and
//! the workers and jobs that need attention. Exits 1 when a worker or scheduler is not ready.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::Liveness;
use orkestrator_core::transport::Transport;

use crate::cli::{Output, OutputArgs};

fn counts<K: std::fmt::Display>(m: &std::collections::BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(a: OutputArgs) -> Result<ExitCode> {
    let client = super::client(&a.addr)?;
    let h = client.health().await?;
    if a.output == Output::Json {
        super::print_json(&h)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "manager     {} (version {}, index {}, store commit p50 {}us p99 {}us)",
        h.manager.status,
        h.manager.version,
        h.manager.index,
        h.manager.store.commit_p50_us,
        h.manager.store.commit_p99_us
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
    println!("workers     {}", counts(&h.workers));
    println!("jobs        {}", counts(&h.jobs));
    println!("tasks       {}", counts(&h.tasks));
    for w in &h.unready_workers {
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
    for j in &h.failing_jobs {
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
    let all_ready =
        h.unready_workers.is_empty() && h.schedulers.iter().all(|s| s.status == Liveness::Ready);
    Ok(if all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
