//! Task logs: the query, where a task's output lives, and the output.

use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use crate::ids::{InstanceId, TaskName, WorkerId};

/// `GET /v1/jobs/{job}/logs` query: which task of which instance, and how many lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The task; may be left out when the job has one task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Which copy of the job (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// How many of the last lines (default [`LogsQuery::DEFAULT_TAIL`], at most
    /// [`LogsQuery::MAX_TAIL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<usize>,
    /// Only output written since then: a duration ago (`10m`, `1h30m`), an RFC 3339 time
    /// (`2024-05-01T12:00:00Z`) or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Stream the output as it is written (chunked `text/plain`), following the task into its
    /// next container when it restarts or is replaced, until the job ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
}

impl LogsQuery {
    /// Lines returned when `tail` is not given.
    pub const DEFAULT_TAIL: usize = 100;
    /// The most lines one request may ask for.
    pub const MAX_TAIL: usize = 10_000;

    /// The number of lines asked for, checked.
    pub fn tail(&self) -> Result<usize, ApiError> {
        match self.tail {
            None => Ok(Self::DEFAULT_TAIL),
            Some(n) if (1..=Self::MAX_TAIL).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "invalid_tail",
                format!(
                    "tail {n} is out of range: ask for 1 to {} lines",
                    Self::MAX_TAIL
                ),
            )),
        }
    }

    /// The `since` asked for, as Unix seconds at `now`; `None` when not given.
    pub fn since_at(&self, now: std::time::SystemTime) -> Result<Option<i64>, ApiError> {
        self.since
            .as_deref()
            .map(|s| parse_since(s, now))
            .transpose()
            .map_err(|m| ApiError::bad_request("invalid_since", m))
    }
}

/// Reads a `since` (a duration ago, an RFC 3339 time, or Unix seconds) as Unix seconds at `now`.
pub fn parse_since(s: &str, now: std::time::SystemTime) -> Result<i64, String> {
    use std::time::UNIX_EPOCH;
    let s = s.trim();
    let secs = |t: std::time::SystemTime| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => 0,
    };
    if let Ok(n) = s.parse::<i64>()
        && n >= 0
    {
        return Ok(n);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(secs(now.checked_sub(d).unwrap_or(UNIX_EPOCH)));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(secs(t));
    }
    Err(format!(
        "since {s:?} is neither a duration (10m, 1h30m) nor a time (2024-05-01T12:00:00Z, or Unix seconds)"
    ))
}

/// Where one task's output lives: the manager finds it, the worker's endpoint serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSource {
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// The task.
    pub task: TaskName,
    /// The worker running it.
    pub worker: WorkerId,
    /// The worker's endpoint (`http://host:port`).
    pub address: String,
    /// The task's container on that worker.
    pub container_id: String,
}

/// The last lines a task's container wrote (stdout and stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The instance.
    pub instance: InstanceId,
    /// Which copy of the job.
    pub index: u32,
    /// The task.
    pub task: TaskName,
    /// The worker running it.
    pub worker: WorkerId,
    /// The output, as the engine returned it.
    pub text: String,
}

/// A worker endpoint's answer for one container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLogs {
    /// The output.
    pub text: String,
}
