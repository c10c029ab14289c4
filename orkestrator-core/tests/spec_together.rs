//! Issue 19's fields (tasks that work together): each read as written and checked, the rules
//! across tasks (names that exist, conditions a dependency can meet, no cycles, not sidecars
//! only, no network), unknown fields near the new names, the round trip through every format,
//! and files' `source`, read by the CLI and refused by the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orkestrator_core::Error;
use orkestrator_core::spec::{
    Condition, ConfigFile, Format, Job, MAX_FILE_BYTES, MAX_FILES_PER_TASK, MAX_STOP_GRACE,
    NetworkMode, Problem, load_job_file, parse_job, parse_job_in,
};

fn valid(text: &str) -> Job {
    parse_job(text, Format::Yaml).unwrap_or_else(|e| panic!("should be valid: {e}\n{text}"))
}

fn problems(text: &str) -> Vec<Problem> {
    match parse_job(text, Format::Yaml) {
        Err(Error::Invalid(p)) => p.0,
        other => panic!("expected problems, got {other:?}\n{text}"),
    }
}

/// Asserts that `text` has exactly one problem, at `path`, whose message holds every `needle`.
fn one(text: &str, path: &str, needles: &[&str]) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}\n{text}");
    assert_eq!(p[0].path, path, "{p:?}");
    for n in needles {
        assert!(p[0].message.contains(n), "{n:?} not in {:?}", p[0].message);
    }
}

/// A job of one task `t` with the task fields in `extra` (each a line such as `init: true`).
fn task(extra: &[&str]) -> String {
    let mut s = String::from("name: job\ntasks:\n  - name: t\n    image: busybox:1.36\n");
    for line in extra {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Each field.

#[test]
fn entrypoint_is_a_list_or_a_line_and_an_empty_one_clears_the_images() {
    let t = &valid(&task(&[
        "entrypoint: [\"/bin/sh\", \"-c\"]",
        "command: [\"echo hi\"]",
    ]))
    .tasks[0];
    assert_eq!(t.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
    assert_eq!(t.command, ["echo hi"]);
    let t = &valid(&task(&["entrypoint: tini -- app"])).tasks[0];
    assert_eq!(
        t.entrypoint,
        Some(vec!["tini".into(), "--".into(), "app".into()])
    );
    assert_eq!(
        valid(&task(&["entrypoint: \"\""])).tasks[0].entrypoint,
        Some(vec![])
    );
    assert_eq!(
        valid(&task(&["entrypoint: []"])).tasks[0].entrypoint,
        Some(vec![])
    );
    assert_eq!(valid(&task(&[])).tasks[0].entrypoint, None);
    // With an entrypoint, the command is its arguments, and an empty argument is one.
    let t = &valid(&task(&["entrypoint: [printf]", "command: [\"\", x]"])).tasks[0];
    assert_eq!(t.command, ["", "x"]);
    one(
        &task(&["command: [\"\", x]"]),
        "tasks[0].command[0]",
        &["program to run"],
    );
    one(
        &task(&["entrypoint: [\" \"]"]),
        "tasks[0].entrypoint[0]",
        &["program to run"],
    );
    one(
        &task(&["entrypoint: echo $HOME"]),
        "tasks[0].entrypoint",
        &["sh\", \"-c\""],
    );
    one(
        &task(&["entrypoint: { a: b }"]),
        "tasks[0].entrypoint",
        &["expected a command"],
    );
}

#[test]
fn working_dir_is_an_absolute_path_kept_normalised() {
    assert_eq!(
        valid(&task(&["working_dir: /srv//app/./"])).tasks[0]
            .working_dir
            .as_deref(),
        Some("/srv/app")
    );
    assert_eq!(
        valid(&task(&["working_dir: /"])).tasks[0]
            .working_dir
            .as_deref(),
        Some("/")
    );
    one(
        &task(&["working_dir: app"]),
        "tasks[0].working_dir",
        &["not an absolute path"],
    );
    one(
        &task(&["working_dir: /srv/../etc"]),
        "tasks[0].working_dir",
        &["`..`"],
    );
}

#[test]
fn sidecar_and_init_are_booleans() {
    let job = valid(
        "name: j\ntasks:\n  - { name: main, image: 'a:1' }\n  - { name: logs, image: 'a:1', sidecar: true, init: true }\n",
    );
    assert!(!job.tasks[0].sidecar && !job.tasks[0].init);
    assert!(job.tasks[1].sidecar && job.tasks[1].init);
    one(
        &task(&["init: 1"]),
        "tasks[0].init",
        &["not true or false", "init: true"],
    );
    one(
        &task(&["sidecar: \"yes\""]),
        "tasks[0].sidecar",
        &["not true or false"],
    );
}

#[test]
fn stop_signal_takes_docker_names_in_any_case_and_numbers() {
    let signal = |v: &str| {
        valid(&task(&[&format!("stop_signal: {v}")])).tasks[0]
            .stop_signal
            .clone()
    };
    assert_eq!(signal("SIGINT").as_deref(), Some("SIGINT"));
    assert_eq!(signal("term").as_deref(), Some("SIGTERM"));
    assert_eq!(signal("sigusr1").as_deref(), Some("SIGUSR1"));
    assert_eq!(signal("WINCH").as_deref(), Some("SIGWINCH"));
    assert_eq!(signal("SIGRTMIN+3").as_deref(), Some("SIGRTMIN+3"));
    assert_eq!(signal("9").as_deref(), Some("9"));
    assert_eq!(signal("\"15\"").as_deref(), Some("15"));
    assert_eq!(valid(&task(&[])).tasks[0].stop_signal(), "SIGTERM");
    one(
        &task(&["stop_signal: SIGTREM"]),
        "tasks[0].stop_signal",
        &["not a signal Docker knows", "did you mean SIGTERM?"],
    );
    one(
        &task(&["stop_signal: 65"]),
        "tasks[0].stop_signal",
        &["1 to 64"],
    );
    one(
        &task(&["stop_signal: 0"]),
        "tasks[0].stop_signal",
        &["1 to 64"],
    );
    one(
        &task(&["stop_signal: true"]),
        "tasks[0].stop_signal",
        &["not a signal"],
    );
}

#[test]
fn stop_grace_is_a_duration_of_at_most_the_bound_it_names() {
    assert_eq!(
        valid(&task(&["stop_grace: 30s"])).tasks[0].stop_grace,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        valid(&task(&["stop_grace: 0s"])).tasks[0].stop_grace,
        Some(Duration::ZERO)
    );
    assert_eq!(MAX_STOP_GRACE, Duration::from_secs(300));
    one(
        &task(&["stop_grace: 6m"]),
        "tasks[0].stop_grace",
        &[
            "6m is longer than the 5m allowed",
            "MAX_STOP_GRACE",
            "at most 5m",
        ],
    );
    one(
        &task(&["stop_grace: soon"]),
        "tasks[0].stop_grace",
        &["not a duration"],
    );
}

#[test]
fn a_health_checks_start_period_is_a_duration_defaulting_to_zero() {
    let h = |extra: &str| {
        valid(&task(&[&format!(
            "health_check: {{ exec: [\"true\"]{extra} }}"
        )]))
        .tasks[0]
            .health_check
            .clone()
            .unwrap()
    };
    assert_eq!(h("").start_period, Duration::ZERO);
    assert_eq!(
        h(", start_period: 30s").start_period,
        Duration::from_secs(30)
    );
    one(
        &task(&["health_check: { exec: [\"true\"], start_period: 2h }"]),
        "tasks[0].health_check.start_period",
        &["longer than the 1h allowed"],
    );
}

#[test]
fn depends_on_is_a_list_of_names_or_a_mapping_of_conditions() {
    let job = valid(
        "name: j\ntasks:\n\
         - { name: db, image: 'a:1', health_check: { tcp: { port: 5432 } } }\n\
         - { name: init, image: 'a:1', restart: { policy: never } }\n\
         - { name: cache, image: 'a:1' }\n\
         - name: app\n  image: 'a:1'\n  depends_on: { db: { condition: healthy }, init: { condition: completed_successfully }, cache: {} }\n\
         - { name: web, image: 'a:1', depends_on: [app, cache] }\n",
    );
    let app = job.task("app").unwrap();
    let deps: Vec<(&str, Condition)> = app
        .depends_on
        .iter()
        .map(|(k, c)| (k.as_str(), *c))
        .collect();
    assert_eq!(
        deps,
        [
            ("cache", Condition::Started),
            ("db", Condition::Healthy),
            ("init", Condition::CompletedSuccessfully)
        ]
    );
    let web = job.task("web").unwrap();
    assert!(web.depends_on.values().all(|c| *c == Condition::Started));
    assert_eq!(web.depends_on.len(), 2);
    assert!(job.task("init").unwrap().is_init_of(&job));

    let two = "name: j\ntasks:\n  - { name: db, image: 'a:1' }\n  - { name: app, image: 'a:1', depends_on: ";
    one(
        &format!("{two}{{ db: {{ condition: service_healthy }} }} }}\n"),
        "tasks[1].depends_on.db.condition",
        &["not a condition", "did you mean healthy?"],
    );
    one(
        &format!("{two}[db, db] }}\n"),
        "tasks[1].depends_on[1]",
        &["db is already listed at tasks[1].depends_on[0]"],
    );
    one(
        &format!("{two}db }}\n"),
        "tasks[1].depends_on",
        &["expected the tasks this one waits for"],
    );
}

#[test]
fn a_network_is_bridge_or_none_and_never_the_hosts() {
    assert_eq!(valid(&task(&[])).network.mode, NetworkMode::Bridge);
    let none = valid("name: j\nnetwork: { mode: none }\ntasks: [{ name: t, image: 'a:1' }]\n");
    assert_eq!(none.network.mode, NetworkMode::None);
    one(
        "name: j\nnetwork: { mode: host }\ntasks: [{ name: t, image: 'a:1' }]\n",
        "network.mode",
        &["host is refused", "no job may use the host's network"],
    );
    one(
        "name: j\nnetwork: { mode: overlay }\ntasks: [{ name: t, image: 'a:1' }]\n",
        "network.mode",
        &["not a network mode", "bridge", "none"],
    );
}

#[test]
fn without_a_network_ports_and_http_or_tcp_checks_are_refused_but_exec_checks_run() {
    let job = "name: j\nnetwork: { mode: none }\ntasks:\n  - name: t\n    image: 'a:1'\n";
    valid(&format!("{job}    health_check: {{ exec: [\"true\"] }}\n"));
    let p = problems(&format!(
        "{job}    ports: [{{ container: 80 }}]\n    health_check: {{ http: {{ port: 80 }} }}\n  - {{ name: u, image: 'a:1', health_check: {{ tcp: {{ port: 81 }} }} }}\n"
    ));
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tasks[0].ports",
            "tasks[0].health_check.http",
            "tasks[1].health_check.tcp"
        ],
        "{p:?}"
    );
    assert!(
        p.iter().all(|p| p.message.contains("network mode is none")),
        "{p:?}"
    );
    assert!(p[1].message.contains("exec"), "{p:?}");
}

// ---------------------------------------------------------------------------------------------
// Files.

#[test]
fn files_take_content_or_base64_with_a_mode_defaulting_to_0644() {
    let t = valid(&task(&[
        "files:",
        "  - { path: /etc/app/app.conf, content: \"port = 8080\\n\" }",
        "  - { path: /etc//app/./key, content_base64: \"AAEC/w==\", mode: \"0600\" }",
        "  - { path: /etc/app/run.sh, content: \"#!/bin/sh\", mode: 0755 }",
    ]))
    .tasks
    .remove(0);
    assert_eq!(
        t.files,
        [
            ConfigFile {
                path: "/etc/app/app.conf".into(),
                content: b"port = 8080\n".to_vec(),
                mode: 0o644
            },
            ConfigFile {
                path: "/etc/app/key".into(),
                content: vec![0, 1, 2, 255],
                mode: 0o600
            },
            ConfigFile {
                path: "/etc/app/run.sh".into(),
                content: b"#!/bin/sh".to_vec(),
                mode: 0o755
            },
        ]
    );
}

#[test]
fn each_file_rule_is_reported_at_its_path() {
    let f = |file: &str| task(&[&format!("files: [{file}]")]);
    one(
        &f("{ content: x }"),
        "tasks[0].files[0].path",
        &["is required"],
    );
    one(
        &f("{ path: etc/a, content: x }"),
        "tasks[0].files[0].path",
        &["not an absolute path"],
    );
    one(
        &f("{ path: /, content: x }"),
        "tasks[0].files[0].path",
        &["root directory"],
    );
    one(
        &f("{ path: /etc/../a, content: x }"),
        "tasks[0].files[0].path",
        &["`..`"],
    );
    one(
        &f("{ path: /a }"),
        "tasks[0].files[0]",
        &["content", "content_base64"],
    );
    one(
        &f("{ path: /a, content: x, content_base64: eA== }"),
        "tasks[0].files[0]",
        &["has content and content_base64", "one of them"],
    );
    one(
        &f("{ path: /a, content_base64: \"not base64!\" }"),
        "tasks[0].files[0].content_base64",
        &["is not base64"],
    );
    one(
        &f("{ path: /a, content: x, mode: \"0648\" }"),
        "tasks[0].files[0].mode",
        &["not a file mode", "\"0644\""],
    );
    one(
        &f("{ path: /a, content: x, mode: \"4755\" }"),
        "tasks[0].files[0].mode",
        &["setuid"],
    );
    one(
        &f("{ path: /a, content: x, mode: \"0200\" }"),
        "tasks[0].files[0].mode",
        &["read"],
    );
    one(
        &f("{ path: /a, contnet: x }"),
        "tasks[0].files[0].contnet",
        &["did you mean content?"],
    );
}

#[test]
fn two_files_at_one_path_are_refused_naming_the_path() {
    one(
        &task(&["files: [{ path: /etc/a.conf, content: x }, { path: /etc//a.conf, content: y }]"]),
        "tasks[0].files[1].path",
        &["/etc/a.conf is also the path of tasks[0].files[0]"],
    );
    one(
        &task(&["files: [{ path: /etc/a, content: x }, { path: /etc/a/b, content: y }]"]),
        "tasks[0].files[1].path",
        &["/etc/a/b is inside /etc/a"],
    );
    // Two tasks may each have a file at the same path.
    valid(
        "name: j\ntasks:\n  - { name: a, image: 'a:1', files: [{ path: /x, content: a }] }\n  - { name: b, image: 'a:1', files: [{ path: /x, content: b }] }\n",
    );
}

#[test]
fn files_are_held_to_the_named_limits() {
    assert_eq!((MAX_FILES_PER_TASK, MAX_FILE_BYTES), (16, 256 * 1024));
    let many: Vec<String> = (0..=MAX_FILES_PER_TASK)
        .map(|i| format!("{{ path: /f{i}, content: x }}"))
        .collect();
    one(
        &task(&[&format!("files: [{}]", many.join(", "))]),
        "tasks[0].files",
        &["17 files; at most 16 are allowed"],
    );
    let big = "x".repeat(MAX_FILE_BYTES + 1);
    one(
        &task(&[&format!("files: [{{ path: /big, content: {big} }}]")]),
        "tasks[0].files[0].content",
        &[&format!(
            "{} bytes; at most {MAX_FILE_BYTES} are allowed",
            MAX_FILE_BYTES + 1
        )],
    );
    valid(&task(&[&format!(
        "files: [{{ path: /big, content: {} }}]",
        &big[1..]
    )]));
}

// ---------------------------------------------------------------------------------------------
// The rules across tasks.

/// A job whose tasks are the lines in `tasks`, each a flow mapping.
fn job(tasks: &[&str]) -> String {
    let mut s = String::from("name: j\ntasks:\n");
    for t in tasks {
        s.push_str("  - ");
        s.push_str(t);
        s.push('\n');
    }
    s
}

#[test]
fn depending_on_an_unknown_task_is_refused_with_the_closest_name() {
    one(
        &job(&[
            "{ name: db, image: 'a:1' }",
            "{ name: app, image: 'a:1', depends_on: [dbb] }",
        ]),
        "tasks[1].depends_on[0]",
        &[
            "dbb is not a task of this job: did you mean db?",
            "(its tasks: db, app)",
        ],
    );
    one(
        &job(&[
            "{ name: db, image: 'a:1' }",
            "{ name: app, image: 'a:1', depends_on: { queue: {} } }",
        ]),
        "tasks[1].depends_on.queue",
        &["queue is not a task of this job (its tasks: db, app)"],
    );
}

#[test]
fn depending_on_itself_is_refused() {
    one(
        &job(&["{ name: app, image: 'a:1', depends_on: [app] }"]),
        "tasks[0].depends_on[0]",
        &["app waits for itself"],
    );
}

#[test]
fn healthy_needs_a_health_check_on_the_dependency() {
    one(
        &job(&[
            "{ name: db, image: 'a:1' }",
            "{ name: app, image: 'a:1', depends_on: { db: { condition: healthy } } }",
        ]),
        "tasks[1].depends_on.db.condition",
        &["app waits for db to be healthy, but db has no health_check"],
    );
}

#[test]
fn completed_successfully_needs_a_dependency_that_completes() {
    one(
        &job(&[
            "{ name: init, image: 'a:1', restart: { policy: always } }",
            "{ name: app, image: 'a:1', depends_on: { init: { condition: completed_successfully } } }",
        ]),
        "tasks[1].depends_on.init.condition",
        &["app waits for init to complete successfully, but init has restart policy always"],
    );
    one(
        &job(&[
            "{ name: logs, image: 'a:1', sidecar: true }",
            "{ name: app, image: 'a:1', depends_on: { logs: { condition: completed_successfully } } }",
        ]),
        "tasks[1].depends_on.logs.condition",
        &["but logs is a sidecar"],
    );
    // on-failure and never both complete.
    valid(&job(&[
        "{ name: a, image: 'a:1', restart: { policy: never } }",
        "{ name: b, image: 'a:1' }",
        "{ name: app, image: 'a:1', depends_on: { a: { condition: completed_successfully }, b: { condition: completed_successfully } } }",
    ]));
}

#[test]
fn a_cycle_is_refused_naming_its_tasks_in_order() {
    one(
        &job(&[
            "{ name: a, image: 'a:1', depends_on: [b] }",
            "{ name: b, image: 'a:1', depends_on: [c] }",
            "{ name: c, image: 'a:1', depends_on: [a] }",
            "{ name: d, image: 'a:1', depends_on: [a] }",
        ]),
        "tasks[0].depends_on[0]",
        &["a -> b -> c -> a"],
    );
    // Found from a task outside the cycle, it is still named from its first task in the file.
    one(
        &job(&[
            "{ name: d, image: 'a:1', depends_on: [b] }",
            "{ name: a, image: 'a:1', depends_on: { c: {} } }",
            "{ name: b, image: 'a:1', depends_on: [c] }",
            "{ name: c, image: 'a:1', depends_on: [b] }",
        ]),
        "tasks[2].depends_on[0]",
        &["b -> c -> b"],
    );
    // A diamond is no cycle.
    valid(&job(&[
        "{ name: a, image: 'a:1', depends_on: [b, c] }",
        "{ name: b, image: 'a:1', depends_on: [d] }",
        "{ name: c, image: 'a:1', depends_on: [d] }",
        "{ name: d, image: 'a:1' }",
    ]));
}

#[test]
fn a_job_of_sidecars_only_is_refused() {
    one(
        &job(&[
            "{ name: a, image: 'a:1', sidecar: true }",
            "{ name: b, image: 'a:1', sidecar: true }",
        ]),
        "tasks",
        &["every task is a sidecar (a, b)"],
    );
}

#[test]
fn every_problem_of_a_job_comes_at_once() {
    let text = "name: j\nnetwork: { mode: none }\ntasks:\n\
        - { name: db, image: 'a:1', ports: [{ container: 5432 }] }\n\
        - { name: init, image: 'a:1', restart: { policy: always }, stop_signal: NOPE }\n\
        - name: app\n    image: 'a:1'\n    depends_on: { db: { condition: healthy }, init: { condition: completed_successfully }, nope: {} }\n    stop_grace: 10m\n    files: [{ path: /a, content: x }, { path: /a, content: y }]\n    inti: true\n\
        - { name: x, image: 'a:1', depends_on: [y] }\n\
        - { name: y, image: 'a:1', depends_on: [x] }\n";
    let text = text.replace("\n- ", "\n  - ");
    let p = problems(&text);
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tasks[0].ports",
            "tasks[1].stop_signal",
            "tasks[2].depends_on.db.condition",
            "tasks[2].depends_on.init.condition",
            "tasks[2].depends_on.nope",
            "tasks[2].stop_grace",
            "tasks[2].files[1].path",
            "tasks[2].inti",
            "tasks[3].depends_on[0]",
        ],
        "{p:#?}"
    );
    assert!(p[7].message.contains("did you mean init?"), "{p:?}");
    assert!(p[8].message.contains("x -> y -> x"), "{p:?}");
    assert!(p.iter().all(|p| p.line.is_some()), "{p:?}");
}

#[test]
fn misspelt_new_fields_get_the_closest_name() {
    for (line, path, guess) in [
        ("depend_on: [x]", "tasks[0].depend_on", "depends_on"),
        ("stop_signall: INT", "tasks[0].stop_signall", "stop_signal"),
        ("stopgrace: 1s", "tasks[0].stopgrace", "stop_grace"),
        ("workingdir: /a", "tasks[0].workingdir", "working_dir"),
        ("entrypiont: [a]", "tasks[0].entrypiont", "entrypoint"),
        ("file: []", "tasks[0].file", "files"),
        (
            "health_check: { exec: [a], start_perod: 1s }",
            "tasks[0].health_check.start_perod",
            "start_period",
        ),
    ] {
        one(&task(&[line]), path, &[&format!("did you mean {guess}?")]);
    }
    one(
        "name: j\nnetwork: { mod: none }\ntasks: [{ name: t, image: 'a:1' }]\n",
        "network.mod",
        &["did you mean mode?"],
    );
    one(
        "name: j\nnetwrok: { mode: none }\ntasks: [{ name: t, image: 'a:1' }]\n",
        "netwrok",
        &["did you mean network?"],
    );
    one(
        &job(&[
            "{ name: db, image: 'a:1' }",
            "{ name: app, image: 'a:1', depends_on: { db: { conditon: started } } }",
        ]),
        "tasks[1].depends_on.db.conditon",
        &["did you mean condition?"],
    );
}

// ---------------------------------------------------------------------------------------------
// Round trip.

/// A job with every new field.
const TOGETHER: &str = r#"
name: shop
network: { mode: bridge }
tasks:
  - name: db
    image: postgres:16
    health_check: { exec: "pg_isready -U postgres", interval: 2s, start_period: 30s }
    stop_signal: int
    stop_grace: 1m 30s
  - name: migrate
    image: shop:1.4
    entrypoint: [/bin/shop]
    command: [migrate]
    restart: { policy: never }
    depends_on: { db: { condition: healthy } }
  - name: web
    image: shop:1.4
    entrypoint: ""
    working_dir: /srv/shop
    init: true
    depends_on:
      db: { condition: healthy }
      migrate: { condition: completed_successfully }
    files:
      - { path: /etc/shop/shop.conf, content: "listen = 8080\n" }
      - { path: /etc/shop/key.bin, content_base64: "3q2+7w==", mode: "0400" }
  - name: logs
    image: shipper:2
    sidecar: true
    depends_on: [web]
"#;

#[test]
fn validate_print_round_trips_every_new_field_in_every_format() {
    let job = valid(TOGETHER);
    assert_eq!(job.tasks[0].stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(job.tasks[0].stop_grace, Some(Duration::from_secs(90)));
    assert_eq!(job.tasks[2].files[1].content, [0xde, 0xad, 0xbe, 0xef]);
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&job).unwrap();
        let back = parse_job(&text, format).unwrap_or_else(|e| panic!("{format}: {e}\n{text}"));
        assert_eq!(back, job, "{format}:\n{text}");
        // And once more: what is printed is printed the same.
        assert_eq!(format.render(&back).unwrap(), text, "{format}");
        // A job read back as a value (the store) is the same job.
        if format == Format::Json {
            let stored: Job = serde_json::from_str(&text).unwrap();
            assert_eq!(stored, job);
        }
    }
    // Text that each format must quote or escape stays the same text.
    let awkward =
        "key: value\n- item\n  # not a comment\n\t\"q\" 'q' \\ \r\0\u{7f} é \u{feff}end  \n";
    let mut tricky = job.clone();
    tricky.tasks[2].files[0].content = awkward.as_bytes().to_vec();
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&tricky).unwrap();
        let back = parse_job(&text, format).unwrap_or_else(|e| panic!("{format}: {e}\n{text}"));
        assert_eq!(back, tricky, "{format}:\n{text}");
    }
    let none = valid("name: j\nnetwork: { mode: none }\ntasks: [{ name: t, image: 'a:1' }]\n");
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&none).unwrap();
        assert_eq!(parse_job(&text, format).unwrap(), none, "{format}:\n{text}");
    }
}

#[test]
fn a_stored_spec_without_the_new_fields_reads_unchanged_and_prints_without_them() {
    let stored = r#"{"name": "old", "count": 1, "tasks": [{"name": "t", "image": "a:1",
        "resources": {"cpu": "100m", "memory": "128Mi", "disk": "256Mi", "pids": 4096},
        "restart": {"policy": "on-failure", "max_attempts": 5,
            "backoff": {"initial": "10s", "max": "5m", "reset_after": "10m"}},
        "health_check": {"tcp": {"port": 80}, "interval": "10s", "timeout": "2s", "failures": 3},
        "read_only": false}]}"#;
    let job: Job = serde_json::from_str(stored).unwrap();
    let t = &job.tasks[0];
    assert_eq!(job.network.mode, NetworkMode::Bridge);
    assert_eq!(t.entrypoint, None);
    assert_eq!(t.working_dir, None);
    assert!(t.depends_on.is_empty() && t.files.is_empty());
    assert!(!t.sidecar && !t.init);
    assert_eq!((t.stop_signal.as_deref(), t.stop_grace), (None, None));
    assert_eq!(
        t.health_check.as_ref().unwrap().start_period,
        Duration::ZERO
    );
    let printed = Format::Json.render(&job).unwrap();
    for field in [
        "network",
        "entrypoint",
        "working_dir",
        "depends_on",
        "sidecar",
        "stop_signal",
        "stop_grace",
        "\"init\"",
        "files",
        "start_period",
    ] {
        assert!(!printed.contains(field), "{field} in {printed}");
    }
    assert_eq!(job, parse_job(&printed, Format::Json).unwrap());
}

// ---------------------------------------------------------------------------------------------
// `source`: read by the CLI, refused by the API.

/// A directory of its own under the system's temporary directory, emptied first.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ork-spec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const WITH_SOURCES: &str = "name: j\ntasks:\n  - name: t\n    image: 'a:1'\n    files:\n      - { path: /etc/app.conf, source: ./app.conf }\n      - { path: /etc/key, source: conf/key.bin, mode: \"0600\" }\n";

#[test]
fn the_api_refuses_source() {
    let p = problems(WITH_SOURCES);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].path, "tasks[0].files[0].source");
    assert!(
        p[0].message
            .starts_with("source is read by the CLI only; send content"),
        "{p:?}"
    );
    // So does a job read back as a value.
    let json = r#"{"name": "j", "tasks": [{"name": "t", "image": "a:1", "files": [{"path": "/a", "source": "a"}]}]}"#;
    let e = serde_json::from_str::<Job>(json).unwrap_err();
    assert!(
        e.to_string().contains("source is read by the CLI only"),
        "{e}"
    );
}

#[test]
fn the_cli_reads_source_relative_to_the_job_file_into_content() {
    let dir = temp_dir("sources");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("app.conf"), "port = 8080\n").unwrap();
    std::fs::write(dir.join("conf/key.bin"), [0u8, 159, 146, 150]).unwrap();
    std::fs::write(dir.join("job.yaml"), WITH_SOURCES).unwrap();

    let job = parse_job_in(WITH_SOURCES, Format::Yaml, &dir).unwrap();
    let files = &job.tasks[0].files;
    assert_eq!(files[0].content, b"port = 8080\n");
    assert_eq!(files[1].content, [0u8, 159, 146, 150]);
    assert_eq!(files[1].mode, 0o600);
    assert_eq!(load_job_file(&dir.join("job.yaml")).unwrap(), job);

    // What is submitted holds the bytes, as text where they are UTF-8 and in base64 where not;
    // the API takes it.
    let sent = Format::Json.render(&job).unwrap();
    assert!(sent.contains(r#""content": "port = 8080\n""#), "{sent}");
    assert!(sent.contains(r#""content_base64": "AJ+Slg==""#), "{sent}");
    assert!(!sent.contains("\"source\""), "{sent}");
    assert_eq!(parse_job(&sent, Format::Json).unwrap(), job);

    // A source that cannot be read, or is too large, is a problem at its path.
    std::fs::remove_file(dir.join("app.conf")).unwrap();
    std::fs::write(dir.join("conf/key.bin"), vec![b'x'; MAX_FILE_BYTES + 1]).unwrap();
    let Err(Error::Invalid(p)) = parse_job_in(WITH_SOURCES, Format::Yaml, &dir) else {
        panic!("missing and large sources must be refused");
    };
    assert_eq!(p.len(), 2, "{p}");
    assert_eq!(p.0[0].path, "tasks[0].files[0].source");
    assert!(p.0[0].message.starts_with("cannot read ./app.conf"), "{p}");
    assert_eq!(p.0[1].path, "tasks[0].files[1].source");
    assert!(
        p.0[1]
            .message
            .contains(&format!("at most {MAX_FILE_BYTES}")),
        "{p}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_with_both_source_and_content_is_refused() {
    let text = "name: j\ntasks:\n  - { name: t, image: 'a:1', files: [{ path: /a, source: ./a, content: x }] }\n";
    let Err(Error::Invalid(p)) = parse_job_in(text, Format::Yaml, Path::new(".")) else {
        panic!("both must be refused");
    };
    assert_eq!(p.len(), 1, "{p}");
    assert!(p.0[0].message.contains("has content and source"), "{p}");
}
