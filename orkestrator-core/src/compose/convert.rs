//! A project becomes one job: each service a task, so that they run together on one worker and
//! reach each other by name. The job is written as a job file (JSON) and read back by the job
//! parser, so that it is held to every rule a job file is; a rule it breaks is reported at the
//! Compose key it came from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::error::{ComposeError, Note};
use super::keys::{self, Verdict};
use super::load::{Project, dns_label};
use super::merge;
use super::parts::{BuildPlan, ConvertOptions, Gathered, SecretPlan, services};
use super::service::ServiceMapper;
use super::yaml::{self, join, scalar_text};
use crate::spec::{Format, Job, parse_job};

/// A project carried over.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The job.
    pub job: Job,
    /// The job as a job file's value (what `compose convert` prints).
    pub file: Value,
    /// What is not carried over, with why.
    pub warnings: Vec<Note>,
    /// The secrets to create or check before submitting.
    pub secrets: Vec<SecretPlan>,
}

/// The images the project's services build, in service order.
pub fn builds(project: &Project) -> Result<Vec<BuildPlan>, ComposeError> {
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for (name, s) in services(project) {
        let Some(b) = s.get("build") else { continue };
        let here = join(&join("services", name), "build");
        let b = merge::build_map(b);
        let Some(context) = b.get("context").and_then(scalar_text) else {
            refusals.push(Note::new(
                join(&here, "context"),
                "a build needs a context directory",
            ));
            continue;
        };
        if context.contains("://") || context.starts_with("git@") {
            refusals.push(Note::new(
                join(&here, "context"),
                "a remote build context cannot be read: clone it and name the directory",
            ));
            continue;
        }
        let dir = project.dir.join(&context);
        if !dir.is_dir() {
            refusals.push(Note::new(
                join(&here, "context"),
                format!("{} is not a directory", dir.display()),
            ));
            continue;
        }
        let mut args = BTreeMap::new();
        if let Some(a) = b.get("args") {
            for (k, v) in merge::as_mapping(a) {
                let v = scalar_text(&v).or_else(|| project.variables.get(&k).cloned());
                if let Some(v) = v {
                    args.insert(k, v);
                }
            }
        }
        out.push(BuildPlan {
            service: name.clone(),
            context: dir,
            dockerfile: b.get("dockerfile").and_then(scalar_text),
            target: b.get("target").and_then(scalar_text),
            args,
            repository: format!("{}-{}", project.name, dns_label(name)),
        });
    }
    if refusals.is_empty() {
        Ok(out)
    } else {
        Err(ComposeError::Refused {
            refusals,
            warnings: Vec::new(),
        })
    }
}

/// Carries a project over into one job.
pub fn convert(project: &Project, opts: &ConvertOptions) -> Result<Conversion, ComposeError> {
    let mut g = Gathered::default();
    g.warnings.extend(project.notes.iter().cloned());
    for v in keys::walk(&project.doc) {
        match v {
            Verdict::Warned(path, why) => g.warn(path, why),
            Verdict::Refused(path, why) => g.refuse(path, why),
            Verdict::Unknown(path) => g.refuse(
                path,
                "not a key of the Compose Specification (check its spelling, or name an extension x-...)",
            ),
        }
    }

    let x = project
        .doc
        .get("x-orkestrator")
        .cloned()
        .unwrap_or(Value::Null);
    if !x.is_null() && !x.is_object() {
        g.refuse(
            "x-orkestrator",
            format!("must be a mapping, found {}", yaml::kind(&x)),
        );
    }

    // Task names, each service's made a DNS label.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for (name, _) in services(project) {
        let task = dns_label(name);
        if task.is_empty() {
            g.refuse(
                join("services", name),
                "a service's name needs a letter or digit to become a task name",
            );
            continue;
        }
        if let Some(other) = taken.insert(task.clone(), name.clone()) {
            g.refuse(
                join("services", name),
                format!("services {other} and {name} would both be task {task}: rename one"),
            );
        }
        names.insert(name.clone(), task);
    }

    let mut tasks = Vec::new();
    let mut no_resources = Vec::new();
    let mut replicas: BTreeMap<String, u64> = BTreeMap::new();
    let mut mapper = ServiceMapper {
        project,
        opts,
        names: &names,
        x: &x,
        g: &mut g,
    };
    for (i, (name, s)) in services(project).enumerate() {
        if !names.contains_key(name) {
            continue;
        }
        let (task, defaulted, count) = mapper.service(i, name, s);
        if defaulted {
            no_resources.push(name.clone());
        }
        if let Some(c) = count {
            replicas.insert(name.clone(), c);
        }
        tasks.push(task);
    }
    // Aliases given through `links` land on the linked task.
    mapper.link_aliases(&mut tasks);

    if !no_resources.is_empty() {
        let (cpu, memory) = mapper.default_resources();
        g.warn(
            "services",
            format!(
                "{} set{} no resources: each gets {cpu} CPU and {memory} memory (set deploy.resources.limits, or x-orkestrator.resources)",
                no_resources.join(", "),
                if no_resources.len() == 1 { "s" } else { "" }
            ),
        );
    }

    let mut file = Map::new();
    file.insert("name".into(), Value::String(project.name.clone()));
    if let Some((c, from)) = count(&x, &replicas, tasks.len(), &mut g) {
        file.insert("count".into(), json!(c));
        g.origins.add("count", from);
    }
    constraints(&x, &mut g);
    if !g.constraints.is_empty() {
        file.insert("constraints".into(), Value::Array(g.constraints.clone()));
    }
    file.insert("tasks".into(), Value::Array(tasks));
    if !g.volumes.is_empty() {
        file.insert("volumes".into(), Value::Object(g.volumes.clone()));
    }
    let file = Value::Object(file);

    if opts.strict {
        let warnings = std::mem::take(&mut g.warnings);
        g.refusals.extend(warnings.into_iter().map(|w| Note {
            message: format!("{} (--strict)", w.message),
            ..w
        }));
    }
    if !g.refusals.is_empty() {
        return Err(ComposeError::Refused {
            refusals: g.refusals,
            warnings: g.warnings,
        });
    }

    let text = serde_json::to_string(&file).unwrap_or_default();
    match parse_job(&text, Format::Json) {
        Ok(job) => Ok(Conversion {
            job,
            file,
            warnings: g.warnings,
            secrets: g.secrets,
        }),
        Err(crate::error::Error::Invalid(problems)) => {
            let refusals = problems
                .0
                .into_iter()
                .map(|p| match g.origins.find(&p.path) {
                    Some(c) => Note::new(c, format!("{} (as the job's {})", p.message, p.path)),
                    None => Note::new(p.path, p.message),
                })
                .collect();
            Err(ComposeError::Refused {
                refusals,
                warnings: g.warnings,
            })
        }
        Err(other) => Err(ComposeError::Refused {
            refusals: vec![Note::new("", other.to_string())],
            warnings: g.warnings,
        }),
    }
}

/// The job's count: `x-orkestrator.count`, or the services' `deploy.replicas` when they all
/// agree (a service without one counts 1); none for 1.
fn count(
    x: &Value,
    replicas: &BTreeMap<String, u64>,
    services: usize,
    g: &mut Gathered,
) -> Option<(u64, String)> {
    if let Some(c) = x.get("count") {
        return match c.as_u64() {
            Some(n) => Some((n, "x-orkestrator.count".into())),
            None => {
                g.refuse("x-orkestrator.count", "must be a whole number of instances");
                None
            }
        };
    }
    let distinct: BTreeSet<u64> = replicas.values().copied().collect();
    let all = replicas.len() == services;
    match (distinct.len(), all) {
        (0, _) => None,
        (1, true) => {
            let n = *distinct.iter().next().unwrap_or(&1);
            let first = replicas.keys().next().cloned().unwrap_or_default();
            Some((n, format!("services.{first}.deploy.replicas")))
        }
        (1, false) if distinct.contains(&1) => None,
        _ => {
            let said: Vec<String> = replicas.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            g.refuse(
                "services",
                format!(
                    "deploy.replicas differs between services ({}; the others 1): the services run together as instances of one job, so they need one count (set the same replicas everywhere, or x-orkestrator.count)",
                    said.join(", ")
                ),
            );
            None
        }
    }
}

/// `x-orkestrator.constraints`: job-file constraints, or `label=value` / `label!=value`.
fn constraints(x: &Value, g: &mut Gathered) {
    let Some(list) = x.get("constraints") else {
        return;
    };
    let Value::Array(items) = list else {
        g.refuse(
            "x-orkestrator.constraints",
            "must be a list (e.g. [\"zone=a\"] or [{label: zone, equals: a}])",
        );
        return;
    };
    for (i, c) in items.iter().enumerate() {
        let here = format!("x-orkestrator.constraints[{i}]");
        let value = match c {
            Value::String(s) => match s.split_once("!=") {
                Some((k, v)) => json!({"label": k.trim(), "not_equals": v.trim()}),
                None => match s.split_once('=') {
                    Some((k, v)) => json!({"label": k.trim(), "equals": v.trim()}),
                    None => {
                        g.refuse(here, format!("{s:?} is not label=value or label!=value"));
                        continue;
                    }
                },
            },
            other => other.clone(),
        };
        g.origins
            .add(format!("constraints[{}]", g.constraints.len()), here);
        g.constraints.push(value);
    }
}
