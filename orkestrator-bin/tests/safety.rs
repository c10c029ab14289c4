//! Safe containers by default, on the real Docker engine: every task's container is unprivileged
//! with `no-new-privileges` and a PID limit, runs as the user the job file asks for, with a
//! read-only root filesystem when asked; and a task that forks without end stays inside its
//! limit while its worker and the tasks of other jobs go on.
//!
//! Without a Docker engine these tests print a SKIP line and pass, unless `CI=true` or
//! `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, FOREVER, IMAGE, containers_with_label, docker, docker_or_skip, inspect};
use serde_json::Value;

/// Runs `sh -c SCRIPT` in container `id` and returns its output (stdout and stderr) whatever it
/// exits with.
fn exec_sh(id: &str, script: &str) -> String {
    let o = Command::new("docker")
        .args(["exec", id, "sh", "-c", script])
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker exec: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The running container of `task` of `job`, once there is exactly one.
fn container_of(c: &Cluster, job: &str, task: &str) -> String {
    c.wait_until(
        &format!("{job}/{task} has a running container"),
        common::TIMEOUT,
        |_| {
            let ids = containers_with_label("orkestrator.job", job, false);
            if ids.is_empty() {
                return Err(format!("no running container of {job} yet"));
            }
            let mine: Vec<String> = inspect(&ids)
                .into_iter()
                .filter(|d| d["Config"]["Labels"]["orkestrator.task"] == task)
                .filter_map(|d| d["Id"].as_str().map(str::to_owned))
                .collect();
            match &mine[..] {
                [one] => Ok(one.clone()),
                other => Err(format!("containers of {job}/{task}: {other:?}")),
            }
        },
    )
}

/// The worker `name` as `workers -o json` shows it.
fn worker_view(c: &Cluster, name: &str) -> Result<Value, String> {
    let out = c.ork(&["workers", "-o", "json"]);
    if out.code != Some(0) {
        return Err(out.describe());
    }
    let list = out.json();
    list.as_array()
        .and_then(|ws| ws.iter().find(|w| w["id"] == name).cloned())
        .ok_or_else(|| format!("no worker {name} in {list}"))
}

#[test]
fn containers_are_unprivileged_with_a_pid_limit_and_the_asked_user_and_root_filesystem() {
    let test = "safety";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = common::unique("safe", test);
    c.write(
        "job.yaml",
        &format!(
            "name: {job}\n\
             tasks:\n\
             \x20 - name: plain\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n\
             \x20 - name: locked\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 100m, memory: 16Mi, pids: 100 }}\n\
             \x20   user: \"1000:1000\"\n\
             \x20   read_only: true\n\
             \x20 - name: ro\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n\
             \x20   read_only: true\n"
        ),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&job, "Running");

    // (task, PidsLimit, ReadonlyRootfs, User) as the file asks, or the defaults.
    let expected = [
        ("plain", 4096, false, ""),
        ("locked", 100, true, "1000:1000"),
        ("ro", 4096, true, ""),
    ];
    for (task, pids, read_only, user) in expected {
        let id = container_of(&c, &job, task);
        let d = &inspect(std::slice::from_ref(&id))[0];
        let hc = &d["HostConfig"];
        let opts: Vec<&str> = hc["SecurityOpt"]
            .as_array()
            .unwrap_or_else(|| panic!("{task}: no SecurityOpt: {hc:#}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            opts.iter().any(|o| o.starts_with("no-new-privileges")),
            "{task}: {opts:?}"
        );
        assert_eq!(hc["Privileged"], false, "{task}");
        assert_eq!(hc["PidsLimit"], pids, "{task} PidsLimit");
        assert_eq!(hc["ReadonlyRootfs"], read_only, "{task} ReadonlyRootfs");
        assert_eq!(d["Config"]["User"], user, "{task} User");

        // And the kernel holds the container to it.
        let status = exec_sh(&id, "cat /proc/1/status");
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]),
            "{task}: {status}"
        );
        let ids = exec_sh(&id, "id -u; id -g");
        let want_ids = if user.is_empty() {
            "0\n0\n"
        } else {
            "1000\n1000\n"
        };
        assert_eq!(ids, want_ids, "{task}");
    }
    let write = "touch /probe 2>&1; echo rc=$?";
    let plain = container_of(&c, &job, "plain");
    assert!(
        exec_sh(&plain, write).contains("rc=0"),
        "the control can write"
    );
    let ro = exec_sh(&container_of(&c, &job, "ro"), write);
    assert!(ro.contains("Read-only file system"), "{ro}");
    assert!(!ro.contains("rc=0"), "{ro}");
}

#[test]
fn a_fork_bomb_stays_inside_its_pid_limit_and_the_worker_and_other_jobs_go_on() {
    let test = "forkbomb";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let worker = c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);

    // Another job first, so that its container is the one that was there all along.
    let other = common::unique("bystander", test);
    c.write(
        "other.yaml",
        &format!(
            "name: {other}\n\
             tasks:\n\
             \x20 - name: main\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n"
        ),
    );
    let out = c.ork(&["run", "-f", "other.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&other, "Running");
    let bystander = container_of(&c, &other, "main");

    // The bomb: a subshell that starts sleeps until it cannot fork any more (500 would be far
    // beyond the limit, and bound it if the limit were missing), while the main process becomes
    // one sleep, which needs no fork.
    let bomb = common::unique("bomb", test);
    c.write(
        "bomb.yaml",
        &format!(
            "name: {bomb}\n\
             tasks:\n\
             \x20 - name: main\n\
             \x20   image: {IMAGE}\n\
             \x20   command: [sh, -c, 'exec 2>&1; (i=0; while [ $i -lt 500 ]; do sleep 100000 & i=$((i+1)); done; echo spawned-all) & exec sleep 100000']\n\
             \x20   resources: {{ cpu: 100m, memory: 64Mi, pids: 50 }}\n\
             \x20   restart: {{ policy: never }}\n"
        ),
    );
    let out = c.ork(&["run", "-f", "bomb.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    let bomber = container_of(&c, &bomb, "main");
    assert_eq!(
        inspect(std::slice::from_ref(&bomber))[0]["HostConfig"]["PidsLimit"],
        50
    );

    // It runs into the limit: forks fail, and it never has more than 50 processes.
    c.wait_until("the bomb hits its PID limit", common::TIMEOUT, |_| {
        let logs = {
            let o = Command::new("docker")
                .args(["logs", &bomber])
                .output()
                .map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        assert!(!logs.contains("spawned-all"), "no limit held it: {logs}");
        if logs.contains("can't fork") {
            Ok(())
        } else {
            Err(format!("logs so far: {logs}"))
        }
    });
    let processes = docker(&["top", &bomber]).lines().count().saturating_sub(1);
    assert!(
        (40..=50).contains(&processes),
        "the bomb has {processes} processes (limit 50)"
    );

    // For a while after, the worker is Ready and heartbeating, the bomb's container is still
    // the one it was, and the other job runs in the same container, which can still fork.
    let watch = Duration::from_secs(6);
    let until = Instant::now() + watch;
    let mut samples = 0;
    while Instant::now() < until {
        let w = worker_view(&c, &worker).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        assert_eq!(w["status"], "Ready", "{w:#}\n{}", c.logs());
        let ago = w["last_seen_ms_ago"].as_u64().expect("last_seen_ms_ago");
        assert!(
            ago < 2_000,
            "no heartbeat for {ago} ms: {w:#}\n{}",
            c.logs()
        );
        let v = c.status(&other).unwrap_or_else(|e| panic!("{e}"));
        let task = &v["instances"][0]["tasks"]["main"];
        assert_eq!(v["phase"], "Running", "{v:#}");
        assert_eq!(task["container_id"], bystander.as_str(), "{v:#}");
        assert_eq!(exec_sh(&bystander, "echo ok").trim(), "ok");
        samples += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(samples >= 3, "only {samples} samples in {watch:?}");
    let v = c.status(&bomb).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v["instances"][0]["tasks"]["main"]["container_id"],
        bomber.as_str(),
        "{v:#}"
    );
    let processes = docker(&["top", &bomber]).lines().count().saturating_sub(1);
    assert!(processes <= 50, "the bomb has {processes} processes");
}
