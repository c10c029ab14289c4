//! `orkestrator volume list|rm` (and `volumes`): the named volumes the manager knows of, where
//! each instance's data lives, and their removal by an operator.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::VolumeRef;
use orkestrator_core::ids::JobId;

use crate::cli::{Output, VolumeCommand};

pub async fn run(c: VolumeCommand) -> Result<ExitCode> {
    match c {
        VolumeCommand::List(a) => {
            let client = crate::connect::client(&a.out.addr)?;
            let list = client.list_volumes(a.job.as_deref()).await?;
            match a.out.output {
                Output::Json => crate::output::print_json(&list)?,
                Output::Table => {
                    let now = orkestrator_core::clock::now_millis();
                    let mut t = crate::output::Table::new(&[
                        "JOB", "INDEX", "VOLUME", "WORKER", "STATE", "IN USE", "RETAIN", "CREATED",
                        "NAME",
                    ]);
                    for v in &list.volumes {
                        t.row(vec![
                            v.job.to_string(),
                            v.index.to_string(),
                            v.volume.clone(),
                            v.worker.to_string(),
                            v.state.clone(),
                            if v.in_use { "yes" } else { "no" }.to_owned(),
                            if v.retain { "yes" } else { "no" }.to_owned(),
                            crate::output::ago(now.saturating_sub(v.created_at)),
                            v.name.clone(),
                        ]);
                    }
                    t.print()?;
                }
            }
        }
        VolumeCommand::Rm(a) => {
            let client = crate::connect::client(&a.out.addr)?;
            let of = VolumeRef {
                job: JobId::new(a.job),
                index: a.index,
                volume: a.volume,
            };
            let v = client.remove_volume(&of, a.worker.as_deref()).await?;
            match a.out.output {
                Output::Json => crate::output::print_json(&v)?,
                Output::Table => outln!(
                    "volume {of} ({}) on worker {}: removing; it leaves `volume list` once the worker has removed it",
                    v.name,
                    v.worker
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
