//! The binary's output: `-o json` of every client command (against a real cluster), a closed
//! pipe that ends quietly, `events` following a job, `run --wait` failing with the reason, and the
//! exit codes in `--help`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, Cluster, FOREVER, IMAGE, docker_or_skip, ork_in, unique};
use serde_json::Value;

fn job_yaml(name: &str, command: &str, restart: &str) -> String {
    format!(
        "name: {name}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: {command}\n\
         \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n\
         \x20   restart: {{ policy: {restart} }}\n"
    )
}

/// A running `orkestrator events ...` whose standard output lines arrive on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(c: &Cluster, args: &[&str]) -> Follower {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(c.dir())
            .env("ORKESTRATOR_ADDR", &c.addr)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start orkestrator events");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `done` holds for the lines seen so far, or `timeout` passes (panics
    /// with what was seen).
    fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let parsed: Vec<Value> = self
                .seen
                .iter()
                .map(|l| {
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("events line is not JSON ({e}): {l}"))
                })
                .collect();
            if done(&parsed) {
                return parsed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "timed out waiting for {what}; events seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_type(events: &[Value], t: &str) -> bool {
    events.iter().any(|e| e["kind"]["type"] == t)
}

fn task_reached(events: &[Value], state: &str) -> bool {
    events
        .iter()
        .any(|e| e["kind"]["type"] == "task_state_changed" && e["kind"]["to"] == state)
}

/// `(index, seq)` of an event line.
fn position(e: &Value) -> (u64, u64) {
    (
        e["index"].as_u64().expect("index"),
        e["seq"].as_u64().expect("seq"),
    )
}

fn assert_strictly_rising(events: &[Value]) {
    for w in events.windows(2) {
        if w[1]["type"] == "reset" || w[0]["type"] == "reset" {
            continue;
        }
        assert!(
            position(&w[0]) < position(&w[1]),
            "events out of order or repeated: {} then {}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn help_lists_the_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = ork_in(dir.path(), &["--help"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.contains("Exit codes:"), "{}", out.describe());
    for line in [
        "0  success",
        "2  usage error",
        "3  cannot reach the manager",
        "5  timed out",
    ] {
        assert!(out.stdout.contains(line), "no {line:?}: {}", out.describe());
    }
    // The scheme holds: a bad flag is 2, an unreachable manager 3.
    let bad = ork_in(dir.path(), &["status", "--no-such-flag"], &[]);
    assert_eq!(bad.code, Some(2), "{}", bad.describe());
    let port = common::free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let gone = ork_in(
        dir.path(),
        &["status", "-o", "json", "--manager", &addr],
        &[],
    );
    assert_eq!(gone.code, Some(3), "{}", gone.describe());
}

/// Runs `orkestrator ARGS` with standard output a pipe whose reading end is already closed, and
/// returns its exit code and standard error.
fn into_closed_pipe(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status.code(),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    (code, reader.join().unwrap_or_default())
}

fn assert_quiet(what: &str, (code, stderr): (Option<i32>, String)) {
    assert_eq!(code, Some(0), "{what}: exit {code:?}, stderr:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: stderr:\n{stderr}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("job.yaml"),
        job_yaml("piped", FOREVER, "never"),
    )
    .unwrap();
    assert_quiet(
        "validate --print yaml",
        into_closed_pipe(
            dir.path(),
            &["validate", "job.yaml", "--print", "yaml"],
            &[],
        ),
    );
    assert_quiet(
        "validate -o json",
        into_closed_pipe(dir.path(), &["validate", "job.yaml", "-o", "json"], &[]),
    );
    // Against a manager: a table, JSON, and a live stream.
    let c = Cluster::start("pipe");
    let env = [("ORKESTRATOR_ADDR", c.addr.as_str())];
    for args in [
        &["status"][..],
        &["status", "-o", "json"],
        &["health"],
        &["workers", "-o", "json"],
        &["top", "--once"],
        &["events", "--from-index", "0"],
    ] {
        assert_quiet(&args.join(" "), into_closed_pipe(c.dir(), args, &env));
    }
    // And the shell's way: `status | head -1` (the first stage's exit code).
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("set -o pipefail; {BIN} health | head -1 >/dev/null; echo \"codes ${{PIPESTATUS[*]}}\""),
        ])
        .env("ORKESTRATOR_ADDR", &c.addr)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("codes 0 0"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_command_speaks_json() {
    let test = "json";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let worker = c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("out", test);
    c.write("job.yaml", &job_yaml(&job, FOREVER, "always"));

    let v = c.ork(&["validate", "job.yaml", "-o", "json"]);
    assert_eq!(v.code, Some(0), "{}", v.describe());
    let v = v.json();
    assert_eq!(v["valid"], true, "{v:#}");
    assert_eq!(v["job"], job.as_str(), "{v:#}");
    assert_eq!(v["tasks"], 1, "{v:#}");

    let run = c.ork(&[
        "run",
        "-f",
        "job.yaml",
        "--wait",
        "--timeout",
        "60s",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let view = run.json();
    assert_eq!(view["phase"], "Running", "{view:#}");
    assert_eq!(view["instances"][0]["worker"], worker.as_str(), "{view:#}");

    // Submitting again is `unchanged`, with the index to follow from.
    let again = c.ork(&["run", "-f", "job.yaml", "-o", "json"]);
    assert_eq!(again.code, Some(0), "{}", again.describe());
    let again = again.json();
    assert_eq!(again["outcome"], "unchanged", "{again:#}");
    assert!(again["index"].as_u64().is_some_and(|i| i > 0), "{again:#}");

    let list = c.ork(&["status", "-o", "json"]).json();
    let listed = list
        .as_array()
        .and_then(|a| a.iter().find(|j| j["name"] == job.as_str()))
        .unwrap_or_else(|| panic!("{job} not in {list:#}"));
    assert_eq!(listed["phase"], "Running", "{list:#}");

    let one = c.ork(&["status", &job, "-o", "json"]).json();
    assert_eq!(
        one["instances"][0]["tasks"]["main"]["state"], "Running",
        "{one:#}"
    );

    let workers = c.ork(&["workers", "-o", "json"]).json();
    assert_eq!(workers[0]["id"], worker.as_str(), "{workers:#}");

    let health = c.ork(&["health", "-o", "json"]);
    assert_eq!(health.code, Some(0), "{}", health.describe());
    assert!(
        health.json()["manager"]["index"].as_u64().is_some(),
        "{}",
        health.describe()
    );

    let top = c.ork(&["top", "-o", "json"]);
    assert_eq!(top.code, Some(0), "{}", top.describe());
    let top = top.json();
    let row = top
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["job"] == job.as_str()))
        .unwrap_or_else(|| panic!("{job} not in top: {top:#}"));
    assert_eq!(row["task"], "main", "{top:#}");
    assert_eq!(row["state"], "Running", "{top:#}");
    assert_eq!(row["worker"], worker.as_str(), "{top:#}");

    let top_workers = c.ork(&["top", "--workers", "-o", "json"]).json();
    assert_eq!(top_workers[0]["id"], worker.as_str(), "{top_workers:#}");

    // The table views carry the use columns (`-` until metrics arrive) and stay aligned.
    let table = c.ork(&["status", &job]);
    assert!(table.stdout.contains("CPU"), "{}", table.describe());
    let table = c.ork(&["workers"]);
    let lines: Vec<&str> = table.stdout.lines().collect();
    let col = lines[0].find("HOST CPU").expect("HOST CPU column");
    assert!(lines[1].len() > col, "{}", table.describe());
    assert_eq!(
        &lines[1][col - 2..col],
        "  ",
        "column not aligned:\n{}",
        table.stdout
    );

    let stop = c.ork(&["stop", &job, "--wait", "--timeout", "60s", "-o", "json"]);
    assert_eq!(stop.code, Some(0), "{}", stop.describe());
    assert_eq!(stop.json()["phase"], "Stopped", "{}", stop.describe());

    let gc = c.ork(&["gc", "-o", "json"]);
    assert_eq!(gc.code, Some(0), "{}", gc.describe());
    assert!(gc.json()["jobs"].as_u64().is_some(), "{}", gc.describe());

    // `events -o json`: one object a line, from the first index on.
    let mut f = Follower::start(&c, &["events", "--from-index", "1", "-o", "json"]);
    let events = f.until("the job's stop", common::TIMEOUT, |e| {
        has_type(e, "job_stopped")
    });
    assert!(has_type(&events, "worker_registered"), "{events:#?}");
    assert_strictly_rising(&events);
}

#[test]
fn events_follow_a_job_from_its_submission() {
    let test = "events";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("ev", test);
    let other = unique("evother", test);
    c.write("job.yaml", &job_yaml(&job, FOREVER, "always"));
    c.write("other.yaml", &job_yaml(&other, FOREVER, "always"));

    let r = c.ork(&["run", "-f", "job.yaml", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let index = r.json()["index"].as_u64().expect("submit index");
    let from = index.to_string();
    let mut f = Follower::start(
        &c,
        &["events", "--job", &job, "--from-index", &from, "-o", "json"],
    );
    let r = c.ork(&["run", "-f", "other.yaml"]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let events = f.until("the job's task runs", common::TIMEOUT, |e| {
        task_reached(e, "Running")
    });
    assert_eq!(events[0]["kind"]["type"], "job_submitted", "{events:#?}");
    assert_eq!(events[0]["index"], index, "{events:#?}");
    assert!(has_type(&events, "instance_placed"), "{events:#?}");
    assert!(has_type(&events, "task_state_changed"), "{events:#?}");
    assert!(
        events.iter().all(|e| e["kind"]["job"] == job.as_str()),
        "another job's event got through --job: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["id"] == format!("{}.{}", e["index"], e["seq"])),
        "{events:#?}"
    );
    assert_strictly_rising(&events);

    // The human form: one line per event with its type, key and the task's transition.
    let mut h = Command::new(BIN);
    h.args(["events", "--job", &job, "--from-index", &from])
        .env("ORKESTRATOR_ADDR", &c.addr)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = h.spawn().expect("events");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("job_submitted"), "{first}");
    assert!(first.contains(&job), "{first}");
    assert!(first.contains(&format!("{index}.")), "{first}");
}

#[test]
fn events_resume_after_the_manager_restarts() {
    let test = "evresume";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let first = unique("a", test);
    let second = unique("b", test);
    c.write("a.yaml", &job_yaml(&first, FOREVER, "always"));
    c.write("b.yaml", &job_yaml(&second, FOREVER, "always"));
    let mut f = Follower::start(
        &c,
        &[
            "events",
            "--topic",
            "job",
            "--from-index",
            "1",
            "-o",
            "json",
        ],
    );
    assert_eq!(c.ork(&["run", "-f", "a.yaml"]).code, Some(0));
    f.until("the first job's submission", common::TIMEOUT, |e| {
        e.iter().any(|e| e["kind"]["job"] == first.as_str())
    });
    c.restart_manager();
    assert_eq!(c.ork(&["run", "-f", "b.yaml"]).code, Some(0));
    let events = f.until("the second job's submission", common::TIMEOUT, |e| {
        e.iter().any(|e| e["kind"]["job"] == second.as_str())
    });
    // Nothing twice: the first job's submission once, and every position after the one before.
    let firsts = events
        .iter()
        .filter(|e| e["kind"]["type"] == "job_submitted" && e["kind"]["job"] == first.as_str())
        .count();
    assert_eq!(firsts, 1, "{events:#?}");
    assert_strictly_rising(&events);
}

#[test]
fn run_wait_fails_with_the_tasks_reason() {
    let test = "waitfail";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("fail", test);
    c.write(
        "job.yaml",
        &job_yaml(&job, r#"["sh", "-c", "exit 3"]"#, "never"),
    );
    let out = c.ork(&["run", "-f", "job.yaml", "--wait", "--timeout", "60s"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stdout.contains("Failed"), "{}", out.describe());
    assert!(
        out.stderr.contains("failed") && out.stderr.contains("code 3"),
        "no reason on stderr: {}",
        out.describe()
    );
    let v = c.status(&job).expect("status");
    assert_eq!(v["phase"], "Failed", "{v:#}");

    // A job that cannot be placed times out with exit 5 and says why.
    let big = unique("big", test);
    c.write(
        "big.yaml",
        &job_yaml(&big, FOREVER, "never").replace("cpu: 100m", "cpu: 64"),
    );
    let out = c.ork(&["run", "-f", "big.yaml", "--wait", "--timeout", "3s"]);
    assert_eq!(out.code, Some(5), "{}", out.describe());
    assert!(out.stderr.contains("placed 0/1"), "{}", out.describe());
}
