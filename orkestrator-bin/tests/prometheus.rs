//! The manager's `/metrics`: the exposition parsed back with names, types and labels checked,
//! the per-task series capped by `--metrics-max-series`; and a real Prometheus server (Debian's
//! `prometheus`) scraping a manager, whose query API then returns a running task's memory.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use orkestrator_core::api::{RegisterWorker, WorkerHeartbeat, WorkerResources};
use orkestrator_core::ids::{InstanceId, TaskName, WorkerId};
use orkestrator_core::metrics::{MetricsReport, NodeSample, TaskMetrics, TaskSample};
use orkestrator_core::spec::Resources;
use orkestrator_core::units::{ByteSize, Cpu};
use serde_json::Value;

/// One parsed exposition: `# TYPE` per family, and samples as (name, labels, value).
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn parse_exposition(text: &str) -> Exposition {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE line");
            types.insert(name.to_owned(), ty.to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in l.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label pair");
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (n.to_owned(), labels)
            }
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push((name, labels, value));
    }
    Exposition { types, samples }
}

impl Exposition {
    /// The family a sample belongs to (its name without `_total`, `_bucket`, `_sum`, `_count`).
    fn family_of(&self, sample: &str) -> Option<&str> {
        if self.types.contains_key(sample) {
            return self.types.get_key_value(sample).map(|(k, _)| k.as_str());
        }
        ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .filter_map(|s| sample.strip_suffix(s))
            .find_map(|f| self.types.get_key_value(f).map(|(k, _)| k.as_str()))
    }

    fn of(&self, name: &str) -> Vec<&(String, BTreeMap<String, String>, f64)> {
        self.samples.iter().filter(|s| s.0 == name).collect()
    }
}

fn resources() -> WorkerResources {
    let total = Resources {
        cpu: Cpu::from_cores(16),
        memory: ByteSize::gib(32),
        disk: ByteSize::gib(100),
    };
    WorkerResources {
        total,
        allocated: Resources::ZERO,
        available: total,
    }
}

/// `GET path` on the manager at `port` with the operator token and `Accept: accept` (none: no
/// `Accept` header).
fn get_accepting(port: u16, path: &str, accept: Option<&str>) -> HttpResponse {
    use std::io::{Read, Write};
    let token = token_of(port, "operator.token").expect("the operator token");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n{accept}\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    parse_response(&raw).expect("a response")
}

/// What Prometheus 2.x sends as `Accept` when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn post_json(port: u16, path: &str, body: &impl serde::Serialize) -> HttpResponse {
    http(
        port,
        "POST",
        path,
        Some("application/json"),
        &serde_json::to_vec(body).unwrap(),
    )
    .expect("request")
}

#[test]
fn manager_metrics_parse_back_with_names_types_labels_and_the_series_cap() {
    let test = "prom-parse";
    // No Docker here: a stand-in worker registers and publishes metrics over the API.
    let c = Cluster::start_server(test, &["--in-memory", "--metrics-max-series", "1"]);
    let worker = WorkerId::new(unique("fake", test));
    let reg = RegisterWorker {
        id: worker.clone(),
        address: None,
        labels: BTreeMap::new(),
        host_volumes: Default::default(),
        resources: resources(),
        version: String::new(),
    };
    assert_eq!(post_json(c.port, "/v1/workers", &reg).status, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beats = {
        let (port, stop, path) = (
            c.port,
            stop.clone(),
            format!("/v1/workers/{worker}/heartbeat"),
        );
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let hb = WorkerHeartbeat {
                    resources: resources(),
                    healthy: true,
                    message: None,
                };
                let _ = post_json(port, &path, &hb);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let job = unique("prom", test);
    let spec = format!(
        "name: {job}\ncount: 2\ntasks: [{{name: main, image: x:1, resources: {{memory: 32Mi}}}}]"
    );
    let r = http(
        c.port,
        "POST",
        "/v1/jobs",
        Some("application/yaml"),
        spec.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let instances: Vec<String> = c.wait_until("both instances are placed", TIMEOUT, |c| {
        let v = c.status(&job)?;
        let ids: Vec<String> = v["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["worker"].as_str() == Some(worker.as_str()))
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() == 2 {
            Ok(ids)
        } else {
            Err(format!("placed: {ids:?}"))
        }
    });
    let report = MetricsReport {
        node: NodeSample {
            at: 1,
            cpu_cores_used: 1.0,
            cpu_cores_total: 16.0,
            ..NodeSample::default()
        },
        tasks: instances
            .iter()
            .map(|i| TaskMetrics {
                instance: InstanceId::new(i.as_str()),
                task: TaskName::new("main"),
                sample: TaskSample {
                    at: 1,
                    cpu_cores: 0.5,
                    cpu_seconds_total: 12.5,
                    memory_working_set_bytes: 7 << 20,
                    memory_limit_bytes: 32 << 20,
                    ..TaskSample::default()
                },
            })
            .collect(),
    };
    let r = post_json(c.port, &format!("/v1/workers/{worker}/metrics"), &report);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 2);

    // Made-up methods: each gets an answer, none a series of its own.
    for m in ["FOO1", "FOO2", "BREW"] {
        let r = http(c.port, m, "/v1/health", None, b"").unwrap();
        assert!(r.status >= 400, "{m}: {}", r.status);
    }
    let r = get_accepting(c.port, "/metrics", Some(PROMETHEUS_ACCEPT));
    // Without an `Accept` that asks for OpenMetrics: the Prometheus text format 0.0.4.
    let plain = get_accepting(c.port, "/metrics", None);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = beats.join();
    assert_eq!(plain.status, 200);
    assert!(
        plain
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        plain.headers
    );
    let plain_text = plain.text();
    assert!(
        !plain_text.contains("# EOF"),
        "# EOF in 0.0.4:\n{plain_text}"
    );
    assert!(
        !plain_text.contains("# UNIT"),
        "# UNIT in 0.0.4:\n{plain_text}"
    );
    let p = parse_exposition(&plain_text);
    // 0.0.4 names a counter family as its samples are, with `_total`.
    for (family, ty) in [
        ("ork_placements_total", "counter"),
        ("ork_events_total", "counter"),
        ("container_cpu_usage_seconds_total", "counter"),
        ("ork_jobs", "gauge"),
        ("ork_store_commit_duration_seconds", "histogram"),
    ] {
        assert_eq!(
            p.types.get(family).map(String::as_str),
            Some(ty),
            "family {family} in:\n{plain_text}"
        );
    }
    assert!(
        !p.types.contains_key("ork_placements"),
        "the OpenMetrics family name in 0.0.4:\n{plain_text}"
    );
    assert!(p.of("ork_placements_total")[0].2 >= 2.0);
    assert!(
        p.samples.iter().all(|s| !s.0.ends_with("_created")),
        "{plain_text}"
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    assert!(text.trim_end().ends_with("# EOF"), "no # EOF:\n{text}");
    let e = parse_exposition(&text);
    for (family, ty) in [
        ("ork_jobs", "gauge"),
        ("ork_tasks", "gauge"),
        ("ork_workers", "gauge"),
        ("ork_placements", "counter"),
        ("ork_scheduling_latency_seconds", "histogram"),
        ("ork_store_commit_duration_seconds", "histogram"),
        ("ork_store_commit_batch_changes", "histogram"),
        ("ork_api_request_duration_seconds", "histogram"),
        ("ork_events", "counter"),
        ("container_cpu_usage_seconds", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("container_spec_memory_limit_bytes", "gauge"),
        ("container_network_receive_bytes", "counter"),
        ("container_network_transmit_bytes", "counter"),
        ("ork_metrics_series_dropped", "gauge"),
    ] {
        assert_eq!(
            e.types.get(family).map(String::as_str),
            Some(ty),
            "family {family} in:\n{text}"
        );
    }
    // Every sample belongs to a typed family, and no label is `job` or `instance`.
    for (name, labels, _) in &e.samples {
        assert!(e.family_of(name).is_some(), "untyped sample {name}");
        assert!(
            !labels.contains_key("job") && !labels.contains_key("instance"),
            "{name} carries a label Prometheus owns: {labels:?}"
        );
    }
    let placed = e.of("ork_placements_total");
    assert!(placed[0].2 >= 2.0, "{placed:?}");
    let pending = e
        .of("ork_jobs")
        .into_iter()
        .find(|s| s.1.get("phase").map(String::as_str) == Some("Starting"));
    assert_eq!(pending.map(|s| s.2), Some(1.0), "one job is starting");
    let submits: Vec<_> = e
        .of("ork_api_request_duration_seconds_count")
        .into_iter()
        .filter(|s| {
            s.1.get("route").map(String::as_str) == Some("/v1/jobs")
                && s.1.get("method").map(String::as_str) == Some("POST")
                && s.1.get("status").map(String::as_str) == Some("201")
        })
        .collect();
    assert_eq!(
        submits.len(),
        1,
        "{:?}",
        e.of("ork_api_request_duration_seconds_count")
    );
    let methods: BTreeSet<&str> = e
        .of("ork_api_request_duration_seconds_count")
        .iter()
        .filter_map(|s| s.1.get("method").map(String::as_str))
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(
        methods.iter().all(|m| ["GET", "POST", "other"].contains(m)),
        "a method label per made-up method: {methods:?}"
    );
    assert!(submits[0].2 >= 1.0);
    // Two tasks reported, one exposed: the cap holds and says what it left out.
    let mem = e.of("container_memory_working_set_bytes");
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].2, (7 << 20) as f64);
    let labels: BTreeSet<&str> = mem[0].1.keys().map(String::as_str).collect();
    assert_eq!(
        labels,
        BTreeSet::from(["ork_job", "ork_task", "ork_index", "ork_worker"])
    );
    assert_eq!(mem[0].1["ork_job"], job);
    assert_eq!(mem[0].1["ork_worker"], worker.as_str());
    assert_eq!(e.of("container_cpu_usage_seconds_total")[0].2, 12.5);
    assert_eq!(e.of("ork_metrics_series_dropped")[0].2, 1.0);
    // A histogram's buckets are cumulative and end with +Inf = count.
    let buckets = e.of("ork_store_commit_duration_seconds_bucket");
    let counts: Vec<f64> = buckets.iter().map(|b| b.2).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(
        buckets.last().map(|b| b.1["le"].as_str()),
        Some("+Inf"),
        "{buckets:?}"
    );
    assert_eq!(
        counts.last().copied(),
        e.of("ork_store_commit_duration_seconds_count")
            .first()
            .map(|s| s.2)
    );
}

/// Kills the Prometheus server when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_manager_and_returns_a_running_tasks_memory() {
    let test = "prom-real";
    if !docker_or_skip(test)
        || !tool_or_skip(
            test,
            "prometheus",
            "apt-get install prometheus; .ci/run installs Debian's",
        )
    {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--metrics-interval", "1s"]);
    let job = unique("prom", test);
    c.write(
        "job.yaml",
        &format!(
            "name: {job}\n\
             tasks:\n\
             \x20 - name: main\n\
             \x20   image: {IMAGE}\n\
             \x20   command: {FOREVER}\n\
             \x20   resources: {{ cpu: 100m, memory: 48Mi }}\n"
        ),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&job, "Running");

    let prom_port = free_port();
    // Prometheus scrapes with a read token of its own, from a file (`credentials_file`).
    let token = c.ork(&["token", "create", "--role", "read", "--name", "prometheus"]);
    assert_eq!(token.code, Some(0), "token create: {}", token.describe());
    let credentials = c.write("prometheus.token", token.stdout.trim());
    // Exactly the README's scrape config, with its token file and target put in.
    let snippet = readme_scrape_config();
    for placeholder in ["prom.token", "127.0.0.1:5555"] {
        assert!(snippet.contains(placeholder), "{placeholder} in {snippet}");
    }
    let snippet = snippet
        .replace("prom.token", &credentials.display().to_string())
        .replace("127.0.0.1:5555", &format!("127.0.0.1:{}", c.port));
    let config = c.write(
        "prometheus.yml",
        &format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{snippet}"),
    );
    let data = c.dir().join("prometheus-data");
    let log = std::fs::File::create(c.dir().join("prometheus.log")).unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let query = format!("container_memory_working_set_bytes{{ork_job=\"{job}\"}}");
    let path = format!("/api/v1/query?query={}", percent(&query));
    let found: Value = c.wait_until(
        "Prometheus returns the task's memory",
        Duration::from_secs(120),
        |c| {
            let r = http(prom_port, "GET", &path, None, b"").map_err(|e| e.to_string())?;
            if r.status != 200 {
                return Err(format!("status {}: {}", r.status, r.text()));
            }
            let v = r.json();
            let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
            match result.first() {
                Some(s) => Ok(s.clone()),
                None => Err(format!(
                    "no series yet; prometheus log tail: {}",
                    std::fs::read_to_string(c.dir().join("prometheus.log"))
                        .unwrap_or_default()
                        .lines()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" | ")
                )),
            }
        },
    );
    assert_eq!(found["metric"]["ork_task"], "main", "{found:#}");
    assert_eq!(found["metric"]["ork_index"], "0", "{found:#}");
    // Prometheus attaches its own `job` (the scrape job) and `instance` (the target).
    assert_eq!(found["metric"]["job"], "orkestrator", "{found:#}");
    let bytes: f64 = found["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a value");
    assert!(
        bytes > 0.0 && bytes < (48u64 << 20) as f64,
        "the working set is {bytes} bytes"
    );
}

/// The scrape config the README shows, in its Prometheus section: the YAML block after "A scrape
/// config:".
fn readme_scrape_config() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let after = &readme[readme
        .find("A scrape config")
        .expect("the README's scrape config")..];
    let block = &after[after.find("```yaml\n").expect("its yaml block") + "```yaml\n".len()..];
    let block = &block[..block.find("```").expect("the block's end")];
    let indent = block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    block
        .lines()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect()
}

#[test]
fn the_readmes_scrape_config_carries_the_read_token() {
    let snippet = readme_scrape_config();
    assert!(
        snippet.contains("authorization: { credentials_file: prom.token }"),
        "the README's scrape config has no read token:\n{snippet}"
    );
}

/// Percent-encodes a query parameter.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
