//! Reading job files: YAML, TOML or JSON, chosen by extension, `-` for standard input.

use std::io::Read;
use std::path::Path;

use super::format::Format;
use super::model::Job;
use super::tree::{At, Node, Plain, Toml, Yaml};
use super::validate::{Rules, Sources, check};
use crate::error::Error;

/// Largest job file accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

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

/// Parses and validates a job spec. A syntax error ([`Error::Syntax`]) carries a line and
/// column; anything else wrong ([`Error::Invalid`]) is reported all at once: every unknown field
/// (with the closest known name), every value of the wrong type and every broken rule, each with
/// its field path and, where the format tells it, its line.
///
/// A leading byte-order mark is ignored. Never panics, whatever the input.
///
/// A file's `source` is refused here (`source is read by the CLI only; send content`): this is
/// what the manager's API reads. [`parse_job_in`] and [`load_job_file`] read it instead.
pub fn parse_job(text: &str, format: Format) -> Result<Job, Error> {
    parse(text, format, Sources::Refused)
}

/// Parses and validates a job spec as [`parse_job`] does, but reads each file's `source`
/// (`files: [{ path: /etc/app.conf, source: ./app.conf }]`) relative to `dir` into its content,
/// as the CLI does before submitting: the job holds the bytes read. A source that cannot be
/// read, or holds more than [`MAX_FILE_BYTES`](super::MAX_FILE_BYTES), is a problem at its
/// path like any other.
pub fn parse_job_in(text: &str, format: Format, dir: &Path) -> Result<Job, Error> {
    parse(text, format, Sources::ReadFrom(dir))
}

fn parse(text: &str, format: Format, sources: Sources<'_>) -> Result<Job, Error> {
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
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let tree = match format {
        Format::Yaml => read_yaml(text)?,
        Format::Json => read_json(text)?,
        Format::Toml => read_toml(text)?,
    };
    check(tree, Rules::Submission, sources).map_err(Error::Invalid)
}

/// Reads YAML into a tree, each node with its line, and the text of plain scalars kept.
fn read_yaml(text: &str) -> Result<Node, Error> {
    let syntax = |line, column, message| Error::Syntax {
        format: Format::Yaml,
        line,
        column,
        message,
    };
    let options = serde_saphyr::options! {
        with_snippet: false,
    };
    let parsed: Result<Option<At<Yaml>>, _> = serde_saphyr::from_str_with_options(text, options);
    let tree = parsed.map_err(|e| {
        // Locations are 1-based; a zero line means the parser did not know where.
        let loc = e.location().filter(|l| l.line() > 0);
        syntax(
            loc.map(|l| l.line() as usize),
            loc.map(|l| (l.column() as usize).max(1)),
            humanize(&yaml_message(&e.to_string())),
        )
    })?;
    let Some(mut tree) = tree.map(|at| at.0) else {
        return Err(syntax(
            Some(1),
            Some(1),
            "the file is empty (a job needs at least `name` and `tasks`)".into(),
        ));
    };
    tree.keep_written(text);
    Ok(tree)
}

/// Reads JSON into a tree, then finds each node's line in the text.
fn read_json(text: &str) -> Result<Node, Error> {
    let parsed: Result<At<Plain>, _> = serde_json::from_str(text);
    let mut tree = parsed.map(|at| at.0).map_err(|e| {
        // serde_json counts columns in bytes, and says 0 at the start of a line or at the end of
        // the input: report characters, from 1, like the other formats.
        let line = e.line().max(1);
        let column = text
            .split('\n')
            .nth(line - 1)
            .map_or(e.column(), |l| char_column(l, e.column()));
        Error::Syntax {
            format: Format::Json,
            line: Some(line),
            column: Some(column.max(1)),
            message: humanize(&strip_location(&e.to_string())),
        }
    })?;
    tree.locate_json(text);
    Ok(tree)
}

/// Reads TOML into a tree, each node's line from its span.
fn read_toml(text: &str) -> Result<Node, Error> {
    let parsed: Result<At<Toml>, _> = toml::from_str(text);
    let mut tree = parsed.map(|at| at.0).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Error::Syntax {
            format: Format::Toml,
            line,
            column,
            message: humanize(e.message().trim()),
        }
    })?;
    tree.locate_spans(text);
    Ok(tree)
}

/// Reads, parses and validates a job file; `-` reads standard input. Files' `source` is read
/// relative to the job file's directory (the current directory for standard input), as
/// [`parse_job_in`] reads it.
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
    let dir = match path.parent() {
        Some(dir) if path.as_os_str() != "-" && !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    parse_job_in(&text, format, dir)
}

/// The 1-based line and column (in characters) of byte offset `byte` in `text`.
fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let mut end = byte.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The 1-based character column of the 1-based byte column `byte_col` in `line`.
fn char_column(line: &str, byte_col: usize) -> usize {
    let mut end = byte_col.min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let chars = line[..end].chars().count();
    // A byte column inside a multi-byte character still points at that character.
    if end < byte_col.min(line.len()) {
        chars + 1
    } else {
        chars
    }
}

/// serde-saphyr's message without its location (reported separately) and with the advice meant
/// for Rust programmers replaced by advice for the person writing the file.
fn yaml_message(s: &str) -> String {
    let l = strip_location(s.lines().next().unwrap_or(s).trim());
    if l.contains("cannot deserialize null into string") {
        return "a value is missing here (write \"\" for an empty string)".to_owned();
    }
    if l.contains("multiple YAML documents") {
        return "a job file holds one YAML document (remove the extra `---`, or use one file per job)"
            .to_owned();
    }
    if l.contains("duplicate mapping key") {
        return l
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(&l)
            .to_owned()
            + " (each key may appear once)";
    }
    l
}

/// Words meant for Rust programmers replaced by words for the person writing the file. (The
/// parts of a file name themselves: see `Part::what` in `raw.rs`.)
fn humanize(message: &str) -> String {
    const NAMES: &[(&str, &str)] = &[("string scalar", "a string")];
    let mut m = message.to_owned();
    for (from, to) in NAMES {
        m = m.replace(from, to);
    }
    m
}

/// A message without a trailing " at line L, column C" / " at line L column C".
fn strip_location(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}
