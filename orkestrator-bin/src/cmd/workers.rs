//! `orkestrator workers [-o json]`: each worker's status, its resources (reserved of total) and
//! what its host uses now (from the metrics it publishes; `-` until it has published).

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::WorkerView;
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, OutputArgs};
use crate::output::{Paint, Table, bytes, cores};

pub async fn run(a: OutputArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let workers = client.list_workers().await?;
    if a.output == Output::Json {
        crate::output::print_json(&workers)?;
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        outln!(
            "no workers (start one with `orkestrator worker --manager {}`)",
            a.addr.manager
        );
        return Ok(ExitCode::SUCCESS);
    }
    table(&workers).print()?;
    Ok(ExitCode::SUCCESS)
}

/// The workers as a table (also `top --workers`).
pub fn table(workers: &[WorkerView]) -> Table {
    let mut t = Table::new(&[
        "NAME",
        "STATUS",
        "INSTANCES",
        "CPU USED",
        "CPU (reserved/total)",
        "MEM USED",
        "MEMORY (reserved/total)",
        "DISK (reserved/total)",
        "SEEN",
        "LABELS",
    ]);
    for w in workers {
        let total = w.resources.total;
        let r = w.reserved;
        let status = w.status.to_string();
        t.painted_row(vec![
            (w.id.to_string(), Paint::Plain),
            (
                match &w.message {
                    Some(m) => format!("{status} ({m})"),
                    None => status.clone(),
                },
                Paint::for_state(&status),
            ),
            (w.instances.to_string(), Paint::Plain),
            (
                w.usage.as_ref().map_or("-".into(), |u| cores(u.cpu_cores)),
                Paint::Plain,
            ),
            (format!("{}/{}", r.cpu, total.cpu), Paint::Plain),
            (
                w.usage
                    .as_ref()
                    .map_or("-".into(), |u| bytes(u.memory_bytes)),
                Paint::Plain,
            ),
            (
                format!("{}/{}", r.memory.human(), total.memory.human()),
                Paint::Plain,
            ),
            (
                format!("{}/{}", r.disk.human(), total.disk.human()),
                Paint::Plain,
            ),
            (crate::output::ago(w.last_seen_ms_ago), Paint::Plain),
            (
                w.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                Paint::Plain,
            ),
        ]);
    }
    t
}
