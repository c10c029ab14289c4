//! What makes the tasks of one instance work together: the instance's network, the order in
//! which its tasks start ([`Condition`]), and the config files a task carries ([`ConfigFile`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an instance's tasks are networked: `network: { mode: bridge | none }` on the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Network {
    /// The mode.
    pub mode: NetworkMode,
}

impl Network {
    /// Whether this is the default (a network of the instance's own), which files leave out.
    pub fn is_default(&self) -> bool {
        *self == Network::default()
    }
}

/// The network mode of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Every instance gets a bridge network of its own; each task joins it with its task name as
    /// alias, so that sibling tasks reach each other by name and nothing else reaches them (but
    /// through published ports).
    #[default]
    Bridge,
    /// No network at all: only loopback. Ports and http/tcp health checks are refused.
    None,
}

impl NetworkMode {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::None => "none",
        }
    }
}

/// What a task waits for before its first start: `depends_on: { db: { condition: healthy } }`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency's container has started (the default, and what a plain list means).
    #[default]
    Started,
    /// The dependency has passed its health check (it must have one).
    Healthy,
    /// The dependency has run to the end and exited 0 (an init task: its restart policy is
    /// `never` or `on-failure`, and it is not a sidecar).
    CompletedSuccessfully,
}

impl Condition {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::CompletedSuccessfully => "completed_successfully",
        }
    }

    /// What a task waiting for `dependency` under this condition waits for, in words:
    /// `db to be healthy`.
    pub fn waiting_for(self, dependency: &str) -> String {
        match self {
            Condition::Started => format!("{dependency} to start"),
            Condition::Healthy => format!("{dependency} to be healthy"),
            Condition::CompletedSuccessfully => format!("{dependency} to complete successfully"),
        }
    }
}

/// A file written into a task's container: `files: [{ path, content | content_base64, mode }]`.
///
/// The worker writes it under its own data directory and bind-mounts it read-only at `path`:
/// the job file gives the content, never a host path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigFile {
    /// Where it appears inside the container: an absolute path.
    pub path: String,
    /// Its bytes.
    pub content: Vec<u8>,
    /// Its permission bits (default `0o644`).
    pub mode: u32,
}

impl ConfigFile {
    /// Permission bits of a file that names none.
    pub const DEFAULT_MODE: u32 = 0o644;
}

impl Serialize for ConfigFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ConfigFile", 3)?;
        st.serialize_field("path", &self.path)?;
        match std::str::from_utf8(&self.content) {
            Ok(text) => st.serialize_field("content", text)?,
            Err(_) => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&self.content);
                st.serialize_field("content_base64", &b64)?;
            }
        }
        st.serialize_field("mode", &format!("{:04o}", self.mode))?;
        st.end()
    }
}

/// The longest a task's `stop_grace` may be: graces add up along a chain of dependents, which
/// stop one after another.
pub const MAX_STOP_GRACE: Duration = Duration::from_secs(300);
