//! Tasks that work together, against the real Docker engine (issue 19): a network per instance
//! with the task names as aliases, start order with init tasks, a dependency failing for good,
//! sidecars, stop signals and init, isolation of instances, and the networks' lifecycle.
//!
//! Times come from `/proc/uptime` inside the containers (the host's, since containers share its
//! kernel): the test image's `date` has whole seconds only. Stop order and exit codes come from
//! the engine's own event log (`docker events`), which outlives the removed containers.
//!
//! Same hygiene as `chaos.rs`: without a Docker engine the tests print a SKIP line and pass,
//! unless `CI=true` or `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Cluster, IMAGE, containers_with_label, docker, docker_or_skip, unique};
use serde_json::Value;

/// These tests time what containers do (stop within a second, start after a dependency):
/// they run one at a time, never sharing the machine's cores with each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`ONE_AT_A_TIME`] for the rest of the test (a failed test does not block the rest).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every worker offers: enough CPU for 40 small instances.
const WORKER: &[&str] = &["--cpu", "8", "--memory", "8Gi"];

/// Writes `<job>.yaml` and submits it with `run -f`.
fn submit(c: &Cluster, job: &str, yaml: &str) {
    let file = format!("{job}.yaml");
    c.write(&file, yaml);
    let out = c.ork(&["run", "-f", &file]);
    assert_eq!(out.code, Some(0), "run {file}: {}", out.describe());
}

/// Waits until `job`'s phase is `phase` (up to 90 s) and returns its view.
fn wait_phase(c: &Cluster, job: &str, phase: &str) -> Value {
    c.wait_until(&format!("{job} is {phase}"), Duration::from_secs(90), |c| {
        let v = c.job_view(job)?;
        if v["phase"] == phase {
            Ok(v)
        } else {
            Err(format!("{v:#}"))
        }
    })
}

/// The container id of `task` in instance `i` of a job view.
fn container_of(v: &Value, i: usize, task: &str) -> String {
    v["instances"][i]["tasks"][task]["container_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no container for {task}: {v:#}"))
        .to_owned()
}

/// The first number of a line holding `/proc/uptime`'s text (seconds since boot).
fn uptime_in(text: &str, marker: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(marker))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{marker}` line with an uptime in:\n{text}"))
}

/// `docker logs` of a container, standard output and error together.
fn logs(id: &str) -> String {
    let o = std::process::Command::new("docker")
        .args(["logs", id])
        .output()
        .expect("docker logs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Seconds since the Unix epoch, for `docker events --since`.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One engine event about a container: when (ns), what (`kill`, `die`, ...), the container's
/// name, and the exit code of a `die`.
#[derive(Debug)]
struct Event {
    at_ns: u128,
    action: String,
    name: String,
    exit_code: Option<i64>,
    signal: Option<String>,
}

/// The engine's container events since `since` (Unix seconds) until now, of containers whose
/// name contains `part`.
fn events(since: u64, part: &str) -> Vec<Event> {
    let until = unix_now() + 1;
    let out = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--format",
        "{{json .}}",
    ]);
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| Event {
            at_ns: e["timeNano"].as_u64().map_or(0, u128::from),
            action: e["Action"].as_str().unwrap_or_default().to_owned(),
            name: e["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            exit_code: e["Actor"]["Attributes"]["exitCode"]
                .as_str()
                .and_then(|c| c.parse().ok()),
            signal: e["Actor"]["Attributes"]["signal"]
                .as_str()
                .map(str::to_owned),
        })
        .filter(|e| e.name.contains(part))
        .collect()
}

/// The networks of `worker`, as `docker network ls` lists them (ids).
fn networks_of(worker: &str) -> Vec<String> {
    docker(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=orkestrator.worker={worker}"),
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `stop JOB --wait`.
fn stop(c: &Cluster, job: &str) {
    let out = c.ork(&["stop", job, "--wait"]);
    assert_eq!(out.code, Some(0), "stop {job}: {}", out.describe());
}

/// db (an httpd that boots for 2 s, with a health check whose start period covers that), an
/// init task that ends after a second, and app, which waits for both and fetches from db by
/// name. Every task prints its uptime when it starts (and init when it ends).
fn three_tasks(job: &str) -> String {
    format!(
        r#"name: {job}
tasks:
  - name: db
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    command: ["sh", "-c", "echo db-start $(cat /proc/uptime); mkdir -p /tmp/www; echo hello-from-db-$ORK_INDEX > /tmp/www/index.html; sleep 2; exec httpd -f -p 8080 -h /tmp/www"]
    health_check:
      exec: ["sh", "-c", "timeout 1 wget -q -O /dev/null http://127.0.0.1:8080/ && {{ [ -e /tmp/healthy-at ] || cat /proc/uptime > /tmp/healthy-at; }}"]
      interval: 1s
      timeout: 1s
      failures: 1
      start_period: 10s
  - name: init
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    restart: {{ policy: never }}
    command: ["sh", "-c", "echo init-start $(cat /proc/uptime); sleep 1; echo init-end $(cat /proc/uptime)"]
  - name: app
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    depends_on:
      db: {{ condition: healthy }}
      init: {{ condition: completed_successfully }}
    command: ["sh", "-c", "echo app-start $(cat /proc/uptime); timeout 5 wget -q -O- http://db:8080/; trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
    )
}

#[test]
fn an_instance_starts_in_order_reaches_its_tasks_by_name_and_stops_dependents_first() {
    let test = "together-order";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let worker = c.add_worker(WORKER);
    let job = unique("order", test);
    submit(&c, &job, &three_tasks(&job));
    let v = wait_phase(&c, &job, "Running");
    let tasks = &v["instances"][0]["tasks"];
    assert_eq!(tasks["db"]["state"], "Running", "{v:#}");
    assert_eq!(tasks["db"]["healthy"], true, "{v:#}");
    assert_eq!(tasks["init"]["state"], "Completed", "{v:#}");
    assert_eq!(tasks["app"]["state"], "Running", "{v:#}");

    // app reached db by name, on the instance's own network.
    let (db, init, app) = (
        container_of(&v, 0, "db"),
        container_of(&v, 0, "init"),
        container_of(&v, 0, "app"),
    );
    let app_logs = c.wait_until("app fetched from db", Duration::from_secs(20), |_| {
        let l = logs(&app);
        if l.contains("hello-from-db-0") {
            Ok(l)
        } else {
            Err(l)
        }
    });

    // app started after db was first healthy and after init ended.
    let healthy_at: f64 = docker(&["exec", &db, "cat", "/tmp/healthy-at"])
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("db wrote when it was first healthy");
    let init_end = uptime_in(&logs(&init), "init-end ");
    let app_start = uptime_in(&app_logs, "app-start ");
    let db_start = uptime_in(&logs(&db), "db-start ");
    assert!(
        app_start >= healthy_at && app_start >= init_end,
        "app started at {app_start}, db healthy at {healthy_at}, init ended at {init_end}"
    );
    // The start period covered db's 2 s of booting: a failure then would have killed it.
    assert!(
        healthy_at - db_start >= 1.5,
        "db booted in {} s",
        healthy_at - db_start
    );
    let restarts = &v["instances"][0]["tasks"]["db"]["restarts"];
    assert_eq!(
        restarts, 0,
        "no check failure counted while db booted: {v:#}"
    );

    // The environment every container gets.
    let env = docker(&["exec", &app, "env"]);
    for var in [
        format!("ORK_JOB={job}"),
        "ORK_TASK=app".to_owned(),
        "ORK_INDEX=0".to_owned(),
        format!("ORK_WORKER={worker}"),
    ] {
        assert!(env.lines().any(|l| l == var), "{var} in:\n{env}");
    }
    assert!(env.lines().any(|l| l.starts_with("ORK_INSTANCE=")), "{env}");
    assert!(env.lines().any(|l| l.starts_with("ORK_VERSION=")), "{env}");

    // Stop: app (which depends on db) dies before db is asked to stop.
    let since = unix_now().saturating_sub(1);
    stop(&c, &job);
    let evs = events(since, &worker);
    let app_died = evs
        .iter()
        .find(|e| e.action == "die" && e.name.ends_with("-app-0"))
        .unwrap_or_else(|| panic!("no die event of app: {evs:#?}"));
    let db_asked = evs
        .iter()
        .find(|e| e.action == "kill" && e.name.ends_with("-db-0"))
        .unwrap_or_else(|| panic!("no kill event of db: {evs:#?}"));
    assert!(
        app_died.at_ns <= db_asked.at_ns,
        "app died at {} ns, db was asked to stop at {} ns",
        app_died.at_ns,
        db_asked.at_ns
    );
    // Its network goes with its last container.
    c.wait_until(
        "the instance's network is removed",
        Duration::from_secs(20),
        |_| {
            let left = networks_of(&worker);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("networks left: {left:?}"))
            }
        },
    );
}

#[test]
fn a_failing_init_task_fails_the_instance_and_its_dependent_never_starts() {
    let test = "together-init-fails";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let job = unique("initfail", test);
    let yaml = format!(
        r#"name: {job}
tasks:
  - name: migrate
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    restart: {{ policy: never }}
    command: ["sh", "-c", "echo migration failed; exit 3"]
  - name: app
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    depends_on: {{ migrate: {{ condition: completed_successfully }} }}
    command: ["sleep", "1000"]
"#
    );
    submit(&c, &job, &yaml);
    let v = wait_phase(&c, &job, "Failed");
    let tasks = &v["instances"][0]["tasks"];
    assert_eq!(tasks["migrate"]["state"], "Failed", "{v:#}");
    assert_eq!(tasks["app"]["state"], "Failed", "{v:#}");
    let reason = tasks["app"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("migrate failed") && reason.contains("code 3"),
        "{reason}"
    );
    assert!(
        containers_with_label("orkestrator.task", "app", true)
            .iter()
            .all(|id| !docker(&["inspect", "-f", "{{.Name}}", id]).contains(&job)),
        "app never had a container"
    );
}

#[test]
fn a_sidecar_stops_after_the_main_task_completes_and_the_instance_completes() {
    let test = "together-sidecar";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let job = unique("sidecar", test);
    let yaml = format!(
        r#"name: {job}
tasks:
  - name: main
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    restart: {{ policy: never }}
    command: ["sh", "-c", "sleep 2; echo done"]
  - name: shipper
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    sidecar: true
    restart: {{ policy: always }}
    stop_grace: 1s
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
    );
    submit(&c, &job, &yaml);
    let v = wait_phase(&c, &job, "Completed");
    let tasks = &v["instances"][0]["tasks"];
    assert_eq!(tasks["main"]["state"], "Completed", "{v:#}");
    assert_eq!(tasks["shipper"]["state"], "Completed", "{v:#}");
    assert_eq!(tasks["shipper"]["restarts"], 0, "not restarted: {v:#}");
}

#[test]
fn a_stop_signal_reaches_a_process_that_traps_it_and_init_stops_sleep_at_once() {
    let test = "together-signals";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let worker = c.add_worker(WORKER);
    let job = unique("signals", test);
    let yaml = format!(
        r#"name: {job}
tasks:
  - name: trapper
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    stop_signal: SIGINT
    stop_grace: 20s
    command: ["sh", "-c", "trap 'exit 42' INT; echo trap-set; while true; do sleep 1; done"]
  - name: sleeper
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    init: true
    stop_grace: 20s
    command: ["sleep", "1000"]
"#
    );
    submit(&c, &job, &yaml);
    let v = wait_phase(&c, &job, "Running");
    // `Running` is the container started, not its shell past `trap` (at 5% of a CPU that takes
    // a moment): a SIGINT before the trap is set is ignored by PID 1 and waits out the grace.
    let trapper = container_of(&v, 0, "trapper");
    c.wait_until("the trapper set its trap", Duration::from_secs(30), |_| {
        let out = logs(&trapper);
        if out.contains("trap-set") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let since = unix_now().saturating_sub(1);
    stop(&c, &job);
    let evs = events(since, &worker);
    let died = |task: &str| {
        evs.iter()
            .find(|e| e.action == "die" && e.name.ends_with(&format!("-{task}-0")))
            .unwrap_or_else(|| panic!("no die event of {task}: {evs:#?}"))
    };
    let asked = |task: &str| {
        evs.iter()
            .find(|e| e.action == "kill" && e.name.ends_with(&format!("-{task}-0")))
            .unwrap_or_else(|| panic!("no kill event of {task}: {evs:#?}"))
    };
    // SIGINT reached the trap: it exited 42 (an untrapped signal to PID 1 waits out the grace
    // and dies 137).
    assert_eq!(died("trapper").exit_code, Some(42), "{evs:#?}");
    assert_eq!(asked("trapper").signal.as_deref(), Some("2"), "{evs:#?}");
    // With init, sleep as the container's main process stops within a second, not the 20 s
    // grace.
    let took = Duration::from_nanos((died("sleeper").at_ns - asked("sleeper").at_ns) as u64);
    assert!(
        took < Duration::from_secs(1),
        "sleeper took {took:?} to stop"
    );
}

#[test]
fn two_instances_each_reach_their_own_db() {
    let test = "together-isolation";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let worker = c.add_worker(WORKER);
    let job = unique("iso", test);
    let yaml = format!(
        r#"name: {job}
count: 2
tasks:
  - name: db
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    command: ["sh", "-c", "mkdir -p /tmp/www; echo db-of-$ORK_INDEX > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
  - name: app
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    depends_on: [db]
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
    );
    submit(&c, &job, &yaml);
    let v = wait_phase(&c, &job, "Running");
    let instances = v["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    let mut nets = Vec::new();
    for (i, inst) in instances.iter().enumerate() {
        let index = inst["index"].as_u64().unwrap();
        let app = container_of(&v, i, "app");
        let got = c.wait_until("app reaches db", Duration::from_secs(20), |_| {
            let o = std::process::Command::new("docker")
                .args([
                    "exec",
                    &app,
                    "timeout",
                    "3",
                    "wget",
                    "-q",
                    "-O-",
                    "http://db:8080/",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if text.starts_with("db-of-") {
                Ok(text)
            } else {
                Err(format!("{text} {}", String::from_utf8_lossy(&o.stderr)))
            }
        });
        assert_eq!(
            got,
            format!("db-of-{index}"),
            "instance {index} reached its own db"
        );
        // Attached to one network only: its instance's.
        let attached = docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &app,
        ]);
        let attached: Vec<&str> = attached.split_whitespace().collect();
        assert_eq!(attached.len(), 1, "{attached:?}");
        nets.push(attached[0].to_owned());
    }
    assert_ne!(nets[0], nets[1], "each instance has a network of its own");
    // And the other instance's db, by its address, is out of reach.
    let other_db = container_of(&v, 1, "db");
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &other_db,
    ]);
    let app0 = container_of(&v, 0, "app");
    let o = std::process::Command::new("docker")
        .args([
            "exec",
            &app0,
            "timeout",
            "3",
            "wget",
            "-q",
            "-O-",
            &format!("http://{}:8080/", ip.trim()),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "instance 0 reached instance 1's db");
    let _ = worker;
}

#[test]
fn forty_instances_get_networks_a_restarted_worker_adopts_them_and_none_is_left() {
    let test = "together-networks";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    // A grace long enough that a worker killed and started again is never declared down.
    let mut c = Cluster::start_server(test, &["--heartbeat-grace", "20s"]);
    let (worker, proc_id) = c.add_worker_proc(WORKER);
    let job = unique("forty", test);
    let yaml = format!(
        r#"name: {job}
count: 40
tasks:
  - name: idle
    image: {IMAGE}
    resources: {{ cpu: 10m, memory: 8Mi }}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
    );
    submit(&c, &job, &yaml);
    wait_phase(&c, &job, "Running");
    // More networks than Docker's 31 default pools hold: they come from the worker's own pool.
    let mut before = networks_of(&worker);
    before.sort();
    assert_eq!(before.len(), 40, "one network per instance");

    // A second worker on the same engine, with instances of its own (the spread scheduler
    // places a new job on the emptier worker): its networks are its own, on other subnets.
    let other = c.add_worker(WORKER);
    let job2 = unique("beside", test);
    submit(
        &c,
        &job2,
        &yaml.replace(&job, &job2).replace("count: 40", "count: 4"),
    );
    let v2 = wait_phase(&c, &job2, "Running");
    let on_other = v2["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["worker"] == other.as_str())
        .count();
    assert!(on_other > 0, "spread placed some on the new worker: {v2:#}");
    let mut theirs = networks_of(&other);
    theirs.sort();
    assert_eq!(
        theirs.len(),
        on_other,
        "one network per instance of its own"
    );
    let all: Vec<String> = networks_of(&worker)
        .into_iter()
        .chain(theirs.clone())
        .collect();
    let mut subnets: Vec<String> = all
        .iter()
        .map(|id| {
            docker(&[
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                id,
            ])
            .trim()
            .to_owned()
        })
        .collect();
    subnets.sort();
    subnets.dedup();
    assert_eq!(subnets.len(), all.len(), "no subnet twice: {subnets:?}");

    // kill -9 and start again: the same networks, adopted, none made twice, and the other
    // worker's left alone.
    c.kill(proc_id);
    let again = c.restart_worker(&worker);
    c.wait_worker_ready(&worker, again);
    wait_phase(&c, &job, "Running");
    let mut after = networks_of(&worker);
    after.sort();
    let mine_now = before.len() + 4 - on_other;
    assert_eq!(
        after.len(),
        mine_now,
        "the restarted worker adopted its networks"
    );
    assert!(
        before.iter().all(|n| after.contains(n)),
        "the same networks, not new ones"
    );
    let mut theirs_after = networks_of(&other);
    theirs_after.sort();
    assert_eq!(
        theirs_after, theirs,
        "the other worker's networks untouched"
    );
    stop(&c, &job2);

    stop(&c, &job);
    c.wait_until("no network is left", Duration::from_secs(60), |_| {
        let left = networks_of(&worker);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} networks left", left.len()))
        }
    });
}

#[test]
fn config_files_are_read_only_owned_by_the_user_survive_a_kill_and_a_change_rolls_out() {
    let test = "together-files";
    let _serial = one_at_a_time();
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start_server(test, &["--heartbeat-grace", "20s"]);
    let (worker, proc_id) = c.add_worker_proc(WORKER);
    let job = unique("files", test);
    // One file from the job file's text, one binary, one that the CLI reads from `source`.
    c.write("motd.txt", "read by the CLI\n");
    let yaml = |version: &str| {
        format!(
            r#"name: {job}
tasks:
  - name: app
    image: {IMAGE}
    resources: {{ cpu: 50m, memory: 16Mi }}
    user: "1000:1000"
    read_only: true
    files:
      - {{ path: /etc/app/app.conf, content: "version={version}\n", mode: "0640" }}
      - {{ path: /etc/app/blob.bin, content_base64: "AAEC/w==" }}
      - {{ path: /etc/app/motd.txt, source: ./motd.txt }}
    command: ["sh", "-c", "cat /etc/app/app.conf /etc/app/motd.txt; stat -c 'owner %u:%g %a' /etc/app/app.conf; od -An -tx1 /etc/app/blob.bin; (echo x > /etc/app/app.conf) 2>/dev/null || echo cannot-write; trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
        )
    };
    submit(&c, &job, &yaml("1"));
    let v = wait_phase(&c, &job, "Running");
    let first = container_of(&v, 0, "app");
    let out = c.wait_until("the files are read", Duration::from_secs(20), |_| {
        let text = logs(&first);
        if text.contains("cannot-write") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "version=1",
            "read by the CLI",
            "owner 1000:1000 640",
            "00 01 02 ff",
            "cannot-write"
        ],
        "{out}"
    );

    // kill -9 of the worker: its files stay for the container it adopts.
    c.kill(proc_id);
    let again = c.restart_worker(&worker);
    c.wait_worker_ready(&worker, again);
    let v = wait_phase(&c, &job, "Running");
    assert_eq!(container_of(&v, 0, "app"), first, "adopted, not replaced");
    let read = docker(&["exec", &first, "cat", "/etc/app/app.conf"]);
    assert_eq!(read.trim(), "version=1");

    // A changed file is a new version, rolled out: a new container with the new content.
    submit(&c, &job, &yaml("2"));
    let v = c.wait_until("version 2 runs", Duration::from_secs(90), |c| {
        let v = c.job_view(&job)?;
        let id = v["instances"][0]["tasks"]["app"]["container_id"]
            .as_str()
            .unwrap_or_default();
        if v["phase"] == "Running" && !id.is_empty() && id != first {
            Ok(v)
        } else {
            Err(format!("{v:#}"))
        }
    });
    let second = container_of(&v, 0, "app");
    let read = docker(&["exec", &second, "cat", "/etc/app/app.conf"]);
    assert_eq!(read.trim(), "version=2");

    let mounted = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Source}} {{end}}",
        &second,
    ]);
    let sources: Vec<std::path::PathBuf> = mounted.split_whitespace().map(Into::into).collect();
    assert_eq!(sources.len(), 3, "{mounted}");
    assert!(sources.iter().all(|p| p.exists()));

    stop(&c, &job);
    // The instance's files go with its last container (and its network).
    c.wait_until("the files are removed", Duration::from_secs(30), |_| {
        let left: Vec<_> = sources.iter().filter(|p| p.exists()).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// Builds (once) an image from the test image with a `HEALTHCHECK` of its own, every second.
fn image_with_healthcheck() -> &'static str {
    const TAG: &str = "orkestrator/busybox-healthcheck:test";
    use std::io::Write;
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", TAG, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("FROM {IMAGE}\nHEALTHCHECK --interval=1s CMD true\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    TAG
}

/// The Compose fields on a real container: network aliases, extra hosts, labels, shm size and a
/// host address for a published port; a task whose check is its image's own `HEALTHCHECK`
/// becomes healthy (and a task waiting for it starts); and the worker's built-in `engine.id`
/// label is the engine's ID, which a constraint matches.
#[test]
fn compose_fields_reach_the_container_and_an_image_check_becomes_healthy() {
    let test = "compose";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let checked = image_with_healthcheck();
    let engine_id = docker(&["info", "-f", "{{.ID}}"]).trim().to_owned();
    assert!(!engine_id.is_empty());
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let job = unique("compose", test);
    let port = common::free_port();
    let forever = common::FOREVER;
    submit(
        &c,
        &job,
        &format!(
            "name: {job}
constraints: [{{ label: engine.id, equals: \"{engine_id}\" }}]
tasks:
  - name: web
    image: {IMAGE}
    command: {forever}
    aliases: [www, frontend]
    shm_size: 32Mi
    labels: {{ com.example.team: web, com.example.tier: \"1\" }}
    extra_hosts: {{ db.local: 10.0.0.5, gw: host-gateway }}
    ports: [{{ container: 80, host: {port}, host_ip: 127.0.0.1 }}]
    resources: {{ cpu: 100m, memory: 32Mi }}
  - name: checked
    image: {checked}
    command: {forever}
    health_check: {{ image: true, interval: 1s, timeout: 1s, failures: 3 }}
    resources: {{ cpu: 100m, memory: 32Mi }}
  - name: after
    image: {IMAGE}
    command: {forever}
    depends_on: {{ checked: {{ condition: healthy }} }}
    resources: {{ cpu: 100m, memory: 32Mi }}
"
        ),
    );
    // Placed by the engine.id constraint; `after` starts only once `checked` is healthy.
    let v = c.wait_until(
        "every task runs, checked healthy",
        Duration::from_secs(45),
        |c| {
            let v = c.job_view(&job)?;
            let tasks = &v["instances"][0]["tasks"];
            let all = ["web", "checked", "after"]
                .iter()
                .all(|t| tasks[t]["state"] == "Running");
            if all && tasks["checked"]["healthy"] == true {
                Ok(v)
            } else {
                Err(format!("{v:#}"))
            }
        },
    );
    let web = container_of(&v, 0, "web");
    let checked_id = container_of(&v, 0, "checked");
    let d = common::inspect(&[web.clone(), checked_id.clone()]);
    let (w, k) = (&d[0], &d[1]);

    let labels = &w["Config"]["Labels"];
    assert_eq!(labels["com.example.team"], "web", "{labels:#}");
    assert_eq!(labels["com.example.tier"], "1", "{labels:#}");
    assert_eq!(labels["orkestrator.task"], "web", "ours kept: {labels:#}");
    assert_eq!(w["HostConfig"]["ShmSize"], 32 << 20);
    let hosts: Vec<&str> = w["HostConfig"]["ExtraHosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(hosts, ["db.local:10.0.0.5", "gw:host-gateway"]);
    let binding = &w["HostConfig"]["PortBindings"]["80/tcp"][0];
    assert_eq!(binding["HostIp"], "127.0.0.1", "{binding:#}");
    assert_eq!(binding["HostPort"], port.to_string(), "{binding:#}");
    let networks = w["NetworkSettings"]["Networks"].as_object().unwrap();
    let aliases: Vec<&str> = networks
        .values()
        .flat_map(|n| n["Aliases"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for a in ["web", "www", "frontend"] {
        assert!(aliases.contains(&a), "{a} not in {aliases:?}");
    }
    // Inside: /etc/hosts has the extra entries (host-gateway resolved to an address), and the
    // other tasks find web by its aliases.
    let etc_hosts = docker(&["exec", &web, "cat", "/etc/hosts"]);
    assert!(etc_hosts.contains("10.0.0.5\tdb.local"), "{etc_hosts}");
    let gw_line = etc_hosts
        .lines()
        .find(|l| l.ends_with("\tgw"))
        .unwrap_or_else(|| panic!("no gw entry:\n{etc_hosts}"));
    assert!(!gw_line.contains("host-gateway"), "{gw_line}");
    let after = container_of(&v, 0, "after");
    for name in ["www", "frontend"] {
        let o = std::process::Command::new("docker")
            .args(["exec", &after, "nslookup", name])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "nslookup {name}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let shm = docker(&["exec", &web, "df", "-k", "/dev/shm"]);
    assert!(shm.contains("32768"), "a 32 MiB /dev/shm: {shm}");

    // The engine runs the image's test with the task's timing, and says healthy.
    let hc = &k["Config"]["Healthcheck"];
    assert_eq!(hc["Test"][1], "true", "the image's test: {hc:#}");
    assert_eq!(hc["Interval"], 1_000_000_000_i64, "{hc:#}");
    assert_eq!(hc["Retries"], 3, "{hc:#}");
    assert_eq!(
        k["State"]["Health"]["Status"], "healthy",
        "{:#}",
        k["State"]
    );
    // A task without a check of its own keeps the image's (here: none).
    assert!(w["State"]["Health"].is_null(), "{:#}", w["State"]);
    stop(&c, &job);
}
