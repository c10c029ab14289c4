//! Issue 18, item 4, as a user meets it: `validate` gives every problem of a file at once with
//! path, line and suggestion; `validate --print` shows a command written as one line as its
//! list; the API answers a submitted job with the same problem list. Issue 19: files' `source`
//! is read by the CLI, relative to the job file (or to the current directory for standard
//! input), and refused by the API. No Docker engine is needed.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{BIN, Cluster, http, ork_in};
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

/// A job whose task carries two files read from `source`: a text one and a binary one.
const SOURCES: &str = "name: conf\ntasks:\n  - name: app\n    image: busybox:1.36\n    files:\n      - { path: /etc/app/app.conf, source: ./app.conf }\n      - { path: /etc/app/key, source: keys/key.bin, mode: \"0600\" }\n";

#[test]
fn the_cli_reads_source_relative_to_the_job_file_and_prints_it_as_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(jobs.join("keys")).unwrap();
    std::fs::write(jobs.join("conf.yaml"), SOURCES).unwrap();
    std::fs::write(jobs.join("app.conf"), "listen = 8080\n").unwrap();
    std::fs::write(jobs.join("keys/key.bin"), [0xde, 0xad, 0xbe, 0xef]).unwrap();

    // Run from the directory above: sources are found next to the job file, not in the
    // current directory.
    let out = ork_in(
        dir.path(),
        &["validate", "-f", "jobs/conf.yaml", "--print", "json"],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let printed: Value = serde_json::from_str(&out.stdout).expect("JSON printed");
    let files = &printed["tasks"][0]["files"];
    assert_eq!(
        files,
        &serde_json::json!([
            { "path": "/etc/app/app.conf", "content": "listen = 8080\n", "mode": "0644" },
            { "path": "/etc/app/key", "content_base64": "3q2+7w==", "mode": "0600" }
        ]),
        "{}",
        out.describe()
    );

    // A source that is missing is a problem at its path, with the file it looked for.
    std::fs::remove_file(jobs.join("app.conf")).unwrap();
    let out = ork_in(dir.path(), &["validate", "-f", "jobs/conf.yaml"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr
            .contains("tasks[0].files[0].source (line 6): cannot read ./app.conf"),
        "{}",
        out.describe()
    );
}

#[test]
fn standard_input_reads_source_relative_to_the_current_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    std::fs::write(d.join("app.conf"), "from stdin\n").unwrap();
    std::fs::write(d.join("keys/key.bin"), "k").unwrap();
    let mut child = Command::new(BIN)
        .args(["validate", "-f", "-", "--print", "yaml"])
        .current_dir(d)
        .env_remove("ORKESTRATOR_ADDR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(SOURCES.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("the CLI ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("from stdin"), "{stdout}");
    assert!(!stdout.contains("source:"), "{stdout}");
}

#[test]
fn the_api_refuses_source_and_asks_for_content() {
    let c = Cluster::start("spec-source");
    let r = http(
        c.port,
        "POST",
        "/v1/jobs",
        Some("application/yaml"),
        SOURCES.as_bytes(),
    )
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
        ["tasks[0].files[0].source", "tasks[0].files[1].source"],
        "{v:#}"
    );
    assert!(
        problems.iter().all(|p| p["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("source is read by the CLI only; send content"))),
        "{v:#}"
    );
    // The same job with the bytes as content is taken.
    let with_content = SOURCES
        .replace("source: ./app.conf", "content: \"listen = 8080\"")
        .replace("source: keys/key.bin", "content_base64: \"3q2+7w==\"");
    let r = http(
        c.port,
        "POST",
        "/v1/jobs",
        Some("application/yaml"),
        with_content.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn run_refuses_a_job_whose_files_make_it_larger_than_the_manager_takes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let mut yaml =
        String::from("name: big\ntasks:\n  - name: app\n    image: busybox:1.36\n    files:\n");
    for i in 0..5 {
        std::fs::write(d.join(format!("f{i}")), vec![b'x'; 250 * 1024]).unwrap();
        yaml.push_str(&format!("      - {{ path: /etc/f{i}, source: ./f{i} }}\n"));
    }
    std::fs::write(d.join("big.yaml"), yaml).unwrap();
    // No manager listens there: the job is refused before any connection.
    let out = ork_in(
        d,
        &["run", "-f", "big.yaml", "--manager", "http://127.0.0.1:9"],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr.contains("MAX_SPEC_BYTES") && out.stderr.contains("make its files smaller"),
        "{}",
        out.describe()
    );
}

/// Issue 20's fields: a job with volumes, mounts and secrets.
const STORAGE: &str = "name: db\nvolumes:\n  data: { type: volume, size: 1Gi, retain: true }\n  cache: { type: tmpfs }\n  logs: { type: host, source: applogs, read_only: true }\ntasks:\n  - name: db\n    image: postgres:16\n    mounts: [{ volume: data, path: /var/lib/db }, { volume: logs, path: /logs, subpath: db }, { volume: cache, path: /tmp/cache }]\n    secrets: [{ name: db-password }]\n";

#[test]
fn validate_accepts_volumes_and_secrets_and_prints_them_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("db.yaml"), STORAGE).unwrap();
    let mut printed = Vec::new();
    for format in ["yaml", "toml", "json"] {
        let out = ork_in(d, &["validate", "-f", "db.yaml", "--print", format], &[]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        // What is printed validates again, to the same print.
        let file = format!("printed.{format}");
        std::fs::write(d.join(&file), &out.stdout).unwrap();
        let again = ork_in(d, &["validate", "-f", &file, "--print", "json"], &[]);
        assert_eq!(again.code, Some(0), "{}", again.describe());
        printed.push(again.stdout);
    }
    assert!(printed.windows(2).all(|w| w[0] == w[1]), "{printed:?}");
    let v: Value = serde_json::from_str(&printed[0]).expect("JSON printed");
    assert_eq!(v["volumes"]["cache"]["size"], "64Mi", "{v:#}");
    assert_eq!(
        v["tasks"][0]["secrets"][0]["path"], "/run/secrets/db-password",
        "{v:#}"
    );
    assert_eq!(v["tasks"][0]["mounts"][1]["subpath"], "db", "{v:#}");
}

#[test]
fn the_api_refuses_a_job_naming_an_unknown_secret_at_its_field() {
    let c = Cluster::start("spec-storage");
    let r = http(
        c.port,
        "POST",
        "/v1/jobs",
        Some("application/yaml"),
        STORAGE.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], "invalid_spec", "{v:#}");
    let problems = v["problems"].as_array().cloned().unwrap_or_default();
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(paths, ["tasks[0].secrets[0].name"], "{v:#}");
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("there is no secret named db-password")),
        "{v:#}"
    );
    let r = http(c.port, "GET", "/v1/jobs/db", None, b"")
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_eq!(r.status, 404, "{}", r.text());
}
