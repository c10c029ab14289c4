//! The job as a whole: its name, count, constraints, network and tasks.

use std::collections::HashMap;

use super::extras::check_aliases;
use super::files::Sources;
use super::limits::{
    MAX_CONSTRAINTS, MAX_COUNT, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_TASKS, Rules,
    over_limit,
};
use super::names::{check_dns_label, is_label_key};
use super::scalars::show;
use super::storage::validate_volumes;
use super::task::{Scope, validate_task};
use super::together::{Facts, check_no_network, check_together, validate_network};
use crate::ids::JobId;
use crate::spec::model::{Constraint, ConstraintOp, Job};
use crate::spec::problems::Problems;
use crate::spec::raw::{RawConstraint, RawJob, Shape, read_job};
use crate::spec::together::NetworkMode;
use crate::spec::tree::{At, Node, Plain};
use crate::units::Scalar;

impl TryFrom<At<Plain>> for Job {
    type Error = Problems;

    fn try_from(tree: At<Plain>) -> Result<Self, Self::Error> {
        check(tree.0, Rules::Stored, Sources::Refused)
    }
}

/// Checks a job file's tree: every unknown field, value of the wrong type and broken rule, in
/// file order, each with its path and, where the tree knows it, its line.
pub(crate) fn check(tree: Node, rules: Rules, sources: Sources<'_>) -> Result<Job, Problems> {
    let lines = tree.lines();
    let mut shape = Shape::default();
    let raw = read_job(&mut shape, tree);
    let checked = validate(raw, rules, sources);
    let Shape {
        problems: mut all,
        covered,
    } = shape;
    let job = match checked {
        Ok(job) if all.is_empty() => return Ok(job),
        Ok(_) => None,
        Err(rules_broken) => Some(rules_broken),
    };
    // What validation says about a value the walk already reported (read as absent, so
    // "is required"), or about the part that holds it as a whole ("needs exactly one of http,
    // tcp or exec"), says nothing new.
    let said = |path: &str| {
        covered
            .iter()
            .any(|c| within(path, c) || c.rfind(['.', '[']).is_some_and(|i| &c[..i] == path))
    };
    all.0
        .extend(job.into_iter().flat_map(|p| p.0).filter(|p| !said(&p.path)));
    for p in &mut all.0 {
        p.line = p.line.or_else(|| line_of_path(&lines, &p.path));
    }
    // File order; problems on the same line (or with none) keep the order they were found in.
    all.0.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(all)
}

/// Whether `path` is `parent` or a part of it.
fn within(path: &str, parent: &str) -> bool {
    parent.is_empty()
        || path
            .strip_prefix(parent)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The line of `path`, or of the nearest part that holds it (a missing field: its mapping's).
fn line_of_path(lines: &std::collections::HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut here = path;
    loop {
        if let Some(l) = lines.get(here) {
            return Some(*l);
        }
        if here.is_empty() {
            return None;
        }
        here = &here[..here.rfind(['.', '[']).unwrap_or(0)];
    }
}

pub(crate) fn validate(raw: RawJob, rules: Rules, sources: Sources<'_>) -> Result<Job, Problems> {
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
        .filter_map(|(i, c)| validate_constraint(&mut p, &format!("constraints[{i}]"), c?, rules))
        .collect();
    let network = validate_network(&mut p, raw.network);
    let (volumes, declared) = validate_volumes(&mut p, raw.volumes, rules);
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
            let mut scope = Scope {
                rules,
                sources,
                host_ports: HashMap::new(),
                volumes: declared,
            };
            let mut facts = Vec::new();
            let mut whole = true;
            for (i, rt) in raw_tasks.into_iter().enumerate() {
                let Some(mut rt) = rt else {
                    whole = false;
                    continue;
                };
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
                if network.is_some_and(|n| n.mode == NetworkMode::None) {
                    check_no_network(&mut p, &path, &rt);
                }
                let f = Facts::read(&mut p, &path, &mut rt);
                if let Some(t) = validate_task(&mut p, &path, rt, &mut scope, f.depends_on()) {
                    tasks.push(t);
                }
                facts.push(f);
            }
            check_together(&mut p, &facts, whole);
            let named: Vec<(String, &str, &[String])> = tasks
                .iter()
                .map(|t: &crate::spec::model::Task| {
                    let i = seen.get(t.name.as_str()).copied().unwrap_or_default();
                    (format!("tasks[{i}]"), t.name.as_str(), t.aliases.as_slice())
                })
                .collect();
            check_aliases(&mut p, &named);
        }
    }
    match (name, network) {
        (Some(name), Some(network)) if p.is_empty() => Ok(Job {
            name,
            count,
            constraints,
            tasks,
            network,
            volumes,
        }),
        _ => Err(p),
    }
}

pub(super) fn validate_constraint(
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
