//! A worker (or scheduler) pointed at the wrong place, or refused for good, says so and ends with
//! a non-zero exit code instead of retrying forever (issue 18, item 6). Real worker and scheduler
//! processes against a real manager (`--in-memory`); no container is started.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;
use orkestrator_core::api::{RegisterWorker, WorkerResources};
use orkestrator_core::ids::WorkerId;
use orkestrator_core::spec::Resources;

/// Runs `orkestrator worker ARGS` (its own port and data directory under `c`'s scratch
/// directory) until it ends, at most `within`.
fn worker(c: &Cluster, name: &str, args: &[&str], within: Duration) -> CmdOut {
    let data = c.dir().join(format!("worker-{name}"));
    let port = free_port().to_string();
    let mut cmd = Command::new(BIN);
    cmd.arg("worker")
        .args(["--name", name, "--port", &port])
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .current_dir(c.dir())
        .env_remove("ORKESTRATOR_ADDR")
        .env("NO_COLOR", "1");
    run_with_timeout(&mut cmd, within)
}

#[test]
fn a_taken_name_ends_the_worker_with_the_managers_words() {
    let test = "refused-name";
    let c = Cluster::start_server(test, &["--in-memory"]);
    let name = unique("taken", test);
    // Another worker holds the name, with a credential of its own.
    let join = token_of(c.port, "join.token").expect("the join token");
    let reg = RegisterWorker {
        id: WorkerId::new(name.clone()),
        address: None,
        labels: BTreeMap::new(),
        host_volumes: Default::default(),
        resources: WorkerResources {
            total: Resources::ZERO,
            allocated: Resources::ZERO,
            available: Resources::ZERO,
        },
        version: String::new(),
    };
    let r = http_as(
        c.port,
        Some(&join),
        "POST",
        "/v1/workers",
        Some("application/json"),
        &serde_json::to_vec(&reg).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let out = worker(&c, &name, &["--manager", &c.addr], Duration::from_secs(30));
    assert_eq!(out.code, Some(4), "ends, refused: {}", out.describe());
    assert!(
        out.stderr
            .contains("is registered with a credential of its own"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_join_token_the_manager_does_not_know_ends_the_worker() {
    let test = "refused-token";
    let c = Cluster::start_server(test, &["--in-memory"]);
    let name = unique("stranger", test);
    let out = worker(
        &c,
        &name,
        &[
            "--manager",
            &c.addr,
            "--join-token",
            "ork.nosuchtoken.nosuchsecret",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(4), "ends, refused: {}", out.describe());
    assert!(out.stderr.contains("token"), "{}", out.describe());
}

#[test]
fn nothing_listening_says_so_not_no_join_token() {
    let test = "refused-nothing";
    let c = Cluster::start_server(test, &["--in-memory"]);
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let out = worker(&c, "lonely", &["--manager", &addr], Duration::from_secs(30));
    assert_eq!(out.code, Some(3), "unreachable: {}", out.describe());
    assert!(
        out.stderr.contains(&format!(
            "nothing answers at {addr}: is the manager running there?"
        )) && !out.stderr.contains("no join token"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_join_token_the_manager_does_not_know_ends_the_scheduler_too() {
    let test = "refused-scheduler";
    let c = Cluster::start_server(test, &["--in-memory"]);
    let mut cmd = Command::new(BIN);
    cmd.arg("scheduler")
        .args(["--name", &unique("stranger", test), "--manager", &c.addr])
        .args(["--join-token", "ork.nosuchtoken.nosuchsecret"])
        .current_dir(c.dir())
        .env_remove("ORKESTRATOR_ADDR")
        .env("NO_COLOR", "1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert_eq!(out.code, Some(4), "ends, refused: {}", out.describe());
    assert!(out.stderr.contains("token"), "{}", out.describe());
}
