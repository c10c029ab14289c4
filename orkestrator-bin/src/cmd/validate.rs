//! `orkestrator validate -f FILE [--print FORMAT | -o json]`. Exits 2 for an invalid file.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::Error;
use orkestrator_core::spec::{Format, load_job_file};
use serde_json::json;

use crate::cli::{Output, PrintFormat, ValidateArgs};
use crate::output::exit;

pub fn run(a: ValidateArgs) -> Result<ExitCode> {
    let path = a.file.or(a.path).expect("clap requires a file");
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
