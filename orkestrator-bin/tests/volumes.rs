//! Volumes against the real Docker engine and real processes (issue 20): a named volume keeps
//! its data through a crash, a new version and `kill -9` of the worker and of the manager; a
//! manager started on an empty data directory removes none; an instance waits for the worker
//! holding its data, or starts elsewhere with `on_worker_loss: recreate`; host volumes place the
//! job where they are offered and a read-only one refuses writes; a tmpfs is bounded by its
//! size; garbage collection removes volumes and keeps `retain: true` ones.
//!
//! The tests run one at a time. Without a Docker engine they print a SKIP line and pass, unless
//! `CI=true` or `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::time::Duration;

use common::{Cluster, IMAGE, MANAGER, docker, docker_or_skip};
use serde_json::Value;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const WORKER: &[&str] = &["--cpu", "4", "--memory", "4Gi"];
const WAIT: Duration = Duration::from_secs(90);

/// Writes `<job>.yaml` and submits it with `run -f`.
fn submit(c: &Cluster, job: &str, yaml: &str) {
    let file = format!("{job}.yaml");
    c.write(&file, yaml);
    let out = c.ork(&["run", "-f", &file]);
    assert_eq!(out.code, Some(0), "run {file}: {}", out.describe());
}

/// The container and worker of `task` in the instance of `job` that is to run, once it runs.
fn running_task(v: &Value, task: &str) -> Option<(String, String)> {
    v["instances"].as_array()?.iter().find_map(|i| {
        let t = &i["tasks"][task];
        (i["desired"] == "Run" && t["state"] == "Running")
            .then(|| {
                Some((
                    t["container_id"].as_str()?.to_owned(),
                    i["worker"].as_str()?.to_owned(),
                ))
            })
            .flatten()
    })
}

/// Waits until `job` runs at `version` (any when 0) and returns `task`'s container and worker.
fn wait_running(c: &Cluster, job: &str, version: u64, task: &str) -> (String, String) {
    c.wait_until(&format!("{job} runs at version {version}"), WAIT, |c| {
        let v = c.status(job)?;
        let at = version == 0 || v["version"] == version;
        match running_task(&v, task) {
            Some(found) if at && v["phase"] == "Running" => Ok(found),
            _ => Err(serde_json::to_string_pretty(&v).unwrap_or_default()),
        }
    })
}

/// `docker exec ID sh -c SCRIPT`, its standard output.
fn exec(id: &str, script: &str) -> String {
    docker(&["exec", id, "sh", "-c", script])
}

/// The names of the engine's volumes of `job`.
fn engine_volumes(job: &str) -> Vec<String> {
    let mut v: Vec<String> = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=orkestrator.job={job}"),
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    v.sort();
    v
}

/// `volume list -o json`, as (job, index, volume, worker, state) rows.
fn volume_list(c: &Cluster) -> Vec<Value> {
    let out = c.ork(&["volume", "list", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    out.json()["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A job whose task, as the non-root user 1000, appends `start-$V` to `/data/log` on its named
/// volume each time its container starts.
fn writer(name: &str, version: u32, volume_extra: &str) -> String {
    format!(
        "name: {name}
volumes:
  data: {{ type: volume, size: 64Mi{volume_extra} }}
tasks:
  - name: db
    image: {IMAGE}
    user: '1000:1000'
    env: {{ V: '{version}' }}
    command: [sh, -c, 'echo start-$V >> /data/log && exec sleep 3600']
    restart: {{ policy: always, backoff: {{ initial: 100ms, max: 1s }} }}
    mounts: [{{ volume: data, path: /data }}]
"
    )
}

fn log_lines(id: &str) -> Vec<String> {
    exec(id, "cat /data/log")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn volume_data_survives_a_crash_a_new_version_and_kill_9_of_worker_and_manager() {
    let test = "volumes-keep";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let state = tempfile::tempdir().unwrap();
    let data_dir = state.path().to_string_lossy().into_owned();
    let mut c = Cluster::start_server(test, &["--data-dir", &data_dir]);
    let (worker, proc) = c.add_worker_proc(WORKER);
    submit(&c, "keep", &writer("keep", 1, ""));
    let (id, on) = wait_running(&c, "keep", 1, "db");
    assert_eq!(on, worker);
    assert_eq!(log_lines(&id), ["start-1"]);
    assert_eq!(
        exec(&id, "stat -c %u:%g /data /data/log")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000:1000", "1000:1000"],
        "a new volume is the task user's"
    );
    let name = format!("ork-{worker}-keep-0-data");
    assert_eq!(engine_volumes("keep"), [name.clone()]);

    // A crash: the worker starts a new container on the same data.
    docker(&["kill", "-s", "KILL", &id]);
    let (id, _) = c.wait_until("a new container after the crash", WAIT, |c| {
        let v = c.status("keep")?;
        match running_task(&v, "db") {
            Some((new, w)) if new != id => Ok((new, w)),
            _ => Err(serde_json::to_string_pretty(&v).unwrap_or_default()),
        }
    });
    assert_eq!(log_lines(&id), ["start-1", "start-1"]);

    // A new version replaces the container: same data.
    submit(&c, "keep", &writer("keep", 2, ""));
    let (id, _) = wait_running(&c, "keep", 2, "db");
    assert_eq!(log_lines(&id), ["start-1", "start-1", "start-2"]);

    // kill -9 of the worker, and a new worker process: the data is there.
    c.kill(proc);
    let again = c.restart_worker(&worker);
    c.wait_worker_ready(&worker, again);
    let (id, _) = wait_running(&c, "keep", 2, "db");
    let lines = log_lines(&id);
    assert_eq!(lines[..3], ["start-1", "start-1", "start-2"], "{lines:?}");

    // kill -9 of the manager: its state (and the volume's record) comes back from its store.
    c.kill(MANAGER);
    c.restart_manager();
    wait_running(&c, "keep", 2, "db");
    submit(&c, "keep", &writer("keep", 3, ""));
    let (id, on) = wait_running(&c, "keep", 3, "db");
    assert_eq!(on, worker);
    let lines = log_lines(&id);
    assert_eq!(lines[..3], ["start-1", "start-1", "start-2"], "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("start-3"));
    assert_eq!(
        engine_volumes("keep"),
        [name.clone()],
        "one volume throughout"
    );
    let listed = volume_list(&c);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["name"], name.as_str());
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[0]["in_use"], true);
}

#[test]
fn a_manager_started_on_an_empty_data_directory_removes_no_volume() {
    let test = "volumes-empty-manager";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let state = tempfile::tempdir().unwrap();
    let data_dir = state.path().join("state");
    let data = data_dir.to_string_lossy().into_owned();
    let mut c = Cluster::start_server(test, &["--data-dir", &data]);
    let worker = c.add_worker(WORKER);
    submit(&c, "empty", &writer("empty", 1, ""));
    let (id, _) = wait_running(&c, "empty", 1, "db");
    assert_eq!(log_lines(&id), ["start-1"]);
    let before = engine_volumes("empty");
    assert_eq!(before.len(), 1);

    // The manager dies and comes back with nothing: no job, no volume record.
    c.kill(MANAGER);
    std::fs::rename(&data_dir, state.path().join("lost")).unwrap();
    c.restart_manager();
    // The worker joins the new manager, which assigns it nothing: it removes the container.
    c.wait_until("the container removed", WAIT, |_| {
        let ids = common::containers_with_label("orkestrator.job", "empty", true);
        if ids.is_empty() {
            Ok(())
        } else {
            Err(format!("{ids:?}"))
        }
    });
    let out = c.ork(&["gc"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(volume_list(&c).is_empty());
    // The worker keeps its volume: it never removes one on its own judgement. Several of its
    // reconcile passes (every few seconds) go by while we look.
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        assert_eq!(engine_volumes("empty"), before, "{}", c.logs());
        std::thread::sleep(Duration::from_millis(500));
    }
    // The same job again finds its data there.
    submit(&c, "empty", &writer("empty", 1, ""));
    let (id, on) = wait_running(&c, "empty", 1, "db");
    assert_eq!(on, worker);
    assert_eq!(log_lines(&id), ["start-1", "start-1"]);
}

#[test]
fn with_its_worker_down_an_instance_waits_and_with_recreate_it_runs_elsewhere() {
    let test = "volumes-worker-down";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let mut c = Cluster::start_server(test, &["--heartbeat-grace", "2s"]);
    let (w1, p1) = c.add_worker_proc(WORKER);
    submit(&c, "waits", &writer("waits", 1, ""));
    submit(
        &c,
        "moves",
        &writer("moves", 1, ", on_worker_loss: recreate"),
    );
    wait_running(&c, "waits", 1, "db");
    wait_running(&c, "moves", 1, "db");
    let w2 = c.add_worker(WORKER);
    c.kill(p1);
    let reason = format!("volume data of instance 0 lives on worker {w1}, which is down");
    c.wait_until("waits waits, with the reason", WAIT, |c| {
        let v = c.status("waits")?;
        let waiting = v["instances"].as_array().is_some_and(|is| {
            is.iter()
                .any(|i| i["desired"] == "Run" && i["pending_reason"] == reason.as_str())
        });
        if waiting {
            Ok(())
        } else {
            Err(serde_json::to_string_pretty(&v).unwrap_or_default())
        }
    });
    let (id, on) = wait_running(&c, "moves", 1, "db");
    assert_eq!(on, w2, "recreated on the other worker");
    assert_eq!(log_lines(&id), ["start-1"], "with an empty volume");
    let states: Vec<(String, String)> = volume_list(&c)
        .iter()
        .filter(|v| v["job"] == "moves")
        .map(|v| {
            (
                v["worker"].as_str().unwrap_or_default().to_owned(),
                v["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&(w1.clone(), "orphan".into()))
            && states.contains(&(w2.clone(), "active".into())),
        "{states:?}"
    );
    // The worker comes back: `waits` runs there again, on its data; the orphan stays.
    let again = c.restart_worker(&w1);
    c.wait_worker_ready(&w1, again);
    let (id, on) = wait_running(&c, "waits", 1, "db");
    assert_eq!(on, w1);
    assert!(log_lines(&id).len() >= 2, "the old data");
    assert!(engine_volumes("moves").contains(&format!("ork-{w1}-moves-0-data")));
}

#[test]
fn a_host_volume_places_the_job_where_it_is_offered_and_read_only_refuses_writes() {
    let test = "volumes-host";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let offered = tempfile::tempdir().unwrap();
    std::fs::create_dir(offered.path().join("app")).unwrap();
    std::fs::write(offered.path().join("app/seed"), "seeded\n").unwrap();
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    let offer = format!("applogs={}:ro", offered.path().display());
    let mut args = WORKER.to_vec();
    args.extend(["--host-volume", offer.as_str()]);
    let offering = c.add_worker(&args);
    submit(
        &c,
        "reader",
        &format!(
            "name: reader
volumes:
  logs: {{ type: host, source: applogs, read_only: true }}
tasks:
  - name: r
    image: {IMAGE}
    command: [sh, -c, 'cat /logs/seed; (echo x > /logs/new) 2>&1 || echo REFUSED; exec sleep 3600']
    mounts: [{{ volume: logs, path: /logs, subpath: app }}]
"
        ),
    );
    let (id, on) = wait_running(&c, "reader", 0, "r");
    assert_eq!(on, offering, "placed on the one worker that offers applogs");
    let out = c.wait_until("the task's output", WAIT, |_| {
        let o = docker(&["logs", &id]);
        if o.contains("REFUSED") { Ok(o) } else { Err(o) }
    });
    assert!(out.contains("seeded"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!offered.path().join("app/new").exists());
    // Nobody offers `nope`: the job waits with the reason.
    submit(
        &c,
        "nowhere",
        &format!(
            "name: nowhere
volumes:
  logs: {{ type: host, source: nope }}
tasks:
  - {{ name: r, image: {IMAGE}, command: [sleep, '3600'], mounts: [{{ volume: logs, path: /logs }}] }}
"
        ),
    );
    c.wait_until("nowhere waits with the reason", WAIT, |c| {
        let v = c.status("nowhere")?;
        let text = v.to_string();
        if text.contains("no worker offers host volume nope") {
            Ok(())
        } else {
            Err(text)
        }
    });
}

#[test]
fn a_tmpfs_is_bounded_by_its_size() {
    let test = "volumes-tmpfs";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let mut c = Cluster::start(test);
    c.add_worker(WORKER);
    submit(
        &c,
        "scratch",
        &format!(
            "name: scratch
volumes:
  cache: {{ type: tmpfs, size: 1Mi }}
tasks:
  - name: t
    image: {IMAGE}
    user: '1000:1000'
    command: [sh, -c, 'dd if=/dev/zero of=/cache/f bs=1024 count=4096 2>&1; echo size=$(wc -c < /cache/f); exec sleep 3600']
    mounts: [{{ volume: cache, path: /cache }}]
"
        ),
    );
    let (id, _) = wait_running(&c, "scratch", 0, "t");
    let out = c.wait_until("dd's output", WAIT, |_| {
        let o = docker(&["logs", &id]);
        if o.contains("size=") { Ok(o) } else { Err(o) }
    });
    assert!(out.contains("No space left on device"), "{out}");
    let size: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("size="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(size <= 1 << 20, "wrote {size} bytes into a 1Mi tmpfs");
    assert!(size > 0, "{out}");
}

#[test]
fn garbage_collection_removes_volumes_and_keeps_retained_ones() {
    let test = "volumes-gc";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let mut c = Cluster::start_server(test, &["--gc-after", "0s"]);
    let worker = c.add_worker(WORKER);
    submit(
        &c,
        "gcd",
        &format!(
            "name: gcd
volumes:
  data: {{ type: volume }}
  keep: {{ type: volume, retain: true }}
tasks:
  - name: t
    image: {IMAGE}
    command: [sh, -c, 'echo kept > /keep/f; exec sleep 3600']
    mounts: [{{ volume: data, path: /data }}, {{ volume: keep, path: /keep }}]
"
        ),
    );
    wait_running(&c, "gcd", 0, "t");
    let data = format!("ork-{worker}-gcd-0-data");
    let keep = format!("ork-{worker}-gcd-0-keep");
    assert_eq!(engine_volumes("gcd"), [data.clone(), keep.clone()]);
    // `volume rm` is refused while the job runs.
    let out = c.ork(&["volume", "rm", "gcd", "0", "data"]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("stop the job first"),
        "{}",
        out.describe()
    );
    let out = c.ork(&["stop", "gcd"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_phase("gcd", "Stopped");
    let out = c.ork(&["gc"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_until("the data volume removed", WAIT, |_| {
        let v = engine_volumes("gcd");
        if v == [keep.clone()] {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    let listed = volume_list(&c);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["volume"], "keep");
    assert_eq!(listed[0]["state"], "retained");
}
