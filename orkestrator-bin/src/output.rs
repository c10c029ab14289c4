//! How the binary prints: standard output that ends quietly when its reader goes away, aligned
//! tables, colours only for a terminal, the exit codes, and human units.

use std::fmt;
use std::io::{IsTerminal, Write};

/// The exit codes, documented in `--help` (see [`EXIT_CODES_HELP`]).
pub mod exit {
    /// It worked.
    pub const OK: u8 = 0;
    /// The command ran, and what it reports failed: a job or task failed, a component is not
    /// ready, or an unexpected error.
    pub const FAILED: u8 = 1;
    /// Bad usage: an unknown flag, a bad value, an invalid job file.
    pub const USAGE: u8 = 2;
    /// The manager could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The manager refused the request (no such job, a conflict, a rule broken).
    pub const REFUSED: u8 = 4;
    /// A `--wait` ran out of time (`--timeout`).
    pub const TIMEOUT: u8 = 5;
}

/// The `--help` section that lists the exit codes.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure: a job or task failed, a component is not ready, an unexpected error
  2  usage error: a bad flag or value, an invalid job file
  3  cannot reach the manager
  4  the manager refused the request (no such job, a conflict, an invalid request)
  5  timed out waiting (run --wait, stop --wait: see --timeout)
Output into a closed pipe (`orkestrator status | head -1`) ends quietly with 0.";

/// The error that stands for "standard output was closed": `main` exits quietly with 0 on it.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// An error that tells `main` which exit code to use (its message is printed as usual).
#[derive(Debug)]
pub struct Exit {
    /// The exit code.
    pub code: u8,
    /// What to print on standard error (nothing when empty).
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// An error that ends the command with `code` after printing `message`.
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: message.into(),
    }
    .into()
}

/// Writes `args` to standard output; a closed pipe becomes [`StdoutClosed`].
pub fn write_out(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `println!` that returns an error instead of panicking when standard output is closed: use it
/// in functions returning `anyhow::Result` (`outln!(...)?` is implied).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n"))? };
    ($($t:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($t)*)))? };
}

/// `eprintln!` that never panics (a closed standard error is ignored).
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

/// Whether `NO_COLOR` asks for no colour (set and not empty).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether standard output is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether to colour standard output: a terminal, and `NO_COLOR` not set.
pub fn color() -> bool {
    stdout_is_tty() && !no_color()
}

/// Whether to colour standard error (for logs): a terminal, and `NO_COLOR` not set.
pub fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && !no_color()
}

/// A colour for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// As it is.
    Plain,
    /// Bold (headers).
    Bold,
    /// Good: running, ready.
    Green,
    /// On its way: pending, starting.
    Yellow,
    /// Bad: failed, lost, down.
    Red,
    /// Over: stopped.
    Dim,
}

impl Paint {
    fn code(self) -> Option<&'static str> {
        match self {
            Paint::Plain => None,
            Paint::Bold => Some("1"),
            Paint::Green => Some("32"),
            Paint::Yellow => Some("33"),
            Paint::Red => Some("31"),
            Paint::Dim => Some("2"),
        }
    }

    /// `s` in this colour when `on`, else `s` as it is.
    pub fn apply(self, s: &str, on: bool) -> String {
        match self.code() {
            Some(c) if on => format!("\x1b[{c}m{s}\x1b[0m"),
            _ => s.to_owned(),
        }
    }

    /// The colour for a state or phase name (`Running`, `Failed`, `ready`, ...).
    pub fn for_state(s: &str) -> Paint {
        match s.to_ascii_lowercase().as_str() {
            "running" | "completed" | "ready" | "ok" => Paint::Green,
            "pending" | "scheduled" | "waiting" | "starting" | "restarting" | "stopping"
            | "suspect" => Paint::Yellow,
            "failed" | "lost" | "down" | "unhealthy" => Paint::Red,
            "stopped" => Paint::Dim,
            _ => Paint::Plain,
        }
    }
}

/// A table: a header and rows of cells, printed with columns as wide as their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<(String, Paint)>>,
    indent: usize,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Table {
        Table {
            rows: vec![
                headers
                    .iter()
                    .map(|h| (h.as_ref().to_owned(), Paint::Bold))
                    .collect(),
            ],
            indent: 0,
        }
    }

    /// A table without a header.
    pub fn bare() -> Table {
        Table::default()
    }

    /// Indents every line by `n` spaces.
    pub fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    /// Adds a row of plain cells.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| (c, Paint::Plain)).collect());
    }

    /// Adds a row whose cells have colours.
    pub fn painted_row(&mut self, cells: Vec<(String, Paint)>) {
        self.rows.push(cells);
    }

    /// The lines of the table (coloured when `color`).
    pub fn render(&self, color: bool) -> Vec<String> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|(s, _)| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.rows
            .iter()
            .map(|r| {
                let mut line = " ".repeat(self.indent);
                for (c, (cell, paint)) in r.iter().enumerate() {
                    line.push_str(&paint.apply(cell, color));
                    if c + 1 < r.len() {
                        let pad = widths[c] - cell.chars().count() + 2;
                        line.push_str(&" ".repeat(pad));
                    }
                }
                line.trim_end().to_owned()
            })
            .collect()
    }

    /// Prints the table on standard output.
    pub fn print(&self) -> anyhow::Result<()> {
        for line in self.render(color()) {
            outln!("{line}");
        }
        Ok(())
    }
}

/// CPU in cores, as `0.25` or `1.50`.
pub fn cores(c: f64) -> String {
    format!("{c:.2}")
}

/// Bytes in binary units: `512B`, `12.3Mi`, `1.5Gi`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["Ki", "Mi", "Gi", "Ti", "Pi"];
    if b < 1024 {
        return format!("{b}B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v >= 100.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a value as JSON on one line.
pub fn print_json_line<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// "3s ago", "2m ago".
pub fn ago(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else {
        format!("{}h ago", s / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align_on_the_widest_cell() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec!["a-long-name".into(), "Running".into()]);
        t.painted_row(vec![
            ("b".into(), Paint::Plain),
            ("Failed".into(), Paint::Red),
        ]);
        let lines = t.render(false);
        assert_eq!(lines[0], "NAME         STATE");
        assert_eq!(lines[1], "a-long-name  Running");
        assert_eq!(lines[2], "b            Failed");
        // Colour codes do not count toward widths.
        let coloured = t.render(true);
        assert!(coloured[2].starts_with("b            \x1b[31mFailed"));
    }

    #[test]
    fn units_read_well() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5Ki");
        assert_eq!(bytes(300 * 1024 * 1024), "300Mi");
        assert_eq!(cores(0.254), "0.25");
    }
}
