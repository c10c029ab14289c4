//! One task: its name, image, command and entrypoint, environment, ports, resources, user,
//! files and policies.

use std::collections::{BTreeMap, HashMap};

use super::extras::{validate_aliases, validate_extra_hosts, validate_labels, validate_shm};
use super::files::{Sources, normal_path, validate_files};
use super::health::validate_health;
use super::limits::{
    MAX_ENV_BYTES, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ENV_VARS, MAX_PIDS, MAX_PORTS,
    Rules, over_limit,
};
use super::names::{check_command_size, check_dns_label, check_env_name, check_image};
use super::ports::validate_port;
use super::resources::validate_resources;
use super::restart::validate_restart;
use super::scalars::show;
use super::storage::{Declared, check_taken, validate_mounts, validate_secrets};
use super::together::{validate_stop_grace, validate_stop_signal};
use super::words::split_words;
use crate::ids::TaskName;
use crate::spec::model::{Protocol, Task};
use crate::spec::problems::Problems;
use crate::spec::raw::{RawCommand, RawTask};
use crate::spec::together::Condition;
use crate::units::Scalar;

/// What the tasks of one job share while each is validated.
pub(super) struct Scope<'a> {
    /// The rules that apply.
    pub rules: Rules,
    /// Where files' `source` is read from.
    pub sources: Sources<'a>,
    /// Each host port published so far, with where.
    pub host_ports: HashMap<(u16, Protocol), String>,
    /// The volumes the job declares, which tasks mount.
    pub volumes: Declared,
}

/// Validates the task `rt` at `path`, whose `depends_on` is already read (see
/// [`Facts`](super::together::Facts)).
pub(super) fn validate_task(
    p: &mut Problems,
    path: &str,
    rt: RawTask,
    scope: &mut Scope<'_>,
    depends_on: BTreeMap<TaskName, Condition>,
) -> Option<Task> {
    let rules = scope.rules;
    let sources = scope.sources;
    let host_ports = &mut scope.host_ports;
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
    let entrypoint = validate_command(
        p,
        rules,
        &format!("{path}.entrypoint"),
        rt.entrypoint,
        true,
        true,
    );
    // With an entrypoint of its own, the command is the entrypoint's arguments, any of which
    // may be empty.
    let command_is_program = entrypoint.as_ref().is_none_or(Vec::is_empty);
    let command = validate_command(
        p,
        rules,
        &format!("{path}.command"),
        rt.command,
        false,
        command_is_program,
    )
    .unwrap_or_default();
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
        // An empty name, or one with a NUL, makes no readable path: the problem is the env's.
        let kp = if k.is_empty() || k.contains('\0') {
            env_path.clone()
        } else {
            format!("{path}.env.{k}")
        };
        if let Err(m) = check_env_name(&k, rules) {
            p.push(&kp, m);
        }
        let value = match v {
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
        let Some(rp) = rp else { continue };
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
    let read_only = flag(
        p,
        &format!("{path}.read_only"),
        rt.read_only,
        "read_only: true for a read-only root filesystem",
    );
    let working_dir = rt.working_dir.and_then(|w| match normal_path(&w, false) {
        Ok(w) => Some(w),
        Err(m) => {
            p.push(format!("{path}.working_dir"), m);
            None
        }
    });
    let sidecar = flag(
        p,
        &format!("{path}.sidecar"),
        rt.sidecar,
        "sidecar: true for a task that does not keep its instance from completing",
    );
    let init = flag(
        p,
        &format!("{path}.init"),
        rt.init,
        "init: true to run a minimal init as PID 1",
    );
    let stop_signal = rt
        .stop_signal
        .and_then(|s| validate_stop_signal(p, &format!("{path}.stop_signal"), s));
    let stop_grace = rt
        .stop_grace
        .and_then(|s| validate_stop_grace(p, &format!("{path}.stop_grace"), s));
    let files = validate_files(p, path, rt.files, rules, sources);
    let mut taken = Vec::new();
    let mounts = validate_mounts(p, path, rt.mounts, rules, &scope.volumes, &mut taken);
    let secrets = validate_secrets(p, path, rt.secrets, rules, &mut taken);
    check_taken(p, &format!("{path}.files"), &files, &taken);
    let restart = validate_restart(p, &format!("{path}.restart"), rt.restart);
    let aliases = validate_aliases(
        p,
        path,
        rt.aliases,
        name.as_ref().map(TaskName::as_str),
        rules,
    );
    let shm_size = validate_shm(p, path, rt.shm_size);
    let labels = validate_labels(p, path, rt.labels, rules);
    let extra_hosts = validate_extra_hosts(p, path, rt.extra_hosts, rules);
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
        entrypoint,
        working_dir,
        depends_on,
        sidecar,
        stop_signal,
        stop_grace,
        init,
        files,
        mounts,
        secrets,
        aliases,
        shm_size,
        labels,
        extra_hosts,
    })
}

/// Reads a boolean field (`false` when absent); `write` says how to write it, as in
/// `write read_only: true for ...`.
pub(super) fn flag(p: &mut Problems, path: &str, s: Option<Scalar>, write: &str) -> bool {
    match s {
        None => false,
        Some(Scalar::Bool(b)) => b,
        Some(other) => {
            p.push(
                path,
                format!("{} is not true or false (write {write})", show(&other)),
            );
            false
        }
    }
}

/// Reads a command (`command`, `entrypoint`): a list of words, or one line split into words.
/// `None` when it is not written. An empty line is refused, but for an entrypoint (`clears`),
/// where it clears the image's; a blank first word is refused where it is the program to run
/// (`program`).
fn validate_command(
    p: &mut Problems,
    rules: Rules,
    path: &str,
    raw: Option<RawCommand>,
    clears: bool,
    program: bool,
) -> Option<Vec<String>> {
    let words = match raw? {
        RawCommand::List(words) => words,
        RawCommand::Line(line) => match split_words(&line) {
            Ok(words) if words.is_empty() && !clears => {
                p.push(
                    path,
                    "is empty (write the program to run and its arguments, e.g. sleep 100, or leave command out to run the image's own)",
                );
                words
            }
            Ok(words) => words,
            Err(m) => {
                p.push(path, m);
                Vec::new()
            }
        },
    };
    check_command_size(p, rules, path, &words);
    for (ci, c) in words.iter().enumerate() {
        if c.contains('\0') {
            p.push(
                format!("{path}[{ci}]"),
                "contains a NUL character (remove it: programs cannot receive it)",
            );
        }
    }
    if program && words.first().is_some_and(|c| c.trim().is_empty()) {
        p.push(
            format!("{path}[0]"),
            "is empty: the first element is the program to run (e.g. [\"sh\", \"-c\", \"...\"])",
        );
    }
    Some(words)
}

pub(super) fn validate_pids(p: &mut Problems, path: &str, s: Option<Scalar>) -> u32 {
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
pub(super) fn validate_user(p: &mut Problems, path: &str, s: Scalar) -> Option<String> {
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
