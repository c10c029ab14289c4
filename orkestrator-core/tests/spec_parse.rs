//! Job files: the three formats, syntax errors with their location, strict fields, the example
//! files shipped in `examples/jobs/`, and rendering a job back to a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orkestrator_core::Error;
use orkestrator_core::spec::{
    Condition, ConstraintOp, Format, Job, MAX_SPEC_BYTES, NetworkMode, PortMapping, Probe, Problem,
    Protocol, RestartMode, load_job_file, parse_job,
};
use orkestrator_core::units::{ByteSize, Cpu};

const FORMATS: [Format; 3] = [Format::Yaml, Format::Toml, Format::Json];

/// The job file shape from the issue, verbatim.
const ISSUE_YAML: &str = r#"name: web
tasks:
  - name: server
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "8080"]
    env: { MODE: demo }
    ports: [{ container: 8080, host: 18080 }]
    resources: { cpu: 500m, memory: 64Mi, disk: 100Mi }
    restart: { policy: on-failure, max_attempts: 5, backoff: { initial: 1s, max: 1m } }
"#;

/// The same job in TOML.
const ISSUE_TOML: &str = r#"name = "web"

[[tasks]]
name = "server"
image = "busybox:1.36"
command = ["httpd", "-f", "-p", "8080"]
env = { MODE = "demo" }
ports = [{ container = 8080, host = 18080 }]
resources = { cpu = "500m", memory = "64Mi", disk = "100Mi" }
restart = { policy = "on-failure", max_attempts = 5, backoff = { initial = "1s", max = "1m" } }
"#;

/// The same job in JSON.
const ISSUE_JSON: &str = r#"{
  "name": "web",
  "tasks": [{
    "name": "server",
    "image": "busybox:1.36",
    "command": ["httpd", "-f", "-p", "8080"],
    "env": { "MODE": "demo" },
    "ports": [{ "container": 8080, "host": 18080 }],
    "resources": { "cpu": "500m", "memory": "64Mi", "disk": "100Mi" },
    "restart": { "policy": "on-failure", "max_attempts": 5, "backoff": { "initial": "1s", "max": "1m" } }
  }]
}"#;

/// A minimal valid job in `format`.
fn minimal(format: Format) -> &'static str {
    match format {
        Format::Yaml => "name: web\ntasks:\n  - name: server\n    image: busybox:1.36\n",
        Format::Toml => "name = \"web\"\n[[tasks]]\nname = \"server\"\nimage = \"busybox:1.36\"\n",
        Format::Json => {
            r#"{"name": "web", "tasks": [{"name": "server", "image": "busybox:1.36"}]}"#
        }
    }
}

fn parse_ok(text: &str, format: Format) -> Job {
    parse_job(text, format).unwrap_or_else(|e| panic!("{format} should parse: {e}\n{text}"))
}

/// The parts of a syntax error; panics on any other result.
fn syntax(text: &str, format: Format) -> (Option<usize>, Option<usize>, String) {
    match parse_job(text, format) {
        Err(Error::Syntax {
            format: f,
            line,
            column,
            message,
        }) => {
            assert_eq!(f, format);
            (line, column, message)
        }
        other => panic!("expected a {format} syntax error, got {other:?}\n{text}"),
    }
}

/// The problems of a file that is well-formed but wrong; panics on any other result.
fn invalid(text: &str, format: Format) -> Vec<Problem> {
    match parse_job(text, format) {
        Err(Error::Invalid(p)) => p.0,
        other => panic!("expected {format} problems, got {other:?}\n{text}"),
    }
}

fn assert_issue_job(job: &Job) {
    assert_eq!(job.name.as_str(), "web");
    assert_eq!(job.tasks.len(), 1);
    let t = &job.tasks[0];
    assert_eq!(t.name.as_str(), "server");
    assert_eq!(t.image, "busybox:1.36");
    assert_eq!(t.command, ["httpd", "-f", "-p", "8080"]);
    assert_eq!(t.env.len(), 1);
    assert_eq!(t.env["MODE"], "demo");
    assert_eq!(
        t.ports,
        [PortMapping {
            container: 8080,
            host: Some(18080),
            protocol: Protocol::Tcp,
            host_ip: None,
        }]
    );
    assert_eq!(t.resources.cpu, Cpu::from_millis(500));
    assert_eq!(t.resources.memory, ByteSize::mib(64));
    assert_eq!(t.resources.disk, ByteSize::mib(100));
    assert_eq!(t.restart.policy, RestartMode::OnFailure);
    assert_eq!(t.restart.max_attempts, 5);
    assert_eq!(t.restart.backoff.initial, Duration::from_secs(1));
    assert_eq!(t.restart.backoff.max, Duration::from_secs(60));
    // Not written: the default.
    assert_eq!(t.restart.backoff.reset_after, Duration::from_secs(600));
}

#[test]
fn the_issue_example_parses_to_the_expected_values() {
    assert_issue_job(&parse_ok(ISSUE_YAML, Format::Yaml));
}

#[test]
fn the_issue_example_reads_the_same_in_toml_and_json() {
    let yaml = parse_ok(ISSUE_YAML, Format::Yaml);
    let toml = parse_ok(ISSUE_TOML, Format::Toml);
    let json = parse_ok(ISSUE_JSON, Format::Json);
    assert_issue_job(&toml);
    assert_issue_job(&json);
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
}

#[test]
fn yaml_reads_json_too() {
    // Standard input is read as YAML, which is a superset of JSON.
    assert_issue_job(&parse_ok(ISSUE_JSON, Format::Yaml));
}

#[test]
fn omitted_fields_take_their_defaults() {
    for format in FORMATS {
        let job = parse_ok(minimal(format), format);
        let t = &job.tasks[0];
        assert!(t.command.is_empty());
        assert!(t.env.is_empty());
        assert!(t.ports.is_empty());
        assert_eq!(t.resources.cpu, Cpu::from_millis(100));
        assert_eq!(t.resources.memory, ByteSize::mib(128));
        assert_eq!(t.resources.disk, ByteSize::mib(256));
        assert_eq!(t.restart.policy, RestartMode::OnFailure);
        assert_eq!(t.restart.max_attempts, 5);
        assert_eq!(t.restart.backoff.initial, Duration::from_secs(10));
        assert_eq!(t.restart.backoff.max, Duration::from_secs(300));
        assert_eq!(t.restart.backoff.reset_after, Duration::from_secs(600));
    }
}

#[test]
fn a_port_defaults_to_tcp_and_no_host_port() {
    let job = parse_ok(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    ports: [{container: 53, protocol: udp}, {container: 80}]\n",
        Format::Yaml,
    );
    assert_eq!(job.tasks[0].ports[0].protocol, Protocol::Udp);
    assert_eq!(job.tasks[0].ports[0].host, None);
    assert_eq!(job.tasks[0].ports[1].protocol, Protocol::Tcp);
    assert_eq!(job.host_ports().count(), 0);
}

#[test]
fn a_backoff_with_only_a_long_initial_delay_raises_the_default_max() {
    let job = parse_ok(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    restart: {backoff: {initial: 10m}}\n",
        Format::Yaml,
    );
    let b = job.tasks[0].restart.backoff;
    assert_eq!(b.initial, Duration::from_secs(600));
    assert_eq!(b.max, Duration::from_secs(600));
}

// ---------------------------------------------------------------------------------------------
// Syntax errors carry a line and a column in every format.

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let text = "name: web\ntasks:\n  - name: a\n    image: [busybox:1.36\n";
    let (line, column, message) = syntax(text, Format::Yaml);
    assert_eq!(line, Some(4));
    assert_eq!(column, Some(12));
    assert!(!message.is_empty());
    // The location is reported once, not repeated inside the message.
    assert!(!message.contains("line 4"), "{message}");
}

#[test]
fn yaml_tab_indentation_is_located() {
    let text = "name: web\ntasks:\n  - name: a\n\timage: x:1\n";
    let (line, column, message) = syntax(text, Format::Yaml);
    // The scanner notices the tab while reading the previous line's value on.
    assert!(matches!(line, Some(3 | 4)), "{line:?}");
    assert!(column.is_some());
    assert!(message.contains("tab"), "{message}");
}

#[test]
fn yaml_wrong_shape_is_located() {
    // A value of the wrong type is a problem of the file like any other (issue 18): its path,
    // its line, what was expected and what was found.
    let p = invalid("name: web\ntasks: 5\n", Format::Yaml);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].path.as_str(), p[0].line), ("tasks", Some(2)));
    assert_eq!(p[0].message, "expected a list of tasks, found a number");
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let text = "name = \"web\"\n[[tasks]]\nname = \"a\"\nimage = busybox:1.36\n";
    let (line, column, message) = syntax(text, Format::Toml);
    assert_eq!(line, Some(4));
    assert_eq!(column, Some(9));
    assert!(message.contains("quoted"), "{message}");
}

#[test]
fn toml_unclosed_array_is_located() {
    let (line, column, _) = syntax("name = \"web\"\ntasks = [\n", Format::Toml);
    assert_eq!(line, Some(2));
    assert!(column.is_some());
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let text = "{\n  \"name\": \"web\",\n  \"tasks\": [ { \"name\": \"a\", } ]\n}";
    let (line, column, message) = syntax(text, Format::Json);
    assert_eq!(line, Some(3));
    // The `}` after the trailing comma.
    assert_eq!(column, Some(29));
    assert_eq!(text.lines().nth(2).unwrap().chars().nth(28), Some('}'));
    assert_eq!(message, "trailing comma");
}

#[test]
fn json_columns_count_characters_not_bytes() {
    // `é` is two bytes in UTF-8; the column points at the offending `}` as a person counts.
    let text = "{\"name\": \"éé\", \"tasks\": [1}";
    let (line, column, message) = syntax(text, Format::Json);
    assert_eq!(line, Some(1));
    assert_eq!(column, Some(27));
    assert_eq!(text.chars().nth(26), Some('}'));
    assert!(!message.contains("Raw"), "{message}");
}

#[test]
fn json_errors_at_the_end_of_the_input_are_located_from_column_one() {
    let (line, column, _) = syntax("", Format::Json);
    assert_eq!((line, column), (Some(1), Some(1)));
    let (line, column, _) = syntax("{\n", Format::Json);
    assert_eq!(line, Some(2));
    assert_eq!(column, Some(1));
}

#[test]
fn syntax_errors_display_their_location() {
    let e = parse_job("name = \"web\"\n[[tasks]]\nimage = busybox\n", Format::Toml).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with("TOML error at line 3, column 9: "),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Strictness: unknown fields are problems that name the field, in every format and at every level
// (all at once with the file's other problems since issue 18, no longer one syntax error each).

/// The minimal job with `extra` added at `level` (job, task, port, resources, restart, backoff,
/// constraint, health_check, http, tcp).
fn with_unknown_field(format: Format, level: &str) -> String {
    match (format, level) {
        (Format::Yaml, "constraint") => {
            "name: a\nconstraints: [{label: z, equals: a, value: b}]\ntasks:\n  - name: b\n    image: c:1\n".into()
        }
        (Format::Yaml, "health_check") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    health_check: {tcp: {port: 1}, grpc: {port: 2}}\n".into()
        }
        (Format::Yaml, "http") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    health_check: {http: {port: 1, paht: /x}}\n".into()
        }
        (Format::Yaml, "tcp") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    health_check: {tcp: {port: 1, host: x}}\n".into()
        }
        (Format::Toml, "constraint") => {
            "name = 'a'\nconstraints = [{label = 'z', equals = 'a', value = 'b'}]\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n".into()
        }
        (Format::Toml, "health_check") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n[tasks.health_check]\ntcp = {port = 1}\ngrpc = {port = 2}\n".into()
        }
        (Format::Toml, "http") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n[tasks.health_check.http]\nport = 1\npaht = '/x'\n".into()
        }
        (Format::Toml, "tcp") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nhealth_check = {tcp = {port = 1, host = 'x'}}\n".into()
        }
        (Format::Json, "constraint") => {
            r#"{"name": "a", "constraints": [{"label": "z", "equals": "a", "value": "b"}], "tasks": [{"name": "b", "image": "c:1"}]}"#.into()
        }
        (Format::Json, "health_check") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"tcp": {"port": 1}, "grpc": {"port": 2}}}]}"#.into()
        }
        (Format::Json, "http") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"http": {"port": 1, "paht": "/x"}}}]}"#.into()
        }
        (Format::Json, "tcp") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"tcp": {"port": 1, "host": "x"}}}]}"#.into()
        }
        (Format::Yaml, "job") => "name: a\nreplicas: 3\ntasks:\n  - name: b\n    image: c:1\n".into(),
        (Format::Yaml, "task") => "name: a\ntasks:\n  - name: b\n    image: c:1\n    replicas: 3\n".into(),
        (Format::Yaml, "port") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    ports: [{container: 1, hostt: 2}]\n".into()
        }
        (Format::Yaml, "resources") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    resources: {gpu: 1}\n".into()
        }
        (Format::Yaml, "restart") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    restart: {attempts: 1}\n".into()
        }
        (Format::Yaml, "backoff") => {
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    restart: {backoff: {jitter: 1s}}\n"
                .into()
        }
        (Format::Toml, "job") => {
            "name = 'a'\nreplicas = 3\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n".into()
        }
        (Format::Toml, "task") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nreplicas = 3\n".into()
        }
        (Format::Toml, "port") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nports = [{container = 1, hostt = 2}]\n".into()
        }
        (Format::Toml, "resources") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n[tasks.resources]\ngpu = 1\n".into()
        }
        (Format::Toml, "restart") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n[tasks.restart]\nattempts = 1\n".into()
        }
        (Format::Toml, "backoff") => {
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n[tasks.restart.backoff]\njitter = '1s'\n".into()
        }
        (Format::Json, "job") => {
            r#"{"name": "a", "replicas": 3, "tasks": [{"name": "b", "image": "c:1"}]}"#.into()
        }
        (Format::Json, "task") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "replicas": 3}]}"#.into()
        }
        (Format::Json, "port") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "ports": [{"container": 1, "hostt": 2}]}]}"#.into()
        }
        (Format::Json, "resources") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "resources": {"gpu": 1}}]}"#.into()
        }
        (Format::Json, "restart") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "restart": {"attempts": 1}}]}"#.into()
        }
        (Format::Json, "backoff") => {
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "restart": {"backoff": {"jitter": "1s"}}}]}"#.into()
        }
        _ => unreachable!(),
    }
}

#[test]
fn unknown_fields_are_rejected_naming_the_field_in_every_format_and_level() {
    let cases = [
        ("job", "replicas", "tasks"),
        ("task", "replicas", "image"),
        ("port", "hostt", "host"),
        ("resources", "gpu", "memory"),
        ("restart", "attempts", "max_attempts"),
        ("backoff", "jitter", "reset_after"),
        ("constraint", "value", "not_equals"),
        ("health_check", "grpc", "interval"),
        ("http", "paht", "path"),
        ("tcp", "host", "port"),
    ];
    for format in FORMATS {
        for (level, field, a_known_field) in cases {
            let text = with_unknown_field(format, level);
            let p = invalid(&text, format);
            let unknown = p
                .iter()
                .find(|p| p.path.ends_with(&format!(".{field}")) || p.path == field)
                .unwrap_or_else(|| panic!("{format} {level}: no {field} in {p:?}"));
            let message = &unknown.message;
            assert!(
                message.contains(&format!("unknown field `{field}`")),
                "{format} {level}: {message}"
            );
            // The message lists the fields that are allowed there.
            assert!(
                message.contains(a_known_field),
                "{format} {level}: {message}"
            );
            assert!(unknown.line.is_some(), "{format} {level}");
        }
    }
}

#[test]
fn a_wrong_shape_names_the_part_not_a_rust_type() {
    // Regression: constraints and health checks of the wrong shape were described by our internal
    // type names ("expected struct RawHealthCheck").
    let cases = [
        (
            r#"{"name": "a", "constraints": ["zone=a"], "tasks": [{"name": "b", "image": "c:1"}]}"#,
            Format::Json,
            "a constraint",
        ),
        (
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": "/healthz"}]}"#,
            Format::Json,
            "a health check",
        ),
        (
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"http": 8080}}]}"#,
            Format::Json,
            "an http check",
        ),
        (
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nhealth_check = { tcp = 5432 }\n",
            Format::Toml,
            "a tcp check",
        ),
        (
            "name = 'a'\nconstraints = ['zone=a']\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n",
            Format::Toml,
            "a constraint",
        ),
    ];
    for (text, format, part) in cases {
        let p = invalid(text, format);
        assert_eq!(p.len(), 1, "{format}: {p:?}");
        let message = &p[0].message;
        assert!(p[0].line.is_some(), "{format}: {text}");
        assert!(!message.contains("Raw"), "{format}: {message}");
        assert!(
            message.contains(part),
            "{format}: {part:?} not in {message}"
        );
    }
    // YAML says what it expected instead.
    let p = invalid(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    health_check: /healthz\n",
        Format::Yaml,
    );
    assert_eq!(
        (p[0].path.as_str(), p[0].line),
        ("tasks[0].health_check", Some(5))
    );
    assert!(p[0].message.contains("a health check"), "{p:?}");
}

/// For every part of a job file that is a mapping: the part, a JSON job that writes it as a list,
/// the same in TOML (none for the job itself: a TOML file is always a table) and what the error
/// calls the part.
const LISTS_FOR_MAPPINGS: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "job",
        r#"["a", [{"name": "b", "image": "c:1"}]]"#,
        None,
        "a job (a mapping with name and tasks)",
    ),
    (
        "task",
        r#"{"name": "a", "tasks": [["b", "c:1"]]}"#,
        Some("name = 'a'\ntasks = [['b', 'c:1']]\n"),
        "a task (a mapping with name, image, ...)",
    ),
    (
        "resources",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "resources": [1, 2]}]}"#,
        Some("name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nresources = [1, 2]\n"),
        "resources (a mapping with cpu, memory, disk, pids)",
    ),
    (
        "restart",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "restart": ["never", 0]}]}"#,
        Some("name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nrestart = ['never', 0]\n"),
        "a restart policy (a mapping with policy, max_attempts, backoff)",
    ),
    (
        "backoff",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "restart": {"backoff": ["1s", "1m"]}}]}"#,
        Some(
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nrestart = { backoff = ['1s', '1m'] }\n",
        ),
        "a backoff (a mapping with initial, max, reset_after)",
    ),
    (
        "health_check",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": [null, {"port": 80}]}]}"#,
        Some("name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nhealth_check = [{ port = 80 }]\n"),
        "a health check (a mapping with http, tcp, exec or image, and interval, timeout, failures, start_period)",
    ),
    (
        "http",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"http": [8080, "/healthz"]}}]}"#,
        Some(
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nhealth_check = { http = [8080, '/healthz'] }\n",
        ),
        "an http check (a mapping with port and path)",
    ),
    (
        "tcp",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"tcp": [5432]}}]}"#,
        Some("name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nhealth_check = { tcp = [5432] }\n"),
        "a tcp check (a mapping with port)",
    ),
    (
        "constraint",
        r#"{"name": "a", "constraints": [["zone", "a"]], "tasks": [{"name": "b", "image": "c:1"}]}"#,
        Some("name = 'a'\nconstraints = [['zone', 'a']]\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n"),
        "a constraint (a mapping with label and equals or not_equals)",
    ),
    (
        "port",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "ports": [[8080, 18080]]}]}"#,
        Some("name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nports = [[8080, 18080]]\n"),
        "a port (a mapping with container, host, protocol, host_ip)",
    ),
    (
        "env",
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "env": [["A", "1"]]}]}"#,
        Some("name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nenv = [['A', '1']]\n"),
        "environment variables (a mapping of names to values)",
    ),
];

#[test]
fn a_list_where_a_mapping_belongs_is_refused_naming_the_part_in_every_format() {
    // Regression: JSON and TOML read a list as the fields of a mapping in order, so
    // `resources: [1, 2]` ran with cpu 1 and memory 2 bytes, and `tasks: [["b", "c:1"]]` ran
    // a task named b. YAML reads the JSON texts too, and must say the same.
    for (part, json, toml, what) in LISTS_FOR_MAPPINGS {
        let texts = [(*json, Format::Json), (*json, Format::Yaml)]
            .into_iter()
            .chain(toml.map(|t| (t, Format::Toml)));
        for (text, format) in texts {
            let p = invalid(text, format);
            let Some(wrong) = p.iter().find(|p| p.message.contains(what)) else {
                panic!("{format} {part}: {what:?} not in {p:?}");
            };
            let message = &wrong.message;
            assert!(wrong.line.is_some(), "{format} {part}: {message}");
            assert!(
                message.contains(&format!("expected {what}")),
                "{format} {part}: {what:?} not in {message:?}"
            );
            assert!(
                message.contains("found a list"),
                "{format} {part}: {message}"
            );
            assert!(!message.contains("Raw"), "{format} {part}: {message}");
        }
    }
}

#[test]
fn a_list_for_resources_gives_one_plain_message() {
    let text = r#"{"name": "web", "tasks": [{"name": "t", "image": "x:1", "resources": [1, 2]}]}"#;
    let one = |text: &str, format: Format| {
        let p = invalid(text, format);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "tasks[0].resources");
        assert_eq!(
            p[0].message,
            "expected resources (a mapping with cpu, memory, disk, pids), found a list"
        );
        p[0].line
    };
    assert_eq!(one(text, Format::Json), Some(1));
    let text = "name = 'web'\n[[tasks]]\nname = 't'\nimage = 'x:1'\nresources = ['1', '64Mi']\n";
    assert_eq!(one(text, Format::Toml), Some(5));
}

#[test]
fn the_same_parts_written_as_mappings_still_parse() {
    // The counterpart of every list above, so that refusing lists refuses nothing else.
    let json = r#"{"name": "a", "constraints": [{"label": "zone", "equals": "a"}], "tasks": [{
        "name": "b", "image": "c:1", "env": {"A": "1"}, "ports": [{"container": 8080, "host": 18080}],
        "resources": {"cpu": 1, "memory": "64Mi"}, "restart": {"policy": "never", "backoff": {"initial": "1s"}},
        "health_check": {"tcp": {"port": 8080}}}]}"#;
    let toml = "name = 'a'\nconstraints = [{ label = 'zone', equals = 'a' }]\n[[tasks]]\nname = 'b'\n\
        image = 'c:1'\nenv = { A = '1' }\nports = [{ container = 8080, host = 18080 }]\n\
        resources = { cpu = 1, memory = '64Mi' }\nrestart = { policy = 'never', backoff = { initial = '1s' } }\n\
        health_check = { tcp = { port = 8080 } }\n";
    let from_json = parse_ok(json, Format::Json);
    assert_eq!(from_json, parse_ok(toml, Format::Toml));
    assert_eq!(from_json, parse_ok(json, Format::Yaml));
    let t = &from_json.tasks[0];
    assert_eq!(t.env["A"], "1");
    assert_eq!(t.ports[0].host, Some(18080));
    assert_eq!(t.resources.cpu, Cpu::from_cores(1));
    assert_eq!(t.restart.policy, RestartMode::Never);
    assert_eq!(t.restart.backoff.initial, Duration::from_secs(1));
    assert_eq!(
        t.health_check.as_ref().map(|h| &h.probe),
        Some(&Probe::Tcp { port: 8080 })
    );
}

#[test]
fn a_job_read_as_a_value_refuses_lists_for_mappings_too() {
    // `Job` itself (as the manager's store and the API read it) has the file's shape.
    for (part, json, _, what) in LISTS_FOR_MAPPINGS {
        let e = serde_json::from_str::<Job>(json).unwrap_err();
        assert!(e.to_string().contains(what), "{part}: {e}");
    }
}

#[test]
fn an_unknown_field_is_located_at_its_line() {
    for format in [Format::Yaml, Format::Toml] {
        let p = invalid(&with_unknown_field(format, "task"), format);
        assert_eq!(p.len(), 1, "{format}: {p:?}");
        assert_eq!(p[0].path, "tasks[0].replicas", "{format}");
        assert_eq!(p[0].line, Some(5), "{format}");
    }
}

#[test]
fn duplicate_keys_are_errors_in_every_format() {
    let (line, _, message) = syntax(
        "name: a\nname: b\ntasks:\n  - name: b\n    image: c:1\n",
        Format::Yaml,
    );
    assert_eq!(line, Some(2));
    assert!(message.contains("duplicate"), "{message}");
    assert!(!message.contains("DuplicateKeyPolicy"), "{message}");
    let (_, _, message) = syntax(
        "name = 'a'\nname = 'b'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n",
        Format::Toml,
    );
    assert!(message.contains("duplicate"), "{message}");
    let p = invalid(
        r#"{"name": "a", "name": "b", "tasks": [{"name": "b", "image": "c:1"}]}"#,
        Format::Json,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "name");
    assert!(p[0].message.contains("written twice"), "{p:?}");
}

#[test]
fn an_empty_file_says_so() {
    for text in ["", "\n", "# just a comment\n", "~\n"] {
        let (line, column, message) = syntax(text, Format::Yaml);
        assert_eq!((line, column), (Some(1), Some(1)), "{text:?}");
        assert!(message.contains("empty"), "{message}");
    }
    // An empty TOML file or JSON object is well-formed: validation says what is missing.
    for (text, format) in [("", Format::Toml), ("{}", Format::Json)] {
        let Err(Error::Invalid(p)) = parse_job(text, format) else {
            panic!("{format}: expected problems");
        };
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["name", "tasks"]);
    }
}

#[test]
fn yaml_holds_one_document() {
    let text = "name: a\ntasks: [{name: b, image: 'c:1'}]\n---\nname: b\n";
    let (line, _, message) = syntax(text, Format::Yaml);
    assert_eq!(line, Some(4));
    assert!(message.contains("one YAML document"), "{message}");
}

#[test]
fn a_null_yaml_value_asks_for_an_empty_string() {
    let text = "name: a\ntasks:\n  - name: b\n    image: c:1\n    env:\n      A:\n";
    let p = invalid(text, Format::Yaml);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].path.as_str(), p[0].line), ("tasks[0].env.A", Some(6)));
    assert!(p[0].message.contains("\"\""), "{p:?}");
    assert!(!p[0].message.contains("Option<"), "{p:?}");
}

#[test]
fn a_byte_order_mark_is_ignored() {
    for format in FORMATS {
        let text = format!("\u{feff}{}", minimal(format));
        parse_ok(&text, format);
    }
}

#[test]
fn files_over_the_size_limit_are_refused() {
    let mut text = minimal(Format::Yaml).to_owned();
    text.push_str(&"#".repeat(MAX_SPEC_BYTES));
    let (line, column, message) = syntax(&text, Format::Yaml);
    assert_eq!((line, column), (None, None));
    assert!(message.contains("limit"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Environment values are strings, kept exactly as written.

#[test]
fn yaml_env_values_are_kept_as_written() {
    let text = "name: a\ntasks:\n  - name: b\n    image: c:1\n    env:\n      A: yes\n      B: 3.10\n      C: 0x10\n      D: 0755\n      E: 1_000\n      F: \"\"\n      G: 8080\n      H: true\n      I: 1e3\n";
    let job = parse_ok(text, Format::Yaml);
    let env = &job.tasks[0].env;
    let want = [
        ("A", "yes"),
        ("B", "3.10"),
        ("C", "0x10"),
        ("D", "0755"),
        ("E", "1_000"),
        ("F", ""),
        ("G", "8080"),
        ("H", "true"),
        ("I", "1e3"),
    ];
    for (k, v) in want {
        assert_eq!(env[k], v, "{k}");
    }
}

#[test]
fn typed_env_values_become_strings_in_toml_and_json() {
    let job = parse_ok(
        "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nenv = { PORT = 8080, DEBUG = true, NAME = 'x' }\n",
        Format::Toml,
    );
    let env = &job.tasks[0].env;
    assert_eq!(
        (
            env["PORT"].as_str(),
            env["DEBUG"].as_str(),
            env["NAME"].as_str()
        ),
        ("8080", "true", "x")
    );
    let job = parse_ok(
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "env": {"PORT": 8080, "DEBUG": false}}]}"#,
        Format::Json,
    );
    let env = &job.tasks[0].env;
    assert_eq!(
        (env["PORT"].as_str(), env["DEBUG"].as_str()),
        ("8080", "false")
    );
}

#[test]
fn floating_point_env_values_must_be_quoted_in_toml_and_json() {
    for (text, format) in [
        (
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\nenv = { VERSION = 3.10 }\n",
            Format::Toml,
        ),
        (
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "env": {"VERSION": 3.10}}]}"#,
            Format::Json,
        ),
    ] {
        let Err(Error::Invalid(p)) = parse_job(text, format) else {
            panic!("{format}: expected problems");
        };
        assert_eq!(p.len(), 1);
        assert_eq!(p.0[0].path, "tasks[0].env.VERSION");
        assert!(p.0[0].message.contains("quote"), "{}", p.0[0].message);
    }
}

// ---------------------------------------------------------------------------------------------
// Formats by extension.

#[test]
fn the_format_follows_the_extension() {
    let cases = [
        ("job.yaml", Format::Yaml),
        ("job.yml", Format::Yaml),
        ("dir/job.YAML", Format::Yaml),
        ("job.toml", Format::Toml),
        ("job.json", Format::Json),
        ("JOB.JSON", Format::Json),
        ("-", Format::Yaml),
    ];
    for (path, want) in cases {
        assert_eq!(Format::from_path(Path::new(path)).unwrap(), want, "{path}");
    }
    for path in ["job", "job.txt", "job.yaml.bak", ".yaml"] {
        let e = Format::from_path(Path::new(path)).unwrap_err();
        assert!(matches!(e, Error::UnknownFormat { .. }), "{path}");
        let shown = e.to_string();
        assert!(shown.contains(".yaml") && shown.contains(".toml") && shown.contains(".json"));
    }
}

#[test]
fn loading_a_missing_file_names_it() {
    let e = load_job_file(Path::new("/nonexistent/job.yaml")).unwrap_err();
    assert!(matches!(e, Error::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/job.yaml"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Rendering.

#[test]
fn rendering_round_trips_the_issue_example_in_every_format() {
    let job = parse_ok(ISSUE_YAML, Format::Yaml);
    for format in FORMATS {
        let text = format.render(&job).unwrap();
        assert_eq!(parse_ok(&text, format), job, "{format}:\n{text}");
    }
}

#[test]
fn rendering_writes_human_units() {
    let job = parse_ok(ISSUE_YAML, Format::Yaml);
    let yaml = Format::Yaml.render(&job).unwrap();
    for needle in ["500m", "64Mi", "100Mi", "on-failure", "1s", "1m", "10m"] {
        assert!(yaml.contains(needle), "{needle} not in\n{yaml}");
    }
}

// ---------------------------------------------------------------------------------------------
// The example files.

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs")
}

/// The job files directly in `dir`, sorted.
fn job_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "toml" | "json")
                )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_job_file_is_valid() {
    let files = job_files(&examples_dir());
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    for expected in [
        "hello.yaml",
        "web.yaml",
        "batch.toml",
        "pair.json",
        "replicas.yaml",
        "together.yaml",
        "zoned.toml",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for file in &files {
        let job = load_job_file(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Each example renders and reads back in every format.
        for format in FORMATS {
            let text = format.render(&job).unwrap();
            assert_eq!(parse_ok(&text, format), job, "{}", file.display());
        }
    }
}

#[test]
fn every_invalid_example_is_invalid() {
    let files = job_files(&examples_dir().join("invalid"));
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        match load_job_file(file) {
            Err(Error::Invalid(p)) => assert!(!p.is_empty()),
            Err(Error::Syntax { line, column, .. }) => {
                assert!(line.is_some() && column.is_some(), "{}", file.display())
            }
            other => panic!("{}: expected invalid, got {other:?}", file.display()),
        }
    }
}

#[test]
fn the_examples_say_what_the_docs_promise() {
    let dir = examples_dir();
    let hello = load_job_file(&dir.join("hello.yaml")).unwrap();
    assert_eq!(hello.tasks[0].image, "orkestrator/busybox:latest");
    let web = load_job_file(&dir.join("web.yaml")).unwrap();
    assert_eq!(web.tasks[0].command[..2], ["sh", "-c"]);
    assert!(web.tasks[0].command[2].contains("httpd -p 8080"));
    assert_eq!(
        web.host_ports().collect::<Vec<_>>(),
        [(18080, Protocol::Tcp)]
    );
    let batch = load_job_file(&dir.join("batch.toml")).unwrap();
    assert_eq!(batch.tasks[0].restart.policy, RestartMode::Never);
    assert_eq!(batch.tasks[0].resources.cpu, Cpu::from_millis(250));
    let pair = load_job_file(&dir.join("pair.json")).unwrap();
    assert_eq!(pair.tasks.len(), 2);

    // Three instances of the busybox httpd, each checked over HTTP, that stop at once on SIGTERM
    // and are restarted whatever their exit code once a failing check has stopped them.
    let replicas = load_job_file(&dir.join("replicas.yaml")).unwrap();
    assert_eq!(replicas.count, 3);
    let server = &replicas.tasks[0];
    assert_eq!(server.image, "orkestrator/busybox:latest");
    assert_eq!(server.command[..2], ["sh", "-c"]);
    for needle in ["httpd -p 8080", "trap 'exit 0' TERM"] {
        assert!(server.command[2].contains(needle), "{needle}");
    }
    let check = server.health_check.as_ref().unwrap();
    assert_eq!(
        check.probe,
        Probe::Http {
            port: 8080,
            path: "/healthz".into()
        }
    );
    assert!(server.command[2].contains("/tmp/healthz"));
    assert!(check.timeout <= check.interval);
    assert_eq!(server.restart.policy, RestartMode::Always);
    // No host port, so that instances can share a worker.
    assert_eq!(replicas.host_ports().count(), 0);

    let zoned = load_job_file(&dir.join("zoned.toml")).unwrap();
    assert_eq!(zoned.count, 2);
    let shown: Vec<String> = zoned.constraints.iter().map(|c| c.to_string()).collect();
    assert_eq!(shown, ["zone=a", "disk!=hdd"]);

    // Each invalid example fails for the reason its name gives.
    let invalid = dir.join("invalid");
    let problems = |file: &str| match load_job_file(&invalid.join(file)) {
        Err(Error::Invalid(p)) => p
            .iter()
            .map(|p| (p.path.clone(), p.message.clone()))
            .collect::<Vec<_>>(),
        other => panic!("{file}: {other:?}"),
    };
    let p = problems("no-tag.yaml");
    assert_eq!(p[0].0, "tasks[0].image");
    assert!(p[0].1.contains("busybox:latest"), "{}", p[0].1);
    let paths = |file: &str| problems(file).into_iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(
        paths("missing-fields.yaml"),
        ["name", "tasks[0].name", "tasks[0].image"]
    );
    assert_eq!(paths("no-tasks.toml"), ["tasks"]);
    assert_eq!(paths("duplicate-names.yaml"), ["name", "tasks[1].name"]);
    assert_eq!(
        paths("bad-resources.json"),
        [
            "tasks[0].resources.cpu",
            "tasks[0].resources.memory",
            "tasks[0].resources.disk"
        ]
    );
    assert_eq!(
        paths("bad-restart.yaml"),
        ["tasks[0].restart.policy", "tasks[0].restart.backoff.max"]
    );
    assert_eq!(
        paths("bad-ports.toml"),
        ["tasks[0].ports[0].container", "tasks[1].ports[0].host"]
    );
    assert_eq!(paths("bad-image.yaml"), ["tasks[0].image"]);
    assert_eq!(paths("unknown-field.yaml"), ["tasks[0].replicas"]);
    assert!(
        matches!(
            load_job_file(&invalid.join("syntax.json")),
            Err(Error::Syntax { .. })
        ),
        "syntax.json"
    );
}

// ---------------------------------------------------------------------------------------------
// The job file reference (docs/job-file.md) shows what the code does.

/// The fenced code blocks of `markdown` with their language.
fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(lang)) => current = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, body)), None) => {
                // Blocks nested in a list item are indented; the YAML inside is not.
                body.push_str(line.strip_prefix("  ").unwrap_or(line));
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn the_reference_examples_are_valid_and_agree() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/job-file.md");
    let Ok(doc) = std::fs::read_to_string(&path) else {
        // The reference may have moved into the README; nothing to check here then.
        return;
    };
    let blocks = code_blocks(&doc);
    let mut jobs = Vec::new();
    for (lang, body) in &blocks {
        let format = match lang.as_str() {
            "yaml" => Format::Yaml,
            "toml" => Format::Toml,
            "json" => Format::Json,
            _ => continue,
        };
        jobs.push(parse_ok(body, format));
    }
    // The opening example, then the same job in YAML, TOML and JSON.
    assert_eq!(jobs.len(), 4, "{blocks:?}");
    assert_issue_job(&jobs[0]);
    assert_eq!(jobs[1], jobs[2]);
    assert_eq!(jobs[1], jobs[3]);
    let shop = &jobs[1];
    assert_eq!(shop.count, 2);
    assert_eq!(
        shop.constraints
            .iter()
            .map(|c| c.op.clone())
            .collect::<Vec<_>>(),
        [
            ConstraintOp::Equals("eu-1".into()),
            ConstraintOp::NotEquals("hdd".into())
        ]
    );
    assert_eq!(shop.tasks.len(), 4);
    let checks: Vec<_> = shop.tasks[..2]
        .iter()
        .map(|t| {
            t.health_check
                .clone()
                .expect("every task of the example has a check")
        })
        .collect();
    assert_eq!(
        checks[0].probe,
        Probe::Http {
            port: 8080,
            path: "/healthz".into()
        }
    );
    assert_eq!(
        (checks[0].interval, checks[0].timeout, checks[0].failures),
        (Duration::from_secs(5), Duration::from_secs(1), 3)
    );
    assert_eq!(checks[1].probe, Probe::Tcp { port: 6379 });
    assert_eq!(
        (checks[1].interval, checks[1].timeout, checks[1].failures),
        (Duration::from_secs(10), Duration::from_millis(500), 5)
    );
    // Issue 19's fields, each written out in the example.
    assert_eq!(checks[0].start_period, Duration::from_secs(20));
    assert_eq!(shop.network.mode, NetworkMode::Bridge);
    let api = &shop.tasks[0];
    assert_eq!(api.entrypoint, Some(vec!["/bin/api".to_owned()]));
    assert_eq!(api.command, ["--listen", ":8080"]);
    assert_eq!(api.working_dir.as_deref(), Some("/srv/api"));
    assert_eq!(
        api.depends_on
            .iter()
            .map(|(k, c)| (k.as_str(), *c))
            .collect::<Vec<_>>(),
        [
            ("cache", Condition::Healthy),
            ("migrate", Condition::CompletedSuccessfully)
        ]
    );
    assert_eq!(api.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(api.stop_grace, Some(Duration::from_secs(30)));
    assert!(api.init && !api.sidecar);
    assert_eq!(api.files.len(), 2);
    assert_eq!(api.files[0].content, b"listen = \":8080\"\n");
    assert_eq!((api.files[0].mode, api.files[1].mode), (0o640, 0o600));
    assert_eq!(api.files[1].content, [0xde, 0xad, 0xbe, 0xef]);
    assert!(shop.tasks[2].is_init_of(shop));
    assert!(shop.tasks[3].sidecar);

    // The error messages it quotes are the ones the parser gives.
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|(lang, _)| lang == "text")
        .map(|(_, body)| body.trim_end())
        .collect();
    let unknown = load_job_file(&examples_dir().join("invalid/unknown-field.yaml")).unwrap_err();
    assert_eq!(texts[0], unknown.to_string());
    let problems = parse_job(
        "name: My_Job\ntasks:\n  - name: web\n    image: busybox\n    resources: { memory: 12Zi }\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(texts[1], problems.to_string());

    // The example of a file with many problems (its block is marked `yaml invalid`), and the
    // problems it gives, as quoted.
    let invalid: Vec<&str> = blocks
        .iter()
        .filter(|(lang, _)| lang == "yaml invalid")
        .map(|(_, body)| body.as_str())
        .collect();
    assert_eq!(invalid.len(), 1, "{blocks:?}");
    let problems = parse_job(invalid[0], Format::Yaml).unwrap_err();
    let quoted = texts
        .iter()
        .find(|t| t.starts_with("invalid job spec (5 problems)"))
        .expect("the problems of the invalid example are quoted");
    assert_eq!(*quoted, problems.to_string());

    // Every message quoted in a table (`path` | `message`) is one the parser gives for the input
    // written in the row: rows of the count, constraint, resources, task safety and health check
    // tables.
    let mut checked = 0;
    for line in doc.lines() {
        let cells: Vec<&str> = line
            .split(" | ")
            .map(|c| c.trim().trim_matches('|').trim())
            .collect();
        let [written, path, message] = cells[..] else {
            continue;
        };
        let (Some(path), Some(message)) = (unquote(path), unquote(message)) else {
            continue;
        };
        // The first example written in the row.
        let Some(first) = written.split('`').nth(1) else {
            continue;
        };
        let text = if path.starts_with("volumes") {
            format!("name: j\nvolumes: {{ {first} }}\ntasks: [{{name: t, image: 'a:1'}}]\n")
        } else if path.starts_with("tasks[0].mounts") || path.starts_with("tasks[0].secrets") {
            // Issue 20's lists, beside the volumes the mounts name.
            let field = if path.starts_with("tasks[0].mounts") {
                "mounts"
            } else {
                "secrets"
            };
            let list = if first.starts_with('[') {
                first.to_owned()
            } else {
                format!("[{first}]")
            };
            format!(
                "name: j\nvolumes: {{ cache: {{ type: tmpfs }}, data: {{}}, logs: {{ type: host, source: applogs }} }}\ntasks:\n  - name: t\n    image: a:1\n    {field}: {list}\n"
            )
        } else if first.starts_with("{ name:") {
            // A whole job.
            format!("{first}\n")
        } else if first.starts_with("tasks:") {
            // The tasks of a job, for the rules across them.
            format!("name: j\n{first}\n")
        } else if path.starts_with("count") || path.starts_with("network") {
            format!("name: j\n{first}\ntasks: [{{name: t, image: 'a:1'}}]\n")
        } else if path.starts_with("constraints") {
            format!("name: j\nconstraints: [{first}]\ntasks: [{{name: t, image: 'a:1'}}]\n")
        } else if path.starts_with("tasks[0].ports") {
            format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    ports: [{first}]\n")
        } else if path.starts_with("tasks[0].files") {
            format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    files: [{first}]\n")
        } else if [
            "user",
            "read_only",
            "working_dir",
            "entrypoint",
            "init",
            "stop_signal",
            "stop_grace",
            "aliases",
            "shm_size",
            "labels",
            "extra_hosts",
        ]
        .iter()
        .any(|f| first.starts_with(&format!("{f}:")))
        {
            format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    {first}\n")
        } else if path.starts_with("tasks[0].resources") {
            format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    resources: {first}\n")
        } else {
            format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    health_check: {first}\n")
        };
        let Err(Error::Invalid(p)) = parse_job(&text, Format::Yaml) else {
            panic!("{line}: expected problems for\n{text}");
        };
        assert!(
            p.iter().any(|p| p.path == path && p.message == message),
            "{line}: the parser says\n{p}"
        );
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} quoted messages were checked");
}

/// The text of a table cell written as one code span (`` `x` ``).
fn unquote(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}
