//! Properties of job files: any valid job survives render-then-parse in each format, and no input
//! — random text, random documents of roughly the right shape, or mangled valid files — makes the
//! parser panic.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use orkestrator_core::Error;
use orkestrator_core::ids::{JobId, TaskName};
use orkestrator_core::spec::{
    Backoff, Constraint, ConstraintOp, Format, HealthCheck, Job, MAX_ATTEMPTS, MAX_BACKOFF,
    MAX_COUNT, MAX_CPU, MAX_DISK, MAX_MEMORY, MAX_PIDS, MIN_CPU, MIN_MEMORY, PortMapping, Probe,
    Protocol, Resources, RestartMode, RestartPolicy, Task, parse_job,
};
use orkestrator_core::units::{ByteSize, Cpu, format_duration, parse_duration};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Map, Value};

const FORMATS: [Format; 3] = [Format::Yaml, Format::Toml, Format::Json];

// ---------------------------------------------------------------------------------------------
// Strategies for valid jobs: typed values that respect every rule.

fn dns_label() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
        1 => "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
    ]
}

/// Image references: optional registry, one to three path parts, and a tag, a digest or both.
fn image() -> impl Strategy<Value = String> {
    let registry = prop_oneof![
        3 => Just(None),
        1 => "[a-z0-9]{1,8}(\\.[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?){1,2}(:[0-9]{1,5})?".prop_map(Some),
        1 => "localhost(:[0-9]{1,5})?".prop_map(Some),
    ];
    let part = "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}";
    let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}";
    let digest = "sha256:[0-9a-f]{64}";
    let reference = prop_oneof![
        3 => tag.prop_map(|t| format!(":{t}")),
        1 => digest.prop_map(|d| format!("@{d}")),
        1 => (tag, digest).prop_map(|(t, d)| format!(":{t}@{d}")),
    ];
    (registry, "[a-z0-9]{1,8}", vec(part, 0..3), reference).prop_map(
        |(registry, first, rest, reference)| {
            // Without a registry, a first part with '.' would be read as a registry host, so
            // the first part is plain; the others may use every separator.
            let mut parts = vec![first];
            parts.extend(rest);
            let mut s = registry.map(|r| format!("{r}/")).unwrap_or_default();
            s.push_str(&parts.join("/"));
            s.push_str(&reference);
            s
        },
    )
}

/// Any text without NUL: control characters, quotes, YAML indicators, non-ASCII, ...
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[^\u{0}]{0,16}",
        1 => prop::sample::select(vec![
            "", "yes", "no", "true", "~", "null", "3.10", "0x10", "0755", "1e3", ".inf", "- a",
            "a: b", "#x", "'", "\"", "\\", "\n", " lead", "trail ", "[1]", "{a: 1}", "&a", "*a",
            "!tag", "%", "@", "`", "|", ">", "---", "...", "\u{feff}", "\u{85}", "\r\n", "\t",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A program and its arguments: the program is not blank, and nothing holds a NUL.
fn program_and_args() -> impl Strategy<Value = Vec<String>> {
    (
        text().prop_filter("the program is not blank", |s| !s.trim().is_empty()),
        vec(text(), 0..4),
    )
        .prop_map(|(program, args)| {
            let mut c = vec![program];
            c.extend(args);
            c
        })
}

fn command() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => program_and_args(),
    ]
}

fn env() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map("[A-Za-z_][A-Za-z0-9_]{0,12}", text(), 0..4)
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]
}

/// Port mappings, possibly clashing: clashes are dropped when the job is assembled.
fn ports() -> impl Strategy<Value = Vec<PortMapping>> {
    let port = prop_oneof![1 => 1u16..=1024, 1 => 1u16..=65535, 1 => Just(65535u16)];
    vec(
        (
            port.clone(),
            prop::option::of(port),
            protocol(),
            prop::option::of(prop_oneof![
                Just("127.0.0.1"),
                Just("::1"),
                Just("fd00::5"),
                Just("10.1.2.3")
            ]),
        )
            .prop_map(|(container, host, protocol, ip)| PortMapping {
                container,
                host,
                protocol,
                // Only a published port has a host address.
                host_ip: host.and(ip).map(|ip| ip.parse().unwrap()),
            }),
        0..4,
    )
}

fn resources() -> impl Strategy<Value = Resources> {
    let cpu = prop_oneof![
        MIN_CPU.millis()..=MAX_CPU.millis(),
        (1..=64u64).prop_map(|c| c * 1000),
        Just(MIN_CPU.millis()),
        Just(MAX_CPU.millis()),
    ]
    .prop_map(Cpu::from_millis);
    let memory = prop_oneof![
        MIN_MEMORY.bytes()..=MAX_MEMORY.bytes(),
        (6..=65536u64).prop_map(|m| ByteSize::mib(m).bytes()),
        Just(MIN_MEMORY.bytes()),
        Just(MAX_MEMORY.bytes()),
    ]
    .prop_map(ByteSize::b);
    let disk = prop_oneof![
        1..=MAX_DISK.bytes(),
        (1..=1024u64).prop_map(|g| ByteSize::gib(g).bytes()),
        Just(1u64),
        Just(MAX_DISK.bytes()),
    ]
    .prop_map(ByteSize::b);
    (cpu, memory, disk).prop_map(|(cpu, memory, disk)| Resources { cpu, memory, disk })
}

fn duration() -> impl Strategy<Value = Duration> {
    let max = MAX_BACKOFF.as_nanos() as u64;
    prop_oneof![
        (1..=max).prop_map(Duration::from_nanos),
        (1..=MAX_BACKOFF.as_secs()).prop_map(Duration::from_secs),
        (1..=MAX_BACKOFF.as_millis() as u64).prop_map(Duration::from_millis),
        Just(MAX_BACKOFF),
    ]
}

/// The longest health check interval (and timeout).
const MAX_HEALTH_INTERVAL: Duration = Duration::from_secs(3600);

/// Durations a health check accepts: more than zero, at most an hour.
fn health_duration() -> impl Strategy<Value = Duration> {
    let max = MAX_HEALTH_INTERVAL;
    prop_oneof![
        (1..=max.as_nanos() as u64).prop_map(Duration::from_nanos),
        (1..=max.as_millis() as u64).prop_map(Duration::from_millis),
        (1..=max.as_secs()).prop_map(Duration::from_secs),
        Just(max),
        Just(Duration::from_nanos(1)),
    ]
}

/// URL paths an HTTP check accepts: a leading `/`, then anything but whitespace and control
/// characters, including what YAML, TOML and JSON would have to quote.
fn http_path() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "/[^\\s\\p{Cc}]{0,16}",
        1 => "/[a-z0-9._~%!$&'()*+,;=:@?#/-]{0,16}",
        1 => prop::sample::select(vec![
            "/", "/healthz", "/health?full=1&x=%20", "/#", "/:", "/-", "/'", "/\"", "/\\", "/é",
            "/{a:1}", "/[1]", "/&a", "/*a", "/!tag", "/%", "/---", "/...", "/~", "/\u{feff}",
        ])
        .prop_map(str::to_owned),
    ]
}

fn probe() -> impl Strategy<Value = Probe> {
    let port = prop_oneof![1u16..=65535, Just(1u16), Just(65535u16)];
    prop_oneof![
        (port.clone(), http_path()).prop_map(|(port, path)| Probe::Http { port, path }),
        port.prop_map(|port| Probe::Tcp { port }),
        program_and_args().prop_map(Probe::Exec),
        Just(Probe::Image),
    ]
}

/// Health checks that respect every rule: the timeout is at most the interval.
fn health_check() -> impl Strategy<Value = Option<HealthCheck>> {
    let check = (
        probe(),
        health_duration(),
        health_duration(),
        prop_oneof![1u32..=100, Just(1u32), Just(100u32)],
    )
        .prop_map(|(probe, a, b, failures)| HealthCheck {
            interval: a.max(b),
            timeout: a.min(b),
            failures,
            probe,
            start_period: Duration::ZERO,
        });
    prop_oneof![1 => Just(None), 2 => check.prop_map(Some)]
}

fn restart() -> impl Strategy<Value = RestartPolicy> {
    let mode = prop_oneof![
        Just(RestartMode::Never),
        Just(RestartMode::OnFailure),
        Just(RestartMode::Always),
    ];
    (
        mode,
        prop_oneof![
            0..=MAX_ATTEMPTS,
            Just(MAX_ATTEMPTS),
            Just(RestartPolicy::UNLIMITED)
        ],
        duration(),
        duration(),
        duration(),
    )
        .prop_map(|(policy, max_attempts, a, b, reset_after)| RestartPolicy {
            policy,
            max_attempts,
            backoff: Backoff {
                initial: a.min(b),
                max: a.max(b),
                reset_after,
            },
        })
}

/// A task without its name.
type TaskBody = (
    String,
    Vec<String>,
    BTreeMap<String, String>,
    Vec<PortMapping>,
    Resources,
    RestartPolicy,
    Option<HealthCheck>,
    (u32, Option<String>, bool),
);

/// A task's process limit, user and read-only flag: any allowed value, and the edges.
fn safety() -> impl Strategy<Value = (u32, Option<String>, bool)> {
    let pids = prop_oneof![
        Just(Task::DEFAULT_PIDS),
        Just(1),
        Just(MAX_PIDS),
        1..=MAX_PIDS
    ];
    let user = prop_oneof![
        Just(None),
        (1..u32::MAX).prop_map(|u| Some(u.to_string())),
        "[a-z_][a-z0-9_.-]{0,31}(:[a-z_][a-z0-9_.-]{0,31})?"
            .prop_filter("not root", |u| u != "root" && !u.starts_with("root:"))
            .prop_map(Some),
        (1..100_000u32, 0..100_000u32).prop_map(|(u, g)| Some(format!("{u}:{g}"))),
    ];
    (pids, user, any::<bool>())
}

fn task_body() -> impl Strategy<Value = TaskBody> {
    (
        image(),
        command(),
        env(),
        ports(),
        resources(),
        restart(),
        health_check(),
        safety(),
    )
}

/// Constraints on worker labels.
fn constraints() -> impl Strategy<Value = Vec<Constraint>> {
    let op = prop_oneof![
        text().prop_map(ConstraintOp::Equals),
        text().prop_map(ConstraintOp::NotEquals),
    ];
    vec(
        ("[A-Za-z0-9._/-]{1,20}", op).prop_map(|(label, op)| Constraint { label, op }),
        0..3,
    )
}

/// Valid jobs: distinct task names, and no host port or container port used twice.
fn valid_job() -> impl Strategy<Value = Job> {
    let count = prop_oneof![Just(1u32), 1..=MAX_COUNT];
    (
        dns_label(),
        count,
        constraints(),
        btree_set(dns_label(), 1..4),
    )
        .prop_flat_map(|(name, count, constraints, task_names)| {
            let n = task_names.len();
            (
                Just((name, count, constraints)),
                Just(task_names),
                vec(task_body(), n),
            )
        })
        .prop_map(|((name, count, constraints), task_names, bodies)| {
            let mut hosts = HashSet::new();
            let tasks = task_names
                .into_iter()
                .zip(bodies)
                .map(
                    |(
                        task_name,
                        (
                            image,
                            command,
                            env,
                            ports,
                            resources,
                            restart,
                            health_check,
                            (pids, user, read_only),
                        ),
                    )| {
                        let mut containers = HashSet::new();
                        let ports = ports
                            .into_iter()
                            .filter(|p| {
                                containers.insert((p.container, p.protocol))
                                    && p.host.is_none_or(|h| hosts.insert((h, p.protocol)))
                            })
                            .collect();
                        Task {
                            name: TaskName::new(task_name),
                            image,
                            command,
                            env,
                            ports,
                            resources,
                            restart,
                            health_check,
                            pids,
                            user,
                            read_only,
                            entrypoint: None,
                            working_dir: None,
                            depends_on: Default::default(),
                            sidecar: false,
                            stop_signal: None,
                            stop_grace: None,
                            init: false,
                            files: Vec::new(),
                            mounts: Vec::new(),
                            secrets: Vec::new(),
                            aliases: Vec::new(),
                            shm_size: None,
                            labels: Default::default(),
                            extra_hosts: Default::default(),
                        }
                    },
                )
                .collect();
            Job {
                name: JobId::new(name),
                count,
                constraints,
                tasks,
                network: Default::default(),
                volumes: Default::default(),
            }
        })
}

/// Whether YAML allows `c` in a file as it is (YAML 1.2, `c-printable`).
fn yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        || c >= '\u{10000}'
}

/// Asserts that `text` parses as `format` to `job`.
fn same_after_parse(text: &str, format: Format, job: &Job) -> Result<(), TestCaseError> {
    match parse_job(text, format) {
        Ok(back) => prop_assert_eq!(&back, job, "{} changed the job:\n{}", format, text),
        Err(e) => prop_assert!(false, "{format} did not read back: {e}\n{text}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_of_render_is_identity_in_yaml(job in valid_job()) {
        let text = Format::Yaml.render(&job).unwrap();
        same_after_parse(&text, Format::Yaml, &job)?;
    }

    #[test]
    fn parse_of_render_is_identity_in_toml(job in valid_job()) {
        let text = Format::Toml.render(&job).unwrap();
        same_after_parse(&text, Format::Toml, &job)?;
    }

    #[test]
    fn parse_of_render_is_identity_in_json(job in valid_job()) {
        let text = Format::Json.render(&job).unwrap();
        same_after_parse(&text, Format::Json, &job)?;
        // YAML reads JSON too (standard input is read as YAML), as long as the text holds only
        // characters YAML allows unescaped: JSON writes DEL or U+FFFE as they are.
        if text.chars().all(yaml_printable) {
            same_after_parse(&text, Format::Yaml, &job)?;
        }
    }

    #[test]
    fn rendering_is_stable(job in valid_job()) {
        for format in FORMATS {
            let once = format.render(&job).unwrap();
            let twice = format.render(&parse_job(&once, format).unwrap()).unwrap();
            prop_assert_eq!(once, twice);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// No input panics the parser.

/// Parses `text` in every format; whatever parses must also survive a round trip.
fn parse_everywhere(text: &str) -> Result<(), TestCaseError> {
    for format in FORMATS {
        match parse_job(text, format) {
            Ok(job) => {
                for out in FORMATS {
                    let rendered = out.render(&job).unwrap();
                    same_after_parse(&rendered, out, &job)?;
                }
            }
            Err(Error::Invalid(p)) => {
                prop_assert!(!p.is_empty());
                for problem in p.iter() {
                    prop_assert!(!problem.message.is_empty());
                }
            }
            Err(Error::Syntax {
                message,
                line,
                column,
                ..
            }) => {
                prop_assert!(!message.is_empty());
                prop_assert!(line != Some(0) && column != Some(0));
            }
            Err(e) => prop_assert!(false, "unexpected error kind: {e:?}"),
        }
    }
    Ok(())
}

/// Field names of the job file, and a few that are not.
const KEYS: &[&str] = &[
    "name",
    "tasks",
    "image",
    "command",
    "env",
    "ports",
    "resources",
    "restart",
    "container",
    "host",
    "protocol",
    "cpu",
    "memory",
    "disk",
    "pids",
    "user",
    "read_only",
    "policy",
    "max_attempts",
    "backoff",
    "initial",
    "max",
    "reset_after",
    "count",
    "constraints",
    "label",
    "equals",
    "not_equals",
    "health_check",
    "http",
    "tcp",
    "exec",
    "port",
    "path",
    "interval",
    "timeout",
    "failures",
    "MODE",
    "replicas",
    "",
    "<<",
];

fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        (-100i64..70000).prop_map(Value::from),
        prop::sample::select(vec![
            "web",
            "busybox:1.36",
            "busybox",
            "500m",
            "0.5",
            "64Mi",
            "12Zi",
            "1s",
            "1m",
            "-1",
            "on-failure",
            "never",
            "always",
            "tcp",
            "udp",
            "/healthz",
            "zone",
            "Bad_Name",
            "",
            "0",
            "1e999",
        ])
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

/// Documents of roughly the job file's shape: nested maps and lists with its field names.
fn document() -> impl Strategy<Value = Value> {
    scalar_value().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(
                prop_oneof![
                    4 => prop::sample::select(KEYS).prop_map(str::to_owned),
                    1 => "\\PC{0,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Applies edits (position, what to do, character) to `text`, at character boundaries.
fn mangle(text: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(at, op, c) in edits {
        let at = if chars.is_empty() {
            0
        } else {
            at % (chars.len() + 1)
        };
        match op % 3 {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
    }
    chars.into_iter().collect()
}

fn edit_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            ':', '-', ' ', '\n', '\t', '[', ']', '{', '}', '"', '\'', ',', '=', '#', '&', '*', '!',
            '|', '>', '0', '9', 'a', 'm', 'i', 'é', '\u{feff}', '\0', '\\',
        ]),
        any::<char>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        parse_everywhere(&text)?;
    }

    #[test]
    fn arbitrary_printable_text_never_panics(text in "\\PC{0,200}") {
        parse_everywhere(&text)?;
    }

    #[test]
    fn job_shaped_text_never_panics(
        text in "(name|tasks|image|command|env|ports|cpu|memory|restart|backoff|count|constraints|label|equals|health_check|http|tcp|exec|port|path|interval|timeout|failures|[-:{}\\[\\],\"' \n=#/]|[a-z0-9]{1,4}){0,60}"
    ) {
        parse_everywhere(&text)?;
    }

    #[test]
    fn random_documents_never_panic(doc in document()) {
        parse_everywhere(&serde_json::to_string_pretty(&doc).unwrap())?;
        parse_everywhere(&serde_json::to_string(&doc).unwrap())?;
        if let Ok(yaml) = serde_saphyr::to_string(&doc) {
            parse_everywhere(&yaml)?;
        }
        if let Ok(toml) = toml::to_string(&doc) {
            parse_everywhere(&toml)?;
        }
    }

    #[test]
    fn mangled_valid_files_never_panic(
        job in valid_job(),
        format in prop::sample::select(FORMATS.to_vec()),
        edits in vec((any::<usize>(), any::<u8>(), edit_char()), 1..6),
    ) {
        let text = format.render(&job).unwrap();
        parse_everywhere(&mangle(&text, &edits))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Units: formatting then parsing gives the value back, and parsing never panics.

proptest! {
    #[test]
    fn cpu_round_trips(millis in any::<u64>()) {
        let cpu = Cpu::from_millis(millis);
        prop_assert_eq!(Cpu::parse(&cpu.to_string()), Ok(cpu));
    }

    #[test]
    fn sizes_round_trip(bytes in prop_oneof![any::<u64>(), (0..1u64 << 20).prop_map(|m| m << 20)]) {
        let size = ByteSize::b(bytes);
        prop_assert_eq!(ByteSize::parse(&size.to_string()), Ok(size));
    }

    #[test]
    fn durations_round_trip(nanos in any::<u64>(), secs in 0..u64::MAX / 2) {
        for d in [Duration::from_nanos(nanos), Duration::from_secs(secs)] {
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn unit_parsers_never_panic(s in "\\PC{0,24}", t in "[-+ .0-9eE]{0,12}(m|Mi|Gi|Ei|k|K|B|s|ms|h|d)?") {
        for s in [&s, &t] {
            let _ = Cpu::parse(s);
            let _ = ByteSize::parse(s);
            let _ = parse_duration(s);
        }
    }

    #[test]
    fn cores_and_millicores_agree(millis in 1..=MAX_CPU.millis()) {
        let cores = format!("{}.{:03}", millis / 1000, millis % 1000);
        prop_assert_eq!(Cpu::parse(&cores), Ok(Cpu::from_millis(millis)));
        prop_assert_eq!(Cpu::parse(&format!("{millis}m")), Ok(Cpu::from_millis(millis)));
    }
}

#[test]
fn the_strategies_make_every_kind_of_health_check() {
    // A guard on the generator: the round trips above see each probe kind, and timeouts both
    // shorter than and equal to the interval.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut http, mut tcp, mut exec, mut none, mut equal) = (0, 0, 0, 0, 0);
    for _ in 0..300 {
        let Some(h) = health_check().new_tree(&mut runner).unwrap().current() else {
            none += 1;
            continue;
        };
        assert!(h.timeout <= h.interval && h.interval <= MAX_HEALTH_INTERVAL);
        assert!(!h.timeout.is_zero() && (1..=100).contains(&h.failures));
        equal += usize::from(h.timeout == h.interval);
        match h.probe {
            Probe::Http { .. } => http += 1,
            Probe::Tcp { .. } => tcp += 1,
            Probe::Exec(_) => exec += 1,
            Probe::Image => {}
        }
    }
    assert!(
        [http, tcp, exec, none, equal].iter().all(|&n| n > 0),
        "http {http}, tcp {tcp}, exec {exec}, none {none}, timeout = interval {equal}"
    );
}

#[test]
fn the_strategies_make_distinct_task_names() {
    // A guard on the generator itself: a job it makes must have unique task names.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..64 {
        let job = valid_job().new_tree(&mut runner).unwrap().current();
        let names: BTreeSet<_> = job.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), job.tasks.len());
    }
}
