//! The file shape as written, before validation: every field optional and every unit a raw
//! scalar, read from the file's [`tree`](super::tree) by a walk that knows the shape.
//!
//! The walk reports every unknown field (with the closest known name) and every value of the
//! wrong type (a list where a mapping belongs, a mapping where a string does), each with its
//! field path and line, and reads such a value as absent, so that one answer holds every
//! problem of a file. Validation then checks the values that have the right shape.
//!
//! YAML infers types from plain text, and inferring would change values (`yes` → `true`,
//! `3.10` → `3.1`, `0x10` → `16`): where a string is expected (an environment value, an image,
//! a command's word), a YAML plain scalar reads as the text written. JSON and TOML values are
//! typed, and stay as typed (`8080` stays an integer).

use std::collections::BTreeMap;

use super::problems::{Problems, join};
use super::tree::{Key, Node, Value};
use crate::units::Scalar;

#[derive(Debug, Default)]
pub(crate) struct RawJob {
    pub name: Option<String>,
    pub count: Option<Scalar>,
    pub constraints: Option<Vec<Option<RawConstraint>>>,
    pub tasks: Option<Vec<Option<RawTask>>>,
    pub network: Option<RawNetwork>,
    /// `volumes`: each name with its volume, in file order (a volume written without a
    /// mapping, `data:`, reads as one with no keys; one of the wrong shape, reported, as
    /// `None`, so that its name is still known).
    pub volumes: Option<Vec<(String, Option<RawVolume>)>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawVolume {
    pub kind: Option<String>,
    pub size: Option<Scalar>,
    pub source: Option<String>,
    pub read_only: Option<Scalar>,
    pub retain: Option<Scalar>,
    pub on_worker_loss: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawMount {
    pub volume: Option<String>,
    pub path: Option<String>,
    pub read_only: Option<Scalar>,
    pub subpath: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawSecret {
    pub name: Option<String>,
    pub path: Option<String>,
    pub mode: Option<String>,
    pub version: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(crate) struct RawNetwork {
    pub mode: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawConstraint {
    pub label: Option<String>,
    pub equals: Option<String>,
    pub not_equals: Option<String>,
}

/// A command as written: a list of words, or one line to split into words.
#[derive(Debug)]
pub(crate) enum RawCommand {
    /// `["sleep", "100"]`.
    List(Vec<String>),
    /// `sleep 100`.
    Line(String),
}

#[derive(Debug, Default)]
pub(crate) struct RawTask {
    pub name: Option<String>,
    pub image: Option<String>,
    pub command: Option<RawCommand>,
    pub env: Option<BTreeMap<String, Scalar>>,
    pub ports: Option<Vec<Option<RawPort>>>,
    pub resources: Option<RawResources>,
    pub restart: Option<RawRestart>,
    pub health_check: Option<RawHealthCheck>,
    pub user: Option<Scalar>,
    pub read_only: Option<Scalar>,
    pub entrypoint: Option<RawCommand>,
    pub working_dir: Option<String>,
    pub depends_on: Option<RawDependsOn>,
    pub sidecar: Option<Scalar>,
    pub stop_signal: Option<Scalar>,
    pub stop_grace: Option<Scalar>,
    pub init: Option<Scalar>,
    pub files: Option<Vec<Option<RawFile>>>,
    pub mounts: Option<Vec<Option<RawMount>>>,
    pub secrets: Option<Vec<Option<RawSecret>>>,
    pub aliases: Option<Vec<Option<String>>>,
    pub shm_size: Option<Scalar>,
    pub labels: Option<BTreeMap<String, Scalar>>,
    pub extra_hosts: Option<BTreeMap<String, Scalar>>,
}

/// `depends_on` as written: a list of task names, or a mapping of task names to conditions.
#[derive(Debug)]
pub(crate) enum RawDependsOn {
    /// `[db, migrate]`: each item a name (or `None` where it was not one, reported).
    List(Vec<Option<String>>),
    /// `{ db: { condition: healthy } }`: each name with its entry (`None`: written without
    /// one, `db: {}` or `db:`, or not a mapping, reported), in file order, duplicates kept
    /// for validation to report.
    Map(Vec<(String, Option<RawDependency>)>),
}

#[derive(Debug, Default)]
pub(crate) struct RawDependency {
    pub condition: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawFile {
    pub path: Option<String>,
    pub content: Option<String>,
    pub content_base64: Option<String>,
    pub source: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawHealthCheck {
    pub http: Option<RawHttpProbe>,
    pub tcp: Option<RawTcpProbe>,
    pub exec: Option<RawCommand>,
    pub image: Option<Scalar>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub failures: Option<Scalar>,
    pub start_period: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(crate) struct RawHttpProbe {
    pub port: Option<Scalar>,
    pub path: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawTcpProbe {
    pub port: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(crate) struct RawPort {
    pub container: Option<Scalar>,
    pub host: Option<Scalar>,
    pub protocol: Option<String>,
    pub host_ip: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawResources {
    pub cpu: Option<Scalar>,
    pub memory: Option<Scalar>,
    pub disk: Option<Scalar>,
    pub pids: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(crate) struct RawRestart {
    pub policy: Option<String>,
    pub max_attempts: Option<Scalar>,
    pub backoff: Option<RawBackoff>,
}

#[derive(Debug, Default)]
pub(crate) struct RawBackoff {
    pub initial: Option<Scalar>,
    pub max: Option<Scalar>,
    pub reset_after: Option<Scalar>,
}

/// A part of a job file that is written as a mapping: what it is called and its fields.
pub(crate) struct Part {
    /// The part as the person writing the file knows it, in the words of "expected ...".
    pub what: &'static str,
    /// Its fields.
    pub fields: &'static [&'static str],
}

pub(crate) const JOB: Part = Part {
    what: "a job (a mapping with name and tasks)",
    fields: &[
        "name",
        "count",
        "constraints",
        "tasks",
        "network",
        "volumes",
    ],
};
const VOLUMES: &str =
    "volumes (a mapping of volume names to volumes, e.g. { data: { type: volume, size: 1Gi } })";
const VOLUME: Part = Part {
    what: "a volume (a mapping with type and its keys, e.g. { type: volume, size: 1Gi })",
    fields: &[
        "type",
        "size",
        "source",
        "read_only",
        "retain",
        "on_worker_loss",
    ],
};
const MOUNT: Part = Part {
    what: "a mount (a mapping with volume and path, e.g. { volume: data, path: /var/lib/db })",
    fields: &["volume", "path", "read_only", "subpath"],
};
const SECRET: Part = Part {
    what: "a secret (a mapping with name, and optionally path and mode, e.g. { name: db-password })",
    fields: &["name", "path", "mode", "version"],
};
const NETWORK: Part = Part {
    what: "a network (a mapping with mode, e.g. { mode: none })",
    fields: &["mode"],
};
const CONSTRAINT: Part = Part {
    what: "a constraint (a mapping with label and equals or not_equals)",
    fields: &["label", "equals", "not_equals"],
};
const TASK: Part = Part {
    what: "a task (a mapping with name, image, ...)",
    fields: &[
        "name",
        "image",
        "command",
        "env",
        "ports",
        "resources",
        "restart",
        "health_check",
        "user",
        "read_only",
        "entrypoint",
        "working_dir",
        "depends_on",
        "sidecar",
        "stop_signal",
        "stop_grace",
        "init",
        "files",
        "mounts",
        "secrets",
        "aliases",
        "shm_size",
        "labels",
        "extra_hosts",
    ],
};
const DEPENDS_ON: &str = "the tasks this one waits for (a list of task names such as [db], or a mapping such as { db: { condition: healthy } })";
const DEPENDENCY: Part = Part {
    what: "a dependency (a mapping with condition, e.g. { condition: healthy })",
    fields: &["condition"],
};
const FILE: Part = Part {
    what: "a file (a mapping with path, content or content_base64, and mode)",
    fields: &["path", "content", "content_base64", "source", "mode"],
};
const ENV: &str = "environment variables (a mapping of names to values)";
const LABELS: &str =
    "container labels (a mapping of keys to values, e.g. { com.example.team: web })";
const EXTRA_HOSTS: &str = "extra hosts (a mapping of host names to IP addresses, e.g. { db.local: 10.0.0.5, host.docker.internal: host-gateway })";
const PORT: Part = Part {
    what: "a port (a mapping with container, host, protocol, host_ip)",
    fields: &["container", "host", "protocol", "host_ip"],
};
const RESOURCES: Part = Part {
    what: "resources (a mapping with cpu, memory, disk, pids)",
    fields: &["cpu", "memory", "disk", "pids"],
};
const RESTART: Part = Part {
    what: "a restart policy (a mapping with policy, max_attempts, backoff)",
    fields: &["policy", "max_attempts", "backoff"],
};
const BACKOFF: Part = Part {
    what: "a backoff (a mapping with initial, max, reset_after)",
    fields: &["initial", "max", "reset_after"],
};
const HEALTH: Part = Part {
    what: "a health check (a mapping with http, tcp, exec or image, and interval, timeout, failures, start_period)",
    fields: &[
        "http",
        "tcp",
        "exec",
        "image",
        "interval",
        "timeout",
        "failures",
        "start_period",
    ],
};
const HTTP: Part = Part {
    what: "an http check (a mapping with port and path)",
    fields: &["port", "path"],
};
const TCP: Part = Part {
    what: "a tcp check (a mapping with port)",
    fields: &["port"],
};

/// What the walk found wrong with the file's shape.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    /// Every unknown field and value of the wrong type.
    pub problems: Problems,
    /// The paths those problems account for (a value of the wrong type, the field an unknown
    /// one was probably meant to be): validation's problems at or under them say nothing new.
    pub covered: Vec<String>,
}

impl Shape {
    fn wrong(&mut self, path: &str, node: &Node, expected: &str) {
        self.problems.push_at(
            path,
            node.line,
            format!("expected {expected}, found {}", node.value.kind()),
        );
        self.covered.push(path.to_owned());
    }
}

/// Reads the job at the root of a file's tree.
pub(crate) fn read_job(s: &mut Shape, node: Node) -> RawJob {
    let Some(mut f) = Fields::open(s, "", node, &JOB) else {
        return RawJob::default();
    };
    RawJob {
        name: f.get(s, "name", string),
        count: f.get(s, "count", scalar),
        constraints: f.get(s, "constraints", |s, path, n| {
            list_of(s, path, n, "a list of constraints", read_constraint)
        }),
        tasks: f.get(s, "tasks", |s, path, n| {
            list_of(s, path, n, "a list of tasks", read_task)
        }),
        network: f.get(s, "network", |s, path, n| {
            let mut f = Fields::open(s, path, n, &NETWORK)?;
            Some(RawNetwork {
                mode: f.get(s, "mode", string),
            })
        }),
        volumes: f.get(s, "volumes", read_volumes),
    }
}

/// `volumes`: a mapping of names to volumes, each name once.
fn read_volumes(s: &mut Shape, path: &str, node: Node) -> Option<Vec<(String, Option<RawVolume>)>> {
    let Value::Map(entries) = node.value else {
        s.wrong(path, &node, VOLUMES);
        return None;
    };
    let mut out: Vec<(String, Option<RawVolume>)> = Vec::new();
    for (key, value) in entries {
        let here = join(path, &key.name);
        if out.iter().any(|(n, _)| *n == key.name) {
            s.problems.push_at(
                here,
                key.line.or(value.line),
                "is written twice: each volume name may appear once",
            );
            continue;
        }
        let volume = if value.value == Value::Null {
            Some(RawVolume::default())
        } else {
            Fields::open(s, &here, value, &VOLUME).map(|mut f| RawVolume {
                kind: f.get(s, "type", string),
                size: f.get(s, "size", scalar),
                source: f.get(s, "source", string),
                read_only: f.get(s, "read_only", scalar),
                retain: f.get(s, "retain", scalar),
                on_worker_loss: f.get(s, "on_worker_loss", string),
            })
        };
        out.push((key.name, volume));
    }
    Some(out)
}

fn read_mount(s: &mut Shape, path: &str, node: Node) -> Option<RawMount> {
    let mut f = Fields::open(s, path, node, &MOUNT)?;
    Some(RawMount {
        volume: f.get(s, "volume", string),
        path: f.get(s, "path", string),
        read_only: f.get(s, "read_only", scalar),
        subpath: f.get(s, "subpath", string),
    })
}

fn read_secret(s: &mut Shape, path: &str, node: Node) -> Option<RawSecret> {
    let mut f = Fields::open(s, path, node, &SECRET)?;
    Some(RawSecret {
        name: f.get(s, "name", string),
        path: f.get(s, "path", string),
        mode: f.get(s, "mode", mode),
        version: f.get(s, "version", scalar),
    })
}

fn read_constraint(s: &mut Shape, path: &str, node: Node) -> Option<RawConstraint> {
    let mut f = Fields::open(s, path, node, &CONSTRAINT)?;
    Some(RawConstraint {
        label: f.get(s, "label", string),
        equals: f.get(s, "equals", string),
        not_equals: f.get(s, "not_equals", string),
    })
}

fn read_task(s: &mut Shape, path: &str, node: Node) -> Option<RawTask> {
    let mut f = Fields::open(s, path, node, &TASK)?;
    Some(RawTask {
        name: f.get(s, "name", string),
        image: f.get(s, "image", string),
        command: f.get(s, "command", command),
        env: f.get(s, "env", |s, path, n| {
            scalar_map(s, path, n, ENV, "variable")
        }),
        ports: f.get(s, "ports", |s, path, n| {
            list_of(s, path, n, "a list of ports", |s, path, n| {
                let mut f = Fields::open(s, path, n, &PORT)?;
                Some(RawPort {
                    container: f.get(s, "container", scalar),
                    host: f.get(s, "host", scalar),
                    protocol: f.get(s, "protocol", string),
                    host_ip: f.get(s, "host_ip", string),
                })
            })
        }),
        resources: f.get(s, "resources", |s, path, n| {
            let mut f = Fields::open(s, path, n, &RESOURCES)?;
            Some(RawResources {
                cpu: f.get(s, "cpu", scalar),
                memory: f.get(s, "memory", scalar),
                disk: f.get(s, "disk", scalar),
                pids: f.get(s, "pids", scalar),
            })
        }),
        restart: f.get(s, "restart", read_restart),
        health_check: f.get(s, "health_check", read_health),
        user: f.get(s, "user", scalar),
        read_only: f.get(s, "read_only", scalar),
        entrypoint: f.get(s, "entrypoint", command),
        working_dir: f.get(s, "working_dir", string),
        depends_on: f.get(s, "depends_on", depends_on),
        sidecar: f.get(s, "sidecar", scalar),
        stop_signal: f.get(s, "stop_signal", scalar),
        stop_grace: f.get(s, "stop_grace", scalar),
        init: f.get(s, "init", scalar),
        files: f.get(s, "files", |s, path, n| {
            list_of(s, path, n, "a list of files", read_file)
        }),
        mounts: f.get(s, "mounts", |s, path, n| {
            list_of(s, path, n, "a list of mounts", read_mount)
        }),
        secrets: f.get(s, "secrets", |s, path, n| {
            list_of(s, path, n, "a list of secrets", read_secret)
        }),
        aliases: f.get(s, "aliases", |s, path, n| {
            list_of(
                s,
                path,
                n,
                "a list of network aliases (e.g. [cache, redis])",
                |s, path, n| match n.value {
                    Value::Scalar(Scalar::Str(t)) => Some(t),
                    Value::Scalar(_) if n.written.is_some() => n.written,
                    _ => {
                        s.wrong(path, &n, "an alias (a DNS label such as cache)");
                        None
                    }
                },
            )
        }),
        shm_size: f.get(s, "shm_size", scalar),
        labels: f.get(s, "labels", |s, path, n| {
            scalar_map(s, path, n, LABELS, "label")
        }),
        extra_hosts: f.get(s, "extra_hosts", |s, path, n| {
            scalar_map(s, path, n, EXTRA_HOSTS, "host")
        }),
    })
}

fn read_file(s: &mut Shape, path: &str, node: Node) -> Option<RawFile> {
    let mut f = Fields::open(s, path, node, &FILE)?;
    Some(RawFile {
        path: f.get(s, "path", string),
        content: f.get(s, "content", string),
        content_base64: f.get(s, "content_base64", string),
        source: f.get(s, "source", string),
        mode: f.get(s, "mode", mode),
    })
}

/// A file's mode: octal digits in a string (a YAML plain scalar reads as the text written).
fn mode(s: &mut Shape, path: &str, n: Node) -> Option<String> {
    match n.value {
        Value::Scalar(Scalar::Str(t)) => Some(t),
        Value::Scalar(_) if n.written.is_some() => n.written,
        _ => {
            s.wrong(path, &n, "a mode (octal digits in a string, e.g. \"0644\")");
            None
        }
    }
}

/// `depends_on`: a list of task names, or a mapping of task names to `{ condition }`.
fn depends_on(s: &mut Shape, path: &str, node: Node) -> Option<RawDependsOn> {
    match node.value {
        Value::List(_) => list_of(s, path, node, DEPENDS_ON, |s, path, n| match n.value {
            Value::Scalar(Scalar::Str(t)) => Some(t),
            Value::Scalar(_) if n.written.is_some() => n.written,
            _ => {
                s.wrong(path, &n, "a task name");
                None
            }
        })
        .map(RawDependsOn::List),
        Value::Map(entries) => Some(RawDependsOn::Map(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let here = join(path, &key.name);
                    let entry = match value.value {
                        Value::Null => None,
                        _ => {
                            let mut f = Fields::open(s, &here, value, &DEPENDENCY);
                            f.as_mut().map(|f| RawDependency {
                                condition: f.get(s, "condition", string),
                            })
                        }
                    };
                    (key.name, entry)
                })
                .collect(),
        )),
        _ => {
            s.wrong(path, &node, DEPENDS_ON);
            None
        }
    }
}

fn read_restart(s: &mut Shape, path: &str, node: Node) -> Option<RawRestart> {
    let mut f = Fields::open(s, path, node, &RESTART)?;
    Some(RawRestart {
        policy: f.get(s, "policy", string),
        max_attempts: f.get(s, "max_attempts", scalar),
        backoff: f.get(s, "backoff", |s, path, n| {
            let mut f = Fields::open(s, path, n, &BACKOFF)?;
            Some(RawBackoff {
                initial: f.get(s, "initial", scalar),
                max: f.get(s, "max", scalar),
                reset_after: f.get(s, "reset_after", scalar),
            })
        }),
    })
}

fn read_health(s: &mut Shape, path: &str, node: Node) -> Option<RawHealthCheck> {
    let mut f = Fields::open(s, path, node, &HEALTH)?;
    Some(RawHealthCheck {
        http: f.get(s, "http", |s, path, n| {
            let mut f = Fields::open(s, path, n, &HTTP)?;
            Some(RawHttpProbe {
                port: f.get(s, "port", scalar),
                path: f.get(s, "path", string),
            })
        }),
        tcp: f.get(s, "tcp", |s, path, n| {
            let mut f = Fields::open(s, path, n, &TCP)?;
            Some(RawTcpProbe {
                port: f.get(s, "port", scalar),
            })
        }),
        exec: f.get(s, "exec", command),
        image: f.get(s, "image", scalar),
        interval: f.get(s, "interval", scalar),
        timeout: f.get(s, "timeout", scalar),
        failures: f.get(s, "failures", scalar),
        start_period: f.get(s, "start_period", scalar),
    })
}

/// The known fields of one mapping, taken one by one.
struct Fields {
    path: String,
    entries: Vec<(Key, Node)>,
}

impl Fields {
    /// Opens the mapping at `path`, reporting a value that is not one, every unknown field and
    /// every field written twice.
    fn open(s: &mut Shape, path: &str, node: Node, part: &Part) -> Option<Fields> {
        let Value::Map(entries) = node.value else {
            s.wrong(path, &node, part.what);
            return None;
        };
        let mut known: Vec<(Key, Node)> = Vec::new();
        for (key, value) in entries {
            let here = join(path, &key.name);
            let line = key.line.or(value.line);
            if !part.fields.contains(&key.name.as_str()) {
                let guess = closest(&key.name, part.fields);
                let message = match guess {
                    Some(g) => {
                        s.covered.push(join(path, g));
                        format!(
                            "unknown field `{}`: did you mean {g}? (known fields: {})",
                            key.name,
                            part.fields.join(", ")
                        )
                    }
                    None => format!(
                        "unknown field `{}` (known fields: {})",
                        key.name,
                        part.fields.join(", ")
                    ),
                };
                s.problems.push_at(here, line, message);
            } else if let Some((first, _)) = known.iter().find(|(k, _)| k.name == key.name) {
                let at = first
                    .line
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                s.problems.push_at(
                    here,
                    line,
                    format!("is written twice{at}: each field may appear once"),
                );
            } else {
                known.push((key, value));
            }
        }
        Some(Fields {
            path: path.to_owned(),
            entries: known,
        })
    }

    /// Reads field `name` with `read`; absent (or null) reads as `None`.
    fn get<T>(
        &mut self,
        s: &mut Shape,
        name: &str,
        read: impl FnOnce(&mut Shape, &str, Node) -> Option<T>,
    ) -> Option<T> {
        let i = self.entries.iter().position(|(k, _)| k.name == name)?;
        let (_, node) = self.entries.swap_remove(i);
        if node.value == Value::Null {
            return None;
        }
        read(s, &join(&self.path, name), node)
    }
}

/// A string; a YAML plain scalar of another type reads as the text written.
fn string(s: &mut Shape, path: &str, node: Node) -> Option<String> {
    match node.value {
        Value::Scalar(Scalar::Str(t)) => Some(t),
        Value::Scalar(_) if node.written.is_some() => node.written,
        _ => {
            s.wrong(path, &node, "a string");
            None
        }
    }
}

/// A number, a string or a boolean, as validation reads it.
fn scalar(s: &mut Shape, path: &str, node: Node) -> Option<Scalar> {
    match node.value {
        Value::Scalar(v) => Some(v),
        _ => {
            s.wrong(path, &node, "a number or a string");
            None
        }
    }
}

/// A list whose items are read with `item`; an item of the wrong shape (reported) is `None`,
/// so that the others keep their places.
fn list_of<T>(
    s: &mut Shape,
    path: &str,
    node: Node,
    what: &str,
    mut item: impl FnMut(&mut Shape, &str, Node) -> Option<T>,
) -> Option<Vec<Option<T>>> {
    let Value::List(items) = node.value else {
        s.wrong(path, &node, what);
        return None;
    };
    Some(
        items
            .into_iter()
            .enumerate()
            .map(|(i, n)| item(s, &format!("{path}[{i}]"), n))
            .collect(),
    )
}

/// A command: a list of words, or one string (split into words by validation).
fn command(s: &mut Shape, path: &str, node: Node) -> Option<RawCommand> {
    match node.value {
        Value::List(_) => list_of(s, path, node, "a list of words", string)
            .and_then(|words| words.into_iter().collect())
            .map(RawCommand::List),
        Value::Scalar(_) => string(s, path, node).map(RawCommand::Line),
        _ => {
            s.wrong(
                path,
                &node,
                "a command (a list of words such as [\"sleep\", \"100\"], or one line such as \"sleep 100\")",
            );
            None
        }
    }
}

/// A mapping of names to scalar values (`env`, `labels`, `extra_hosts`: `what` names it, `one`
/// one of its entries): a value is a string, or a number or boolean that validation writes as
/// text (a YAML plain scalar reads as the text written).
fn scalar_map(
    s: &mut Shape,
    path: &str,
    node: Node,
    what: &str,
    one: &str,
) -> Option<BTreeMap<String, Scalar>> {
    let Value::Map(entries) = node.value else {
        s.wrong(path, &node, what);
        return None;
    };
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let here = join(path, &key.name);
        let line = key.line.or(value.line);
        if out.contains_key(&key.name) {
            s.problems.push_at(
                here,
                line,
                format!("is written twice: each {one} may appear once"),
            );
            continue;
        }
        let v = match value.value {
            Value::Null => {
                s.problems.push_at(
                    &here,
                    line,
                    "a value is missing here (write \"\" for an empty string)",
                );
                s.covered.push(here);
                continue;
            }
            Value::Scalar(Scalar::Str(t)) => Scalar::Str(t),
            Value::Scalar(v) => value.written.map_or(v, Scalar::Str),
            _ => {
                s.wrong(&here, &value, &format!("a string (a {one}'s value)"));
                continue;
            }
        };
        out.insert(key.name, v);
    }
    Some(out)
}

/// The known name closest to `name`, if one is close enough to be what was meant: at most one
/// edit in four letters away (a swap of two letters is one edit), or the same but for case, or
/// one that holds the other whole (`attempts` for `max_attempts`).
pub(crate) fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edits(&lower, k), *k))
        .filter(|(d, k)| {
            *d <= (k.len().max(lower.len()) / 4).max(1)
                || (lower.len() >= 3 && (k.contains(lower.as_str()) || lower.contains(*k)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The edits that turn `a` into `b`: inserting, removing or changing a letter, or swapping two
/// letters side by side (the optimal string alignment distance).
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let change = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + change);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
