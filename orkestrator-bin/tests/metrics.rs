//! Task metrics end to end: a real manager and worker (`--metrics-interval 1s`), real containers
//! on the local Docker engine, figures read back from the manager's `GET /v1/jobs/{job}/metrics`
//! and from the worker's own Prometheus `GET /metrics`.

mod common;

use std::time::Duration;

use common::{Cluster, IMAGE, docker_or_skip, http, http_with, unique};
use serde_json::Value;

/// A job of one task running `script` under `sh -c` with `resources`.
fn job(name: &str, script: &str, resources: &str) -> String {
    format!(
        "name: {name}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: [\"sh\", \"-c\", {script:?}]\n\
         \x20   resources: {resources}\n"
    )
}

/// A cluster with one worker sampling every second; returns it and the worker's name.
fn cluster(test: &str) -> (Cluster, String) {
    let mut c = Cluster::start(test);
    let w = c.add_worker(&["--cpu", "2", "--memory", "1Gi", "--metrics-interval", "1s"]);
    (c, w)
}

/// Submits `yaml` as `job.yaml` and waits until the job runs.
fn run(c: &Cluster, name: &str, yaml: &str) {
    let path = c.write("job.yaml", yaml);
    let out = c.ork(&["run", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_phase(name, "Running");
}

/// The samples of the job's only task, oldest first (`GET /v1/jobs/{job}/metrics`).
fn samples(c: &Cluster, job: &str) -> Result<Vec<Value>, String> {
    let r = http(c.port, "GET", &format!("/v1/jobs/{job}/metrics"), None, b"")
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    let v = r.json();
    match v["tasks"].as_array().map(Vec::as_slice) {
        Some([t]) => Ok(t["samples"].as_array().cloned().unwrap_or_default()),
        _ => Err(format!("not one task series: {v}")),
    }
}

/// The port of worker `name`'s own endpoint, from its registered address.
fn worker_port(c: &Cluster, name: &str) -> u16 {
    let out = c.ork(&["workers", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let list = out.json();
    let w = list
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["id"] == name))
        .unwrap_or_else(|| panic!("no worker {name} in {list}"));
    let addr = w["address"].as_str().expect("the worker has an address");
    addr.rsplit(':').next().unwrap().parse().expect("a port")
}

#[test]
fn a_busy_task_uses_about_a_core() {
    let test = "busycpu";
    if !docker_or_skip(test) {
        return;
    }
    let (c, _) = cluster(test);
    let name = unique("m", test);
    run(
        &c,
        &name,
        &job(&name, "while :; do :; done", "{ cpu: 1, memory: 32Mi }"),
    );
    // The CPU comes from deltas of the counter between the worker's samples a second apart. The
    // machine is shared (2 cores), so wait for a sample above half a core rather than demand one.
    let s = c.wait_until("a sample above half a core", Duration::from_secs(60), |c| {
        let all = samples(c, &name)?;
        all.iter()
            .find(|s| s["cpu_cores"].as_f64().is_some_and(|x| x > 0.5))
            .cloned()
            .ok_or_else(|| format!("{all:?}"))
    });
    let cores = s["cpu_cores"].as_f64().unwrap();
    assert!(cores <= 1.2, "a 1-core limit, yet {cores} cores: {s}");
    assert!(s["cpu_seconds_total"].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(s["memory_limit_bytes"], 32 << 20, "{s}");
    assert_eq!(s["restarts"], 0, "{s}");
}

#[test]
fn a_task_holding_memory_shows_it_as_working_set() {
    let test = "holdmem";
    if !docker_or_skip(test) {
        return;
    }
    let (c, _) = cluster(test);
    let name = unique("m", test);
    // 48 MiB written to /dev/shm (the container's own tmpfs, 64 MiB by default): shared memory
    // counts in the working set and, unlike a shell variable, takes exactly what is written.
    const MIB: u64 = 48;
    let script = format!(
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count={MIB} && \
         trap 'exit 0' TERM; while true; do sleep 1; done"
    );
    run(
        &c,
        &name,
        &job(&name, &script, "{ cpu: 100m, memory: 128Mi }"),
    );
    let want = (MIB << 20) as f64;
    let s = c.wait_until(
        "the working set within 10% of what was written",
        Duration::from_secs(60),
        |c| {
            let all = samples(c, &name)?;
            let last = all.last().cloned().ok_or("no samples yet")?;
            let ws = last["memory_working_set_bytes"].as_f64().unwrap_or(0.0);
            if (ws - want).abs() <= want * 0.1 {
                Ok(last)
            } else {
                Err(format!("working set {ws} of {want}: {last}"))
            }
        },
    );
    assert_eq!(s["memory_limit_bytes"], 128 << 20, "{s}");
}

/// One metric family of an OpenMetrics text: its type and its samples' lines.
fn family<'a>(text: &'a str, name: &str) -> (Option<&'a str>, Vec<&'a str>) {
    let kind = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# TYPE {name} ")));
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name))
        .collect();
    (kind, samples)
}

#[test]
fn the_worker_serves_its_tasks_and_host_to_prometheus() {
    let test = "wprom";
    if !docker_or_skip(test) {
        return;
    }
    let (c, worker) = cluster(test);
    let name = unique("m", test);
    run(
        &c,
        &name,
        &job(
            &name,
            "trap 'exit 0' TERM; while true; do sleep 1; done",
            "{ cpu: 100m, memory: 16Mi }",
        ),
    );
    let port = worker_port(&c, &worker);
    let read = {
        let out = c.ork(&["token", "create", "--role", "read", "--name", "prometheus"]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        Some(out.stdout.trim().to_owned())
    };
    let labels =
        format!(r#"{{ork_worker="{worker}",ork_job="{name}",ork_task="main",ork_index="0"}}"#);
    let text = c.wait_until(
        "the worker's /metrics shows the task",
        Duration::from_secs(30),
        |_| {
            // A read token of the manager's is enough for a worker's /metrics; OpenMetrics is
            // served when asked for, as Prometheus asks.
            let r = http_with(
                port,
                read.as_deref(),
                "GET",
                "/metrics",
                None,
                &[("Accept", "application/openmetrics-text;version=1.0.0")],
                b"",
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(
                r.header("content-type"),
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
            );
            let text = r.text();
            if text.contains(&format!("container_memory_working_set_bytes{labels}")) {
                Ok(text)
            } else {
                Err(text)
            }
        },
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    // cAdvisor's names; OpenMetrics names a counter's family without `_total`.
    let expected = [
        ("container_cpu_usage_seconds", "counter", "_total"),
        ("container_memory_working_set_bytes", "gauge", ""),
        ("container_spec_memory_limit_bytes", "gauge", ""),
        ("container_network_receive_bytes", "counter", "_total"),
        ("container_network_transmit_bytes", "counter", "_total"),
        ("container_fs_reads_bytes", "counter", "_total"),
        ("container_fs_writes_bytes", "counter", "_total"),
    ];
    for (family_name, kind, suffix) in expected {
        let (got, lines) = family(&text, family_name);
        assert_eq!(got, Some(kind), "type of {family_name} in\n{text}");
        let series = format!("{family_name}{suffix}{labels} ");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&series))
            .unwrap_or_else(|| panic!("no {series:?} in {lines:?}"));
        let v: f64 = line[series.len()..].parse().expect("a number");
        assert!(v >= 0.0, "{line}");
    }
    let (_, limit) = family(&text, "container_spec_memory_limit_bytes");
    let bytes: f64 = limit[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(bytes, f64::from(16 << 20), "{limit:?}");
    for (node, kind) in [
        ("ork_node_cpu_cores_used", "gauge"),
        ("ork_node_cpu_cores", "gauge"),
        ("ork_node_memory_used_bytes", "gauge"),
        ("ork_node_memory_total_bytes", "gauge"),
        ("ork_node_disk_used_bytes", "gauge"),
        ("ork_node_load1", "gauge"),
        ("ork_engine_call_duration_seconds", "histogram"),
    ] {
        let (got, lines) = family(&text, node);
        assert_eq!(got, Some(kind), "type of {node} in\n{text}");
        assert!(!lines.is_empty(), "no {node} samples");
    }
    let (_, total) = family(&text, "ork_node_memory_total_bytes");
    let bytes: f64 = total[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes > 0.0, "{total:?}");
    // The engine calls the worker made: at least the stats of this task and the create.
    for call in ["stats", "create", "start", "list"] {
        let count = format!("ork_engine_call_duration_seconds_count{{call=\"{call}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&count))
            .unwrap_or_else(|| panic!("no {count:?} in\n{text}"));
        let n: u64 = line[count.len()..].parse().unwrap();
        assert!(n >= 1, "{line}");
    }
    for reserved in ["{job=", ",job=", "{instance=", ",instance="] {
        assert!(!text.contains(reserved), "{reserved} in\n{text}");
    }
}
