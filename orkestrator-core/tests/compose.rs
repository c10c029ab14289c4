//! The Compose fixtures (`tests/compose/*`): each converts as its `expected.json` says, and no
//! key of any of them is dropped silently.
//!
//! `UPDATE_COMPOSE_EXPECTED=1 cargo test -p orkestrator-core --test compose` rewrites the
//! expectations; read every change before committing it.

mod compose_support;

use compose_support::{Fixture, fixtures, raw_yaml};
use orkestrator_core::compose::{ComposeError, Disposition, convert, disposition};
use serde_json::{Value, json};

/// What one fixture comes to: the job file (or null), the paths warned and refused (with the
/// messages printed, not compared, for the reader) and the secrets the job needs.
struct Outcome {
    value: Value,
    messages: Vec<String>,
}

fn outcome(f: &Fixture) -> Outcome {
    let mut messages = Vec::new();
    let mut secrets = Vec::new();
    let (file, warnings, refusals, error) = match f.load() {
        Err(e) => match e {
            ComposeError::Refused { refusals, warnings } => (Value::Null, warnings, refusals, None),
            other => (Value::Null, Vec::new(), Vec::new(), Some(other.to_string())),
        },
        Ok(project) => match convert(&project, &f.convert_options()) {
            Ok(c) => {
                secrets = c
                    .secrets
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "compose_name": p.compose_name,
                            "content": p.content.as_ref().map(|c| String::from_utf8_lossy(c)),
                        })
                    })
                    .collect();
                (c.file, c.warnings, Vec::new(), None)
            }
            Err(ComposeError::Refused { refusals, warnings }) => {
                (Value::Null, warnings, refusals, None)
            }
            Err(other) => (Value::Null, Vec::new(), Vec::new(), Some(other.to_string())),
        },
    };
    for w in &warnings {
        messages.push(format!("warning {w}"));
    }
    for r in &refusals {
        messages.push(format!("refusal {r}"));
    }
    let mut value = json!({
        "file": file,
        "warnings": warnings.iter().map(|n| n.path.clone()).collect::<Vec<_>>(),
        "refusals": refusals.iter().map(|n| n.path.clone()).collect::<Vec<_>>(),
    });
    if !secrets.is_empty() {
        value["secrets"] = Value::Array(secrets);
    }
    if let Some(e) = error {
        // Paths relative to the fixture, so that the expectation holds on any machine.
        let e = e.replace(&format!("{}/", f.dir.display()), "");
        messages.push(format!("error {e}"));
        value["error"] = Value::String(e);
    }
    Outcome { value, messages }
}

#[test]
fn every_fixture_converts_as_expected() {
    let update = std::env::var_os("UPDATE_COMPOSE_EXPECTED").is_some();
    let mut wrong = Vec::new();
    for f in fixtures() {
        let got = outcome(&f);
        let path = f.dir.join("expected.json");
        if update {
            let text = serde_json::to_string_pretty(&got.value).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            println!("== {}", f.name);
            for m in &got.messages {
                println!("  {m}");
            }
            continue;
        }
        let want: Value = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(e) => {
                wrong.push(format!("{}: no expected.json ({e})", f.name));
                continue;
            }
        };
        if want != got.value {
            wrong.push(format!(
                "{}:\n  expected {}\n  got      {}\n  {}",
                f.name,
                want,
                got.value,
                got.messages.join("\n  ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "fixtures that convert otherwise than expected (UPDATE_COMPOSE_EXPECTED=1 rewrites them):\n{}",
        wrong.join("\n")
    );
}

/// Whether a value asks for anything (`false`, null, `""`, `[]` and `{}` do not), as the
/// converter judges refused keys.
fn asks_for_something(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

/// Every key of `v` at `path`, with its disposition (`None`: the table does not know it) and
/// whether its value asks for something; the walk goes below mapped keys only, as the table's
/// other dispositions cover what is below them.
fn walk(v: &Value, path: &str, out: &mut Vec<(String, Option<Disposition>, bool)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let d = disposition(&here);
                out.push((here.clone(), d, asks_for_something(child)));
                if d == Some(Disposition::Mapped) {
                    walk(child, &here, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_key_of_any_fixture_is_dropped_silently() {
    let mut wrong = Vec::new();
    let mut counted = 0;
    for f in fixtures() {
        let got = outcome(&f).value;
        let notes = |k: &str| -> Vec<String> {
            got[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect()
        };
        let (warnings, refusals) = (notes("warnings"), notes("refusals"));
        if got.get("error").is_some() {
            // Not read at all (a YAML error): there are no keys to account for.
            continue;
        }

        // The services of other files, by the project's services that extend them.
        let extended = f.extended();
        for rel in f.compose_files() {
            let file = f.dir.join(&rel);
            let mut keys = Vec::new();
            walk(&raw_yaml(&file), "", &mut keys);
            for (path, d, asks) in keys {
                counted += 1;
                let Some(d) = d else {
                    wrong.push(format!(
                        "{}/{rel}: {path} has no disposition in compose::KEYS",
                        f.name
                    ));
                    continue;
                };
                // Where the key lands in the project: its own path, or the extending
                // services' for a service of another file.
                let landing: Vec<String> =
                    if rel == "compose.yaml" || rel == "compose.override.yaml" {
                        vec![path.clone()]
                    } else {
                        let mut parts = path.splitn(3, '.');
                        let (Some("services"), Some(svc), rest) =
                            (parts.next(), parts.next(), parts.next())
                        else {
                            continue;
                        };
                        extended
                            .get(&(rel.clone(), svc.to_owned()))
                            .into_iter()
                            .flatten()
                            .map(|by| match rest {
                                Some(r) => format!("services.{by}.{r}"),
                                None => format!("services.{by}"),
                            })
                            .collect()
                    };
                // A key is reported at its path, or by a note on its service (one left out
                // for its profiles).
                let reported = |list: &[String], p: &str| {
                    list.iter().any(|n| {
                        n == p
                            || (n.starts_with("services.")
                                && n.matches('.').count() == 1
                                && p.starts_with(&format!("{n}.")))
                    })
                };
                let all: Vec<String> = warnings.iter().chain(&refusals).cloned().collect();
                for p in &landing {
                    match d {
                        Disposition::Warned(_) if !reported(&all, p) => wrong.push(format!(
                            "{}/{rel}: {path} is warned but no warning names {p}",
                            f.name
                        )),
                        Disposition::Refused(_) if asks && !reported(&refusals, p) => {
                            wrong.push(format!(
                                "{}/{rel}: {path} is refused but no refusal names {p}",
                                f.name
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(counted > 300, "only {counted} keys walked");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
