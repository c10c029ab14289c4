//! `orkestrator workers [-o json]`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::transport::Transport;

use crate::cli::{Output, OutputArgs};

pub async fn run(a: OutputArgs) -> Result<ExitCode> {
    let client = super::client(&a.addr)?;
    let workers = client.list_workers().await?;
    if a.output == Output::Json {
        super::print_json(&workers)?;
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        println!(
            "no workers (start one with `orkestrator worker --manager {}`)",
            a.addr.manager
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        [
            "NAME",
            "STATUS",
            "INSTANCES",
            "CPU (reserved/total)",
            "MEMORY (reserved/total)",
            "DISK (reserved/total)",
            "SEEN",
            "LABELS",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>(),
    ];
    for w in workers {
        let t = w.resources.total;
        let r = w.reserved;
        rows.push(vec![
            w.id.to_string(),
            match &w.message {
                Some(m) => format!("{} ({m})", w.status),
                None => w.status.to_string(),
            },
            w.instances.to_string(),
            format!("{}/{}", r.cpu, t.cpu),
            format!("{}/{}", r.memory.human(), t.memory.human()),
            format!("{}/{}", r.disk.human(), t.disk.human()),
            super::ago(w.last_seen_ms_ago),
            w.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    super::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}
