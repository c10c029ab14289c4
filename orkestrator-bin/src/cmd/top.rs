//! `orkestrator top [JOB] [--workers] [--interval 2s] [--once] [-o json]`: the tasks of the
//! jobs (or the workers) with their current CPU and memory use. On a terminal the view is redrawn
//! in place every `--interval` until Ctrl-C; otherwise (or with `--once`, or `-o json`) one
//! snapshot is printed.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::{Desired, JobPhase, JobView};
use orkestrator_core::ids::JobId;
use orkestrator_core::metrics::Usage;
use orkestrator_core::transport::{ClientApi, Transport};
use serde::Serialize;

use crate::cli::{Output, TopArgs};
use crate::output::{Paint, Table, bytes, cores};

/// One task of one instance, with its use.
#[derive(Debug, Serialize)]
struct TaskRow {
    job: String,
    instance: String,
    index: u32,
    task: String,
    state: String,
    worker: Option<String>,
    usage: Option<Usage>,
}

pub async fn run(a: TopArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.out.addr)?;
    let live = !a.once && a.out.output == Output::Table && crate::output::stdout_is_tty();
    if !live {
        if a.out.output == Output::Json {
            if a.workers {
                crate::output::print_json(&client.list_workers().await?)?;
            } else {
                crate::output::print_json(&tasks(&client, a.job.as_deref()).await?)?;
            }
        } else {
            for line in frame(&client, &a).await? {
                outln!("{line}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let redraw = async {
        loop {
            let lines = frame(&client, &a).await?;
            let mut screen = String::from("\x1b[H\x1b[2J");
            screen.push_str(&format!(
                "orkestrator top — every {}, Ctrl-C to quit\n\n",
                orkestrator_core::units::format_duration(a.interval)
            ));
            for l in lines {
                screen.push_str(&l);
                screen.push('\n');
            }
            crate::output::write_out(format_args!("{screen}"))?;
            tokio::time::sleep(a.interval).await;
        }
    };
    tokio::select! {
        r = redraw => r,
        _ = crate::signals::shutdown_signal() => Ok(ExitCode::SUCCESS),
    }
}

/// The lines of one view.
async fn frame(client: &impl Transport, a: &TopArgs) -> Result<Vec<String>> {
    let color = crate::output::color();
    if a.workers {
        let workers = client.list_workers().await?;
        if workers.is_empty() {
            return Ok(vec!["no workers".into()]);
        }
        return Ok(super::workers::table(&workers).render(color));
    }
    let rows = tasks(client, a.job.as_deref()).await?;
    if rows.is_empty() {
        return Ok(vec!["no running tasks".into()]);
    }
    let mut t = Table::new(&[
        "JOB", "INSTANCE", "TASK", "STATE", "WORKER", "CPU", "MEMORY",
    ]);
    for r in &rows {
        t.painted_row(vec![
            (r.job.clone(), Paint::Plain),
            (r.index.to_string(), Paint::Plain),
            (r.task.clone(), Paint::Plain),
            (r.state.clone(), Paint::for_state(&r.state)),
            (r.worker.clone().unwrap_or_else(|| "-".into()), Paint::Plain),
            (
                r.usage.as_ref().map_or("-".into(), |u| cores(u.cpu_cores)),
                Paint::Plain,
            ),
            (
                r.usage
                    .as_ref()
                    .map_or("-".into(), |u| bytes(u.memory_bytes)),
                Paint::Plain,
            ),
        ]);
    }
    Ok(t.render(color))
}

/// The tasks of the current instances of `job` (or of every job not stopped).
async fn tasks(client: &impl Transport, job: Option<&str>) -> Result<Vec<TaskRow>> {
    let views: Vec<JobView> = match job {
        Some(j) => vec![client.get_job(&JobId::new(j)).await?],
        None => {
            let mut views = Vec::new();
            for j in client.list_jobs().await? {
                if j.phase == JobPhase::Stopped {
                    continue;
                }
                match client.get_job(&j.name).await {
                    Ok(v) => views.push(v),
                    // Removed between the list and the read: not there any more.
                    Err(orkestrator_core::Error::Api(e))
                        if e.kind == orkestrator_core::api::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            views
        }
    };
    let mut rows = Vec::new();
    for v in &views {
        for i in v.instances.iter().filter(|i| i.desired == Desired::Run) {
            for (task, t) in &i.tasks {
                rows.push(TaskRow {
                    job: v.name.to_string(),
                    instance: i.id.to_string(),
                    index: i.index,
                    task: task.to_string(),
                    state: t.state.to_string(),
                    worker: i.worker.as_ref().map(|w| w.to_string()),
                    usage: i.usage.get(task).cloned(),
                });
            }
        }
    }
    Ok(rows)
}
