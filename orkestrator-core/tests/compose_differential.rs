//! The Compose reader against Debian's docker-compose 1.29.2: for each fixture it reads, what
//! `docker-compose config` resolves (services, images, environments after `env_file` and
//! interpolation, ports, volumes, commands, entrypoints, `depends_on`, builds and `extends`)
//! must be what [`load`](orkestrator_core::compose::load) resolves; and the ports and the
//! environment of a conversion's tasks must be those docker-compose gives the containers.
//!
//! docker-compose 1.29 refuses top-level `name:`, `start_interval`, `depends_on.*.required` and
//! other later keys, so the fixtures using them say `"docker_compose": false` in their
//! `options.json`. It keeps the services of inactive profiles in its output; they are left
//! out here as the Specification says. Without docker-compose the test is skipped, unless
//! `CI=true`, where it fails.

mod compose_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use compose_support::{Fixture, fixtures};
use orkestrator_core::compose::{Project, convert, dns_label};
use serde_json::Value;

const DOCKER_COMPOSE: &str = "docker-compose";

/// Where docker-compose 1.29 is out of the Specification (or we chose otherwise, said why),
/// and so differs from us: fixture, key, and why. Each must still differ (else it is stale and
/// goes).
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "interpolation",
        "services.web.environment.NESTED",
        "the Specification interpolates inside a default (${NOPE:-${TAG}} is TAG's value); docker-compose 1.29 ends the default at the first `}`",
    ),
    (
        "env-profiles",
        "services.app.environment.INTERP",
        "env files expand unbraced $VAR as well as ${VAR} (Compose's env-file syntax); docker-compose 1.29's python-dotenv expands only ${VAR}",
    ),
    (
        "interpolation",
        "services.web.environment.FLOAT",
        "not docker-compose out of spec but our choice (compose::yaml): a plain scalar that YAML reads as a float keeps the text written, so PYTHON_VERSION: 3.10 stays 3.10; docker-compose, like YAML, makes it the number 3.1",
    ),
];

/// Whether docker-compose runs here; `CI=true` without it is a failure.
fn have_docker_compose() -> bool {
    let ok = Command::new(DOCKER_COMPOSE)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "docker-compose is not installed, and CI=true: the differential tests must run (apt-get install docker-compose)"
        );
        eprintln!("docker-compose is not installed: the differential tests are skipped");
    }
    ok
}

/// `docker-compose config` for the fixture, with its environment only.
fn their_config(f: &Fixture, project: &str) -> Result<Value, String> {
    let mut cmd = Command::new(DOCKER_COMPOSE);
    cmd.current_dir(&f.dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .envs(f.environment());
    if let Some(e) = f.env_file() {
        cmd.arg("--env-file").arg(e);
    }
    for p in f.profiles() {
        cmd.arg("--profile").arg(p);
    }
    cmd.args(["-f", "compose.yaml"]);
    if f.dir.join("compose.override.yaml").is_file() {
        cmd.args(["-f", "compose.override.yaml"]);
    }
    cmd.args(["-p", project, "config"]);
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_saphyr::from_str(&text).map_err(|e| format!("its output is not YAML: {e}\n{text}"))
}

/// A scalar as text (`$$` in docker-compose's output is its escape of `$`).
fn text(v: &Value, theirs: bool) -> Option<String> {
    let s = match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    Some(if theirs { s.replace("$$", "$") } else { s })
}

/// A value with docker-compose's `$$` escapes undone.
fn unescape(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("$$", "$")),
        Value::Array(a) => Value::Array(a.iter().map(unescape).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), unescape(v))).collect())
        }
        other => other.clone(),
    }
}

fn environment(s: &Value, theirs: bool) -> BTreeMap<String, Option<String>> {
    match s.get("environment") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), text(v, theirs)))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| text(i, theirs))
            .map(|i| match i.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (i, None),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A port as (host address, published port, container port, protocol).
type PortKey = (Option<String>, Option<u16>, u16, String);

fn range(s: &str) -> (u16, u16) {
    match s.split_once('-') {
        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
        None => {
            let p = s.parse().unwrap_or_else(|_| panic!("{s:?} is not a port"));
            (p, p)
        }
    }
}

/// Ports of either syntax, ranges expanded. An address before the host port may be an IPv6
/// address, with brackets (as written) or without (as docker-compose prints it).
fn ports(s: &Value) -> BTreeSet<PortKey> {
    let mut out = BTreeSet::new();
    for p in s
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Value::Object(m) = p {
            let target = text(&m["target"], false).unwrap().parse().unwrap();
            let published = m
                .get("published")
                .and_then(|v| text(v, false))
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap());
            let proto = m
                .get("protocol")
                .and_then(|v| text(v, false))
                .unwrap_or_else(|| "tcp".into());
            let ip = m.get("host_ip").and_then(|v| text(v, false));
            out.insert((ip, published, target, proto));
            continue;
        }
        let s = text(p, false).unwrap();
        let (spec, proto) = s.rsplit_once('/').unwrap_or((&s, "tcp"));
        let mut parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        parts.reverse();
        let (ip, host, container) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (
                Some(ip.trim_start_matches('[').trim_end_matches(']').to_owned()),
                Some(*h),
                *c,
            ),
            _ => unreachable!(),
        };
        let (clo, chi) = range(container);
        let host = host.filter(|h| !h.is_empty()).map(range);
        for (i, c) in (clo..=chi).enumerate() {
            let h = host.map(|(lo, _)| lo + i as u16);
            out.insert((ip.clone().filter(|i| !i.is_empty()), h, c, proto.to_owned()));
        }
    }
    out
}

/// A mount as (type, source, target, read-only), a bind's source absolute.
type MountKey = (String, Option<String>, String, bool);

/// `p` without `.` and `..` (lexically).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn volumes(s: &Value, dir: &Path) -> Vec<MountKey> {
    let abs = |src: &str| lexical(&dir.join(src)).to_string_lossy().into_owned();
    let mut out = Vec::new();
    for v in s
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Value::Object(m) = v {
            let kind = text(&m["type"], false).unwrap();
            let source = m.get("source").and_then(|v| text(v, false));
            let source = if kind == "bind" {
                source.map(|s| abs(&s))
            } else {
                source
            };
            let ro = m.get("read_only") == Some(&Value::Bool(true));
            out.push((kind, source, text(&m["target"], false).unwrap(), ro));
            continue;
        }
        let s = text(v, false).unwrap();
        let parts: Vec<&str> = s.split(':').collect();
        let (src, target, mode) = match parts.as_slice() {
            [t] => (None, *t, ""),
            [s, t] => (Some(*s), *t, ""),
            [s, t, m] => (Some(*s), *t, *m),
            _ => panic!("{s:?} is not a volume"),
        };
        let ro = mode.split(',').any(|m| m == "ro");
        match src {
            None => out.push(("volume".into(), None, target.into(), ro)),
            Some(src) if src.starts_with(['/', '.', '~']) => {
                out.push(("bind".into(), Some(abs(src)), target.into(), ro))
            }
            Some(src) => out.push(("volume".into(), Some(src.into()), target.into(), ro)),
        }
    }
    // The order of mounts means nothing, and a merge may change it.
    out.sort();
    out
}

fn build(s: &Value, dir: &Path) -> Option<(String, Option<String>)> {
    let b = s.get("build")?;
    let (context, dockerfile) = match b {
        Value::String(c) => (c.clone(), None),
        m => (
            text(&m["context"], false).unwrap_or_default(),
            m.get("dockerfile").and_then(|d| text(d, false)),
        ),
    };
    Some((
        lexical(&dir.join(context)).to_string_lossy().into_owned(),
        dockerfile,
    ))
}

/// `depends_on` as service -> condition (a list's items are `service_started`).
fn depends_on(s: &Value) -> BTreeMap<String, String> {
    match s.get("depends_on") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| text(i, false))
            .map(|n| (n, "service_started".to_owned()))
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let c = v
                    .get("condition")
                    .and_then(|c| text(c, false))
                    .unwrap_or_else(|| "service_started".into());
                (k.clone(), c)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The differences between our project and docker-compose's resolution of it: the key, and
/// the difference said.
fn differences(f: &Fixture, ours: &Project, theirs: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut diff = |what: String, a: String, b: String| {
        if a != b {
            out.push((
                what.clone(),
                format!("{}: {what}:\n    ours   {a}\n    theirs {b}", f.name),
            ));
        }
    };
    let mut active: BTreeSet<String> = f.profiles().into_iter().collect();
    if let Some(p) = f.environment().get("COMPOSE_PROFILES") {
        active.extend(p.split(',').map(|p| p.trim().to_owned()));
    }
    let our_services = ours.doc["services"].as_object().unwrap();
    let their_services: BTreeMap<&String, &Value> = theirs["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| match s.get("profiles").and_then(Value::as_array) {
            Some(p) if !p.is_empty() => p
                .iter()
                .any(|p| p.as_str().is_some_and(|p| active.contains(p))),
            _ => true,
        })
        .collect();
    diff(
        "services".into(),
        format!("{:?}", our_services.keys().collect::<Vec<_>>()),
        format!("{:?}", their_services.keys().collect::<Vec<_>>()),
    );
    let conversion = convert(ours, &f.convert_options()).ok();
    for (name, o) in our_services {
        let Some(t) = their_services.get(name) else {
            continue;
        };
        let at = |k: &str| format!("services.{name}.{k}");
        diff(
            at("image"),
            format!("{:?}", o.get("image").and_then(|v| text(v, false))),
            format!("{:?}", t.get("image").and_then(|v| text(v, true))),
        );
        let (oe, te) = (environment(o, false), environment(t, true));
        diff(
            at("environment"),
            format!("{:?}", oe.keys().collect::<Vec<_>>()),
            format!("{:?}", te.keys().collect::<Vec<_>>()),
        );
        for (k, v) in &oe {
            if let Some(tv) = te.get(k) {
                diff(
                    format!("services.{name}.environment.{k}"),
                    format!("{v:?}"),
                    format!("{tv:?}"),
                );
            }
        }
        diff(
            at("ports"),
            format!("{:?}", ports(o)),
            format!("{:?}", ports(&unescape(t))),
        );
        diff(
            at("volumes"),
            format!("{:?}", volumes(o, &ours.dir)),
            format!("{:?}", volumes(&unescape(t), &f.dir)),
        );
        for k in ["command", "entrypoint"] {
            diff(
                at(k),
                format!("{}", o.get(k).cloned().unwrap_or(Value::Null)),
                format!("{}", t.get(k).map(unescape).unwrap_or(Value::Null)),
            );
        }
        diff(
            at("depends_on"),
            format!("{:?}", depends_on(o)),
            format!("{:?}", depends_on(t)),
        );
        diff(
            at("build"),
            format!("{:?}", build(o, &ours.dir)),
            format!("{:?}", build(t, &f.dir)),
        );
        // The ports the conversion publishes are those docker-compose publishes.
        if let Some(c) = &conversion {
            let task = c.file["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|task| task["name"].as_str() == Some(dns_label(name).as_str()))
                .unwrap_or_else(|| panic!("{}: no task for service {name}", f.name));
            let published: BTreeSet<PortKey> = task
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p.get("host_ip").and_then(|v| text(v, false)),
                        p["host"].as_u64().map(|h| h as u16),
                        p["container"].as_u64().unwrap() as u16,
                        text(&p["protocol"], false).unwrap(),
                    )
                })
                .collect();
            let theirs_published: BTreeSet<PortKey> = ports(&unescape(t))
                .into_iter()
                .filter(|p| p.1.is_some())
                .collect();
            diff(
                format!("services.{name}.ports as the job publishes them"),
                format!("{published:?}"),
                format!("{theirs_published:?}"),
            );
            // The task's environment is docker-compose's, less the variables left without a
            // value (which a container does not get).
            let task_env: BTreeMap<String, Option<String>> = task
                .get("env")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), text(v, false)))
                .collect();
            for (k, v) in te.iter().filter(|(_, v)| v.is_some()) {
                diff(
                    format!("services.{name}.environment.{k}"),
                    format!("{:?} (in the job)", task_env.get(k).cloned().flatten()),
                    format!("{v:?} (in the job)"),
                );
            }
            diff(
                format!("services.{name}.environment"),
                format!("{:?} (in the job)", task_env.keys().collect::<Vec<_>>()),
                format!(
                    "{:?} (in the job)",
                    te.iter()
                        .filter(|(_, v)| v.is_some())
                        .map(|(k, _)| k)
                        .collect::<Vec<_>>()
                ),
            );
        }
    }
    out
}

#[test]
fn docker_compose_config_resolves_the_fixtures_as_we_do() {
    if !have_docker_compose() {
        return;
    }
    let mut wrong = Vec::new();
    let mut known_seen: Vec<(String, String)> = Vec::new();
    let mut compared = 0;
    for f in fixtures() {
        if !f.docker_compose_reads_it() {
            continue;
        }
        let ours = match f.load() {
            Ok(p) => p,
            Err(e) => {
                wrong.push(format!("{}: we cannot load it: {e}", f.name));
                continue;
            }
        };
        let theirs = match their_config(&f, &ours.name) {
            Ok(v) => v,
            Err(e) => {
                wrong.push(format!(
                    "{}: docker-compose config refuses it (mark it \"docker_compose\": false in options.json if that is docker-compose's limit): {e}",
                    f.name
                ));
                continue;
            }
        };
        compared += 1;
        for (key, said) in differences(&f, &ours, &theirs) {
            if KNOWN.iter().any(|(fx, k, _)| *fx == f.name && *k == key) {
                known_seen.push((f.name.clone(), key));
            } else {
                wrong.push(said);
            }
        }
    }
    for (fx, key, _) in KNOWN {
        if !known_seen.iter().any(|(f, k)| f == fx && k == key) {
            wrong.push(format!(
                "{fx}: {key} is listed as a known difference, but does not differ: drop it from KNOWN"
            ));
        }
    }
    assert!(compared >= 8, "only {compared} fixtures compared");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
