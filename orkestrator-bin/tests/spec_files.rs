//! Issue 18, item 4, as a user meets it: `validate` gives every problem of a file at once with
//! path, line and suggestion; `validate --print` shows a command written as one line as its
//! list; the API answers a submitted job with the same problem list. No Docker engine is needed.

mod common;

use common::{Cluster, http, ork_in};
use serde_json::Value;

const MISSPELT: &str = "name: web\ntasks:\n  - name: server\n    imgae: busybox:1.36\n    comand: [\"sleep\", \"100\"]\n    resources: { memroy: 64Mi }\n";

#[test]
fn validate_gives_every_problem_at_once_and_prints_a_command_line_as_its_list() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("misspelt.yaml"), MISSPELT).unwrap();
    let out = ork_in(d, &["validate", "-f", "misspelt.yaml"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    for (path, line, known) in [
        ("tasks[0].imgae", 4, "image"),
        ("tasks[0].comand", 5, "command"),
        ("tasks[0].resources.memroy", 6, "memory"),
    ] {
        let shown = format!("{path} (line {line}): unknown field");
        assert!(
            out.stderr.contains(&shown),
            "no {shown}: {}",
            out.describe()
        );
        assert!(
            out.stderr.contains(&format!("did you mean {known}?")),
            "{}",
            out.describe()
        );
    }
    let out = ork_in(d, &["validate", "-f", "misspelt.yaml", "-o", "json"], &[]);
    let problems = out.json()["problems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let lines: Vec<&Value> = problems.iter().map(|p| &p["line"]).collect();
    assert_eq!(lines, [4, 5, 6], "{}", out.describe());

    std::fs::write(
        d.join("line.yaml"),
        "name: web\ntasks:\n  - name: server\n    image: busybox:1.36\n    command: sh -c 'echo \"hi there\"; sleep 100'\n",
    )
    .unwrap();
    let out = ork_in(d, &["validate", "-f", "line.yaml", "--print", "json"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let printed: Value = serde_json::from_str(&out.stdout).expect("JSON printed");
    assert_eq!(
        printed["tasks"][0]["command"],
        serde_json::json!(["sh", "-c", "echo \"hi there\"; sleep 100"]),
        "{}",
        out.describe()
    );
}

#[test]
fn the_api_answers_a_misspelt_job_with_every_problem_and_its_line() {
    let c = Cluster::start("spec-files");
    for (ctype, body) in [
        ("application/yaml", MISSPELT.to_owned()),
        (
            "application/json",
            "{\n\"name\": \"web\",\n\"tasks\": [{\n\"name\": \"server\",\n\"imgae\": \"busybox:1.36\",\n\"comand\": [\"sleep\", \"100\"],\n\"resources\": {\"memroy\": \"64Mi\"}}]}".to_owned(),
        ),
    ] {
        let r = http(c.port, "POST", "/v1/jobs", Some(ctype), body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        assert_eq!(r.status, 400, "{}", r.text());
        let v = r.json();
        assert_eq!(v["code"], "invalid_spec", "{v:#}");
        let problems = v["problems"].as_array().cloned().unwrap_or_default();
        let paths: Vec<&str> = problems
            .iter()
            .map(|p| p["path"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            paths,
            [
                "tasks[0].imgae",
                "tasks[0].comand",
                "tasks[0].resources.memroy"
            ],
            "{v:#}"
        );
        assert!(problems.iter().all(|p| p["line"].is_u64()), "{v:#}");
        assert!(
            problems[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("did you mean image?")),
            "{v:#}"
        );
    }
}
