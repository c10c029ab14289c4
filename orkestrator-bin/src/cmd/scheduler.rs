//! `orkestrator scheduler`: a scheduler as its own process.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use orkestrator_core::ids::SchedulerId;
use orkestrator_core::scheduler::SchedulerAgent;

use crate::cli::SchedulerArgs;

pub async fn run(a: SchedulerArgs) -> Result<ExitCode> {
    let algorithm = crate::launch::scheduler_named(&a.algorithm)?;
    // A scheduler keeps its credential in memory only: a restarted one joins again.
    let transport = Arc::new(crate::connect::component_client(
        &a.addr, &a.join, None, None, None,
    )?);
    tracing::info!(scheduler = %a.name, manager = %transport.addresses().join(","), "scheduler starting");
    SchedulerAgent::new(SchedulerId::new(a.name), transport, algorithm)
        .run(crate::signals::logged_shutdown("scheduler"))
        .await?;
    Ok(ExitCode::SUCCESS)
}
