//! End-to-end tests: the real `orkestrator` binary as separate processes (manager, workers,
//! clients) on loopback, running containers on the real Docker engine with the locally built
//! test image.
//!
//! Every test starts its own manager and workers on free ports, names its workers and jobs after
//! the test and the test process's id, and kills its processes and removes its workers'
//! containers when it ends (pass or fail), so the tests run in parallel. Without a Docker engine
//! the Docker tests print a SKIP line and pass, unless `CI=true` or
//! `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::time::Duration;

use common::{
    Cluster, FOREVER, IMAGE, containers_with_label, docker, docker_or_skip, free_port, inspect,
    lock_port, ork_in, remove_worker_containers, token_of, unique, wait_port_free,
};
use serde_json::Value;

/// A job of one task running `command` with restart policy `restart`.
fn one_task_job(job: &str, command: &str, restart: &str) -> String {
    format!(
        "name: {job}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: {command}\n\
         \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n\
         \x20   restart: {{ policy: {restart} }}\n"
    )
}

/// The first instance of a job's status.
fn instance(v: &Value) -> &Value {
    &v["instances"][0]
}

#[test]
fn two_task_job_runs_with_labels_and_limits() {
    let test = "labels";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let worker = c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("e2e", test);
    c.write(
        "job.yaml",
        &format!(
            "name: {job}\n\
             tasks:\n\
             \x20 - name: alpha\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 250m, memory: 32Mi }}\n\
             \x20 - name: beta\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 0.5, memory: 64Mi }}\n"
        ),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    assert!(out.stdout.contains(&job), "run: {}", out.describe());

    let v = c.wait_phase(&job, "Running");
    let inst = instance(&v);
    assert_eq!(inst["worker"], worker.as_str(), "{v:#}");
    let instance_id = inst["id"].as_str().expect("instance id").to_owned();

    let running = c.wait_until("both containers are in docker ps", common::TIMEOUT, |_| {
        let ids = containers_with_label("orkestrator.job", &job, false);
        if ids.len() == 2 {
            Ok(ids)
        } else {
            Err(format!("docker ps shows {ids:?}"))
        }
    });
    // (task, NanoCpus, Memory) as the spec asks.
    let expected = [
        ("alpha", 250_000_000_i64, 32_i64 << 20),
        ("beta", 500_000_000, 64 << 20),
    ];
    let details = inspect(&running);
    for (task, nano_cpus, memory) in expected {
        let d = details
            .iter()
            .find(|d| d["Config"]["Labels"]["orkestrator.task"] == task)
            .unwrap_or_else(|| panic!("no container for task {task}: {details:#?}"));
        let labels = &d["Config"]["Labels"];
        assert_eq!(labels["orkestrator.job"], job.as_str(), "{labels:#}");
        assert_eq!(labels["orkestrator.worker"], worker.as_str(), "{labels:#}");
        assert_eq!(
            labels["orkestrator.instance"],
            instance_id.as_str(),
            "{labels:#}"
        );
        assert!(labels["orkestrator.attempt"].is_string(), "{labels:#}");
        assert_eq!(d["State"]["Running"], true, "{task}: {:#}", d["State"]);
        assert_eq!(d["HostConfig"]["NanoCpus"], nano_cpus, "{task} NanoCpus");
        assert_eq!(d["HostConfig"]["Memory"], memory, "{task} Memory");
        // The status names the same container.
        assert_eq!(
            inst["tasks"][task]["container_id"], d["Id"],
            "status vs docker for {task}: {v:#}"
        );
        assert_eq!(inst["tasks"][task]["state"], "Running", "{v:#}");
    }
}

#[test]
fn exit_zero_completes_and_exit_three_fails() {
    let test = "exits";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let ok = unique("e2e-ok", test);
    let bad = unique("e2e-bad", test);
    c.write(
        "ok.yaml",
        &one_task_job(&ok, r#"["sh", "-c", "exit 0"]"#, "never"),
    );
    c.write(
        "bad.yaml",
        &one_task_job(&bad, r#"["sh", "-c", "sleep 1; exit 3"]"#, "never"),
    );
    for f in ["ok.yaml", "bad.yaml"] {
        let out = c.ork(&["run", "-f", f]);
        assert_eq!(out.code, Some(0), "run {f}: {}", out.describe());
    }

    let v = c.wait_phase(&ok, "Completed");
    let t = &instance(&v)["tasks"]["main"];
    assert_eq!(t["state"], "Completed", "{v:#}");
    assert_eq!(t["exit_code"], 0, "{v:#}");

    let v = c.wait_phase(&bad, "Failed");
    let t = &instance(&v)["tasks"]["main"];
    assert_eq!(t["state"], "Failed", "{v:#}");
    assert_eq!(t["exit_code"], 3, "{v:#}");
    assert_eq!(t["restarts"], 0, "restart policy never: {v:#}");
    // It stays Failed: with `never` there is no restart.
    std::thread::sleep(Duration::from_millis(1500));
    let again = c.status(&bad).expect("status");
    assert_eq!(again["phase"], "Failed", "{again:#}");
    assert_eq!(
        instance(&again)["tasks"]["main"]["restarts"],
        0,
        "{again:#}"
    );
}

#[test]
fn stop_removes_the_containers() {
    let test = "stop";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("e2e", test);
    c.write("job.yaml", &one_task_job(&job, FOREVER, "always"));
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&job, "Running");
    c.wait_until(
        "the container runs",
        common::TIMEOUT,
        |_| match containers_with_label("orkestrator.job", &job, false).len() {
            1 => Ok(()),
            n => Err(format!("{n} running containers")),
        },
    );

    let out = c.ork(&["stop", &job, "--wait"]);
    assert_eq!(out.code, Some(0), "stop: {}", out.describe());
    assert!(out.stdout.contains("stopped"), "stop: {}", out.describe());
    c.wait_until(
        "docker ps -a shows no container of the job",
        common::TIMEOUT,
        |_| match containers_with_label("orkestrator.job", &job, true) {
            ids if ids.is_empty() => Ok(()),
            ids => Err(format!("still there: {ids:?}")),
        },
    );
    let v = c.status(&job).expect("status");
    assert_eq!(v["phase"], "Stopped", "{v:#}");
}

#[test]
fn impossible_job_stays_pending_with_the_reason() {
    let test = "pending";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("e2e", test);
    c.write(
        "job.yaml",
        &one_task_job(&job, FOREVER, "never").replace("memory: 16Mi", "memory: 64Gi"),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());

    let table = c.wait_until(
        "`status JOB` shows insufficient memory",
        common::TIMEOUT,
        |c| {
            let out = c.ork(&["status", &job]);
            if out.code == Some(0) && out.stdout.contains("insufficient memory") {
                Ok(out.stdout)
            } else {
                Err(out.describe())
            }
        },
    );
    assert!(table.contains("Pending"), "{table}");
    // It stays Pending, and nothing runs for it.
    std::thread::sleep(Duration::from_millis(1500));
    let v = c.status(&job).expect("status");
    assert_eq!(v["phase"], "Pending", "{v:#}");
    let reason = instance(&v)["pending_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("insufficient memory"), "{v:#}");
    assert!(instance(&v).get("worker").is_none(), "{v:#}");
    assert!(
        containers_with_label("orkestrator.job", &job, true).is_empty(),
        "a container exists for an unschedulable job"
    );
}

/// The worker's default name: the host's name, then `-5556` (see `orkestrator worker --help`).
fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into())
        .to_ascii_lowercase();
    format!("{host}-5556")
}

#[test]
fn seed_command_lines_work() {
    let test = "seed";
    if !docker_or_skip(test) {
        return;
    }
    // `-worker` listens on its default port 5556: one test (in any test process) at a time.
    let _lock = lock_port(5556);
    wait_port_free(5556);
    let worker = default_worker_name();
    remove_worker_containers(&worker);

    let port = free_port();
    let p = port.to_string();
    let seed = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut c = Cluster::start_with(test, port, &seed(&["-server", "-port", &p]));
    c.spawn_worker(&worker, &seed(&["-worker", "-port", &p]));
    let job = unique("e2e", test);
    c.write("job.yaml", &one_task_job(&job, FOREVER, "always"));
    // Exactly the seed's client line, with the manager found by `-port` only.
    let out = ork_in(c.dir(), &["-client", "-file", "job.yaml", "-port", &p], &[]);
    assert_eq!(out.code, Some(0), "-client: {}", out.describe());
    assert!(out.stdout.contains(&job), "-client: {}", out.describe());

    let v = c.wait_phase(&job, "Running");
    assert_eq!(instance(&v)["worker"], worker.as_str(), "{v:#}");
    let ids = containers_with_label("orkestrator.job", &job, false);
    assert_eq!(ids.len(), 1, "docker ps: {ids:?}");
    let d = &inspect(&ids)[0];
    assert_eq!(d["Config"]["Labels"]["orkestrator.worker"], worker.as_str());
}

#[test]
fn run_wait_exit_codes() {
    let test = "wait";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let up = unique("e2e-up", test);
    let broken = unique("e2e-broken", test);
    c.write("up.yaml", &one_task_job(&up, FOREVER, "always"));
    // A command that does not exist: the container cannot start, and `never` restarts it.
    c.write(
        "broken.yaml",
        &one_task_job(&broken, r#"["/no/such/program"]"#, "never"),
    );

    let out = c.ork(&["run", "-f", "up.yaml", "--wait", "--timeout", "60s"]);
    assert_eq!(
        out.code,
        Some(0),
        "run --wait (running): {}",
        out.describe()
    );
    assert!(out.stdout.contains("Running"), "{}", out.describe());

    let out = c.ork(&["run", "-f", "broken.yaml", "--wait", "--timeout", "60s"]);
    assert_ne!(
        out.code,
        Some(0),
        "run --wait (failing): {}",
        out.describe()
    );
    assert!(
        out.code.is_some(),
        "run --wait timed out: {}",
        out.describe()
    );
    assert!(out.stdout.contains("Failed"), "{}", out.describe());
    let v = c.status(&broken).expect("status");
    assert_eq!(v["phase"], "Failed", "{v:#}");

    // `-o json` with --wait prints the final job view.
    let out = c.ork(&["run", "-f", "up.yaml", "--wait", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.json()["phase"], "Running", "{}", out.describe());
}

#[test]
fn run_wait_fails_for_a_task_that_exits_right_after_starting() {
    let test = "waitexit";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("e2e", test);
    c.write(
        "job.yaml",
        &one_task_job(&job, r#"["sh", "-c", "exit 3"]"#, "never"),
    );
    let out = c.ork(&["run", "-f", "job.yaml", "--wait", "--timeout", "60s"]);
    let v = c.wait_phase(&job, "Failed");
    assert!(
        out.code.is_some_and(|code| code != 0),
        "run --wait exited {:?} for a job that ended Failed\n{}\n{v:#}",
        out.code,
        out.describe()
    );
}

#[test]
fn validate_exit_codes_and_field_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("good.yaml"), one_task_job("fine", FOREVER, "never")).unwrap();
    std::fs::write(
        d.join("bad.yaml"),
        "name: broken\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20 - name: second\n\
         \x20   image: busybox:latest\n\
         \x20   resources: { memory: lots }\n",
    )
    .unwrap();
    std::fs::write(d.join("syntax.json"), "{\"name\": \"x\",, }").unwrap();

    let out = ork_in(d, &["validate", "-f", "good.yaml"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.contains("valid job"), "{}", out.describe());

    let out = ork_in(d, &["validate", "-f", "bad.yaml"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    for path in ["tasks[0].image", "tasks[1].resources.memory"] {
        assert!(out.stderr.contains(path), "no {path}: {}", out.describe());
    }

    let out = ork_in(d, &["validate", "syntax.json"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("line 1"), "{}", out.describe());

    // `run` checks the file before it needs a manager: the same exit code and paths.
    let out = ork_in(
        d,
        &["run", "-f", "bad.yaml", "--manager", "http://127.0.0.1:1"],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("tasks[0].image"), "{}", out.describe());
}

#[test]
fn clients_explain_an_unreachable_manager() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("job.yaml"), one_task_job("fine", FOREVER, "never")).unwrap();
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let expected = format!("cannot reach manager at {addr}");

    let by_flag = ork_in(d, &["status", "--manager", &addr], &[]);
    let by_env = ork_in(
        d,
        &["run", "-f", "job.yaml"],
        &[("ORKESTRATOR_ADDR", &addr)],
    );
    let by_seed = ork_in(
        d,
        &["-client", "-file", "job.yaml", "-port", &port.to_string()],
        &[],
    );
    let workers = ork_in(d, &["workers", "--manager", &addr], &[]);
    for out in [by_flag, by_env, by_seed, workers] {
        assert!(
            out.code.is_some_and(|c| c != 0),
            "exit code: {}",
            out.describe()
        );
        assert!(out.stderr.contains(&expected), "{}", out.describe());
        assert!(
            out.stderr.contains("orkestrator server"),
            "{}",
            out.describe()
        );
    }
}

#[test]
fn logs_show_a_tasks_output_read_from_its_worker() {
    let test = "logs";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let (worker, worker_proc) = c.add_worker_proc(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("e2e-logs", test);
    c.write(
        "job.yaml",
        &format!(
            "name: {job}\n\
             tasks:\n\
             \x20 - name: talker\n\
             \x20   image: {IMAGE}\n\
             \x20   command: [sh, -c, \"for i in 1 2 3 4 5; do echo out-$i; done; sleep 1; echo to-stderr >&2; trap 'exit 0' TERM; while true; do sleep 1; done\"]\n\
             \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n\
             \x20 - name: quiet\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n"
        ),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&job, "Running");

    // Both streams, in order; --tail keeps the last lines.
    let all = c.wait_until("the talker's output", common::TIMEOUT, |_| {
        let out = c.ork(&["logs", &job, "--task", "talker"]);
        if out.code == Some(0) && out.stdout.contains("to-stderr") {
            Ok(out)
        } else {
            Err(out.describe())
        }
    });
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(
        lines,
        ["out-1", "out-2", "out-3", "out-4", "out-5", "to-stderr"],
        "{}",
        all.describe()
    );
    assert!(
        all.stderr.contains(&worker),
        "names the worker: {}",
        all.describe()
    );
    let tail = c.ork(&["logs", &job, "-t", "talker", "-n", "2", "-o", "json"]);
    assert_eq!(tail.code, Some(0), "{}", tail.describe());
    let v = tail.json();
    assert_eq!(v["text"], "out-5\nto-stderr\n", "{v:#}");
    assert_eq!(v["worker"], worker.as_str(), "{v:#}");
    assert_eq!(v["task"], "talker", "{v:#}");

    // Bad requests name the problem and the fix.
    let expect_error = |args: &[&str], needle: &str| {
        let out = c.ork(args);
        assert_ne!(
            out.code,
            Some(0),
            "{args:?} should fail: {}",
            out.describe()
        );
        assert!(
            out.stderr.contains(needle),
            "{args:?} should say {needle:?}: {}",
            out.describe()
        );
    };
    expect_error(
        &["logs", &job],
        "has 2 tasks (talker, quiet): name one with --task",
    );
    expect_error(
        &["logs", &job, "-t", "nope"],
        "has no task \"nope\"; its tasks: talker, quiet",
    );
    expect_error(
        &["logs", &job, "-t", "quiet", "-i", "4"],
        "has no instance 4",
    );
    expect_error(
        &["logs", &job, "-t", "quiet", "-n", "0"],
        "ask for 1 to 10000 lines",
    );
    expect_error(&["logs", "no-such-job"], "job \"no-such-job\" not found");

    // A worker's endpoint serves only its own containers.
    let workers = c.ork(&["workers", "-o", "json"]).json();
    let address = workers
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["id"] == worker.as_str()))
        .and_then(|w| w["address"].as_str())
        .unwrap_or_else(|| panic!("no address for {worker}: {workers:#}"))
        .to_owned();
    let foreign = docker(&["create", IMAGE, "true"]).trim().to_owned();
    let resp = http_get(
        &format!("{address}/v1/containers/{foreign}/logs"),
        token_of(c.port, "manager.token").as_deref(),
    );
    docker(&["rm", "-f", &foreign]);
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");

    // With the worker gone, the manager says so instead of hanging or failing vaguely.
    c.kill(worker_proc);
    expect_error(&["logs", &job, "-t", "talker"], "does not answer");
    let gone = c.ork(&["logs", &job, "-t", "talker"]);
    assert!(
        gone.stderr.contains(&format!("worker \"{worker}\""))
            && gone
                .stderr
                .contains("is `orkestrator worker` running there?")
            && !gone.stderr.contains("manager"),
        "names the worker, not the manager: {}",
        gone.describe()
    );
}

/// A plain HTTP/1.1 GET on loopback; the whole response as text.
fn http_get(url: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}
