//! What is wrong with a job spec: every problem with its field path (a leaf of the spec, which
//! the crate's error type also carries).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a job spec: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The field path, e.g. `tasks[1].resources.memory`.
    pub path: String,
    /// What is wrong and, where there is one, the fix (`unknown field \`imgae\`: did you
    /// mean image?`).
    pub message: String,
    /// The 1-based line of the file where the field is written, where the format tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.line) {
            (true, None) => f.write_str(&self.message),
            (true, Some(l)) => write!(f, "line {l}: {}", self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(l)) => write!(f, "{} (line {l}): {}", self.path, self.message),
        }
    }
}

/// Every problem found in one job spec (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Adds a problem at `path`.
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
            line: None,
        });
    }

    /// Adds a problem at `path`, written at `line`.
    pub(crate) fn push_at(
        &mut self,
        path: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
            line,
        });
    }

    /// The problems, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The path of field `name` inside the part at `path` (`tasks[0]` and `image` give
/// `tasks[0].image`; the job itself is the empty path).
pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}
