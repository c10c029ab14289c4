//! What ties a job's tasks together: `depends_on` and the rules that hold across tasks (names
//! that exist, no cycles, conditions a dependency can meet, not sidecars only), the job's
//! `network`, and how a task stops (`stop_signal`, `stop_grace`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::scalars::{scalar_duration, show};
use crate::ids::TaskName;
use crate::spec::problems::Problems;
use crate::spec::raw::{RawDependsOn, RawNetwork, RawTask, closest};
use crate::spec::together::{Condition, MAX_STOP_GRACE, Network, NetworkMode};
use crate::units::{self, Scalar};

/// One `depends_on` entry of a task, with where it is written.
#[derive(Debug)]
pub(super) struct Dependency {
    /// The task waited for, as written.
    pub name: String,
    /// What it is waited for.
    pub condition: Condition,
    /// The entry's path: `tasks[2].depends_on[0]` or `tasks[2].depends_on.db`.
    pub path: String,
    /// The path of its condition, where one is written.
    pub condition_path: Option<String>,
}

/// What the rules across tasks need to know of one task, read before it is validated (so that
/// a task with a mistake of its own is still known to the others).
#[derive(Debug)]
pub(super) struct Facts {
    /// The task's path: `tasks[2]`.
    pub path: String,
    /// Its name, as written.
    pub name: Option<String>,
    /// Whether it has a health check.
    pub health_check: bool,
    /// Whether its restart policy is `always`.
    pub always: bool,
    /// Whether it is a sidecar.
    pub sidecar: bool,
    /// What it waits for.
    pub depends_on: Vec<Dependency>,
}

impl Facts {
    /// Reads the facts of `rt` at `path`, validating its `depends_on` (which it takes).
    pub fn read(p: &mut Problems, path: &str, rt: &mut RawTask) -> Facts {
        Facts {
            path: path.to_owned(),
            name: rt.name.clone(),
            health_check: rt.health_check.is_some(),
            always: rt
                .restart
                .as_ref()
                .is_some_and(|r| r.policy.as_deref() == Some("always")),
            sidecar: rt.sidecar == Some(Scalar::Bool(true)),
            depends_on: validate_depends_on(p, &format!("{path}.depends_on"), rt.depends_on.take()),
        }
    }

    /// The validated `depends_on` of the task, for its model.
    pub fn depends_on(&self) -> BTreeMap<TaskName, Condition> {
        self.depends_on
            .iter()
            .map(|d| (TaskName::new(d.name.clone()), d.condition))
            .collect()
    }
}

/// Reads `depends_on`: names and conditions, each name once.
fn validate_depends_on(p: &mut Problems, path: &str, raw: Option<RawDependsOn>) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    let mut add = |p: &mut Problems, d: Dependency| {
        if let Some(first) = out.iter().find(|o| o.name == d.name) {
            p.push(
                &d.path,
                format!(
                    "{} is already listed at {} (list each task once)",
                    d.name, first.path
                ),
            );
        } else {
            out.push(d);
        }
    };
    match raw {
        None => {}
        Some(RawDependsOn::List(names)) => {
            for (i, name) in names.into_iter().enumerate() {
                let Some(name) = name else { continue };
                add(
                    p,
                    Dependency {
                        name,
                        condition: Condition::Started,
                        path: format!("{path}[{i}]"),
                        condition_path: None,
                    },
                );
            }
        }
        Some(RawDependsOn::Map(entries)) => {
            for (name, entry) in entries {
                let here = format!("{path}.{name}");
                let written = entry.and_then(|e| e.condition);
                let condition_path = written.as_ref().map(|_| format!("{here}.condition"));
                let condition = match written.as_deref() {
                    None | Some("started") => Condition::Started,
                    Some("healthy") => Condition::Healthy,
                    Some("completed_successfully") => Condition::CompletedSuccessfully,
                    Some(other) => {
                        let hint = match other.to_ascii_lowercase().replace('-', "_").as_str() {
                            "service_started" | "start" | "running" => " (did you mean started?)",
                            "service_healthy" | "health" => " (did you mean healthy?)",
                            "service_completed_successfully"
                            | "completed"
                            | "complete"
                            | "success"
                            | "done"
                            | "exited" => " (did you mean completed_successfully?)",
                            _ => "",
                        };
                        p.push(
                            format!("{here}.condition"),
                            format!(
                                "{other:?} is not a condition (use started, healthy or completed_successfully){hint}"
                            ),
                        );
                        continue;
                    }
                };
                add(
                    p,
                    Dependency {
                        name,
                        condition,
                        path: here,
                        condition_path,
                    },
                );
            }
        }
    }
    out
}

/// Checks the rules across tasks: every dependency is another task of the job, which can meet
/// its condition; no cycle; not sidecars only (where the `facts` are of every task: `whole`,
/// since a task that is not a mapping, reported, may be the one that is no sidecar).
pub(super) fn check_together(p: &mut Problems, facts: &[Facts], whole: bool) {
    let by_name: HashMap<&str, &Facts> = facts
        .iter()
        .filter_map(|f| Some((f.name.as_deref()?, f)))
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for name in facts.iter().filter_map(|f| f.name.as_deref()) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for f in facts {
        let me = f.name.as_deref().unwrap_or("this task");
        for d in &f.depends_on {
            let Some(dep) = by_name.get(d.name.as_str()) else {
                let guess = closest(&d.name, &names)
                    .map(|g| format!(": did you mean {g}?"))
                    .unwrap_or_default();
                p.push(
                    &d.path,
                    format!(
                        "{} is not a task of this job{guess} (its tasks: {})",
                        d.name,
                        names.join(", ")
                    ),
                );
                continue;
            };
            if f.name.as_deref() == Some(d.name.as_str()) {
                p.push(
                    &d.path,
                    format!(
                        "{me} waits for itself, which never ends (a task cannot depend on itself: remove {me} from its depends_on)"
                    ),
                );
                continue;
            }
            let at = d.condition_path.as_deref().unwrap_or(&d.path);
            let waits = format!("{me} waits for {}", d.condition.waiting_for(&d.name));
            match d.condition {
                Condition::Started => {}
                Condition::Healthy if !dep.health_check => p.push(
                    at,
                    format!(
                        "{waits}, but {name} has no health_check and so is never healthy (give {name} a health_check, or wait for it with condition started)",
                        name = d.name
                    ),
                ),
                Condition::Healthy => {}
                Condition::CompletedSuccessfully if dep.sidecar => p.push(
                    at,
                    format!(
                        "{waits}, but {name} is a sidecar, which is stopped with its instance rather than completing (make {name} a task of its own with sidecar: false, or wait for it with condition started)",
                        name = d.name
                    ),
                ),
                Condition::CompletedSuccessfully if dep.always => p.push(
                    at,
                    format!(
                        "{waits}, but {name} has restart policy always and so never completes (give {name} restart: {{ policy: on-failure }} or never, or wait for it with condition started)",
                        name = d.name
                    ),
                ),
                Condition::CompletedSuccessfully => {}
            }
        }
    }
    check_cycles(p, facts, &by_name);
    if whole && !facts.is_empty() && facts.iter().all(|f| f.sidecar) {
        p.push(
            "tasks",
            format!(
                "every task is a sidecar ({}), and sidecars do not keep an instance running: make at least one of them a main task (sidecar: false)",
                names.join(", ")
            ),
        );
    }
}

/// Reports each cycle of `depends_on` once, naming its tasks in order (`a -> b -> a`), at the
/// entry of its first task in the file.
fn check_cycles(p: &mut Problems, facts: &[Facts], by_name: &HashMap<&str, &Facts>) {
    // The edges of the graph: other tasks of the job only (the rest is reported above).
    fn edges<'f>(f: &'f Facts, by_name: &HashMap<&str, &Facts>) -> Vec<&'f str> {
        f.depends_on
            .iter()
            .map(|d| d.name.as_str())
            .filter(|n| by_name.contains_key(n) && f.name.as_deref() != Some(*n))
            .collect()
    }
    let order: HashMap<&str, usize> = facts
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((f.name.as_deref()?, i)))
        .collect();
    let mut done: HashSet<&str> = HashSet::new();
    let mut reported: HashSet<Vec<&str>> = HashSet::new();
    for start in facts.iter().filter_map(|f| f.name.as_deref()) {
        if done.contains(start) {
            continue;
        }
        // Depth first, with the path from `start` on a stack of (task, its next edge).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        let mut on_stack: HashSet<&str> = HashSet::from([start]);
        while let Some((task, next)) = stack.last_mut() {
            let out = edges(by_name[*task], by_name);
            let Some(&to) = out.get(*next) else {
                on_stack.remove(*task);
                done.insert(*task);
                stack.pop();
                continue;
            };
            *next += 1;
            if on_stack.contains(to) {
                let from = stack.iter().position(|(t, _)| *t == to).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[from..].iter().map(|(t, _)| *t).collect();
                // Begin at the cycle's first task in the file, so that it is reported once
                // and where it is first written.
                let first = (0..cycle.len())
                    .min_by_key(|&i| order.get(cycle[i]).copied().unwrap_or(usize::MAX))
                    .unwrap_or(0);
                cycle.rotate_left(first);
                if reported.insert(cycle.clone()) {
                    let head = by_name[cycle[0]];
                    let second = cycle.get(1).copied().unwrap_or(cycle[0]);
                    let at = head
                        .depends_on
                        .iter()
                        .find(|d| d.name == second)
                        .map_or(head.path.as_str(), |d| d.path.as_str());
                    let mut shown = cycle.join(" -> ");
                    shown.push_str(" -> ");
                    shown.push_str(cycle[0]);
                    p.push(
                        at,
                        format!(
                            "the tasks wait for each other in a cycle, so none of them would start: {shown} (remove one of these dependencies)"
                        ),
                    );
                }
            } else if !done.contains(to) {
                on_stack.insert(to);
                stack.push((to, 0));
            }
        }
    }
}

/// Reads the job's `network`; `host` is refused.
pub(super) fn validate_network(p: &mut Problems, raw: Option<RawNetwork>) -> Option<Network> {
    let Some(mode) = raw.and_then(|n| n.mode) else {
        return Some(Network::default());
    };
    let mode = match mode.as_str() {
        "bridge" => NetworkMode::Bridge,
        "none" => NetworkMode::None,
        "host" => {
            p.push(
                "network.mode",
                "host is refused: no job may use the host's network (use bridge, the default: a network of the instance's own, or none)",
            );
            return None;
        }
        other => {
            p.push(
                "network.mode",
                format!(
                    "{other:?} is not a network mode (use bridge, the default: a network of the instance's own, or none: no network)"
                ),
            );
            return None;
        }
    };
    Some(Network { mode })
}

/// With network mode none, a task's ports and http or tcp check are refused (`tasks[i]` at
/// `path`).
pub(super) fn check_no_network(p: &mut Problems, path: &str, rt: &RawTask) {
    if rt.ports.as_ref().is_some_and(|ports| !ports.is_empty()) {
        p.push(
            format!("{path}.ports"),
            "the job's network mode is none, so no port can be reached or published (remove ports, or use network: { mode: bridge })",
        );
    }
    if rt.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
        p.push(
            format!("{path}.aliases"),
            "the job's network mode is none, so the task has no network to be known on (remove aliases, or use network: { mode: bridge })",
        );
    }
    let Some(h) = &rt.health_check else { return };
    for (kind, written) in [("http", h.http.is_some()), ("tcp", h.tcp.is_some())] {
        if written {
            p.push(
                format!("{path}.health_check.{kind}"),
                format!(
                    "the job's network mode is none, so a {kind} check cannot reach the task (use an exec check, which runs inside the container, e.g. exec: [\"nc\", \"-z\", \"localhost\", \"8080\"], or network: {{ mode: bridge }})"
                ),
            );
        }
    }
}

/// The signal names Docker accepts (Linux), without `SIG`.
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// Whether `name` (upper-case, without `SIG`) is a real-time signal name Docker accepts:
/// `RTMIN`, `RTMIN+1` to `RTMIN+15`, `RTMAX-14` to `RTMAX-1`, `RTMAX`.
fn is_realtime(name: &str) -> bool {
    let offset = |rest: &str, sign: char| {
        rest.strip_prefix(sign)
            .filter(|n| !n.starts_with('0'))
            .and_then(|n| n.parse::<u8>().ok())
    };
    match (name.strip_prefix("RTMIN"), name.strip_prefix("RTMAX")) {
        (Some(""), _) | (_, Some("")) => true,
        (Some(rest), _) => offset(rest, '+').is_some_and(|n| (1..=15).contains(&n)),
        (_, Some(rest)) => offset(rest, '-').is_some_and(|n| (1..=14).contains(&n)),
        _ => false,
    }
}

/// Reads `stop_signal`: a signal name Docker accepts, with or without `SIG` and in any case
/// (kept as `SIGTERM`), or a number from 1 to 64 (kept as written).
pub(super) fn validate_stop_signal(p: &mut Problems, path: &str, s: Scalar) -> Option<String> {
    let text = match s {
        Scalar::Str(t) => t,
        Scalar::Int(n) => n.to_string(),
        other => {
            p.push(
                path,
                format!(
                    "{} is not a signal (write a name such as SIGTERM, SIGINT or SIGQUIT, or a number such as 15)",
                    show(&other)
                ),
            );
            return None;
        }
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u8>() {
            Ok(n) if (1..=64).contains(&n) => Some(n.to_string()),
            _ => {
                p.push(
                    path,
                    format!(
                        "{text} is not a signal number (use 1 to 64, or a name such as SIGTERM)"
                    ),
                );
                None
            }
        };
    }
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) || is_realtime(name) {
        return Some(format!("SIG{name}"));
    }
    // `closest` compares lower-case names.
    let lower: Vec<String> = SIGNALS.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let guess = closest(name, &lower)
        .map(|g| format!(" (did you mean SIG{}?)", g.to_ascii_uppercase()))
        .unwrap_or_default();
    p.push(
        path,
        format!(
            "{text:?} is not a signal Docker knows{guess}: use a name such as SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or SIGWINCH, or a number from 1 to 64"
        ),
    );
    None
}

/// Reads `stop_grace`: a duration of at most [`MAX_STOP_GRACE`].
pub(super) fn validate_stop_grace(p: &mut Problems, path: &str, s: Scalar) -> Option<Duration> {
    match scalar_duration(s) {
        Err(m) => p.push(path, m),
        Ok(d) if d > MAX_STOP_GRACE => p.push(
            path,
            format!(
                "{} is longer than the {max} allowed (MAX_STOP_GRACE: graces add up along a chain of dependents, which stop one after another); ask for at most {max}",
                units::format_duration(d),
                max = units::format_duration(MAX_STOP_GRACE),
            ),
        ),
        Ok(d) => return Some(d),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::is_realtime;

    #[test]
    fn realtime_signals_are_the_ones_docker_names() {
        for ok in [
            "RTMIN", "RTMIN+1", "RTMIN+15", "RTMAX-14", "RTMAX-1", "RTMAX",
        ] {
            assert!(is_realtime(ok), "{ok}");
        }
        for bad in [
            "RTMIN+0", "RTMIN+16", "RTMAX-15", "RTMAX+1", "RTMIN+01", "RT",
        ] {
            assert!(!is_realtime(bad), "{bad}");
        }
    }
}
