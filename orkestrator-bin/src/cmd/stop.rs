//! `orkestrator stop JOB [--wait]`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use orkestrator_core::api::JobPhase;
use orkestrator_core::ids::JobId;
use orkestrator_core::transport::Transport;

use crate::cli::StopArgs;

pub async fn run(a: StopArgs) -> Result<ExitCode> {
    let client = super::client(&a.addr)?;
    let id = JobId::new(a.job);
    let v = client.stop_job(&id).await?;
    println!(
        "job {} {}",
        v.name,
        if v.phase == JobPhase::Stopped {
            "stopped"
        } else {
            "stopping"
        }
    );
    if a.wait {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let v = client.get_job(&id).await?;
            if v.phase == JobPhase::Stopped {
                println!("job {} stopped", v.name);
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                eprintln!("job {} is still {} after 2m", v.name, v.phase);
                return Ok(ExitCode::FAILURE);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
