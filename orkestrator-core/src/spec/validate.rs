//! Validation: turns a [`RawJob`] into a [`Job`], collecting every problem with its field path and,
//! where there is one, the fix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raw::{
    RawBackoff, RawConstraint, RawHealthCheck, RawJob, RawPort, RawResources, RawRestart, RawTask,
};
use super::{
    Backoff, Constraint, ConstraintOp, HealthCheck, Job, PortMapping, Probe, Protocol, Resources,
    RestartMode, RestartPolicy, Task,
};
use crate::ids::{JobId, TaskName};
use crate::units::{self, ByteSize, Cpu, Scalar};

/// One problem in a job spec: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The field path, e.g. `tasks[1].resources.memory`.
    pub path: String,
    /// What is wrong and, where there is one, the fix.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one job spec (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
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

/// Largest CPU a task may ask for.
pub const MAX_CPU: Cpu = Cpu::from_cores(1024);
/// Smallest CPU a submitted task may ask for: the kernel's smallest CFS quota is 1 ms per 100 ms
/// period, so Docker refuses a limit under 0.01 CPU (`cpu.cfs_quota_us: invalid argument`).
pub const MIN_CPU: Cpu = Cpu::from_millis(10);
/// Smallest memory a task may ask for (Docker refuses limits under 6 MiB).
pub const MIN_MEMORY: ByteSize = ByteSize::mib(6);
/// Largest memory a task may ask for.
pub const MAX_MEMORY: ByteSize = ByteSize::gib(16 * 1024);
/// Largest disk a task may ask for.
pub const MAX_DISK: ByteSize = ByteSize::gib(1024 * 1024);
/// Most instances a job may ask for.
pub const MAX_COUNT: u32 = 1000;
/// Most restart attempts a policy may allow.
pub const MAX_ATTEMPTS: u32 = 10_000;
/// Longest backoff duration.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// Most tasks a job may have.
pub const MAX_TASKS: usize = 64;
/// Most constraints a job may have.
pub const MAX_CONSTRAINTS: usize = 64;
/// Longest label key, in bytes (a constraint's `label`, a worker's label key).
pub const MAX_LABEL_KEY_BYTES: usize = 253;
/// Longest label value, in bytes (a constraint's `equals` or `not_equals`, a worker's label
/// value).
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// Longest image reference, in bytes.
pub const MAX_IMAGE_BYTES: usize = 255;
/// Most elements a command (`command`, a health check's `exec`) may have.
pub const MAX_COMMAND_ARGS: usize = 1024;
/// Longest single element of a command, in bytes.
pub const MAX_COMMAND_ARG_BYTES: usize = 64 * 1024;
/// Most bytes a command's elements may hold in all.
pub const MAX_COMMAND_BYTES: usize = 128 * 1024;
/// Most environment variables a task may have.
pub const MAX_ENV_VARS: usize = 256;
/// Longest environment variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Longest environment variable value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;
/// Most bytes a task's environment may hold in all (names and values).
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// Most ports a task may list.
pub const MAX_PORTS: usize = 256;
/// Longest HTTP health check path, in bytes.
pub const MAX_PROBE_PATH_BYTES: usize = 2048;

/// Reports, for a submission, that `path` holds `n` `what`s where at most `max` are allowed;
/// returns whether it did.
fn over_limit(
    p: &mut Problems,
    rules: Rules,
    path: &str,
    n: usize,
    max: usize,
    what: &str,
) -> bool {
    if rules != Rules::Submission || n <= max {
        return false;
    }
    p.push(path, format!("{n} {what}; at most {max} are allowed"));
    true
}

/// Which rules a spec is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// A spec submitted now: every rule.
    Submission,
    /// A spec read back as a value (the manager's store, an assignment sent to a worker): what
    /// was accepted once stays readable, so rules added since (such as [`MIN_CPU`]) are not
    /// applied again; the runtime copes with such values.
    Stored,
}

pub(crate) fn validate<V: Into<Scalar>>(raw: RawJob<V>, rules: Rules) -> Result<Job, Problems> {
    let mut p = Problems::default();
    let name = match raw.name {
        None => {
            p.push("name", "is required (a DNS label such as `web`)");
            None
        }
        Some(n) => check_dns_label(&mut p, "name", &n).then(|| JobId::new(n)),
    };
    let count = match raw.count {
        None => 1,
        Some(Scalar::Int(n)) if (1..=MAX_COUNT as i128).contains(&n) => n as u32,
        Some(Scalar::Int(n)) => {
            p.push(
                "count",
                format!("{n} is out of range (run 1 to {MAX_COUNT} instances)"),
            );
            1
        }
        Some(other) => {
            p.push(
                "count",
                format!("{} is not a whole number (use e.g. 3)", show(&other)),
            );
            1
        }
    };
    let raw_constraints = raw.constraints.unwrap_or_default();
    over_limit(
        &mut p,
        rules,
        "constraints",
        raw_constraints.len(),
        MAX_CONSTRAINTS,
        "constraints",
    );
    let constraints: Vec<Constraint> = raw_constraints
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| validate_constraint(&mut p, &format!("constraints[{i}]"), c, rules))
        .collect();
    let mut tasks = Vec::new();
    match raw.tasks {
        None => p.push(
            "tasks",
            "is required: a job needs at least one task (a list of {name, image, ...})",
        ),
        Some(t) if t.is_empty() => p.push(
            "tasks",
            "is empty: a job needs at least one task (a list of {name, image, ...})",
        ),
        Some(raw_tasks) => {
            over_limit(&mut p, rules, "tasks", raw_tasks.len(), MAX_TASKS, "tasks");
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut host_ports: HashMap<(u16, Protocol), String> = HashMap::new();
            for (i, rt) in raw_tasks.into_iter().enumerate() {
                let path = format!("tasks[{i}]");
                if let Some(n) = &rt.name {
                    if let Some(first) = seen.get(n) {
                        p.push(
                            format!("{path}.name"),
                            format!(
                                "{n:?} is also the name of tasks[{first}] (task names must be unique in a job: rename one of them)"
                            ),
                        );
                    } else {
                        seen.insert(n.clone(), i);
                    }
                }
                if let Some(t) = validate_task(&mut p, &path, rt, &mut host_ports, rules) {
                    tasks.push(t);
                }
            }
        }
    }
    match name {
        Some(name) if p.is_empty() => Ok(Job {
            name,
            count,
            constraints,
            tasks,
        }),
        _ => Err(p),
    }
}

fn validate_constraint(
    p: &mut Problems,
    path: &str,
    rc: RawConstraint,
    rules: Rules,
) -> Option<Constraint> {
    for (field, value) in [("equals", &rc.equals), ("not_equals", &rc.not_equals)] {
        if let Some(v) = value {
            over_limit(
                p,
                rules,
                &format!("{path}.{field}"),
                v.len(),
                MAX_LABEL_VALUE_BYTES,
                "bytes",
            );
        }
    }
    let label = match rc.label {
        None => {
            p.push(
                format!("{path}.label"),
                "is required (the worker label to test, e.g. zone)",
            );
            None
        }
        Some(l) if l.len() > MAX_LABEL_KEY_BYTES => {
            p.push(
                format!("{path}.label"),
                format!(
                    "is not a label key: {} bytes; at most {MAX_LABEL_KEY_BYTES} are allowed",
                    l.len()
                ),
            );
            None
        }
        Some(l) if !is_label_key(&l) => {
            p.push(
                format!("{path}.label"),
                format!("{l:?} is not a label key (use letters, digits, '.', '_', '/' and '-', e.g. zone)"),
            );
            None
        }
        Some(l) => Some(l),
    };
    let op = match (rc.equals, rc.not_equals) {
        (Some(v), None) => Some(ConstraintOp::Equals(v)),
        (None, Some(v)) => Some(ConstraintOp::NotEquals(v)),
        (Some(_), Some(_)) => {
            p.push(path, "has both equals and not_equals: use one of them");
            None
        }
        (None, None) => {
            p.push(
                path,
                "needs equals or not_equals (e.g. { label: zone, equals: a })",
            );
            None
        }
    };
    Some(Constraint {
        label: label?,
        op: op?,
    })
}

fn is_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_LABEL_KEY_BYTES
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
}

fn validate_task<V: Into<Scalar>>(
    p: &mut Problems,
    path: &str,
    rt: RawTask<V>,
    host_ports: &mut HashMap<(u16, Protocol), String>,
    rules: Rules,
) -> Option<Task> {
    let before = p.len();
    let name = match rt.name {
        None => {
            p.push(
                format!("{path}.name"),
                "is required (a DNS label such as `server`)",
            );
            None
        }
        Some(n) => check_dns_label(p, &format!("{path}.name"), &n).then(|| TaskName::new(n)),
    };
    let image = match rt.image {
        None => {
            p.push(
                format!("{path}.image"),
                "is required (an image reference with a tag, e.g. busybox:1.36)",
            );
            None
        }
        Some(i) => match check_image(&i) {
            Ok(()) => Some(i),
            Err(m) => {
                p.push(format!("{path}.image"), m);
                None
            }
        },
    };
    let command = rt.command.unwrap_or_default();
    check_command_size(p, rules, &format!("{path}.command"), &command);
    for (ci, c) in command.iter().enumerate() {
        if c.contains('\0') {
            p.push(
                format!("{path}.command[{ci}]"),
                "contains a NUL character (remove it: programs cannot receive it)",
            );
        }
    }
    if command.first().is_some_and(|c| c.trim().is_empty()) {
        p.push(
            format!("{path}.command[0]"),
            "is empty: the first element is the program to run (e.g. [\"sh\", \"-c\", \"...\"])",
        );
    }
    let mut env = BTreeMap::new();
    let raw_env = rt.env.unwrap_or_default();
    let env_path = format!("{path}.env");
    over_limit(
        p,
        rules,
        &env_path,
        raw_env.len(),
        MAX_ENV_VARS,
        "variables",
    );
    let mut env_bytes = 0usize;
    for (k, v) in raw_env {
        if rules == Rules::Submission && k.len() > MAX_ENV_NAME_BYTES {
            // The name is the path of every other problem: too long to repeat.
            p.push(
                &env_path,
                format!(
                    "a variable name of {} bytes; at most {MAX_ENV_NAME_BYTES} are allowed",
                    k.len()
                ),
            );
            continue;
        }
        let kp = format!("{path}.env.{k}");
        if !is_env_name(&k) {
            p.push(&kp, format!("{k:?} is not a valid variable name (use letters, digits and _, not starting with a digit)"));
        }
        let value = match v.into() {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => {
                p.push(
                    &kp,
                    format!(
                        "{f:?} is a floating-point number, which may not keep the digits as written (quote the value, e.g. \"{f:?}\")"
                    ),
                );
                continue;
            }
        };
        if value.contains('\0') {
            p.push(
                &kp,
                "contains a NUL character (remove it: the environment cannot hold it)",
            );
        }
        over_limit(p, rules, &kp, value.len(), MAX_ENV_VALUE_BYTES, "bytes");
        env_bytes += k.len() + value.len();
        env.insert(k, value);
    }
    if rules == Rules::Submission && env_bytes > MAX_ENV_BYTES {
        p.push(
            &env_path,
            format!(
                "{env_bytes} bytes in all (names and values); at most {MAX_ENV_BYTES} are allowed"
            ),
        );
    }
    let mut ports = Vec::new();
    let mut seen_container: HashMap<(u16, Protocol), usize> = HashMap::new();
    let raw_ports = rt.ports.unwrap_or_default();
    over_limit(
        p,
        rules,
        &format!("{path}.ports"),
        raw_ports.len(),
        MAX_PORTS,
        "ports",
    );
    for (i, rp) in raw_ports.into_iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        let Some(port) = validate_port(p, &pp, rp) else {
            continue;
        };
        let mut host_taken = false;
        if let Some(h) = port.host {
            let here = format!("{pp}.host");
            if let Some(first) = host_ports.get(&(h, port.protocol)) {
                host_taken = true;
                p.push(
                    here,
                    format!(
                        "host port {h}/{} is already used by {first} (each host port can be published once: pick another)",
                        port.protocol.as_str()
                    ),
                );
            } else {
                host_ports.insert((h, port.protocol), here);
            }
        }
        if let Some(first) = seen_container.get(&(port.container, port.protocol)) {
            if !host_taken {
                p.push(
                    format!("{pp}.container"),
                    format!(
                        "port {}/{} is already listed in {path}.ports[{first}] (list each container port once)",
                        port.container,
                        port.protocol.as_str()
                    ),
                );
            }
        } else {
            seen_container.insert((port.container, port.protocol), i);
        }
        ports.push(port);
    }
    let mut raw_resources = rt.resources;
    let raw_pids = raw_resources.as_mut().and_then(|r| r.pids.take());
    let resources = validate_resources(p, &format!("{path}.resources"), raw_resources, rules);
    let pids = validate_pids(p, &format!("{path}.resources.pids"), raw_pids);
    let user = rt
        .user
        .and_then(|u| validate_user(p, &format!("{path}.user"), u));
    let read_only = match rt.read_only {
        None => false,
        Some(Scalar::Bool(b)) => b,
        Some(other) => {
            p.push(
                format!("{path}.read_only"),
                format!(
                    "{} is not true or false (write read_only: true for a read-only root filesystem)",
                    show(&other)
                ),
            );
            false
        }
    };
    let restart = validate_restart(p, &format!("{path}.restart"), rt.restart);
    let health_check = rt
        .health_check
        .and_then(|h| validate_health(p, &format!("{path}.health_check"), h, rules));
    if p.len() != before {
        return None;
    }
    Some(Task {
        name: name?,
        image: image?,
        command,
        env,
        ports,
        resources,
        restart,
        health_check,
        pids,
        user,
        read_only,
    })
}

/// Most processes a task may allow itself (`resources.pids`).
pub const MAX_PIDS: u32 = 1 << 20;

fn validate_pids(p: &mut Problems, path: &str, s: Option<Scalar>) -> u32 {
    let Some(s) = s else {
        return Task::DEFAULT_PIDS;
    };
    match s {
        Scalar::Int(n) if (1..=MAX_PIDS as i128).contains(&n) => n as u32,
        Scalar::Int(n) => {
            p.push(
                path,
                format!(
                    "{n} is out of range (allow 1 to {MAX_PIDS} processes; the default is {})",
                    Task::DEFAULT_PIDS
                ),
            );
            Task::DEFAULT_PIDS
        }
        other => {
            p.push(
                path,
                format!("{} is not a whole number (use e.g. 4096)", show(&other)),
            );
            Task::DEFAULT_PIDS
        }
    }
}

/// Checks `user`: a user id or name, optionally with a group (`1000`, `1000:1000`, `app:app`),
/// and not root.
fn validate_user(p: &mut Problems, path: &str, s: Scalar) -> Option<String> {
    let text = match s {
        Scalar::Str(t) => t,
        Scalar::Int(n) => n.to_string(),
        other => {
            p.push(
                path,
                format!(
                    "{} is not a user (write a user id or name, e.g. \"1000\" or \"1000:1000\")",
                    show(&other)
                ),
            );
            return None;
        }
    };
    let (user, group) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text.as_str(), None),
    };
    let part_ok = |part: &str| -> bool {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            !part.is_empty() && part.parse::<u32>().is_ok_and(|id| id < u32::MAX)
        } else {
            let b = part.as_bytes();
            b.len() <= 32
                && (b[0].is_ascii_alphabetic() || b[0] == b'_')
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
        }
    };
    if !part_ok(user) || group.is_some_and(|g| !part_ok(g)) {
        p.push(
            path,
            format!(
                "{text:?} is not a user (write a user id or name, optionally with a group: e.g. \"1000\", \"1000:1000\" or \"app\")"
            ),
        );
        return None;
    }
    let is_root = user == "root" || user.bytes().all(|b| b == b'0');
    if is_root {
        p.push(
            path,
            format!(
                "{text:?} is root, and tasks may not run as root (use a non-root user such as \"1000:1000\", or leave user out to run as the image's user)"
            ),
        );
        return None;
    }
    Some(text)
}

/// Longest health check interval.
pub const MAX_HEALTH_INTERVAL: Duration = Duration::from_secs(3600);

fn validate_health(
    p: &mut Problems,
    path: &str,
    h: RawHealthCheck,
    rules: Rules,
) -> Option<HealthCheck> {
    let before = p.len();
    let mut kinds = Vec::new();
    if let Some(http) = h.http {
        let port = match http.port {
            None => {
                p.push(
                    format!("{path}.http.port"),
                    "is required (the container port to call)",
                );
                None
            }
            Some(s) => port_number(p, &format!("{path}.http.port"), s),
        };
        let probe_path = http.path.unwrap_or_else(|| "/".to_owned());
        let too_long = over_limit(
            p,
            rules,
            &format!("{path}.http.path"),
            probe_path.len(),
            MAX_PROBE_PATH_BYTES,
            "bytes",
        );
        if !too_long
            && (!probe_path.starts_with('/')
                || probe_path
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            p.push(
                format!("{path}.http.path"),
                format!("{probe_path:?} is not a URL path (use e.g. /healthz)"),
            );
        }
        kinds.push(port.map(|port| Probe::Http {
            port,
            path: probe_path,
        }));
    }
    if let Some(tcp) = h.tcp {
        let port = match tcp.port {
            None => {
                p.push(
                    format!("{path}.tcp.port"),
                    "is required (the container port to connect to)",
                );
                None
            }
            Some(s) => port_number(p, &format!("{path}.tcp.port"), s),
        };
        kinds.push(port.map(|port| Probe::Tcp { port }));
    }
    if let Some(cmd) = h.exec {
        if check_command_size(p, rules, &format!("{path}.exec"), &cmd) {
            kinds.push(None);
        } else if cmd.first().is_none_or(|c| c.trim().is_empty()) {
            p.push(
                format!("{path}.exec"),
                "needs a command, e.g. [\"sh\", \"-c\", \"test -f /tmp/ready\"]",
            );
            kinds.push(None);
        } else if let Some(ci) = cmd.iter().position(|c| c.contains('\0')) {
            p.push(
                format!("{path}.exec[{ci}]"),
                "contains a NUL character (remove it: programs cannot receive it)",
            );
            kinds.push(None);
        } else {
            kinds.push(Some(Probe::Exec(cmd)));
        }
    }
    if kinds.len() != 1 {
        p.push(path, "needs exactly one of http, tcp or exec (e.g. { http: { port: 8080, path: /healthz } })");
    }
    // `None`: the field is not written. `Some(None)`: it is written but invalid (reported).
    let mut duration = |name: &str, v: Option<Scalar>| -> Option<Option<Duration>> {
        let v = v?;
        let fp = format!("{path}.{name}");
        match scalar_duration(v) {
            Err(m) => p.push(fp, m),
            Ok(d) if d.is_zero() => p.push(fp, "must be more than zero (e.g. 10s)"),
            Ok(d) if d > MAX_HEALTH_INTERVAL => p.push(
                fp,
                format!(
                    "{} is longer than the 1h allowed (ask for at most 1h)",
                    units::format_duration(d)
                ),
            ),
            Ok(d) => return Some(Some(d)),
        }
        Some(None)
    };
    let interval = duration("interval", h.interval);
    let timeout = duration("timeout", h.timeout);
    // A timeout left out never exceeds the interval: it is the default or the interval,
    // whichever is shorter (as `interval: 1s` alone must not be refused for a timeout it does
    // not write).
    let checkable = matches!((interval, timeout), (Some(Some(_)) | None, Some(Some(_))));
    let interval = interval.flatten().unwrap_or(HealthCheck::DEFAULT_INTERVAL);
    let timeout = timeout
        .flatten()
        .unwrap_or(HealthCheck::DEFAULT_TIMEOUT.min(interval));
    if checkable && timeout > interval {
        p.push(
            format!("{path}.timeout"),
            format!(
                "{} is longer than the interval ({}); make it shorter",
                units::format_duration(timeout),
                units::format_duration(interval)
            ),
        );
    }
    let failures = match h.failures {
        None => HealthCheck::DEFAULT_FAILURES,
        Some(Scalar::Int(n)) if (1..=100).contains(&n) => n as u32,
        Some(Scalar::Int(n)) => {
            p.push(
                format!("{path}.failures"),
                format!("{n} is out of range (use 1 to 100)"),
            );
            HealthCheck::DEFAULT_FAILURES
        }
        Some(other) => {
            p.push(
                format!("{path}.failures"),
                format!("{} is not a whole number (use e.g. 3)", show(&other)),
            );
            HealthCheck::DEFAULT_FAILURES
        }
    };
    if p.len() != before {
        return None;
    }
    let probe = kinds.into_iter().next()??;
    Some(HealthCheck {
        interval,
        timeout,
        failures,
        probe,
    })
}

fn validate_port(p: &mut Problems, path: &str, rp: RawPort) -> Option<PortMapping> {
    let before = p.len();
    let container = match rp.container {
        None => {
            p.push(
                format!("{path}.container"),
                "is required (the port the container listens on, 1-65535)",
            );
            None
        }
        Some(s) => port_number(p, &format!("{path}.container"), s),
    };
    let host = rp
        .host
        .and_then(|s| port_number(p, &format!("{path}.host"), s));
    let protocol = match rp.protocol.as_deref() {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(other) => {
            p.push(
                format!("{path}.protocol"),
                format!("{other:?} is not a protocol (use tcp or udp)"),
            );
            Protocol::Tcp
        }
    };
    if p.len() != before {
        return None;
    }
    Some(PortMapping {
        container: container?,
        host,
        protocol,
    })
}

fn port_number(p: &mut Problems, path: &str, s: Scalar) -> Option<u16> {
    match s {
        Scalar::Int(i) if (1..=65535).contains(&i) => Some(i as u16),
        Scalar::Int(i) => {
            p.push(path, format!("{i} is out of range (ports are 1-65535)"));
            None
        }
        other => {
            p.push(
                path,
                format!(
                    "{} is not a port number (use an integer 1-65535)",
                    show(&other)
                ),
            );
            None
        }
    }
}

fn validate_resources(
    p: &mut Problems,
    path: &str,
    rr: Option<RawResources>,
    rules: Rules,
) -> Resources {
    let mut r = Resources::default();
    let Some(rr) = rr else { return r };
    if let Some(s) = rr.cpu {
        let fp = format!("{path}.cpu");
        match scalar_cpu(s) {
            Err(m) => p.push(fp, m),
            Ok(c) if c == Cpu::ZERO => p.push(fp, "must be more than zero (e.g. 100m or 0.5)"),
            Ok(c) if c < MIN_CPU && rules == Rules::Submission => p.push(
                fp,
                format!(
                    "{c} is below the minimum of {MIN_CPU} (the kernel's smallest CPU quota is 1ms per 100ms period); ask for at least {MIN_CPU}"
                ),
            ),
            Ok(c) if c > MAX_CPU => p.push(
                fp,
                format!("{c} is more than the {MAX_CPU} cores allowed (ask for at most {MAX_CPU})"),
            ),
            Ok(c) => r.cpu = c,
        }
    }
    if let Some(s) = rr.memory {
        let fp = format!("{path}.memory");
        let plain = plain_number(&s);
        match scalar_size(s) {
            Err(m) => p.push(fp, m),
            Ok(m) if m < MIN_MEMORY => {
                let fix = match plain {
                    Some(n)
                        if n > 0
                            && ByteSize::mib(n) >= MIN_MEMORY
                            && ByteSize::mib(n) <= MAX_MEMORY =>
                    {
                        format!("a plain number counts bytes: did you mean {n}Mi?")
                    }
                    _ => "e.g. 64Mi".to_owned(),
                };
                p.push(
                    fp,
                    format!("{m} is less than the minimum of {MIN_MEMORY} ({fix})"),
                )
            }
            Ok(m) if m > MAX_MEMORY => p.push(
                fp,
                format!("{m} is more than the {MAX_MEMORY} allowed (ask for at most {MAX_MEMORY})"),
            ),
            Ok(m) => r.memory = m,
        }
    }
    if let Some(s) = rr.disk {
        let fp = format!("{path}.disk");
        match scalar_size(s) {
            Err(m) => p.push(fp, m),
            Ok(d) if d == ByteSize::ZERO => p.push(fp, "must be more than zero (e.g. 100Mi)"),
            Ok(d) if d > MAX_DISK => p.push(
                fp,
                format!("{d} is more than the {MAX_DISK} allowed (ask for at most {MAX_DISK})"),
            ),
            Ok(d) => r.disk = d,
        }
    }
    r
}

/// The value of a size written as a plain number of bytes (`64`, or `"64"`), if it is one.
fn plain_number(s: &Scalar) -> Option<u64> {
    match s {
        Scalar::Int(i) => u64::try_from(*i).ok(),
        Scalar::Str(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn validate_restart(p: &mut Problems, path: &str, rr: Option<RawRestart>) -> RestartPolicy {
    let mut r = RestartPolicy::default();
    let Some(rr) = rr else { return r };
    if let Some(s) = rr.policy {
        match s.as_str() {
            "never" => r.policy = RestartMode::Never,
            "on-failure" => r.policy = RestartMode::OnFailure,
            "always" => r.policy = RestartMode::Always,
            other => {
                let hint = match other
                    .trim()
                    .to_ascii_lowercase()
                    .replace(['_', ' '], "-")
                    .as_str()
                {
                    "on-failure" | "onfailure" | "on-error" | "failure" => {
                        " (did you mean on-failure?)"
                    }
                    "no" | "none" | "never" | "off" | "false" => " (did you mean never?)",
                    "always" | "unless-stopped" | "yes" | "true" => " (did you mean always?)",
                    _ => "",
                };
                p.push(
                    format!("{path}.policy"),
                    format!(
                        "{other:?} is not a restart policy (use never, on-failure or always){hint}"
                    ),
                );
            }
        }
    }
    if let Some(s) = rr.max_attempts {
        let fp = format!("{path}.max_attempts");
        match s {
            Scalar::Int(i) if (0..=MAX_ATTEMPTS as i128).contains(&i) => r.max_attempts = i as u32,
            Scalar::Int(i) => p.push(fp, format!("{i} is out of range (use 0 to {MAX_ATTEMPTS})")),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() > MAX_ATTEMPTS as f64 => p.push(
                fp,
                format!("{f:?} is out of range (use 0 to {MAX_ATTEMPTS})"),
            ),
            other => p.push(
                fp,
                format!("{} is not a whole number (use e.g. 5)", show(&other)),
            ),
        }
    }
    if let Some(b) = rr.backoff {
        r.backoff = validate_backoff(p, &format!("{path}.backoff"), b);
    }
    r
}

fn validate_backoff(p: &mut Problems, path: &str, rb: RawBackoff) -> Backoff {
    let mut b = Backoff::default();
    let mut field = |name: &str, s: Option<Scalar>, slot: &mut Duration| {
        let Some(s) = s else { return };
        let fp = format!("{path}.{name}");
        match scalar_duration(s) {
            Err(m) => p.push(fp, m),
            Ok(d) if d.is_zero() => p.push(fp, "must be more than zero (e.g. 1s)"),
            Ok(d) if d > MAX_BACKOFF => p.push(
                fp,
                format!(
                    "{} is longer than the {max} allowed (ask for at most {max})",
                    units::format_duration(d),
                    max = format_args!("{}h", MAX_BACKOFF.as_secs() / 3600),
                ),
            ),
            Ok(d) => *slot = d,
        }
    };
    let explicit_max = rb.max.is_some();
    field("initial", rb.initial, &mut b.initial);
    field("max", rb.max, &mut b.max);
    field("reset_after", rb.reset_after, &mut b.reset_after);
    if b.max < b.initial {
        if explicit_max {
            p.push(
                format!("{path}.max"),
                format!(
                    "{} is shorter than initial ({}); max must be at least initial",
                    units::format_duration(b.max),
                    units::format_duration(b.initial)
                ),
            );
        } else {
            // Only `initial` was given and it exceeds the default cap: the cap follows it.
            b.max = b.initial;
        }
    }
    b
}

fn scalar_cpu(s: Scalar) -> Result<Cpu, String> {
    match s {
        Scalar::Str(s) => Cpu::parse(&s),
        Scalar::Int(i) if i < 0 => Err(format!("{i} is negative (use e.g. 0.5 or 500m)")),
        Scalar::Int(i) => u64::try_from(i)
            .map(Cpu::from_cores)
            .map_err(|_| format!("{i} is too large (ask for at most {MAX_CPU} cores)")),
        Scalar::Float(f) if f < 0.0 => Err(format!("{f:?} is negative (use e.g. 0.5 or 500m)")),
        Scalar::Float(f) => Cpu::from_cores_f64(f),
        Scalar::Bool(b) => Err(format!(
            "{b} is not a CPU quantity (use cores like 0.5, or millicores like 500m)"
        )),
    }
}

fn scalar_size(s: Scalar) -> Result<ByteSize, String> {
    match s {
        Scalar::Str(s) => ByteSize::parse(&s),
        Scalar::Int(i) if i < 0 => Err(format!("{i} is negative (use e.g. 256Mi, 1Gi)")),
        Scalar::Int(i) => u64::try_from(i)
            .map(ByteSize::b)
            .map_err(|_| format!("{i} is too large (use e.g. 256Mi, 1Gi)")),
        Scalar::Float(f) => Err(format!(
            "{f:?} is not a size (use e.g. 256Mi, 1Gi, 512M or a whole number of bytes)"
        )),
        Scalar::Bool(b) => Err(format!("{b} is not a size (use e.g. 256Mi, 1Gi)")),
    }
}

fn scalar_duration(s: Scalar) -> Result<Duration, String> {
    match s {
        Scalar::Str(s) => units::parse_duration(&s),
        Scalar::Int(i) if i < 0 => Err(format!("{i} is negative (use e.g. 30s, 5m)")),
        Scalar::Int(i) => u64::try_from(i)
            .map(Duration::from_secs)
            .map_err(|_| format!("{i} is too large (use e.g. 30s, 5m)")),
        Scalar::Float(f) if f < 0.0 => Err(format!("{f:?} is negative (use e.g. 30s, 5m)")),
        Scalar::Float(f) => Duration::try_from_secs_f64(f)
            .map_err(|_| format!("{f:?} is not a duration (use e.g. 30s, 5m)")),
        Scalar::Bool(b) => Err(format!("{b} is not a duration (use e.g. 30s, 5m)")),
    }
}

fn show(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => format!("{s:?}"),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => format!("{f:?}"),
        Scalar::Bool(b) => b.to_string(),
    }
}

/// Checks that `s` is an RFC 1123 DNS label; pushes a problem and returns false if not.
fn check_dns_label(p: &mut Problems, path: &str, s: &str) -> bool {
    let why = if s.is_empty() {
        Some("is empty".to_owned())
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some(format!(
            "{s:?} has characters other than lowercase letters, digits and '-'"
        ))
    } else if s.starts_with('-') || s.ends_with('-') {
        Some(format!("{s:?} starts or ends with '-'"))
    } else if s.len() > 63 {
        Some(format!("{s:?} is longer than 63 characters"))
    } else {
        None
    };
    match why {
        None => true,
        Some(w) => {
            let suggestion = suggest_dns_label(s);
            let fix = if suggestion.is_empty() || suggestion == s {
                "use a DNS label: lowercase letters, digits and '-', e.g. web-1".to_owned()
            } else {
                format!("use a DNS label such as {suggestion:?}")
            };
            p.push(path, format!("{w} ({fix})"));
            false
        }
    }
}

fn suggest_dns_label(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// Holds a submitted command (`command`, `exec`) to [`MAX_COMMAND_ARGS`],
/// [`MAX_COMMAND_ARG_BYTES`] and [`MAX_COMMAND_BYTES`]; returns whether it broke one.
fn check_command_size(p: &mut Problems, rules: Rules, path: &str, command: &[String]) -> bool {
    let before = p.len();
    over_limit(p, rules, path, command.len(), MAX_COMMAND_ARGS, "elements");
    for (i, c) in command.iter().enumerate() {
        over_limit(
            p,
            rules,
            &format!("{path}[{i}]"),
            c.len(),
            MAX_COMMAND_ARG_BYTES,
            "bytes",
        );
    }
    let total: usize = command.iter().map(String::len).sum();
    if rules == Rules::Submission && total > MAX_COMMAND_BYTES {
        p.push(
            path,
            format!("{total} bytes in all; at most {MAX_COMMAND_BYTES} are allowed"),
        );
    }
    p.len() != before
}

fn is_env_name(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Checks a Docker image reference (`[registry[:port]/]path[:tag][@digest]`); a tag or a digest is
/// required. Returns the message for the problem, if any.
pub(crate) fn check_image(image: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{image:?} is not a valid image reference: {why}"));
    if image.is_empty() {
        return Err("is empty (use an image reference with a tag, e.g. busybox:1.36)".to_owned());
    }
    if image.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "is {} bytes long, longer than {MAX_IMAGE_BYTES} (the most an image reference may have)",
            image.len()
        ));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return bad("the digest must look like sha256:<64 hex digits>");
        }
    }
    // The tag follows the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let valid = !t.is_empty()
            && t.len() <= 128
            && t.as_bytes()[0] != b'.'
            && t.as_bytes()[0] != b'-'
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return bad(
                "the tag may hold letters, digits, '_', '.' and '-', and not start with '.' or '-'",
            );
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        let is_registry = first.contains('.') || first.contains(':') || first == "localhost";
        if is_registry {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            let port_ok = port.is_none_or(|p| {
                !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
            });
            if !host_ok || !port_ok {
                return bad("the registry host is malformed");
            }
            components.remove(0);
        }
    }
    for c in &components {
        if !path_component_ok(c) {
            if c.bytes().any(|b| b.is_ascii_uppercase()) {
                return bad("repository names must be lowercase");
            }
            return bad(
                "each path part must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
            );
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "{image:?} has no tag (use image:tag, e.g. {image}:latest or a pinned version)"
        ));
    }
    Ok(())
}

fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}
