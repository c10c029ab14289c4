//! Chaos tests: the real `orkestrator` binary as separate processes on loopback and the real
//! Docker engine, with processes killed by SIGKILL and containers killed behind the worker's back.
//!
//! - A worker killed with SIGKILL is Down after the heartbeat grace; its tasks become `Lost`, are
//!   replaced on the other worker, and the old containers (still running: killing the agent does
//!   not stop them) are removed when the worker comes back under the same name.
//! - A manager killed with SIGKILL in the middle of a burst of submissions loses no acknowledged
//!   job: restarted on the same port and data directory it lists them all, the worker re-attaches
//!   by itself, and no job runs twice.
//! - A worker killed and started again under the same name adopts its running containers: same
//!   container ids, no new ones, no restarts; it removes a container of a job that does not
//!   exist, and stays in charge of the adopted ones (stop removes them).
//! - `docker kill` of a task's container goes through its restart policy: `on-failure` restarts it
//!   (Restarting with the next start time, then Running with a new container), `never` leaves it
//!   Failed with exit code 137.
//! - A task whose exec health check starts failing is stopped and restarted, and becomes healthy
//!   (under `always`; under `on-failure` the test is ignored for a product bug, see there).
//! - Re-submitting a changed spec replaces the instances one at a time: the job never has fewer
//!   than one running container, the second waits for the first to be healthy for a while, and
//!   an identical spec is `unchanged`.
//! - A measurement: how long 20 tasks take to run again on another worker after their worker is
//!   SIGKILLed (`RECOVERY_MS=<n>`, and `DETECT_MS=<n>` for the failure detection part, on standard
//!   error; `scripts/bench-failover.sh` repeats it and prints the medians).
//!
//! Same hygiene as `e2e.rs`: free ports, names carrying the test and the process id, manager state
//! in the test's temp dir, every process killed and every container of the test's workers removed
//! when a test ends; without a Docker engine the tests print a SKIP line and pass, unless
//! `CI=true` or `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Cluster, FOREVER, IMAGE, MANAGER, containers_with_label, docker, docker_or_skip, free_port,
    http, inspect, unique,
};
use serde_json::{Value, json};

/// The heartbeat grace the failover tests give the manager (the default, given explicitly).
const GRACE: Duration = Duration::from_secs(3);
/// What every worker offers.
const WORKER: &[&str] = &["--cpu", "4", "--memory", "1Gi"];
/// Task lines: restart whatever happens, soon.
const ALWAYS: &str = "    restart: { policy: always, backoff: { initial: 1s } }\n";

/// A job of one long-running task `main`, with top-level lines `top` (`count: 4\n`) and task
/// lines `task` (indented four spaces: `restart`, `env`, `health_check`).
fn job_yaml(job: &str, top: &str, task: &str) -> String {
    job_yaml_cmd(job, top, FOREVER, task)
}

/// Like [`job_yaml`], running `command` (a YAML flow list).
///
/// Tasks ask for 100m of CPU: Docker starts a container inside its CPU limit (the runtime's init
/// runs in the container's cgroup), and at 25m a start takes about twice as long on a small host.
fn job_yaml_cmd(job: &str, top: &str, command: &str, task: &str) -> String {
    format!(
        "name: {job}\n\
         {top}\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: {command}\n\
         \x20   resources: {{ cpu: 100m, memory: 8Mi }}\n\
         {task}"
    )
}

/// The same job as JSON, for `POST /v1/jobs`.
fn job_json(job: &str) -> Vec<u8> {
    let command: Value = serde_json::from_str(FOREVER).expect("FOREVER is a JSON list");
    json!({
        "name": job,
        "tasks": [{
            "name": "main",
            "image": IMAGE,
            "command": command,
            "resources": { "cpu": "100m", "memory": "8Mi" },
            "restart": { "policy": "always", "backoff": { "initial": "1s" } },
        }],
    })
    .to_string()
    .into_bytes()
}

/// Writes `<job>.yaml` and submits it with `run -f`; returns what `run` printed.
fn submit(c: &Cluster, job: &str, yaml: &str) -> String {
    let file = format!("{job}.yaml");
    c.write(&file, yaml);
    let out = c.ork(&["run", "-f", &file]);
    assert_eq!(out.code, Some(0), "run {file}: {}", out.describe());
    out.stdout
}

/// `POST /v1/jobs` with a JSON spec: the status code, or the transport error.
fn post_job(port: u16, job: &str) -> Result<u16, String> {
    http(
        port,
        "POST",
        "/v1/jobs",
        Some("application/json"),
        &job_json(job),
    )
    .map(|r| r.status)
    .map_err(|e| e.to_string())
}

/// `GET /v1/jobs/{job}` as JSON, or why not.
fn get_job(c: &Cluster, job: &str) -> Result<Value, String> {
    let r =
        http(c.port, "GET", &format!("/v1/jobs/{job}"), None, b"").map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("GET /v1/jobs/{job}: {} {}", r.status, r.text()));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))
}

/// `GET /v1/jobs` (the summaries, every page) by name, or why not.
fn list_jobs(c: &Cluster) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    let mut path = "/v1/jobs?limit=100".to_owned();
    loop {
        let r = http(c.port, "GET", &path, None, b"").map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("GET {path}: {} {}", r.status, r.text()));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
        for j in v["items"]
            .as_array()
            .ok_or_else(|| format!("not a page: {v}"))?
        {
            out.insert(j["name"].as_str().unwrap_or_default().to_owned(), j.clone());
        }
        match v["continue"].as_str() {
            Some(t) => path = format!("/v1/jobs?limit=100&continue={t}"),
            None => return Ok(out),
        }
    }
}

/// The instances that should run (not the lost or replaced ones still listed).
fn live(v: &Value) -> Vec<&Value> {
    v["instances"]
        .as_array()
        .map(|is| is.iter().filter(|i| i["desired"] == "run").collect())
        .unwrap_or_default()
}

/// The ids of `instances`.
fn ids(instances: &[&Value]) -> BTreeSet<String> {
    instances
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Task `main` of an instance.
fn main_task(i: &Value) -> &Value {
    &i["tasks"]["main"]
}

/// `Ok(view)` once `job` is Running with `count` live instances whose tasks all run (on `worker`
/// if given); otherwise the view as the error.
fn all_running(
    c: &Cluster,
    job: &str,
    count: usize,
    worker: Option<&str>,
) -> Result<Value, String> {
    let v = get_job(c, job)?;
    let insts = live(&v);
    let ok = v["phase"] == "Running"
        && insts.len() == count
        && insts
            .iter()
            .all(|i| main_task(i)["state"] == "Running" && worker.is_none_or(|w| i["worker"] == w));
    if ok {
        Ok(v)
    } else {
        Err(serde_json::to_string_pretty(&v).unwrap_or_default())
    }
}

/// `docker inspect` of the running containers of `job` (those still there when inspected: a
/// worker may remove one between the listing and the inspection).
fn running_containers(job: &str) -> Vec<Value> {
    let ids = containers_with_label("orkestrator.job", job, false);
    if ids.is_empty() {
        return Vec::new();
    }
    // `docker inspect` prints the containers it found and fails for the others.
    let out = std::process::Command::new("docker")
        .arg("inspect")
        .args(&ids)
        .output()
        .expect("run docker inspect");
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(found)) => found
            .into_iter()
            .filter(|d| d["State"]["Running"] == true)
            .collect(),
        _ => Vec::new(),
    }
}

/// A label of an inspected container.
fn label<'a>(d: &'a Value, key: &str) -> &'a str {
    d["Config"]["Labels"][key].as_str().unwrap_or_default()
}

/// Running containers of `job` by instance id; `Err` if an instance has more than one.
fn one_per_instance(job: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut by_instance: BTreeMap<String, Value> = BTreeMap::new();
    for d in running_containers(job) {
        let inst = label(&d, "orkestrator.instance").to_owned();
        if let Some(other) = by_instance.insert(inst.clone(), d.clone()) {
            return Err(format!(
                "instance {inst} of {job} runs twice: {} and {}",
                other["Id"], d["Id"]
            ));
        }
    }
    Ok(by_instance)
}

/// A submission and the manager's answer (the status code, or the transport error).
type Answer = (String, Result<u16, String>);

/// Writes a line straight to standard error (shown even when the harness captures output).
fn report(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

#[test]
fn kill_9_worker_moves_its_tasks() {
    let test = "moves";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start_server(test, &["--heartbeat-grace", "3s"]);
    let (w1, p1) = c.add_worker_proc(WORKER);
    let w2 = c.add_worker(WORKER);
    let job = unique("chaos", test);
    submit(&c, &job, &job_yaml(&job, "count: 4\n", ALWAYS));
    let before = c.wait_until("4 instances run", common::TIMEOUT, |c| {
        all_running(c, &job, 4, None)
    });
    let on_w1: Vec<&Value> = live(&before)
        .into_iter()
        .filter(|i| i["worker"] == w1.as_str())
        .collect();
    assert!(
        !on_w1.is_empty() && on_w1.len() < 4,
        "count 4 should spread over both workers: {before:#}"
    );
    let old_instances = ids(&on_w1);
    let old_containers: BTreeSet<String> =
        c.wait_until("w1's containers are in docker ps", common::TIMEOUT, |_| {
            let cs: BTreeSet<String> = containers_with_label("orkestrator.worker", &w1, false)
                .into_iter()
                .collect();
            if cs.len() == on_w1.len() {
                Ok(cs)
            } else {
                Err(format!("docker ps for {w1}: {cs:?}"))
            }
        });

    c.kill(p1);
    let killed = Instant::now();
    let after = c.wait_until(
        "every live instance runs on w2",
        GRACE + Duration::from_secs(10),
        |c| all_running(c, &job, 4, Some(&w2)),
    );
    report(&format!(
        "[{test}] w1 SIGKILLed -> its {} instances Running on w2: {} ms",
        old_instances.len(),
        killed.elapsed().as_millis()
    ));
    assert!(
        ids(&live(&after)).is_disjoint(&old_instances),
        "the lost instances are replaced by new ones: {after:#}"
    );
    // The lost instances are still listed, told to stop, their tasks Lost.
    for id in &old_instances {
        let i = after["instances"]
            .as_array()
            .and_then(|is| is.iter().find(|i| i["id"] == id.as_str()))
            .unwrap_or_else(|| panic!("lost instance {id} is not listed: {after:#}"));
        assert_eq!(i["desired"], "stop", "lost instance {id}: {after:#}");
        assert_eq!(
            main_task(i)["state"],
            "Lost",
            "lost instance {id}: {after:#}"
        );
    }
    // Killing the agent does not stop its containers.
    let still: BTreeSet<String> = containers_with_label("orkestrator.worker", &w1, false)
        .into_iter()
        .collect();
    assert_eq!(
        still, old_containers,
        "w1's containers after its agent died"
    );

    // w1 comes back under the same name: it removes the moved containers.
    let p1 = c.restart_worker(&w1);
    c.wait_worker_ready(&w1, p1);
    let back = Instant::now();
    c.wait_until(
        "one running container per live instance, none of w1's",
        common::TIMEOUT,
        |c| {
            let v = all_running(c, &job, 4, Some(&w2))?;
            let running = one_per_instance(&job)?;
            let want = ids(&live(&v));
            let got: BTreeSet<String> = running.keys().cloned().collect();
            let left = containers_with_label("orkestrator.worker", &w1, true);
            if got == want && left.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "live instances {want:?}\nrunning containers' instances {got:?}\n\
                     containers of {w1} (docker ps -a): {left:?}"
                ))
            }
        },
    );
    report(&format!(
        "[{test}] w1 back -> its old containers removed: {} ms",
        back.elapsed().as_millis()
    ));
    for id in &old_containers {
        let out = std::process::Command::new("docker")
            .args(["inspect", id])
            .output()
            .expect("docker inspect");
        assert!(!out.status.success(), "old container {id} still exists");
    }
}

#[test]
fn kill_9_manager_during_a_burst_loses_no_acknowledged_job() {
    let test = "burst";
    if !docker_or_skip(test) {
        return;
    }
    const JOBS: usize = 24;
    const SUBMITTERS: usize = 3;
    const KILL_AFTER: usize = 8;
    let port = free_port();
    // A relative --data-dir lands in the test's temp dir (the manager's working directory).
    let args: Vec<String> = [
        "server",
        "--port",
        &port.to_string(),
        "--heartbeat-interval",
        "500ms",
        "--data-dir",
        "manager-state",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut c = Cluster::start_with(test, port, &args);
    let w = c.add_worker(WORKER);
    assert!(
        c.dir().join("manager-state").is_dir(),
        "--data-dir manager-state was not created in {}",
        c.dir().display()
    );

    // Submit from three threads at once (so that requests are in flight when the manager dies),
    // recording the answer to each submission and whether it came before the kill.
    let names: Vec<String> = (0..JOBS).map(|i| unique(&format!("b{i}"), test)).collect();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let submitters: Vec<_> = names
        .chunks(JOBS / SUBMITTERS)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let answers = answers.clone();
            std::thread::spawn(move || {
                for name in chunk {
                    let r = post_job(port, &name);
                    answers.lock().expect("answers").push((name, r));
                    std::thread::sleep(Duration::from_millis(120));
                }
            })
        })
        .collect();
    let is_ack = |r: &Result<u16, String>| matches!(r, Ok(200 | 201));
    c.wait_until_every(
        &format!("{KILL_AFTER} submissions are acknowledged"),
        common::TIMEOUT,
        Duration::from_millis(5),
        |_| {
            let n = answers
                .lock()
                .expect("answers")
                .iter()
                .filter(|(_, r)| is_ack(r))
                .count();
            if n >= KILL_AFTER {
                Ok(())
            } else {
                Err(format!("{n} acknowledged"))
            }
        },
    );
    let before_kill: BTreeSet<String> = containers_with_label("orkestrator.worker", &w, false)
        .into_iter()
        .collect();
    c.kill(MANAGER);
    let answered_before = answers.lock().expect("answers").len();
    // Down for a moment: submissions meanwhile fail; then back on the same port and data dir.
    std::thread::sleep(Duration::from_millis(300));
    c.restart_manager();
    for s in submitters {
        s.join().expect("a submitter panicked");
    }
    let answers = answers.lock().expect("answers").clone();
    let acked: Vec<&String> = answers
        .iter()
        .filter(|(_, r)| is_ack(r))
        .map(|(n, _)| n)
        .collect();
    let refused: Vec<&Answer> = answers.iter().filter(|(_, r)| !is_ack(r)).collect();
    let acked_after = answers[answered_before..]
        .iter()
        .filter(|(_, r)| is_ack(r))
        .count();
    report(&format!(
        "[{test}] manager SIGKILLed after {answered_before} answers: {} of {JOBS} acknowledged \
         ({acked_after} of them after the kill), {} not",
        acked.len(),
        refused.len()
    ));
    for (name, r) in &refused {
        assert!(
            r.is_err(),
            "{name}: the manager answered {r:?}; only transport errors are expected"
        );
    }

    // Every acknowledged job is listed, and runs.
    let listed = list_jobs(&c).expect("list jobs");
    let missing: Vec<&&String> = acked.iter().filter(|n| !listed.contains_key(**n)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged jobs missing after the restart: {missing:?}\nlisted: {:?}",
        listed.keys().collect::<Vec<_>>()
    );
    report(&format!(
        "[{test}] after the restart: {} jobs listed, {} acknowledged",
        listed.len(),
        acked.len()
    ));
    c.wait_until(
        "every listed job is Running on the worker",
        Duration::from_secs(90),
        |c| {
            let listed = list_jobs(c)?;
            let not: Vec<String> = listed
                .values()
                .filter(|j| j["phase"] != "Running" || j["workers"] != json!([w]))
                .map(|j| format!("{}: {} on {}", j["name"], j["phase"], j["workers"]))
                .collect();
            if not.is_empty() {
                Ok(())
            } else {
                Err(not.join("\n"))
            }
        },
    );
    // No job runs twice: one running container per job, and only for listed jobs.
    let listed = list_jobs(&c).expect("list jobs");
    for name in &names {
        let running = containers_with_label("orkestrator.job", name, false);
        let want = usize::from(listed.contains_key(name));
        assert_eq!(
            running.len(),
            want,
            "{name} (listed: {}): running containers {running:?}",
            want == 1
        );
    }
    let on_worker: BTreeSet<String> = containers_with_label("orkestrator.worker", &w, true)
        .into_iter()
        .collect();
    assert_eq!(
        on_worker.len(),
        listed.len(),
        "containers on the worker (docker ps -a) vs jobs listed"
    );
    // The worker kept what it ran while the manager was away: no container was replaced.
    assert!(
        before_kill.is_subset(&on_worker),
        "containers running before the kill are gone: {:?}",
        before_kill.difference(&on_worker).collect::<Vec<_>>()
    );
}

#[test]
fn restarted_worker_adopts_containers() {
    let test = "adopt";
    if !docker_or_skip(test) {
        return;
    }
    // The worker must be back within the grace for its containers to be adopted rather than
    // replaced; between the kill and the restart the test starts a container with `docker run`,
    // which alone took over 3 s on a loaded engine (the tasks were then rightly replaced).
    let mut c = Cluster::start_server(test, &["--heartbeat-grace", "10s"]);
    let (w, p) = c.add_worker_proc(WORKER);
    let job = unique("chaos", test);
    submit(&c, &job, &job_yaml(&job, "count: 3\n", ALWAYS));
    let v = c.wait_until("3 instances run", common::TIMEOUT, |c| {
        all_running(c, &job, 3, Some(&w))
    });
    let reported: BTreeSet<String> = live(&v)
        .iter()
        .map(|i| {
            main_task(i)["container_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let before: BTreeSet<String> = containers_with_label("orkestrator.worker", &w, true)
        .into_iter()
        .collect();
    assert_eq!(before.len(), 3, "docker ps -a for {w}: {before:?}");
    assert_eq!(before, reported, "docker vs status: {v:#}");

    c.kill(p);
    // While the agent is away, a container of a job that does not exist appears with its labels
    // (as one of a job deleted meanwhile would be): the agent must remove it, and only it.
    let ghost_job = unique("ghost", test);
    let ghost = docker(&[
        "run",
        "-d",
        "--label",
        &format!("orkestrator.worker={w}"),
        "--label",
        &format!("orkestrator.job={ghost_job}"),
        "--label",
        &format!("orkestrator.instance={ghost_job}-0-0"),
        "--label",
        "orkestrator.task=main",
        "--label",
        "orkestrator.attempt=0",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    ])
    .trim()
    .to_owned();
    let p = c.restart_worker(&w);
    c.wait_worker_ready(&w, p);
    c.wait_until(
        "the restarted worker removes the ghost container",
        Duration::from_secs(20),
        |_| match containers_with_label("orkestrator.job", &ghost_job, true) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("still there: {left:?} (ghost {ghost})")),
        },
    );
    std::thread::sleep(Duration::from_secs(5));

    let all_after: BTreeSet<String> = containers_with_label("orkestrator.worker", &w, true)
        .into_iter()
        .collect();
    let running_after: BTreeSet<String> = containers_with_label("orkestrator.worker", &w, false)
        .into_iter()
        .collect();
    assert_eq!(
        all_after,
        before,
        "docker ps -a after the restart (new containers, or old ones gone)\n{}",
        c.logs()
    );
    assert_eq!(running_after, before, "docker ps after the restart");
    let out = c.ork(&["status", &job, "-o", "json"]);
    assert_eq!(out.code, Some(0), "status: {}", out.describe());
    let v = out.json();
    assert_eq!(v["phase"], "Running", "{v:#}");
    let insts = live(&v);
    assert_eq!(insts.len(), 3, "{v:#}");
    for i in insts {
        let t = main_task(i);
        assert_eq!(t["state"], "Running", "{v:#}");
        assert_eq!(t["restarts"], 0, "{v:#}");
        assert!(
            before.contains(t["container_id"].as_str().unwrap_or_default()),
            "status names a container that was not there before: {v:#}"
        );
    }
    for d in inspect(&before.iter().cloned().collect::<Vec<_>>()) {
        assert_eq!(d["RestartCount"], 0, "{:#}", d["State"]);
        assert_eq!(d["State"]["Running"], true, "{:#}", d["State"]);
    }

    // The restarted agent is in charge of the adopted containers: stop removes them.
    let out = c.ork(&["stop", &job, "--wait"]);
    assert_eq!(out.code, Some(0), "stop: {}", out.describe());
    c.wait_until(
        "the adopted containers are removed",
        common::TIMEOUT,
        |_| match containers_with_label("orkestrator.worker", &w, true) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("still there: {left:?}")),
        },
    );
}

#[test]
fn docker_kill_restarts_per_policy() {
    let test = "dkill";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let retry = unique("chaos-retry", test);
    let never = unique("chaos-never", test);
    submit(
        &c,
        &retry,
        &job_yaml(
            &retry,
            "",
            "    restart: { policy: on-failure, max_attempts: 3, backoff: { initial: 1s } }\n",
        ),
    );
    submit(
        &c,
        &never,
        &job_yaml(&never, "", "    restart: { policy: never }\n"),
    );
    let v = c.wait_until("the on-failure job runs", common::TIMEOUT, |c| {
        all_running(c, &retry, 1, None)
    });
    let old = main_task(live(&v)[0])["container_id"]
        .as_str()
        .expect("container id")
        .to_owned();
    c.wait_until("the never job runs", common::TIMEOUT, |c| {
        all_running(c, &never, 1, None)
    });

    // on-failure: killed, Restarting with a next start time, then Running in a new container.
    docker(&["kill", &old]);
    let killed = Instant::now();
    let mut restarting: Option<(Value, Duration)> = None;
    let v = c.wait_until_every(
        "the killed task runs again in a new container",
        common::TIMEOUT,
        Duration::from_millis(100),
        |c| {
            let v = get_job(c, &retry)?;
            let t = main_task(live(&v).first().ok_or("no live instance")?).clone();
            if t["state"] == "Restarting" && restarting.is_none() {
                restarting = Some((t.clone(), killed.elapsed()));
            }
            if t["state"] == "Running" && t["container_id"] != old.as_str() {
                Ok(v)
            } else {
                Err(serde_json::to_string_pretty(&v).unwrap_or_default())
            }
        },
    );
    report(&format!(
        "[{test}] docker kill -> Running again: {} ms",
        killed.elapsed().as_millis()
    ));
    let t = main_task(live(&v)[0]);
    assert_eq!(t["restarts"], 1, "{v:#}");
    let new = t["container_id"].as_str().expect("container id").to_owned();
    let (r, seen) =
        restarting.unwrap_or_else(|| panic!("never saw the task Restarting\n{}", c.logs()));
    report(&format!(
        "[{test}] docker kill -> status shows Restarting: {} ms (polled every 100 ms)",
        seen.as_millis()
    ));
    assert_eq!(r["restarts"], 1, "while restarting: {r:#}");
    assert_eq!(r["exit_code"], 137, "while restarting: {r:#}");
    let next = r["next_start_at"].as_u64().unwrap_or_default();
    let since = r["since"].as_u64().unwrap_or_default();
    assert!(
        next >= since + 800 && next <= since + 1500,
        "backoff 1s ±10%: since {since}, next_start_at {next}: {r:#}"
    );
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("137"), "reason: {r:#}");
    // The CLI shows the same, and docker runs only the new container.
    let s = c.status(&retry).expect("status");
    let t = main_task(live(&s)[0]);
    assert_eq!(t["state"], "Running", "{s:#}");
    assert_eq!(t["restarts"], 1, "{s:#}");
    let ids_now = containers_with_label("orkestrator.job", &retry, true);
    assert_eq!(ids_now, vec![new.clone()], "docker ps -a for {retry}");

    // never: killed, Failed with 137, no restart.
    let v = get_job(&c, &never).expect("job");
    let victim = main_task(live(&v)[0])["container_id"]
        .as_str()
        .expect("container id")
        .to_owned();
    docker(&["kill", &victim]);
    let v = c.wait_phase(&never, "Failed");
    let t = main_task(live(&v)[0]);
    assert_eq!(t["state"], "Failed", "{v:#}");
    assert_eq!(t["exit_code"], 137, "{v:#}");
    assert_eq!(t["restarts"], 0, "{v:#}");
    std::thread::sleep(Duration::from_millis(1500));
    let again = c.status(&never).expect("status");
    assert_eq!(again["phase"], "Failed", "{again:#}");
    assert!(
        containers_with_label("orkestrator.job", &never, false).is_empty(),
        "a never task runs again"
    );
}

#[test]
fn unhealthy_task_is_restarted() {
    unhealthy_task_restarts("unhealthy", "always");
}

#[test]
fn unhealthy_task_is_restarted_under_on_failure() {
    unhealthy_task_restarts("unhealthy-onf", "on-failure");
}

/// A task under restart policy `policy` whose exec health check passes while `/tmp/ok` exists
/// (and that exits 0 on SIGTERM, as a well-behaved service does): healthy; once the file is
/// removed it is stopped as unhealthy and restarted in a new container, healthy again.
fn unhealthy_task_restarts(test: &str, policy: &str) {
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let job = unique("chaos", test);
    let command =
        r#"["sh", "-c", "touch /tmp/ok; trap 'exit 0' TERM; while true; do sleep 1; done"]"#;
    submit(
        &c,
        &job,
        &job_yaml_cmd(
            &job,
            "",
            command,
            &format!(
                "    restart: {{ policy: {policy}, backoff: {{ initial: 1s }} }}\n\
                 \x20   health_check: {{ exec: [test, -f, /tmp/ok], interval: 1s, timeout: 1s, \
                 failures: 2 }}\n"
            ),
        ),
    );
    // Ok once Running and healthy with `restarts`; a task that ended will not get there.
    let healthy = |c: &Cluster, restarts: u64| -> Result<Value, String> {
        let v = c.status(&job)?;
        let t = main_task(live(&v).first().ok_or("no live instance")?);
        if t["state"] == "Completed" || t["state"] == "Failed" {
            panic!(
                "the task ended instead of restarting under {policy}: {v:#}\n{}",
                c.logs()
            );
        }
        if t["state"] == "Running" && t["healthy"] == true && t["restarts"] == restarts {
            Ok(v)
        } else {
            Err(serde_json::to_string_pretty(&v).unwrap_or_default())
        }
    };
    let v = c.wait_until("the task is healthy", common::TIMEOUT, |c| healthy(c, 0));
    let old = main_task(live(&v)[0])["container_id"]
        .as_str()
        .expect("container id")
        .to_owned();

    docker(&["exec", &old, "rm", "/tmp/ok"]);
    let broke = Instant::now();
    let mut reasons = BTreeSet::new();
    let v = c.wait_until(
        "the task is restarted and healthy again",
        common::TIMEOUT,
        |c| {
            if let Ok(v) = get_job(c, &job)
                && let Some(i) = live(&v).first()
                && let Some(r) = main_task(i)["reason"].as_str()
            {
                reasons.insert(r.to_owned());
            }
            healthy(c, 1)
        },
    );
    report(&format!(
        "[{test}] health file removed -> restarted and healthy: {} ms",
        broke.elapsed().as_millis()
    ));
    let new = main_task(live(&v)[0])["container_id"]
        .as_str()
        .expect("container id")
        .to_owned();
    assert_ne!(new, old, "restarted in a new container: {v:#}");
    assert!(
        reasons.iter().any(|r| r.contains("unhealthy")),
        "no reason said unhealthy: {reasons:?}"
    );
    let running = containers_with_label("orkestrator.job", &job, false);
    assert_eq!(running, vec![new], "docker ps for {job}");
}

#[test]
fn rolling_update_replaces_one_at_a_time() {
    let test = "rolling";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let w1 = c.add_worker(WORKER);
    let w2 = c.add_worker(WORKER);
    let job = unique("chaos", test);
    let spec = |version: &str| {
        job_yaml(
            &job,
            "count: 2\n",
            &format!("{ALWAYS}    env: {{ RELEASE: \"{version}\" }}\n"),
        )
    };
    submit(&c, &job, &spec("one"));
    let v = c.wait_until("2 instances run", common::TIMEOUT, |c| {
        all_running(c, &job, 2, None)
    });
    let workers: BTreeSet<&str> = live(&v)
        .iter()
        .filter_map(|i| i["worker"].as_str())
        .collect();
    assert_eq!(workers, BTreeSet::from([w1.as_str(), w2.as_str()]), "{v:#}");
    let old_instances = ids(&live(&v));
    c.wait_until(
        "2 containers run",
        common::TIMEOUT,
        |_| match containers_with_label("orkestrator.job", &job, false).len() {
            2 => Ok(()),
            n => Err(format!("{n} running")),
        },
    );

    // Watch docker ps while the update runs: (elapsed, instance ids of running containers).
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let job = job.clone();
        std::thread::spawn(move || {
            let filter = format!("label=orkestrator.job={job}");
            let start = Instant::now();
            let mut samples: Vec<(Duration, Vec<String>)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = docker(&[
                    "ps",
                    "--filter",
                    &filter,
                    "--format",
                    "{{.Label \"orkestrator.instance\"}}",
                ]);
                samples.push((start.elapsed(), out.lines().map(str::to_owned).collect()));
                std::thread::sleep(Duration::from_millis(200));
            }
            samples
        })
    };
    let out = submit(&c, &job, &spec("two"));
    assert!(out.contains("updated"), "re-submit: {out}");
    let updated = Instant::now();
    let done = c.wait_until(
        "both instances run the new spec",
        Duration::from_secs(60),
        |c| {
            let v = all_running(c, &job, 2, None)?;
            if v["version"] != 2 {
                return Err(format!("version {}", v["version"]));
            }
            let running = running_containers(&job);
            let envs: Vec<bool> = running
                .iter()
                .map(|d| {
                    d["Config"]["Env"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == "RELEASE=two"))
                })
                .collect();
            if running.len() == 2 && envs.iter().all(|&b| b) {
                Ok(v)
            } else {
                Err(format!("{} running, new env: {envs:?}", running.len()))
            }
        },
    );
    report(&format!(
        "[{test}] re-submitted -> both instances replaced: {} ms",
        updated.elapsed().as_millis()
    ));
    stop.store(true, Ordering::Relaxed);
    let samples = watcher.join().expect("the docker ps watcher panicked");
    let new_instances = ids(&live(&done));
    assert!(
        new_instances.is_disjoint(&old_instances),
        "new instances for the new spec: {done:#}"
    );
    let shown = samples
        .iter()
        .map(|(t, ids)| format!("{:>6} ms {ids:?}", t.as_millis()))
        .collect::<Vec<_>>()
        .join("\n");
    for (_, ids) in &samples {
        assert!(
            !ids.is_empty() && ids.len() <= 2,
            "the job had {} running containers during the update:\n{shown}",
            ids.len()
        );
    }
    // One at a time: some moment ran one old and one new instance.
    let mixed = samples.iter().any(|(_, ids)| {
        ids.iter().any(|i| old_instances.contains(i))
            && ids.iter().any(|i| new_instances.contains(i))
    });
    assert!(
        mixed,
        "never saw an old and a new instance together:\n{shown}"
    );
    // The second old instance is replaced only once the first new one has run for a while
    // (5 s healthy; a little less as docker ps sees it, 200 ms apart).
    let first_new = samples
        .iter()
        .find(|(_, ids)| ids.iter().any(|i| new_instances.contains(i)))
        .map(|(t, _)| *t)
        .expect("a sample with a new instance");
    let last_old = samples
        .iter()
        .rev()
        .find(|(_, ids)| ids.iter().any(|i| old_instances.contains(i)))
        .map(|(t, _)| *t)
        .expect("a sample with an old instance");
    assert!(
        last_old >= first_new + Duration::from_secs(4),
        "the last old instance stopped {:?} after the first new one started:\n{shown}",
        last_old.saturating_sub(first_new)
    );

    // The same spec again changes nothing.
    let out = submit(&c, &job, &spec("two"));
    assert!(out.contains("unchanged"), "identical re-submit: {out}");
    let v = get_job(&c, &job).expect("job");
    assert_eq!(v["version"], 2, "{v:#}");
    assert_eq!(ids(&live(&v)), new_instances, "{v:#}");
}

#[test]
fn kill_9_worker_with_20_tasks_recovery_time() {
    let test = "recovery";
    if !docker_or_skip(test) {
        return;
    }
    const JOBS: usize = 20;
    let mut c = Cluster::start_server(test, &["--heartbeat-grace", "3s"]);
    let (w1, p1) = c.add_worker_proc(WORKER);
    let names: Vec<String> = (0..JOBS).map(|i| unique(&format!("r{i}"), test)).collect();
    for name in &names {
        assert_eq!(post_job(c.port, name), Ok(201), "submit {name}");
    }
    let everywhere_on = |c: &Cluster, worker: &str| -> Result<(), String> {
        let listed = list_jobs(c)?;
        let not: Vec<String> = names
            .iter()
            .filter(|n| {
                listed
                    .get(*n)
                    .is_none_or(|j| j["phase"] != "Running" || j["workers"] != json!([worker]))
            })
            .map(|n| {
                format!(
                    "{n}: {}",
                    listed.get(n).map(Value::to_string).unwrap_or_default()
                )
            })
            .collect();
        if not.is_empty() {
            Ok(())
        } else {
            Err(not.join("\n"))
        }
    };
    let t = Instant::now();
    c.wait_until("all jobs run on w1", Duration::from_secs(90), |c| {
        everywhere_on(c, &w1)
    });
    report(&format!(
        "[{test}] {JOBS} jobs submitted -> Running on one worker: {} ms",
        t.elapsed().as_millis()
    ));
    let w2 = c.add_worker(WORKER);

    c.kill(p1);
    let killed = Instant::now();
    // Also note when the manager first reacts (some job no longer Running on w1): failure
    // detection, as opposed to placing and starting the replacements.
    let mut detected: Option<Duration> = None;
    c.wait_until_every(
        "all jobs run on w2",
        Duration::from_secs(60),
        Duration::from_millis(50),
        |c| {
            if detected.is_none() && everywhere_on(c, &w1).is_err() {
                detected = Some(killed.elapsed());
            }
            everywhere_on(c, &w2)
        },
    );
    let recovery = killed.elapsed();
    let detected = detected.unwrap_or(recovery);
    report(&format!(
        "[{test}] w1 SIGKILLed (grace {GRACE:?}) -> first job moved off w1 after {} ms, \
         {JOBS} jobs Running on w2 after {} ms\n\
         DETECT_MS={}\nRECOVERY_MS={}",
        detected.as_millis(),
        recovery.as_millis(),
        detected.as_millis(),
        recovery.as_millis()
    ));
    for name in &names {
        let running = running_containers(name);
        let on_w2 = running
            .iter()
            .filter(|d| label(d, "orkestrator.worker") == w2)
            .count();
        assert_eq!(on_w2, 1, "{name}: running containers on w2");
    }
    assert!(
        recovery < Duration::from_secs(30),
        "recovery took {recovery:?}\n{}",
        c.logs()
    );
}
