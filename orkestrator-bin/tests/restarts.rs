//! Restarts against the real Docker engine (issue 18, items 1 and 2).
//!
//! - A task whose container cannot start (a command that does not exist, or a host port another
//!   container holds: created, then refused at start; an image whose pull is refused at once)
//!   waits out every backoff of its policy like a task whose process exits: with
//!   `max_attempts: 3, backoff: { initial: 2s }` it is `Failed` no sooner than 2 + 4 + 8 s, less
//!   the jitter, after its first start.
//! - A task that ended for good (`Failed`, `Completed`) stays ended when its worker is killed
//!   with SIGKILL and started again with the same `--name` and `--data-dir`: no new container,
//!   no restart counted, its state unchanged; nor when the manager is killed and started again.
//!
//! Same hygiene as `chaos.rs`: without a Docker engine the tests print a SKIP line and pass,
//! unless `CI=true` or `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    Cluster, IMAGE, containers_with_label, docker, docker_or_skip, free_port, http, unique,
};
use serde_json::Value;

/// What every worker offers.
const WORKER: &[&str] = &["--cpu", "4", "--memory", "1Gi"];

/// A job of one task `main` from `image` running `command` (a YAML flow list), restarted under
/// the task lines `restart`.
fn job_yaml(job: &str, image: &str, command: &str, restart: &str) -> String {
    format!(
        "name: {job}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {image}\n\
         \x20   command: {command}\n\
         \x20   resources: {{ cpu: 100m, memory: 8Mi }}\n\
         \x20   restart: {restart}\n"
    )
}

/// Writes `<job>.yaml` and submits it with `run -f`.
fn submit(c: &Cluster, job: &str, yaml: &str) {
    let file = format!("{job}.yaml");
    c.write(&file, yaml);
    let out = c.ork(&["run", "-f", &file]);
    assert_eq!(out.code, Some(0), "run {file}: {}", out.describe());
}

/// Task `main` of `job`'s first instance, as `GET /v1/jobs/{job}` shows it, with the job's phase.
fn main_task(c: &Cluster, job: &str) -> Result<(String, Value), String> {
    let r =
        http(c.port, "GET", &format!("/v1/jobs/{job}"), None, b"").map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("GET /v1/jobs/{job}: {} {}", r.status, r.text()));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    let t = v["instances"][0]["tasks"]["main"].clone();
    if t.is_null() {
        return Err(format!("no task yet: {v:#}"));
    }
    Ok((v["phase"].as_str().unwrap_or_default().to_owned(), t))
}

/// With `max_attempts: 3` and a first backoff of 2 s, the three waits are 2, 4 and 8 s, each
/// within 10% of jitter: at least this long from the first start to `Failed`.
const THREE_BACKOFFS: Duration = Duration::from_millis(12_600);

/// Waits (polling every 100 ms, all at once) until every job of `jobs` is `Failed`; returns, per
/// job, how long that took from its task's first start (counted from the first poll that saw the
/// task past its placement) and the failed task.
fn time_to_failed(c: &Cluster, jobs: &[&String]) -> Vec<(Duration, Value)> {
    let mut first: BTreeMap<&str, Instant> = BTreeMap::new();
    let mut failed: BTreeMap<&str, (Duration, Value)> = BTreeMap::new();
    c.wait_until_every(
        "every job is Failed",
        Duration::from_secs(90),
        Duration::from_millis(100),
        |c| {
            let mut waiting = Vec::new();
            for job in jobs {
                if failed.contains_key(job.as_str()) {
                    continue;
                }
                let (phase, t) = main_task(c, job)?;
                let state = t["state"].as_str().unwrap_or_default();
                if !matches!(state, "Pending" | "Scheduled") {
                    first.entry(job.as_str()).or_insert_with(Instant::now);
                }
                if phase == "Failed" && state == "Failed" {
                    let took = first[job.as_str()].elapsed();
                    failed.insert(job.as_str(), (took, t));
                } else {
                    waiting.push(format!("{job} {phase}: {t:#}"));
                }
            }
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(waiting.join("\n"))
            }
        },
    );
    jobs.iter().map(|j| failed[j.as_str()].clone()).collect()
}

/// A container started with `docker run` by a test, removed when the test ends.
struct Blocker(String);

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[test]
fn a_container_that_cannot_start_waits_out_its_backoff() {
    let test = "nostart";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let policy = "{ policy: on-failure, max_attempts: 3, backoff: { initial: 2s } }";
    // Created, then refused at start: the binary does not exist in the image.
    let refused = unique("nostart-exec", test);
    submit(
        &c,
        &refused,
        &job_yaml(&refused, IMAGE, r#"["nosuchbinary"]"#, policy),
    );
    // Never created: the registry refuses the connection at once.
    let pull = unique("nostart-pull", test);
    submit(
        &c,
        &pull,
        &job_yaml(&pull, "127.0.0.1:1/x:1", r#"["sh"]"#, policy),
    );
    // Created, then refused at start: its host port is held by a container of nobody's.
    let port = free_port().to_string();
    let blocker = Blocker(unique("nostart-blocker", test));
    docker(&[
        "run",
        "-d",
        "--name",
        &blocker.0,
        "-p",
        &format!("{port}:80"),
        IMAGE,
        "sleep",
        "300",
    ]);
    let taken = unique("nostart-port", test);
    let yaml = job_yaml(&taken, IMAGE, r#"["sleep", "300"]"#, policy)
        + &format!("    ports: [{{ container: 80, host: {port} }}]\n");
    submit(&c, &taken, &yaml);
    let jobs = [&refused, &pull, &taken];
    for (job, (took, t)) in jobs.into_iter().zip(time_to_failed(&c, &jobs)) {
        let line = format!("[{test}] {job}: first start -> Failed in {took:?}: {t}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        assert!(
            took >= THREE_BACKOFFS - Duration::from_millis(300),
            "{job} Failed after {took:?}, before its three backoffs (2 + 4 + 8 s less 10%): {t:#}\n{}",
            c.logs()
        );
        assert_eq!(t["restarts"], 3, "{job}: {t:#}");
        let reason = t["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("cannot start: "), "{job}: {t:#}");
    }
    // The refused containers do not pile up: one is left, the last (kept with its error).
    for job in [&refused, &taken] {
        let left = containers_with_label("orkestrator.job", job, true);
        assert!(left.len() <= 1, "containers of {job}: {left:?}");
    }
}

#[test]
fn a_task_that_ended_stays_ended_after_its_worker_is_killed() {
    let test = "ended";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let data = c.dir().join("worker-data");
    let data = data.to_str().expect("utf-8 path").to_owned();
    let mut flags = WORKER.to_vec();
    flags.extend(["--data-dir", data.as_str()]);
    let (worker, proc) = c.add_worker_proc(&flags);
    let quick = "{ policy: on-failure, max_attempts: 1, backoff: { initial: 1s } }";
    // Ended by its process: failed (exit 3) and completed (exit 0).
    let failed = unique("ended-exit", test);
    submit(
        &c,
        &failed,
        &job_yaml(&failed, IMAGE, r#"["sh", "-c", "exit 3"]"#, quick),
    );
    let done = unique("ended-done", test);
    submit(
        &c,
        &done,
        &job_yaml(&done, IMAGE, r#"["sh", "-c", "exit 0"]"#, quick),
    );
    // Ended without ever running: refused at start, and an image that cannot be pulled.
    let refused = unique("ended-exec", test);
    submit(
        &c,
        &refused,
        &job_yaml(&refused, IMAGE, r#"["nosuchbinary"]"#, quick),
    );
    let pull = unique("ended-pull", test);
    submit(
        &c,
        &pull,
        &job_yaml(&pull, "127.0.0.1:1/x:1", r#"["sh"]"#, quick),
    );
    let jobs = [
        (&failed, "Failed"),
        (&done, "Completed"),
        (&refused, "Failed"),
        (&pull, "Failed"),
    ];
    let mut before = Seen::new();
    for (job, state) in jobs {
        let t = c.wait_until(&format!("{job} is {state}"), Duration::from_secs(60), |c| {
            let (phase, t) = main_task(c, job)?;
            if phase == state && t["state"] == state {
                Ok(t)
            } else {
                Err(format!("{phase}: {t:#}"))
            }
        });
        let containers = containers_with_label("orkestrator.job", job, true);
        before.insert(job.clone(), (t, containers));
    }

    c.kill(proc);
    let again = c.restart_worker(&worker);
    c.wait_worker_ready(&worker, again);
    // The restarted agent has read its assignments and reconciled (its status pass reports at
    // once); for the next few seconds nothing that ended may change.
    unchanged_for(&c, &jobs, &before, "its worker restarted");
    // Nor after the manager is killed and started again on the same state.
    c.restart_manager();
    c.wait_worker_ready(&worker, again);
    unchanged_for(&c, &jobs, &before, "the manager restarted");
}

/// A task's view and its job's containers, by job.
type Seen = BTreeMap<String, (Value, Vec<String>)>;

/// Asserts, polling for 6 s, that every job of `jobs` keeps the phase it ended in, its task's
/// state and restarts, and its containers (`before`), since `what`.
fn unchanged_for(c: &Cluster, jobs: &[(&String, &str)], before: &Seen, what: &str) {
    let watch = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch {
        for (job, state) in jobs {
            let (phase, t) = main_task(c, job).expect("job");
            let (was, containers) = &before[job.as_str()];
            assert_eq!(
                (phase.as_str(), &t["state"], &t["restarts"]),
                (*state, &was["state"], &was["restarts"]),
                "{job} came back after {what}: {t:#}\n{}",
                c.logs()
            );
            let now = containers_with_label("orkestrator.job", job, true);
            assert_eq!(&now, containers, "{job}'s containers changed after {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
