//! The fields a Compose file converts to: `ports[].host_ip`, `restart.max_attempts: unlimited`,
//! short backoffs, `aliases`, `shm_size`, `labels`, `extra_hosts` and `health_check.image`. Each
//! is read, checked with the field path of every problem, and written back in the file's shape.

use std::time::Duration;

use orkestrator_core::Error;
use orkestrator_core::spec::{
    Format, Job, MAX_ALIASES, MAX_SHM, MAX_TASK_LABELS, Probe, RestartPolicy, parse_job,
};
use orkestrator_core::units::ByteSize;

const FORMATS: [Format; 3] = [Format::Yaml, Format::Toml, Format::Json];

/// A YAML job `job` with task `t` plus the task lines in `extra`.
fn task_yaml(extra: &[&str]) -> String {
    let mut s = String::from("name: job\ntasks:\n  - name: t\n    image: busybox:1.36\n");
    for line in extra {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn valid(text: &str) -> Job {
    parse_job(text, Format::Yaml).unwrap_or_else(|e| panic!("should be valid: {e}\n{text}"))
}

/// Every problem of `text` as `path: message`.
fn problems(text: &str) -> Vec<(String, String)> {
    match parse_job(text, Format::Yaml) {
        Err(Error::Invalid(p)) => p.0.into_iter().map(|p| (p.path, p.message)).collect(),
        other => panic!("expected problems, got {other:?}\n{text}"),
    }
}

/// Asserts one problem at `path` whose message holds every needle.
fn assert_problem(text: &str, path: &str, needles: &[&str]) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}\n{text}");
    assert_eq!(p[0].0, path, "{p:?}");
    for n in needles {
        assert!(p[0].1.contains(n), "{n:?} not in {:?}", p[0].1);
    }
}

/// Renders `job` in every format and through serde JSON, and reads each back unchanged.
fn assert_round_trips(job: &Job) {
    for f in FORMATS {
        let text = f.render(job).unwrap();
        let back = parse_job(&text, f).unwrap_or_else(|e| panic!("{f}: {e}\n{text}"));
        assert_eq!(&back, job, "{f}:\n{text}");
    }
    let json = serde_json::to_string(job).unwrap();
    let back: Job = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, job, "{json}");
}

const ALL: &str = r#"name: app
tasks:
  - name: web
    image: busybox:1.36
    ports:
      - { container: 80, host: 8080, host_ip: 127.0.0.1 }
      - { container: 81, host: 8081, host_ip: "::1", protocol: udp }
      - { container: 82, host: 8082 }
    restart: { policy: always, max_attempts: unlimited, backoff: { initial: 100ms, max: 2s } }
    aliases: [www, frontend]
    shm_size: 64Mi
    labels: { com.example.team: web, com.example.tier: "1", empty: "" }
    extra_hosts: { db.local: 10.0.0.5, gw: host-gateway, v6.local: "fd00:0::5" }
    health_check: { image: true, interval: 2s, timeout: 1s, failures: 2, start_period: 5s }
  - name: worker
    image: busybox:1.36
    aliases: [jobs]
    depends_on: { web: { condition: healthy } }
"#;

#[test]
fn every_new_field_is_read_and_round_trips() {
    let job = valid(ALL);
    let web = &job.tasks[0];
    assert_eq!(web.ports[0].host_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(web.ports[1].host_ip, Some("::1".parse().unwrap()));
    assert_eq!(web.ports[2].host_ip, None);
    assert_eq!(web.restart.max_attempts, RestartPolicy::UNLIMITED);
    assert!(web.restart.is_unlimited());
    assert_eq!(web.restart.backoff.initial, Duration::from_millis(100));
    assert_eq!(web.aliases, ["www", "frontend"]);
    assert_eq!(web.shm_size, Some(ByteSize::mib(64)));
    assert_eq!(web.labels["com.example.team"], "web");
    assert_eq!(web.labels["com.example.tier"], "1");
    assert_eq!(web.labels["empty"], "");
    assert_eq!(web.extra_hosts["db.local"], "10.0.0.5");
    assert_eq!(web.extra_hosts["gw"], "host-gateway");
    assert_eq!(web.extra_hosts["v6.local"], "fd00::5", "kept canonical");
    let hc = web.health_check.as_ref().unwrap();
    assert_eq!(hc.probe, Probe::Image);
    assert_eq!(
        (hc.interval, hc.timeout, hc.failures, hc.start_period),
        (
            Duration::from_secs(2),
            Duration::from_secs(1),
            2,
            Duration::from_secs(5)
        )
    );
    assert_round_trips(&job);
    let yaml = Format::Yaml.render(&job).unwrap();
    for needle in [
        "max_attempts: unlimited",
        "initial: 100ms",
        "image: true",
        "host_ip: \"127.0.0.1\"",
        "shm_size: 64Mi",
        "host-gateway",
    ] {
        assert!(yaml.contains(needle), "{needle} not in\n{yaml}");
    }
    let json = serde_json::to_value(&job).unwrap();
    assert_eq!(json["tasks"][0]["restart"]["max_attempts"], "unlimited");
    assert_eq!(json["tasks"][0]["health_check"]["image"], true);
    assert_eq!(json["tasks"][0]["ports"][1]["host_ip"], "::1");
    assert!(json["tasks"][1].get("labels").is_none(), "empty: left out");
}

#[test]
fn a_host_ip_must_be_an_address_and_needs_a_host_port() {
    assert_problem(
        &task_yaml(&["ports: [{ container: 80, host: 80, host_ip: localhost }]"]),
        "tasks[0].ports[0].host_ip",
        &["\"localhost\" is not an IP address", "127.0.0.1"],
    );
    assert_problem(
        &task_yaml(&["ports: [{ container: 80, host_ip: 127.0.0.1 }]"]),
        "tasks[0].ports[0].host_ip",
        &["needs host"],
    );
    assert_problem(
        &task_yaml(&["ports: [{ container: 80, host: 80, host_ip: [1] }]"]),
        "tasks[0].ports[0].host_ip",
        &["expected a string"],
    );
}

#[test]
fn max_attempts_takes_unlimited_and_no_other_word() {
    let job = valid(&task_yaml(&["restart: { max_attempts: unlimited }"]));
    assert_eq!(job.tasks[0].restart.max_attempts, u32::MAX);
    assert_problem(
        &task_yaml(&["restart: { max_attempts: forever }"]),
        "tasks[0].restart.max_attempts",
        &["\"forever\" is not a whole number", "unlimited"],
    );
    assert_problem(
        &task_yaml(&["restart: { max_attempts: -1 }"]),
        "tasks[0].restart.max_attempts",
        &["out of range", "or unlimited"],
    );
    // A number stays a number when written back.
    let five = valid(&task_yaml(&["restart: { max_attempts: 5 }"]));
    let json = serde_json::to_value(&five).unwrap();
    assert_eq!(json["tasks"][0]["restart"]["max_attempts"], 5);
}

#[test]
fn a_backoff_may_start_at_100ms_and_the_default_stays_10s() {
    let job = valid(&task_yaml(&["restart: { backoff: { initial: 100ms } }"]));
    let b = job.tasks[0].restart.backoff;
    assert_eq!(b.initial, Duration::from_millis(100));
    assert_eq!(
        (b.delay(0), b.delay(1), b.delay(3)),
        (
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(800)
        )
    );
    let plain = valid(&task_yaml(&[]));
    assert_eq!(
        plain.tasks[0].restart.backoff.initial,
        Duration::from_secs(10)
    );
    assert_round_trips(&job);
}

#[test]
fn aliases_are_host_names_unique_in_the_job() {
    // Wider than task names: the names Compose files connect by carry over.
    let job = valid(&task_yaml(&["aliases: [my_db, db.internal, Web_1]"]));
    assert_eq!(job.tasks[0].aliases, ["my_db", "db.internal", "Web_1"]);
    for bad in ["-x", "a..b", "x_", "a b"] {
        assert_problem(
            &task_yaml(&[&format!("aliases: [{bad:?}]")]),
            "tasks[0].aliases[0]",
            &["not a host name", "my_db"],
        );
    }
    assert_problem(
        &task_yaml(&["aliases: [a, a]"]),
        "tasks[0].aliases[1]",
        &["already listed in tasks[0].aliases[0]"],
    );
    assert_problem(
        &task_yaml(&["aliases: [t]"]),
        "tasks[0].aliases[0]",
        &["the task's own name"],
    );
    let two = "name: job\ntasks:\n  - { name: a, image: 'b:1', aliases: [x] }\n  - { name: b, image: 'b:1', aliases: [a, x] }\n";
    let p = problems(two);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].0, "tasks[1].aliases[0]");
    assert!(p[0].1.contains("the name of tasks[0]"), "{p:?}");
    assert_eq!(p[1].0, "tasks[1].aliases[1]");
    assert!(p[1].1.contains("an alias of tasks[0]"), "{p:?}");
    let too_many: Vec<String> = (0..=MAX_ALIASES).map(|i| format!("a{i}")).collect();
    assert_problem(
        &task_yaml(&[&format!("aliases: [{}]", too_many.join(", "))]),
        "tasks[0].aliases",
        &["at most 32"],
    );
    assert_problem(
        "name: job\nnetwork: { mode: none }\ntasks:\n  - { name: t, image: 'b:1', aliases: [x] }\n",
        "tasks[0].aliases",
        &["network mode is none"],
    );
}

#[test]
fn shm_size_is_a_bounded_size() {
    assert_eq!(
        valid(&task_yaml(&["shm_size: 1Gi"])).tasks[0].shm_size,
        Some(ByteSize::gib(1))
    );
    assert_problem(
        &task_yaml(&["shm_size: 0"]),
        "tasks[0].shm_size",
        &["more than zero"],
    );
    assert_problem(
        &task_yaml(&["shm_size: 65Gi"]),
        "tasks[0].shm_size",
        &["at most", &MAX_SHM.human()],
    );
    assert_problem(
        &task_yaml(&["shm_size: lots"]),
        "tasks[0].shm_size",
        &["not a"],
    );
}

#[test]
fn labels_keep_off_orkestrators_keys_and_are_bounded() {
    assert_problem(
        &task_yaml(&["labels: { orkestrator.job: x }"]),
        "tasks[0].labels.orkestrator.job",
        &["kept for Orkestrator's own labels", "com.example.job"],
    );
    assert_problem(
        &task_yaml(&["labels: { Orkestrator-x: x }"]),
        "tasks[0].labels.Orkestrator-x",
        &["kept for Orkestrator"],
    );
    assert_problem(
        &task_yaml(&["labels: { \"a b\": x }"]),
        "tasks[0].labels.a b",
        &["not a label key"],
    );
    assert_problem(
        &task_yaml(&["labels: { a: [x] }"]),
        "tasks[0].labels.a",
        &["expected a string"],
    );
    assert_problem(
        &task_yaml(&["labels: [a]"]),
        "tasks[0].labels",
        &["container labels (a mapping"],
    );
    let many: Vec<String> = (0..=MAX_TASK_LABELS).map(|i| format!("k{i}: v")).collect();
    assert_problem(
        &task_yaml(&[&format!("labels: {{ {} }}", many.join(", "))]),
        "tasks[0].labels",
        &["65 labels; at most 64"],
    );
    let big = "x".repeat(1000);
    let heavy: Vec<String> = (0..20).map(|i| format!("k{i}: {big}")).collect();
    assert_problem(
        &task_yaml(&[&format!("labels: {{ {} }}", heavy.join(", "))]),
        "tasks[0].labels",
        &["bytes in all"],
    );
    // YAML's plain scalars stay as written.
    let job = valid(&task_yaml(&["labels: { a: yes, b: 0x10, c: 3.10 }"]));
    assert_eq!(
        job.tasks[0].labels.values().collect::<Vec<_>>(),
        ["yes", "0x10", "3.10"]
    );
}

#[test]
fn extra_hosts_map_dns_names_to_addresses() {
    assert_problem(
        &task_yaml(&["extra_hosts: { db: 10.0.0.300 }"]),
        "tasks[0].extra_hosts.db",
        &["\"10.0.0.300\" is not an IP address", "host-gateway"],
    );
    assert_problem(
        &task_yaml(&["extra_hosts: { \"-bad.name\": 10.0.0.1 }"]),
        "tasks[0].extra_hosts.-bad.name",
        &["is not a host name", "db.local"],
    );
    assert_problem(
        &task_yaml(&["extra_hosts: { \"a:b\": 10.0.0.1 }"]),
        "tasks[0].extra_hosts.a:b",
        &["is not a host name"],
    );
    assert_problem(
        &task_yaml(&["extra_hosts: { db: }"]),
        "tasks[0].extra_hosts.db",
        &["a value is missing"],
    );
}

#[test]
fn an_image_health_check_is_image_true_alone() {
    let job = valid(&task_yaml(&["health_check: { image: true }"]));
    let hc = job.tasks[0].health_check.as_ref().unwrap();
    assert_eq!(hc.probe, Probe::Image);
    assert_eq!(hc.probe.to_string(), "the image's HEALTHCHECK");
    assert_problem(
        &task_yaml(&["health_check: { image: false }"]),
        "tasks[0].health_check.image",
        &["write image: true"],
    );
    assert_problem(
        &task_yaml(&["health_check: { image: \"yes\" }"]),
        "tasks[0].health_check.image",
        &["not true or false"],
    );
    assert_problem(
        &task_yaml(&["health_check: { image: true, tcp: { port: 80 } }"]),
        "tasks[0].health_check",
        &["exactly one of http, tcp, exec or image"],
    );
    assert_problem(
        &task_yaml(&["health_check: { imag: true }"]),
        "tasks[0].health_check.imag",
        &["did you mean image?"],
    );
    // A task that runs no network may still use its image's own check.
    valid(
        "name: job\nnetwork: { mode: none }\ntasks:\n  - { name: t, image: 'b:1', health_check: { image: true } }\n",
    );
}

#[test]
fn unknown_fields_name_the_new_ones() {
    assert_problem(
        &task_yaml(&["shm: 64Mi"]),
        "tasks[0].shm",
        &["did you mean shm_size?"],
    );
    assert_problem(
        &task_yaml(&["ports: [{ container: 80, host: 80, hostip: 127.0.0.1 }]"]),
        "tasks[0].ports[0].hostip",
        &["did you mean host_ip?"],
    );
}
