//! `orkestrator status [JOB] [-o json]`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::{JobView, now_millis};
use orkestrator_core::ids::JobId;
use orkestrator_core::transport::Transport;

use crate::cli::{Output, StatusArgs};

pub async fn run(a: StatusArgs) -> Result<ExitCode> {
    let client = super::client(&a.out.addr)?;
    match a.job {
        None => {
            let jobs = client.list_jobs().await?;
            if a.out.output == Output::Json {
                super::print_json(&jobs)?;
                return Ok(ExitCode::SUCCESS);
            }
            if jobs.is_empty() {
                println!("no jobs (submit one with `orkestrator run -f JOB_FILE`)");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![
                vec!["NAME", "PHASE", "VERSION", "TASKS", "WORKERS", "REASON"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ];
            for j in jobs {
                let workers = j
                    .workers
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                rows.push(vec![
                    j.name.to_string(),
                    j.phase.to_string(),
                    j.version.to_string(),
                    j.tasks.to_string(),
                    if workers.is_empty() {
                        "-".into()
                    } else {
                        workers
                    },
                    j.reason.unwrap_or_default(),
                ]);
            }
            super::print_table(&rows);
        }
        Some(name) => {
            let v = client.get_job(&JobId::new(name)).await?;
            if a.out.output == Output::Json {
                super::print_json(&v)?;
            } else {
                print_job(&v);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_job(v: &JobView) {
    println!("Job:      {}", v.name);
    println!("Phase:    {}", v.phase);
    println!("Version:  {}", v.version);
    println!("Tasks:    {}", v.spec.tasks.len());
    for i in &v.instances {
        println!();
        let place = i
            .worker
            .as_ref()
            .map_or("not placed".to_owned(), |w| format!("on worker {w}"));
        println!("Instance {} ({place}, desired {:?})", i.id, i.desired);
        if let Some(r) = &i.pending_reason {
            println!("  Pending: {r}");
        }
        let mut rows = vec![
            vec![
                "TASK",
                "STATE",
                "EXIT",
                "RESTARTS",
                "SINCE",
                "CONTAINER",
                "REASON",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ];
        for (name, t) in &i.tasks {
            rows.push(vec![
                name.to_string(),
                t.state.to_string(),
                t.exit_code.map_or("-".into(), |c| c.to_string()),
                t.restarts.to_string(),
                super::ago(now_millis().saturating_sub(t.since)),
                t.container_id
                    .as_deref()
                    .map_or("-".into(), |c| c.chars().take(12).collect()),
                {
                    let mut r = t.reason.clone().unwrap_or_default();
                    if t.healthy == Some(false) {
                        r = format!("unhealthy; {r}");
                    }
                    r
                },
            ]);
        }
        let indented: Vec<Vec<String>> = rows
            .into_iter()
            .map(|mut r| {
                r[0] = format!("  {}", r[0]);
                r
            })
            .collect();
        super::print_table(&indented);
    }
}
