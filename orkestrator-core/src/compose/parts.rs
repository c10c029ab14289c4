//! What the mapping of services works with: the caller's options, what the mapping gathers on
//! its way (refusals, warnings, where each part of the job came from, the job-wide volumes,
//! constraints and secrets), and the small readers every part shares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::Note;
use super::load::Project;
use super::text::units::{format_duration, parse_duration};
use super::yaml::scalar_text;

/// CPU given to a service that names none (Compose means "no limit"; a task must reserve
/// something).
pub const DEFAULT_CPU: &str = "250m";
/// Memory given to a service that names none: enough that a database is not killed by a
/// small default.
pub const DEFAULT_MEMORY: &str = "512Mi";

/// What the caller knows beyond the files: images it built, images' own health checks, and
/// how strict to be.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The image of each service with `build:`, by service name (the tag
    /// [`BuildPlan::repository`] was built under, or where it was pushed).
    pub images: BTreeMap<String, String>,
    /// The `HEALTHCHECK` of images that have one, by image reference: a service without a
    /// `healthcheck` then uses its image's, as the engine runs it.
    pub image_healthchecks: BTreeMap<String, ImageHealth>,
    /// `--strict`: every warning is a refusal.
    pub strict: bool,
    /// Under `orkestrator dev`: the host volume the worker offers the project directory as,
    /// so that a bind mount of a directory under it maps onto it with a `subpath`.
    pub dev_host_volume: Option<String>,
}

/// An image's own `HEALTHCHECK` timings (what the engine would use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageHealth {
    /// `--interval`, where set.
    pub interval: Option<Duration>,
    /// `--timeout`, where set.
    pub timeout: Option<Duration>,
    /// `--retries`, where set.
    pub retries: Option<u32>,
    /// `--start-period`, where set.
    pub start_period: Option<Duration>,
}

/// An image to build before the job is submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The service.
    pub service: String,
    /// The build context: a directory.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context (none: `Dockerfile`).
    pub dockerfile: Option<String>,
    /// The stage to build.
    pub target: Option<String>,
    /// Build arguments.
    pub args: BTreeMap<String, String>,
    /// The image's repository: `PROJECT-TASK`.
    pub repository: String,
}

/// A secret the job needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPlan {
    /// The secret's name in Orkestrator (`PROJECT_SECRET` for one `compose up` creates).
    pub name: String,
    /// The secret's key in the Compose file.
    pub compose_name: String,
    /// Its value, read from its `file` or `environment`; none for an `external` secret, which
    /// must exist already.
    pub content: Option<Vec<u8>>,
}

/// The project's services, by name.
pub(crate) fn services(project: &Project) -> impl Iterator<Item = (&String, &Map<String, Value>)> {
    project
        .doc
        .get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_object().map(|m| (k, m)))
}

/// Where each part of the job came from in the Compose file: job field path prefixes and the
/// Compose key they map back to.
#[derive(Debug, Default)]
pub(crate) struct Origins(Vec<(String, String)>);

impl Origins {
    pub(crate) fn add(&mut self, job_path: impl Into<String>, compose_path: impl Into<String>) {
        self.0.push((job_path.into(), compose_path.into()));
    }

    /// The Compose key of job field `path`: the one of its longest recorded prefix.
    pub(crate) fn find(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|(job, _)| {
                path == job
                    || path
                        .strip_prefix(job.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
            .max_by_key(|(job, _)| job.len())
            .map(|(_, c)| c.as_str())
    }
}

/// What the mapping gathers on its way.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    pub refusals: Vec<Note>,
    pub warnings: Vec<Note>,
    pub origins: Origins,
    pub secrets: Vec<SecretPlan>,
    /// The job's volumes, by name.
    pub volumes: Map<String, Value>,
    /// The job's constraints.
    pub constraints: Vec<Value>,
}

impl Gathered {
    pub(crate) fn refuse(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.refusals.push(Note::new(path, message));
    }
    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Note::new(path, message));
    }
}

/// A duration key's value in the job file's syntax, or a refusal at `path`.
pub(crate) fn duration(g: &mut Gathered, path: &str, v: &Value) -> Option<Duration> {
    let text = scalar_text(v).unwrap_or_default();
    match parse_duration(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            g.refuse(path, e);
            None
        }
    }
}

/// A duration as the job file writes it.
pub(crate) fn dur(d: Duration) -> Value {
    Value::String(format_duration(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_find_the_longest_prefix_at_a_boundary() {
        let mut o = Origins::default();
        o.add("tasks[1]", "services.api");
        o.add("tasks[1].files[0]", "services.api.volumes[2]");
        o.add("tasks[10]", "services.z");
        assert_eq!(
            o.find("tasks[1].files[0].content"),
            Some("services.api.volumes[2]")
        );
        assert_eq!(o.find("tasks[1].image"), Some("services.api"));
        assert_eq!(o.find("tasks[10].image"), Some("services.z"));
        assert_eq!(o.find("name"), None);
    }
}
