//! `orkestrator validate -f FILE`.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::Error;
use orkestrator_core::spec::{Format, load_job_file};

use crate::cli::{PrintFormat, ValidateArgs};

pub fn run(a: ValidateArgs) -> Result<ExitCode> {
    let path = a.file.or(a.path).expect("clap requires a file");
    let shown = path.display();
    match load_job_file(&path) {
        Ok(job) => {
            if let Some(p) = a.print {
                let f = match p {
                    PrintFormat::Yaml => Format::Yaml,
                    PrintFormat::Toml => Format::Toml,
                    PrintFormat::Json => Format::Json,
                };
                print!("{}", f.render(&job)?);
                return Ok(ExitCode::SUCCESS);
            }
            let r = job.resources();
            let n = job.tasks.len();
            println!(
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
            let n = problems.len();
            eprintln!(
                "{shown}: invalid job spec ({n} problem{}):",
                if n == 1 { "" } else { "s" }
            );
            for p in problems.iter() {
                eprintln!("  {p}");
            }
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("{shown}: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
