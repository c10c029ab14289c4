//! `orkestrator validate -f FILE [--print FORMAT | -o json]`. Exits 2 for an invalid file.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::Error;
use orkestrator_core::spec::{Format, load_job_file};
use serde_json::json;

use crate::cli::{Output, PrintFormat, ProjectArgs, ValidateArgs};
use crate::output::exit;

pub async fn run(a: ValidateArgs) -> Result<ExitCode> {
    let path = a.file.or(a.path).expect("clap requires a file");
    if crate::cmd::compose::is_compose_file(&path) {
        return compose_file(&path, a.print, a.output).await;
    }
    let shown = path.display();
    let as_json = a.output == Some(Output::Json);
    match load_job_file(&path) {
        Ok(job) => {
            if let Some(p) = a.print {
                let f = match p {
                    PrintFormat::Yaml => Format::Yaml,
                    PrintFormat::Toml => Format::Toml,
                    PrintFormat::Json => Format::Json,
                };
                crate::output::write_out(format_args!("{}", f.render(&job)?))?;
                return Ok(ExitCode::SUCCESS);
            }
            let r = job.resources();
            let n = job.tasks.len();
            if as_json {
                crate::output::print_json(&json!({
                    "file": shown.to_string(),
                    "valid": true,
                    "job": job.name,
                    "tasks": n,
                    "count": job.count,
                    "needs": r,
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "{shown}: valid job \"{}\" with {n} task{}{} (needs cpu {}, memory {}, disk {}{})",
                job.name,
                if n == 1 { "" } else { "s" },
                if job.count == 1 {
                    String::new()
                } else {
                    format!(", {} instances", job.count)
                },
                r.cpu,
                r.memory,
                r.disk,
                if job.count == 1 { "" } else { " per instance" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Invalid(problems)) => {
            if as_json {
                crate::output::print_json(&json!({
                    "file": shown.to_string(),
                    "valid": false,
                    "problems": problems,
                }))?;
                return Ok(ExitCode::from(exit::USAGE));
            }
            let n = problems.len();
            errln!(
                "{shown}: invalid job spec ({n} problem{}):",
                if n == 1 { "" } else { "s" }
            );
            for p in problems.iter() {
                errln!("  {p}");
            }
            Ok(ExitCode::from(exit::USAGE))
        }
        Err(e) => {
            if as_json {
                crate::output::print_json(&json!({
                    "file": shown.to_string(),
                    "valid": false,
                    "error": e.to_string(),
                }))?;
            } else {
                errln!("{shown}: {e}");
            }
            Ok(ExitCode::from(exit::USAGE))
        }
    }
}

/// `validate -f compose.yaml`: the job the Compose file becomes, or why it cannot.
async fn compose_file(
    path: &std::path::Path,
    print: Option<PrintFormat>,
    output: Option<Output>,
) -> Result<ExitCode> {
    let shown = path.display();
    let as_json = output == Some(Output::Json);
    let opts = crate::cmd::compose::load_options(&ProjectArgs {
        files: vec![path.to_path_buf()],
        project_name: None,
        env_file: None,
        profiles: Vec::new(),
        strict: false,
    });
    match crate::cmd::compose::convert_offline(&opts, false).await? {
        Ok(c) => {
            if let Some(p) = print {
                crate::cmd::compose::warn_all(&c.warnings);
                let f = match p {
                    PrintFormat::Yaml => Format::Yaml,
                    PrintFormat::Toml => Format::Toml,
                    PrintFormat::Json => Format::Json,
                };
                crate::output::write_out(format_args!("{}", f.render(&c.job)?))?;
                return Ok(ExitCode::SUCCESS);
            }
            let job = &c.job;
            if as_json {
                crate::output::print_json(&json!({
                    "file": shown.to_string(),
                    "valid": true,
                    "compose": true,
                    "job": job.name,
                    "tasks": job.tasks.len(),
                    "count": job.count,
                    "needs": job.resources(),
                    "warnings": c.warnings,
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            crate::cmd::compose::warn_all(&c.warnings);
            outln!(
                "{shown}: valid Compose file: job \"{}\" with {} task{} (run it with `orkestrator compose up -f {shown}`)",
                job.name,
                job.tasks.len(),
                if job.tasks.len() == 1 { "" } else { "s" },
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if as_json {
                let (problems, warnings) = match &e {
                    orkestrator_core::compose::ComposeError::Refused { refusals, warnings } => {
                        (refusals.clone(), warnings.clone())
                    }
                    other => (
                        vec![orkestrator_core::compose::Note {
                            path: String::new(),
                            message: other.to_string(),
                        }],
                        Vec::new(),
                    ),
                };
                crate::output::print_json(&json!({
                    "file": shown.to_string(),
                    "valid": false,
                    "compose": true,
                    "problems": problems,
                    "warnings": warnings,
                }))?;
                return Ok(ExitCode::from(exit::USAGE));
            }
            Ok(crate::cmd::compose::report(&e))
        }
    }
}
