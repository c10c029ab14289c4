//! `orkestrator status [JOB] [-o json]`: the jobs, or one job with its instances and each task's
//! state and current CPU and memory use (`-` until its worker publishes metrics).

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::{Desired, JobPhase, JobSummary, JobView, TaskStatus};
use orkestrator_core::clock::now_millis;
use orkestrator_core::ids::JobId;
use orkestrator_core::metrics::Usage;
use orkestrator_core::spec::Job;
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
    let mut t = Table::new(&[
        "NAME",
        "PHASE",
        "VERSION",
        "INSTANCES",
        "TASKS",
        "WORKERS",
        "REASON",
    ]);
    for j in jobs {
        let workers = j
            .workers
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let phase = j.phase.to_string();
        let shown = phase_shown(j.phase, j.placed);
        t.painted_row(vec![
            (j.name.to_string(), Paint::Plain),
            (shown, Paint::for_state(&phase)),
            (j.version.to_string(), Paint::Plain),
            (format!("{}/{}", j.placed, j.instances), Paint::Plain),
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

/// The phase as the job list shows it: `Pending` only while no instance is placed; a job with
/// some instances placed and others waiting is `Partly placed`.
fn phase_shown(phase: JobPhase, placed: u32) -> String {
    if phase == JobPhase::Pending && placed > 0 {
        "Partly placed".to_owned()
    } else {
        phase.to_string()
    }
}

fn print_job(v: &JobView) -> Result<()> {
    let color = crate::output::color();
    let phase = v.phase.to_string();
    let current: Vec<_> = v
        .instances
        .iter()
        .filter(|i| i.version == v.version && i.desired == Desired::Run)
        .collect();
    let placed = current.iter().filter(|i| i.worker.is_some()).count();
    outln!("Job:       {}", v.name);
    outln!(
        "Phase:     {}",
        Paint::for_state(&phase).apply(&phase_shown(v.phase, placed as u32), color)
    );
    outln!("Version:   {}", v.version);
    outln!("Instances: {placed}/{} placed", current.len());
    outln!("Tasks:     {}", v.spec.tasks.len());
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
            t.painted_row(task_row(
                &task_shown(&v.spec, name.as_str()),
                task,
                i.usage.get(name),
                now_millis(),
            ));
        }
        for line in t.render(color) {
            outln!("{line}");
        }
    }
    Ok(())
}

/// A task's name as `status` shows it, with what it is for its job: `logs (sidecar)`, or
/// `migrate (init)` for a task that others wait for to complete.
fn task_shown(spec: &Job, name: &str) -> String {
    match spec.task(name) {
        Some(t) if t.sidecar => format!("{name} (sidecar)"),
        Some(t) if t.is_init_of(spec) => format!("{name} (init)"),
        _ => name.to_owned(),
    }
}

/// One task's row: a task that has ended shows no CPU or memory (`-`), whatever sample is held.
fn task_row(
    name: &str,
    task: &TaskStatus,
    usage: Option<&Usage>,
    now: u64,
) -> Vec<(String, Paint)> {
    let state = task.state.to_string();
    let usage = usage.filter(|_| !task.state.is_terminal());
    let mut reason = task.reason.clone().unwrap_or_default();
    if task.healthy == Some(false) {
        reason = format!("unhealthy; {reason}");
    }
    vec![
        (name.to_owned(), Paint::Plain),
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
            crate::output::ago(now.saturating_sub(task.since)),
            Paint::Plain,
        ),
        (
            task.container_id
                .as_deref()
                .map_or("-".into(), |c| c.chars().take(12).collect()),
            Paint::Plain,
        ),
        (reason, Paint::Plain),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use orkestrator_core::state::TaskState;

    fn summary(phase: JobPhase, placed: u32, instances: u32) -> JobSummary {
        JobSummary {
            name: JobId::new("web"),
            phase,
            version: 1,
            tasks: 1,
            instances,
            placed,
            workers: Vec::new(),
            reason: None,
        }
    }

    /// Issue 18, item 8: instances as `placed/count`, and a job with some of them placed is not
    /// plain `Pending`.
    #[test]
    fn the_job_list_shows_instances_placed_of_count() {
        let lines = jobs_table(&[
            summary(JobPhase::Pending, 2, 4),
            summary(JobPhase::Pending, 0, 3),
            summary(JobPhase::Running, 3, 3),
        ])
        .render(false);
        assert!(lines[0].contains("INSTANCES"), "{lines:?}");
        let cells = |l: &str| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let partly = cells(&lines[1]);
        assert!(partly.contains(&"2/4".to_owned()), "{lines:?}");
        assert!(!partly.contains(&"Pending".to_owned()), "{lines:?}");
        assert!(partly.contains(&"Partly placed".to_owned()), "{lines:?}");
        let none = cells(&lines[2]);
        assert!(none.contains(&"0/3".to_owned()), "{lines:?}");
        assert!(none.contains(&"Pending".to_owned()), "{lines:?}");
        assert!(cells(&lines[3]).contains(&"3/3".to_owned()), "{lines:?}");
    }

    /// Issue 18, item 8: a task that has ended shows no CPU or memory, even if its last sample
    /// is still held.
    #[test]
    fn ended_tasks_show_no_cpu_or_memory() {
        let used = Usage {
            cpu_cores: 0.5,
            memory_bytes: 64 << 20,
            at: 0,
        };
        for state in TaskState::ALL {
            let row = task_row("main", &TaskStatus::new(state), Some(&used), 0);
            let (cpu, mem) = (&row[2].0, &row[3].0);
            if state.is_terminal() {
                assert_eq!((cpu.as_str(), mem.as_str()), ("-", "-"), "{state}");
            } else {
                assert_eq!((cpu.as_str(), mem.as_str()), ("0.50", "64.0Mi"), "{state}");
            }
        }
    }

    /// Issue 19: a waiting task shows its state, painted as one on its way, and its reason;
    /// sidecars and init tasks are marked.
    #[test]
    fn waiting_tasks_show_their_reason_and_sidecars_and_init_tasks_are_marked() {
        use orkestrator_core::spec::{Format, parse_job};
        let spec = parse_job(
            "name: shop\ntasks:\n\
             - { name: migrate, image: 'a:1', restart: { policy: never } }\n\
             - { name: app, image: 'a:1', depends_on: { migrate: { condition: completed_successfully } } }\n\
             - { name: logs, image: 'a:1', sidecar: true }\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(task_shown(&spec, "logs"), "logs (sidecar)");
        assert_eq!(task_shown(&spec, "migrate"), "migrate (init)");
        assert_eq!(task_shown(&spec, "app"), "app");
        assert_eq!(task_shown(&spec, "gone"), "gone");
        let mut waiting = TaskStatus::new(TaskState::Waiting);
        waiting.reason = Some("waiting for migrate to complete successfully".into());
        let row = task_row("app", &waiting, None, 0);
        assert_eq!(row[1], ("Waiting".to_owned(), Paint::Yellow));
        assert_eq!(row[8].0, "waiting for migrate to complete successfully");
    }
}
