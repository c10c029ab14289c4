//! `orkestrator workers [-o json]`: each worker's status; what its tasks use, against what is
//! reserved for them and what the worker offers; and, apart, what its host uses (measured figures
//! from the metrics it publishes; `-` until it has published).

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::WorkerView;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::Cpu;

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

/// The workers as a table (also `top --workers`): what its tasks use (measured), against what
/// is reserved for them and what the worker offers; then, apart, what the whole host uses.
pub fn table(workers: &[WorkerView]) -> Table {
    let mut t = Table::new(&[
        "NAME",
        "STATUS",
        "INSTANCES",
        "TASKS CPU (used/reserved/offered)",
        "TASKS MEMORY (used/reserved/offered)",
        "TASKS DISK (reserved/offered)",
        "HOST CPU (used)",
        "HOST MEMORY (used)",
        "SEEN",
        "LABELS",
        "HOST VOLUMES",
    ]);
    for w in workers {
        let total = w.resources.total;
        let r = w.reserved;
        let status = w.status.to_string();
        let tasks = w.tasks_usage.as_ref();
        let host = w.usage.as_ref();
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
                format!(
                    "{}/{}/{}",
                    tasks.map_or("-".into(), |u| cores(u.cpu_cores)),
                    cpu(r.cpu),
                    cpu(total.cpu)
                ),
                Paint::Plain,
            ),
            (
                format!(
                    "{}/{}/{}",
                    tasks.map_or("-".into(), |u| bytes(u.memory_bytes)),
                    r.memory.human(),
                    total.memory.human()
                ),
                Paint::Plain,
            ),
            (
                format!("{}/{}", r.disk.human(), total.disk.human()),
                Paint::Plain,
            ),
            (
                host.map_or("-".into(), |u| cores(u.cpu_cores)),
                Paint::Plain,
            ),
            (
                host.map_or("-".into(), |u| bytes(u.memory_bytes)),
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
            (
                w.host_volumes
                    .iter()
                    .map(|(name, o)| {
                        if o.read_only {
                            format!("{name}:ro")
                        } else {
                            name.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                Paint::Plain,
            ),
        ]);
    }
    t
}

/// A CPU quantity in cores, exactly and without trailing zeros (`1.5`, `4`, `0.25`), to read
/// beside measured cores.
fn cpu(c: Cpu) -> String {
    let m = c.millis();
    let frac = format!("{:03}", m % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        (m / 1000).to_string()
    } else {
        format!("{}.{frac}", m / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use orkestrator_core::api::{HostVolumeOffer, Liveness, WorkerResources};
    use orkestrator_core::ids::WorkerId;
    use orkestrator_core::metrics::Usage;
    use orkestrator_core::spec::Resources;
    use orkestrator_core::units::ByteSize;

    /// Issue 18, item 8: what the worker's tasks use, against what it reserved for them and what
    /// it offers, and apart from that the host's own use, each labelled.
    #[test]
    fn the_worker_list_shows_task_use_against_the_offer_and_the_host_apart() {
        let offered = Resources {
            cpu: Cpu::from_cores(4),
            memory: ByteSize::gib(8),
            disk: ByteSize::b(10_000_000_000),
        };
        let reserved = Resources {
            cpu: Cpu::from_millis(1500),
            memory: ByteSize::gib(1),
            disk: ByteSize::ZERO,
        };
        let w = WorkerView {
            id: WorkerId::new("w1"),
            status: Liveness::Ready,
            message: None,
            address: None,
            labels: Default::default(),
            host_volumes: BTreeMap::from([
                ("applogs".into(), HostVolumeOffer { read_only: true }),
                ("data".into(), HostVolumeOffer::default()),
            ]),
            resources: WorkerResources {
                total: offered,
                allocated: reserved,
                available: offered,
            },
            reserved,
            instances: 2,
            last_seen_ms_ago: 0,
            usage: Some(Usage {
                cpu_cores: 2.5,
                memory_bytes: 6 << 30,
                at: 0,
            }),
            tasks_usage: Some(Usage {
                cpu_cores: 0.25,
                memory_bytes: 300 << 20,
                at: 0,
            }),
        };
        let lines = table(&[w]).render(false);
        let cell = |header: &str| {
            let at = lines[0]
                .find(header)
                .unwrap_or_else(|| panic!("no {header} column: {lines:#?}"));
            lines[1][at..].split("  ").next().unwrap().to_owned()
        };
        assert_eq!(cell("TASKS CPU (used/reserved/offered)"), "0.25/1.5/4");
        assert_eq!(
            cell("TASKS MEMORY (used/reserved/offered)"),
            "300Mi/1Gi/8Gi"
        );
        assert_eq!(cell("TASKS DISK (reserved/offered)"), "0B/10GB");
        assert_eq!(cell("HOST CPU (used)"), "2.50");
        assert_eq!(cell("HOST MEMORY (used)"), "6.0Gi");
        assert_eq!(cell("HOST VOLUMES"), "applogs:ro,data");
    }
}
