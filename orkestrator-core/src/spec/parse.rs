//! Reading job files: YAML, TOML or JSON, chosen by extension, `-` for standard input.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Job;
use super::raw::RawJob;
use crate::error::Error;

/// Largest job file accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// A job file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// YAML (`.yaml`, `.yml`); the default for standard input.
    Yaml,
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format for a file name, by extension. `-` (standard input) reads YAML, which also
    /// accepts JSON.
    pub fn from_path(path: &Path) -> Result<Format, Error> {
        if path.as_os_str() == "-" {
            return Ok(Format::Yaml);
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some("toml") => Ok(Format::Toml),
            Some("json") => Ok(Format::Json),
            _ => Err(Error::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Renders a job in this format, in the same shape that [`parse_job`] reads.
    pub fn render(self, job: &Job) -> Result<String, Error> {
        let text = match self {
            Format::Yaml => serde_saphyr::to_string(job).map_err(|e| e.to_string()),
            Format::Toml => toml::to_string_pretty(job).map_err(|e| e.to_string()),
            Format::Json => serde_json::to_string_pretty(job).map_err(|e| e.to_string()),
        };
        text.map_err(|message| Error::Render {
            format: self,
            message,
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Json => "JSON",
        })
    }
}

/// Parses and validates a job spec. Syntax and shape errors (including unknown fields) carry a
/// line and column; validation errors list every problem with its field path.
pub fn parse_job(text: &str, format: Format) -> Result<Job, Error> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(Error::Syntax {
            format,
            line: None,
            column: None,
            message: format!(
                "the file is {} bytes; the limit is {MAX_SPEC_BYTES}",
                text.len()
            ),
        });
    }
    let raw = parse_raw(text, format)?;
    super::validate::validate(raw).map_err(Error::Invalid)
}

fn parse_raw(text: &str, format: Format) -> Result<RawJob, Error> {
    match format {
        Format::Yaml => serde_saphyr::from_str::<Option<RawJob>>(text)
            .map_err(|e| {
                let loc = e.location();
                Error::Syntax {
                    format,
                    line: loc.map(|l| l.line() as usize),
                    column: loc.map(|l| l.column() as usize),
                    message: first_line(&e.to_string()),
                }
            })?
            .ok_or(Error::Syntax {
                format,
                line: None,
                column: None,
                message: "the file is empty".into(),
            }),
        Format::Json => serde_json::from_str(text).map_err(|e| Error::Syntax {
            format,
            line: Some(e.line()),
            column: Some(e.column()),
            message: strip_json_location(&e.to_string()),
        }),
        Format::Toml => toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            Error::Syntax {
                format,
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        }),
    }
}

/// Reads, parses and validates a job file; `-` reads standard input.
pub fn load_job_file(path: &Path) -> Result<Job, Error> {
    let format = Format::from_path(path)?;
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX_SPEC_BYTES as u64 + 1)
            .read_to_string(&mut s)
            .map_err(read_err)?;
        s
    } else {
        std::fs::read_to_string(path).map_err(read_err)?
    };
    parse_job(&text, format)
}

fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or(s).trim();
    // serde-saphyr appends " at line L column C"; the location is reported separately.
    match l.rfind(" at line ") {
        Some(i) => l[..i].to_owned(),
        None => l.to_owned(),
    }
}

fn strip_json_location(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}
