//! `orkestrator status [JOB] [-o json]`: the jobs, or one job with its instances and each task's
//! state and current CPU and memory use (`-` until its worker publishes metrics).

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::{JobSummary, JobView};
use orkestrator_core::clock::now_millis;
use orkestrator_core::ids::JobId;
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, StatusArgs};
use crate::output::{Paint, Table, bytes, cores};

pub async fn run(a: StatusArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.out.addr)?;
    match a.job {
        None => {
            let jobs = client.list_jobs().await?;
            if a.out.output == Output::Json {
                crate::output::print_json(&jobs)?;
                return Ok(ExitCode::SUCCESS);
            }
            if jobs.is_empty() {
                outln!("no jobs (submit one with `orkestrator run -f JOB_FILE`)");
                return Ok(ExitCode::SUCCESS);
            }
            jobs_table(&jobs).print()?;
        }
        Some(name) => {
            let v = client.get_job(&JobId::new(name)).await?;
            if a.out.output == Output::Json {
                crate::output::print_json(&v)?;
            } else {
                print_job(&v)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn jobs_table(jobs: &[JobSummary]) -> Table {
    let mut t = Table::new(&["NAME", "PHASE", "VERSION", "TASKS", "WORKERS", "REASON"]);
    for j in jobs {
        let workers = j
            .workers
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let phase = j.phase.to_string();
        t.painted_row(vec![
            (j.name.to_string(), Paint::Plain),
            (phase.clone(), Paint::for_state(&phase)),
            (j.version.to_string(), Paint::Plain),
            (j.tasks.to_string(), Paint::Plain),
            (
                if workers.is_empty() {
                    "-".into()
                } else {
                    workers
                },
                Paint::Plain,
            ),
            (j.reason.clone().unwrap_or_default(), Paint::Plain),
        ]);
    }
    t
}

fn print_job(v: &JobView) -> Result<()> {
    let color = crate::output::color();
    let phase = v.phase.to_string();
    outln!("Job:      {}", v.name);
    outln!(
        "Phase:    {}",
        Paint::for_state(&phase).apply(&phase, color)
    );
    outln!("Version:  {}", v.version);
    outln!("Tasks:    {}", v.spec.tasks.len());
    for i in &v.instances {
        outln!();
        let place = i
            .worker
            .as_ref()
            .map_or("not placed".to_owned(), |w| format!("on worker {w}"));
        outln!("Instance {} ({place}, desired {:?})", i.id, i.desired);
        if let Some(r) = &i.pending_reason {
            outln!("  Pending: {r}");
        }
        let mut t = Table::new(&[
            "TASK",
            "STATE",
            "CPU",
            "MEMORY",
            "EXIT",
            "RESTARTS",
            "SINCE",
            "CONTAINER",
            "REASON",
        ])
        .indent(2);
        for (name, task) in &i.tasks {
            let state = task.state.to_string();
            let usage = i.usage.get(name);
            let mut reason = task.reason.clone().unwrap_or_default();
            if task.healthy == Some(false) {
                reason = format!("unhealthy; {reason}");
            }
            t.painted_row(vec![
                (name.to_string(), Paint::Plain),
                (state.clone(), Paint::for_state(&state)),
                (
                    usage.map_or("-".into(), |u| cores(u.cpu_cores)),
                    Paint::Plain,
                ),
                (
                    usage.map_or("-".into(), |u| bytes(u.memory_bytes)),
                    Paint::Plain,
                ),
                (
                    task.exit_code.map_or("-".into(), |c| c.to_string()),
                    Paint::Plain,
                ),
                (task.restarts.to_string(), Paint::Plain),
                (
                    crate::output::ago(now_millis().saturating_sub(task.since)),
                    Paint::Plain,
                ),
                (
                    task.container_id
                        .as_deref()
                        .map_or("-".into(), |c| c.chars().take(12).collect()),
                    Paint::Plain,
                ),
                (reason, Paint::Plain),
            ]);
        }
        for line in t.render(color) {
            outln!("{line}");
        }
    }
    Ok(())
}
