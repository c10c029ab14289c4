//! The error of the compose room: why a Compose file could not be read or carried over.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A remark on one key of a Compose file: a warning, or the reason it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The key's path in the Compose file, e.g. `services.web.cap_add` or
    /// `services.logstash.volumes[1]`; empty for the file as a whole.
    pub path: String,
    /// What is wrong or lost, and the fix where there is one.
    pub message: String,
}

impl Note {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Note {
        Note {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a Compose project could not be read or converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// No file was named and none of the default names is in the directory.
    #[error(
        "no Compose file in {}: looked for compose.yaml, compose.yml, docker-compose.yml and docker-compose.yaml (name one with -f)",
        dir.display()
    )]
    NoFile {
        /// The directory looked in.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not well-formed YAML, or not a Compose file's shape.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line, where known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be carried over as it is: every refusal with its key's path, and the
    /// warnings met on the way (with `--strict`, the warnings are refusals too).
    #[error("{}", refused_summary(refusals))]
    Refused {
        /// Each refused key, with the reason and the fix.
        refusals: Vec<Note>,
        /// The warnings.
        warnings: Vec<Note>,
    },
}

fn refused_summary(refusals: &[Note]) -> String {
    let mut s = format!(
        "the Compose file cannot be run as it is ({} problem{}):",
        refusals.len(),
        if refusals.len() == 1 { "" } else { "s" }
    );
    for r in refusals {
        s.push_str("\n  ");
        s.push_str(&r.to_string());
    }
    s
}
