//! Validation: every rule, with the exact field path of the problem and the fix in its message;
//! every problem of a file at once; the units that job files accept.

use std::time::Duration;

use orkestrator_core::Error;
use orkestrator_core::spec::{
    ConstraintOp, Format, Job, MAX_ATTEMPTS, MAX_BACKOFF, MAX_COMMAND_ARG_BYTES, MAX_COMMAND_ARGS,
    MAX_COMMAND_BYTES, MAX_CONSTRAINTS, MAX_COUNT, MAX_CPU, MAX_DISK, MAX_ENV_BYTES,
    MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ENV_VARS, MAX_IMAGE_BYTES, MAX_LABEL_KEY_BYTES,
    MAX_LABEL_VALUE_BYTES, MAX_MEMORY, MAX_PIDS, MAX_PORTS, MAX_PROBE_PATH_BYTES, MAX_TASKS,
    MIN_CPU, MIN_MEMORY, Problems, RestartMode, Task, parse_job,
};
use orkestrator_core::units::{ByteSize, Cpu, format_duration, parse_duration};

/// A YAML job named `job` with one task `t` (image `busybox:1.36`) plus the task fields in
/// `extra`, each a line such as `resources: {cpu: 0}`.
fn task_yaml(extra: &[&str]) -> String {
    let mut s = String::from("name: job\ntasks:\n  - name: t\n    image: busybox:1.36\n");
    for line in extra {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn problems_of(text: &str, format: Format) -> Problems {
    match parse_job(text, format) {
        Err(Error::Invalid(p)) => {
            assert!(!p.is_empty());
            p
        }
        other => panic!("expected validation problems, got {other:?}\n{text}"),
    }
}

/// The one problem `text` has; panics unless there is exactly one.
fn one_problem(text: &str) -> (String, String) {
    let p = problems_of(text, Format::Yaml);
    assert_eq!(p.len(), 1, "{p}\n{text}");
    (p.0[0].path.clone(), p.0[0].message.clone())
}

/// Asserts that `text` has exactly one problem, at `path`, whose message contains every `needle`.
fn assert_problem(text: &str, path: &str, needles: &[&str]) {
    let (got_path, message) = one_problem(text);
    assert_eq!(got_path, path, "{message}\n{text}");
    for n in needles {
        assert!(message.contains(n), "{n:?} not in {message:?}");
    }
}

fn valid(text: &str) -> Job {
    parse_job(text, Format::Yaml).unwrap_or_else(|e| panic!("should be valid: {e}\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// Required fields.

#[test]
fn a_missing_job_name_is_reported() {
    assert_problem(
        "tasks:\n  - name: t\n    image: busybox:1.36\n",
        "name",
        &["required", "DNS label"],
    );
}

#[test]
fn a_missing_task_name_is_reported() {
    assert_problem(
        "name: job\ntasks:\n  - image: busybox:1.36\n",
        "tasks[0].name",
        &["required", "DNS label"],
    );
}

#[test]
fn a_missing_image_is_reported_with_an_example() {
    assert_problem(
        "name: job\ntasks:\n  - name: t\n",
        "tasks[0].image",
        &["required", "busybox:1.36"],
    );
}

#[test]
fn no_tasks_is_reported() {
    assert_problem("name: job\n", "tasks", &["required", "at least one task"]);
    assert_problem(
        "name: job\ntasks: []\n",
        "tasks",
        &["empty", "at least one task"],
    );
}

// ---------------------------------------------------------------------------------------------
// Names.

#[test]
fn duplicate_task_names_are_reported_on_the_second() {
    let text = "name: job\ntasks:\n  - name: web\n    image: a:1\n  - name: db\n    image: b:1\n  - name: web\n    image: c:1\n";
    assert_problem(
        text,
        "tasks[2].name",
        &["\"web\"", "tasks[0]", "unique", "rename"],
    );
}

#[test]
fn names_must_be_dns_labels_and_the_fix_is_suggested() {
    let cases = [
        ("My_Job", "lowercase", "\"my-job\""),
        ("web.app", "lowercase", "\"web-app\""),
        ("-web", "'-'", "\"web\""),
        ("web-", "'-'", "\"web\""),
        ("Hello World!", "lowercase", "\"hello-world\""),
        ("ünïcode", "lowercase", "\"n-code\""),
    ];
    for (name, why, fix) in cases {
        let text = format!("name: {name:?}\ntasks:\n  - name: t\n    image: a:1\n");
        assert_problem(&text, "name", &[why, fix]);
        let text = format!("name: job\ntasks:\n  - name: {name:?}\n    image: a:1\n");
        assert_problem(&text, "tasks[0].name", &[why, fix]);
    }
}

#[test]
fn an_empty_name_is_reported() {
    assert_problem(
        "name: ''\ntasks:\n  - name: t\n    image: a:1\n",
        "name",
        &["empty", "DNS label"],
    );
}

#[test]
fn a_name_of_only_symbols_gets_a_generic_fix() {
    assert_problem(
        "name: '---'\ntasks:\n  - name: t\n    image: a:1\n",
        "name",
        &["lowercase letters, digits and '-'", "e.g. web-1"],
    );
}

#[test]
fn names_are_at_most_63_characters() {
    let ok = "a".repeat(63);
    valid(&format!(
        "name: {ok}\ntasks:\n  - name: {ok}\n    image: a:1\n"
    ));
    let long = "a".repeat(64);
    let text = format!("name: {long}\ntasks:\n  - name: t\n    image: a:1\n");
    assert_problem(&text, "name", &["longer than 63", &format!("\"{ok}\"")]);
}

#[test]
fn names_may_start_with_a_digit() {
    valid("name: 1job\ntasks:\n  - name: 2-task\n    image: a:1\n");
}

#[test]
fn a_numeric_yaml_name_is_read_as_text() {
    let job = valid("name: 123\ntasks:\n  - name: 007\n    image: a:1\n");
    assert_eq!(job.name.as_str(), "123");
    assert_eq!(job.tasks[0].name.as_str(), "007");
}

// ---------------------------------------------------------------------------------------------
// Instances and constraints.

#[test]
fn count_defaults_to_one_and_is_bounded() {
    assert_eq!(valid(&task_yaml(&[])).count, 1);
    assert_eq!(MAX_COUNT, 1000);
    for n in [1, 3, 1000] {
        let job = valid(&format!("count: {n}\n{}", task_yaml(&[])));
        assert_eq!(job.count, n);
    }
    for n in ["0", "-1", "1001"] {
        assert_problem(
            &format!("count: {n}\n{}", task_yaml(&[])),
            "count",
            &["out of range", "1 to 1000"],
        );
    }
    for n in ["2.5", "many", "'3'"] {
        assert_problem(
            &format!("count: {n}\n{}", task_yaml(&[])),
            "count",
            &["not a whole number", "e.g. 3"],
        );
    }
}

#[test]
fn constraints_are_read() {
    let job = valid(&format!(
        "constraints:\n  - {{label: zone, equals: a}}\n  - {{label: disk/type, not_equals: hdd}}\n{}",
        task_yaml(&[])
    ));
    let shown: Vec<String> = job.constraints.iter().map(|c| c.to_string()).collect();
    assert_eq!(shown, ["zone=a", "disk/type!=hdd"]);
    assert_eq!(job.constraints[0].op, ConstraintOp::Equals("a".to_owned()));
}

#[test]
fn bad_constraints_are_reported() {
    let cases = [
        ("{equals: a}", "constraints[0].label", "required"),
        (
            "{label: 'a b', equals: a}",
            "constraints[0].label",
            "not a label key",
        ),
        (
            "{label: '', equals: a}",
            "constraints[0].label",
            "not a label key",
        ),
        (
            "{label: zone}",
            "constraints[0]",
            "needs equals or not_equals",
        ),
        (
            "{label: zone, equals: a, not_equals: b}",
            "constraints[0]",
            "use one of them",
        ),
    ];
    for (written, path, needle) in cases {
        assert_problem(
            &format!("constraints: [{written}]\n{}", task_yaml(&[])),
            path,
            &[needle],
        );
    }
}

#[test]
fn each_constraint_is_checked_on_its_own_with_every_problem() {
    // A constraint with neither a label nor a test has both problems; a later one is numbered.
    let text = format!(
        "constraints:\n  - {{}}\n  - {{label: zone, equals: a}}\n  - {{label: a b, not_equals: c, equals: d}}\n{}",
        task_yaml(&[])
    );
    let p = problems_of(&text, Format::Yaml);
    let got: Vec<(&str, &str)> = p
        .iter()
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "constraints[0].label",
                "is required (the worker label to test, e.g. zone)"
            ),
            (
                "constraints[0]",
                "needs equals or not_equals (e.g. { label: zone, equals: a })"
            ),
            (
                "constraints[2].label",
                "\"a b\" is not a label key (use letters, digits, '.', '_', '/' and '-', e.g. zone)"
            ),
            (
                "constraints[2]",
                "has both equals and not_equals: use one of them"
            ),
        ]
    );
}

#[test]
fn constraint_labels_are_at_most_253_characters_and_values_are_free_text() {
    let job = valid(&format!(
        "constraints: [{{label: {}, equals: 'eu west/1 = ok'}}, {{label: k, not_equals: ''}}]\n{}",
        "k".repeat(253),
        task_yaml(&[])
    ));
    assert_eq!(
        job.constraints[0].op,
        ConstraintOp::Equals("eu west/1 = ok".to_owned())
    );
    assert_eq!(
        job.constraints[1].op,
        ConstraintOp::NotEquals(String::new())
    );
    assert_problem(
        &format!(
            "constraints: [{{label: {}, equals: a}}]\n{}",
            "k".repeat(254),
            task_yaml(&[])
        ),
        "constraints[0].label",
        &["not a label key"],
    );
    // An empty list is no constraint at all.
    assert!(
        valid(&format!("constraints: []\n{}", task_yaml(&[])))
            .constraints
            .is_empty()
    );
}

#[test]
fn count_must_be_a_number_in_every_format() {
    for (text, format) in [
        (
            r#"{"name": "a", "count": "3", "tasks": [{"name": "b", "image": "c:1"}]}"#,
            Format::Json,
        ),
        (
            "name = 'a'\ncount = '3'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\n",
            Format::Toml,
        ),
        (
            "name: a\ncount: '3'\ntasks: [{name: b, image: 'c:1'}]\n",
            Format::Yaml,
        ),
    ] {
        let p = problems_of(text, format);
        assert_eq!(p.len(), 1, "{format}: {p}");
        assert_eq!(p.0[0].path, "count");
        assert_eq!(
            p.0[0].message, "\"3\" is not a whole number (use e.g. 3)",
            "{format}"
        );
    }
    for (n, shown) in [("0", "0"), ("1001", "1001"), ("-5", "-5")] {
        let p = problems_of(
            &format!(
                "{{\"name\": \"a\", \"count\": {n}, \"tasks\": [{{\"name\": \"b\", \"image\": \"c:1\"}}]}}"
            ),
            Format::Json,
        );
        assert_eq!(
            p.0[0].message,
            format!("{shown} is out of range (run 1 to 1000 instances)")
        );
    }
    let p = problems_of(
        r#"{"name": "a", "count": 3.0, "tasks": [{"name": "b", "image": "c:1"}]}"#,
        Format::Json,
    );
    assert_eq!(p.0[0].message, "3.0 is not a whole number (use e.g. 3)");
}

// ---------------------------------------------------------------------------------------------
// Images.

#[test]
fn an_image_without_a_tag_suggests_image_colon_tag() {
    assert_problem(
        &task_yaml(&[]).replace("busybox:1.36", "busybox"),
        "tasks[0].image",
        &["no tag", "image:tag", "busybox:latest"],
    );
    assert_problem(
        &task_yaml(&[]).replace("busybox:1.36", "registry.local:5000/team/app"),
        "tasks[0].image",
        &["no tag", "registry.local:5000/team/app:latest"],
    );
}

#[test]
fn valid_image_references_are_accepted() {
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let images = [
        "busybox:1.36".to_owned(),
        "orkestrator/busybox:latest".to_owned(),
        "library/ubuntu:22.04".to_owned(),
        "registry.example.com/team/app:v1.2.3-rc_1".to_owned(),
        "localhost:5000/app:dev".to_owned(),
        "localhost/app:1".to_owned(),
        "my-registry:5000/a/b/c:TAG".to_owned(),
        "a__b.c-d---e:1".to_owned(),
        format!("busybox@{digest}"),
        format!("busybox:1.36@{digest}"),
        format!("registry:5000/app@{digest}"),
        // `registry` with tag `5000`: a one-part name has no registry.
        "registry:5000".to_owned(),
    ];
    for image in images {
        valid(&task_yaml(&[]).replace("busybox:1.36", &format!("{image:?}")));
    }
}

#[test]
fn invalid_image_references_are_reported_with_the_reason() {
    let cases = [
        ("Busybox:1", "lowercase"),
        ("orkestrator/BusyBox:latest", "lowercase"),
        ("bad image:1", "whitespace"),
        ("busybox:", "tag"),
        ("busybox:-x", "tag"),
        ("busybox:a/b", "registry"),
        ("busybox:1.36!", "tag"),
        ("busybox@sha256:xyz", "digest"),
        ("busybox@md5", "digest"),
        ("a//b:1", "path part"),
        ("_a:1", "path part"),
        ("a_:1", "path part"),
        ("a___b:1", "path part"),
        ("a..b:1", "path part"),
        ("bad_host.com/app:1", "registry"),
        ("host.com:port/app:1", "registry"),
        ("-host.com/app:1", "registry"),
        ("a:1:2", "path part"),
    ];
    for (image, needle) in cases {
        let text = task_yaml(&[]).replace("busybox:1.36", &format!("{image:?}"));
        let (path, message) = one_problem(&text);
        assert_eq!(path, "tasks[0].image", "{image}");
        assert!(
            message.contains("is not a valid image reference"),
            "{image}: {message}"
        );
        assert!(
            message.contains(needle),
            "{image}: {needle:?} not in {message}"
        );
    }
}

#[test]
fn an_empty_or_huge_image_is_reported() {
    assert_problem(
        &task_yaml(&[]).replace("busybox:1.36", "''"),
        "tasks[0].image",
        &["empty", "busybox:1.36"],
    );
    let huge = format!("{}:1", "a".repeat(300));
    assert_problem(
        &task_yaml(&[]).replace("busybox:1.36", &huge),
        "tasks[0].image",
        &["longer than 255"],
    );
}

// ---------------------------------------------------------------------------------------------
// Resources.

#[test]
fn cpu_accepts_cores_and_millicores() {
    let cases = [
        ("500m", 500),
        ("0.5", 500),
        ("'0.5'", 500),
        ("2", 2000),
        ("'2'", 2000),
        ("1.25", 1250),
        ("0.01", 10),
        ("'0.01'", 10),
        ("10m", 10),
        ("'1024'", 1_024_000),
        ("1024000m", 1_024_000),
    ];
    for (written, millis) in cases {
        let job = valid(&task_yaml(&[&format!("resources: {{cpu: {written}}}")]));
        assert_eq!(job.tasks[0].resources.cpu.millis(), millis, "{written}");
    }
}

#[test]
fn zero_cpu_is_reported() {
    for written in ["0", "0m", "0.0", "'0'"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{cpu: {written}}}")]),
            "tasks[0].resources.cpu",
            &["more than zero", "100m"],
        );
    }
}

#[test]
fn cpu_below_the_kernel_minimum_is_reported() {
    // Regression: `cpu: 1m` passed validation, and the container never started (runc:
    // `cpu.cfs_quota_us: invalid argument`): the kernel's smallest quota is 1ms per 100ms.
    assert_eq!(MIN_CPU, Cpu::from_millis(10));
    let (path, message) = one_problem(&task_yaml(&["resources: {cpu: 1m}"]));
    assert_eq!(path, "tasks[0].resources.cpu");
    assert_eq!(
        message,
        "1m is below the minimum of 10m (the kernel's smallest CPU quota is 1ms per 100ms period); ask for at least 10m"
    );
    for written in ["0.001", "'0.009'", "9m", "'5m'"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{cpu: {written}}}")]),
            "tasks[0].resources.cpu",
            &["below the minimum of 10m", "ask for at least 10m"],
        );
    }
    for (text, format) in [
        (
            r#"{"name": "j", "tasks": [{"name": "t", "image": "a:1", "resources": {"cpu": 0.005}}]}"#,
            Format::Json,
        ),
        (
            "name = 'j'\n[[tasks]]\nname = 't'\nimage = 'a:1'\nresources = { cpu = '1m' }\n",
            Format::Toml,
        ),
    ] {
        let p = problems_of(text, format);
        assert_eq!(p.len(), 1, "{format}: {p}");
        assert_eq!(p.0[0].path, "tasks[0].resources.cpu", "{format}");
        assert!(p.0[0].message.contains("at least 10m"), "{format}: {p}");
    }
    // The minimum itself is accepted, in each way of writing it.
    for written in ["10m", "0.01", "'0.010'"] {
        let job = valid(&task_yaml(&[&format!("resources: {{cpu: {written}}}")]));
        assert_eq!(job.tasks[0].resources.cpu, MIN_CPU, "{written}");
    }
}

#[test]
fn a_stored_spec_under_the_cpu_minimum_still_loads() {
    // A spec accepted before the minimum existed is in managers' stores, and read back (from
    // JSON) through `Job`'s own `Deserialize`: that must not refuse it, or the manager could not
    // start. Every other rule still holds there.
    let stored = r#"{"name": "old", "tasks": [{"name": "t", "image": "a:1", "resources": {"cpu": "1m", "memory": "64Mi", "disk": "1Gi"}}]}"#;
    let job: Job = serde_json::from_str(stored).expect("a stored spec with cpu 1m loads");
    assert_eq!(job.tasks[0].resources.cpu, Cpu::from_millis(1));
    // It writes back as it was read.
    let again: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
    assert_eq!(again, job);
    // Zero was never allowed, and is still refused.
    let zero = stored.replace("\"1m\"", "\"0\"");
    let e = serde_json::from_str::<Job>(&zero).unwrap_err().to_string();
    assert!(e.contains("must be more than zero"), "{e}");
    // A submission of the same spec is refused.
    let p = problems_of(stored, Format::Json);
    assert!(p.0[0].message.contains("below the minimum of 10m"), "{p}");
}

#[test]
fn negative_cpu_is_reported() {
    for written in ["-1", "-0.5", "'-500m'", "'-1'"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{cpu: {written}}}")]),
            "tasks[0].resources.cpu",
            &["negative", "500m"],
        );
    }
}

#[test]
fn absurd_cpu_is_reported() {
    assert_eq!(MAX_CPU, Cpu::from_cores(1024));
    for written in [
        "1025",
        "1024001m",
        "1e12",
        "'99999999999999999999'",
        "18446744073709551615",
    ] {
        let (path, message) = one_problem(&task_yaml(&[&format!("resources: {{cpu: {written}}}")]));
        assert_eq!(path, "tasks[0].resources.cpu", "{written}");
        assert!(
            message.contains("1024") || message.contains("too large"),
            "{written}: {message}"
        );
    }
}

#[test]
fn cpu_finer_than_a_millicore_is_reported() {
    for written in ["0.0005", "'1.0001'"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{cpu: {written}}}")]),
            "tasks[0].resources.cpu",
            &["precision", "250m"],
        );
    }
}

#[test]
fn cpu_that_is_not_a_quantity_is_reported() {
    for written in ["lots", "true", "'1.5m'", "'m'", "'500 m'", "'0x10'"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{cpu: {written}}}")]),
            "tasks[0].resources.cpu",
            &["not a CPU quantity", "500m"],
        );
    }
}

#[test]
fn sizes_accept_iec_si_and_bytes() {
    let cases = [
        ("64Mi", 64 << 20),
        ("1Gi", 1 << 30),
        ("1.5Gi", 3 << 29),
        ("512M", 512_000_000),
        ("1G", 1_000_000_000),
        ("100000k", 100_000_000),
        ("100000K", 100_000_000),
        ("65536Ki", 64 << 20),
        ("64MiB", 64 << 20),
        ("64MB", 64_000_000),
        ("67108864", 64 << 20),
        ("'67108864'", 64 << 20),
        ("'64 Mi'", 64 << 20),
    ];
    for (written, bytes) in cases {
        let job = valid(&task_yaml(&[&format!(
            "resources: {{memory: {written}, disk: {written}}}"
        )]));
        assert_eq!(job.tasks[0].resources.memory.bytes(), bytes, "{written}");
        assert_eq!(job.tasks[0].resources.disk.bytes(), bytes, "{written}");
    }
}

#[test]
fn memory_below_the_minimum_is_reported() {
    assert_eq!(MIN_MEMORY, ByteSize::mib(6));
    valid(&task_yaml(&["resources: {memory: 6Mi}"]));
    assert_problem(
        &task_yaml(&["resources: {memory: 5Mi}"]),
        "tasks[0].resources.memory",
        &["less than the minimum of 6Mi", "64Mi"],
    );
    assert_problem(
        &task_yaml(&["resources: {memory: 0}"]),
        "tasks[0].resources.memory",
        &["less than the minimum"],
    );
}

#[test]
fn a_small_plain_memory_number_suggests_mebibytes() {
    assert_problem(
        &task_yaml(&["resources: {memory: 64}"]),
        "tasks[0].resources.memory",
        &["counts bytes", "did you mean 64Mi?"],
    );
}

#[test]
fn absurd_memory_and_disk_are_reported() {
    assert_eq!(MAX_MEMORY, ByteSize::gib(16 * 1024));
    valid(&task_yaml(&["resources: {memory: 16Ti, disk: 1Pi}"]));
    assert_problem(
        &task_yaml(&["resources: {memory: 17Ti}"]),
        "tasks[0].resources.memory",
        &["more than the 16Ti allowed", "at most 16Ti"],
    );
    assert_eq!(MAX_DISK, ByteSize::gib(1024 * 1024));
    assert_problem(
        &task_yaml(&["resources: {disk: 2Pi}"]),
        "tasks[0].resources.disk",
        &["more than the 1Pi allowed", "at most 1Pi"],
    );
    assert_problem(
        &task_yaml(&["resources: {disk: 99999999999Ei}"]),
        "tasks[0].resources.disk",
        &["too large"],
    );
}

#[test]
fn zero_and_negative_sizes_are_reported() {
    assert_problem(
        &task_yaml(&["resources: {disk: 0}"]),
        "tasks[0].resources.disk",
        &["more than zero", "100Mi"],
    );
    assert_problem(
        &task_yaml(&["resources: {disk: 0Gi}"]),
        "tasks[0].resources.disk",
        &["more than zero"],
    );
    for written in ["-1", "'-1Gi'"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{disk: {written}}}")]),
            "tasks[0].resources.disk",
            &["negative", "1Gi"],
        );
    }
}

#[test]
fn sizes_that_are_not_sizes_are_reported() {
    // The message from the issue, verbatim.
    assert_problem(
        &task_yaml(&["resources: {memory: 12Zi}"]),
        "tasks[0].resources.memory",
        &[r#""12Zi" is not a size (use e.g. 256Mi, 1Gi, 512M or a number of bytes)"#],
    );
    for written in ["lots", "true", "1.5", "'Mi'", "'1.5'", "'0.3Ki'"] {
        let (path, message) =
            one_problem(&task_yaml(&[&format!("resources: {{memory: {written}}}")]));
        assert_eq!(path, "tasks[0].resources.memory", "{written}");
        assert!(
            message.contains("not a size") || message.contains("whole number of bytes"),
            "{written}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Restart policy.

#[test]
fn restart_policies_are_read() {
    for (written, mode) in [
        ("never", RestartMode::Never),
        ("on-failure", RestartMode::OnFailure),
        ("always", RestartMode::Always),
    ] {
        let job = valid(&task_yaml(&[&format!("restart: {{policy: {written}}}")]));
        assert_eq!(job.tasks[0].restart.policy, mode);
    }
}

#[test]
fn an_unknown_restart_policy_is_reported_with_the_choices_and_a_guess() {
    let cases = [
        ("sometimes", ""),
        ("on_failure", "did you mean on-failure?"),
        ("OnFailure", "did you mean on-failure?"),
        ("no", "did you mean never?"),
        ("Never", "did you mean never?"),
        ("unless-stopped", "did you mean always?"),
    ];
    for (written, guess) in cases {
        assert_problem(
            &task_yaml(&[&format!("restart: {{policy: {written}}}")]),
            "tasks[0].restart.policy",
            &[
                &format!("{written:?} is not a restart policy"),
                "use never, on-failure or always",
                guess,
            ],
        );
    }
}

#[test]
fn max_attempts_is_bounded() {
    assert_eq!(MAX_ATTEMPTS, 10_000);
    for n in [0, 1, 10_000] {
        let job = valid(&task_yaml(&[&format!("restart: {{max_attempts: {n}}}")]));
        assert_eq!(job.tasks[0].restart.max_attempts, n);
    }
    for written in ["10001", "-1", "1e41"] {
        assert_problem(
            &task_yaml(&[&format!("restart: {{max_attempts: {written}}}")]),
            "tasks[0].restart.max_attempts",
            &["out of range", "0 to 10000"],
        );
    }
    for written in ["2.5", "lots", "'5'"] {
        assert_problem(
            &task_yaml(&[&format!("restart: {{max_attempts: {written}}}")]),
            "tasks[0].restart.max_attempts",
            &["not a whole number", "e.g. 5"],
        );
    }
}

#[test]
fn backoff_durations_accept_units_and_seconds() {
    let job = valid(&task_yaml(&[
        "restart: {backoff: {initial: 500ms, max: 1h 30m, reset_after: 90}}",
    ]));
    let b = job.tasks[0].restart.backoff;
    assert_eq!(b.initial, Duration::from_millis(500));
    assert_eq!(b.max, Duration::from_secs(5400));
    assert_eq!(b.reset_after, Duration::from_secs(90));
    let job = valid(&task_yaml(&["restart: {backoff: {initial: 0.25}}"]));
    assert_eq!(
        job.tasks[0].restart.backoff.initial,
        Duration::from_millis(250)
    );
}

#[test]
fn bad_backoff_durations_are_reported() {
    let cases = [
        ("initial: 0s", "initial", "more than zero", "e.g. 1s"),
        ("max: 0", "max", "more than zero", "e.g. 1s"),
        (
            "reset_after: 25h",
            "reset_after",
            "1day 1h is longer than the 24h allowed",
            "at most 24h",
        ),
        (
            "initial: five",
            "initial",
            "not a duration",
            "e.g. 500ms, 30s",
        ),
        (
            "initial: '30'",
            "initial",
            "not a duration",
            "e.g. 500ms, 30s",
        ),
        ("initial: -1", "initial", "negative", "e.g. 30s"),
        ("initial: -1.5", "initial", "negative", "e.g. 30s"),
        ("initial: true", "initial", "not a duration", "e.g. 30s"),
    ];
    for (field, path, why, fix) in cases {
        assert_problem(
            &task_yaml(&[&format!("restart: {{backoff: {{{field}}}}}")]),
            &format!("tasks[0].restart.backoff.{path}"),
            &[why, fix],
        );
    }
    assert_eq!(MAX_BACKOFF, Duration::from_secs(24 * 3600));
    valid(&task_yaml(&[
        "restart: {backoff: {initial: 24h, max: 24h, reset_after: 24h}}",
    ]));
}

#[test]
fn a_backoff_max_shorter_than_initial_is_reported() {
    assert_problem(
        &task_yaml(&["restart: {backoff: {initial: 1m, max: 10s}}"]),
        "tasks[0].restart.backoff.max",
        &["10s is shorter than initial (1m)", "at least initial"],
    );
}

// ---------------------------------------------------------------------------------------------
// Ports.

#[test]
fn ports_out_of_range_are_reported() {
    for (written, field) in [
        ("{container: 0}", "container"),
        ("{container: 65536}", "container"),
        ("{container: -80}", "container"),
        ("{container: 80, host: 0}", "host"),
        ("{container: 80, host: 70000}", "host"),
    ] {
        assert_problem(
            &task_yaml(&[&format!("ports: [{written}]")]),
            &format!("tasks[0].ports[0].{field}"),
            &["out of range", "1-65535"],
        );
    }
    valid(&task_yaml(&["ports: [{container: 1, host: 65535}]"]));
}

#[test]
fn ports_that_are_not_numbers_are_reported() {
    for written in ["'80'", "80.5", "http", "true"] {
        assert_problem(
            &task_yaml(&[&format!("ports: [{{container: {written}}}]")]),
            "tasks[0].ports[0].container",
            &["not a port number", "integer 1-65535"],
        );
    }
}

#[test]
fn a_port_needs_its_container_port_and_a_known_protocol() {
    assert_problem(
        &task_yaml(&["ports: [{host: 8080}]"]),
        "tasks[0].ports[0].container",
        &["required", "1-65535"],
    );
    assert_problem(
        &task_yaml(&["ports: [{container: 80, protocol: sctp}]"]),
        "tasks[0].ports[0].protocol",
        &["\"sctp\" is not a protocol", "tcp or udp"],
    );
}

#[test]
fn a_host_port_used_twice_in_a_task_is_reported() {
    assert_problem(
        &task_yaml(&["ports: [{container: 80, host: 8080}, {container: 81, host: 8080}]"]),
        "tasks[0].ports[1].host",
        &["8080/tcp", "tasks[0].ports[0].host", "published once"],
    );
}

#[test]
fn a_host_port_used_by_two_tasks_is_reported() {
    let text = "name: job\ntasks:\n  - name: a\n    image: x:1\n    ports: [{container: 80, host: 8080}]\n  - name: b\n    image: x:1\n    ports: [{container: 81}, {container: 80, host: 8080}]\n";
    assert_problem(
        text,
        "tasks[1].ports[1].host",
        &["host port 8080/tcp is already used by tasks[0].ports[0].host"],
    );
}

#[test]
fn the_same_host_port_may_serve_tcp_and_udp() {
    let job = valid(&task_yaml(&[
        "ports: [{container: 53, host: 5353, protocol: tcp}, {container: 53, host: 5353, protocol: udp}]",
    ]));
    assert_eq!(job.host_ports().count(), 2);
}

#[test]
fn a_container_port_listed_twice_is_reported() {
    assert_problem(
        &task_yaml(&["ports: [{container: 80}, {container: 80, host: 8080}]"]),
        "tasks[0].ports[1].container",
        &["80/tcp", "tasks[0].ports[0]", "once"],
    );
}

#[test]
fn port_paths_count_invalid_ports_too() {
    // Regression: the index in the path is the port's place in the file, even after a bad port.
    assert_eq!(
        paths(&task_yaml(&[
            "ports: [{container: 0}, {container: 80}, {container: 80}]"
        ])),
        ["tasks[0].ports[0].container", "tasks[0].ports[2].container"]
    );
}

#[test]
fn host_port_clashes_are_found_even_in_tasks_with_other_problems() {
    // Regression: all problems at once, not only those of otherwise valid tasks.
    let text = "name: job\ntasks:\n  - name: a\n    image: x\n    ports: [{container: 80, host: 8080}]\n  - name: b\n    image: x:1\n    ports: [{container: 80, host: 8080}]\n";
    assert_eq!(paths(text), ["tasks[0].image", "tasks[1].ports[0].host"]);
}

// ---------------------------------------------------------------------------------------------
// Environment and command.

#[test]
fn environment_variable_names_are_checked() {
    // As the engine takes them (issue 18): a dot, a hyphen, a leading digit are all valid in
    // Docker (Elasticsearch's `discovery.type`); these were refused before.
    let job = valid(&task_yaml(&[
        "env: {A: x, _b: y, C_1: z, discovery.type: single-node, 1A: a, A-B: b, ork_lower: c}",
    ]));
    assert_eq!(job.tasks[0].env["discovery.type"], "single-node");
    for (name, path, says) in [
        ("", "tasks[0].env", "empty name"),
        ("A=B", "tasks[0].env.A=B", "'='"),
        ("A\0B", "tasks[0].env", "NUL"),
        ("ORK_JOB", "tasks[0].env.ORK_JOB", "reserved"),
    ] {
        assert_problem(
            &task_yaml(&[&format!("env: {{{name:?}: x}}")]),
            path,
            &[says],
        );
    }
}

#[test]
fn nul_characters_are_reported() {
    assert_problem(
        &task_yaml(&["env: {A: \"x\\0y\"}"]),
        "tasks[0].env.A",
        &["NUL"],
    );
    assert_problem(
        &task_yaml(&["command: [sh, \"a\\0\"]"]),
        "tasks[0].command[1]",
        &["NUL"],
    );
}

#[test]
fn an_empty_program_is_reported() {
    for first in ["''", "'  '"] {
        assert_problem(
            &task_yaml(&[&format!("command: [{first}, x]")]),
            "tasks[0].command[0]",
            &["empty", "program to run"],
        );
    }
    // Later arguments may be empty; so may the whole command (the image's default runs).
    valid(&task_yaml(&["command: [echo, '']"]));
    valid(&task_yaml(&["command: []"]));
}

// ---------------------------------------------------------------------------------------------
// Health checks (the probe kinds and their basic rules are in spec_health.rs).

/// The task line `health_check: {written}`.
fn health(written: &str) -> String {
    task_yaml(&[&format!("health_check: {written}")])
}

#[test]
fn health_check_durations_accept_units_and_seconds_up_to_an_hour() {
    let h = valid(&health(
        "{ tcp: { port: 1 }, interval: 1h, timeout: 1h, failures: 100 }",
    ))
    .tasks[0]
        .health_check
        .clone()
        .unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.failures),
        (Duration::from_secs(3600), Duration::from_secs(3600), 100)
    );
    let h = valid(&health(
        "{ tcp: { port: 1 }, interval: 30, timeout: 0.25, failures: 1 }",
    ))
    .tasks[0]
        .health_check
        .clone()
        .unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.failures),
        (Duration::from_secs(30), Duration::from_millis(250), 1)
    );
}

#[test]
fn a_short_interval_alone_shortens_the_default_timeout() {
    // Regression: `interval: 1s` with no timeout was refused, the default 2s timeout being longer
    // than the interval, for a field the file does not write.
    let h = valid(&health("{ tcp: { port: 80 }, interval: 1s }")).tasks[0]
        .health_check
        .clone()
        .unwrap();
    assert_eq!(
        (h.interval, h.timeout),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
    let h = valid(&health("{ tcp: { port: 80 }, interval: 300ms }")).tasks[0]
        .health_check
        .clone()
        .unwrap();
    assert_eq!(h.timeout, Duration::from_millis(300));
    // A longer interval keeps the 2s default; a timeout equal to the interval is fine.
    let h = valid(&health("{ tcp: { port: 80 }, interval: 3s }")).tasks[0]
        .health_check
        .clone()
        .unwrap();
    assert_eq!(h.timeout, Duration::from_secs(2));
    valid(&health("{ tcp: { port: 80 }, interval: 2s, timeout: 2s }"));
    // A timeout written with no interval is held to the default interval.
    assert_problem(
        &health("{ tcp: { port: 80 }, timeout: 11s }"),
        "tasks[0].health_check.timeout",
        &["11s is longer than the interval (10s); make it shorter"],
    );
}

#[test]
fn a_bad_interval_does_not_make_the_timeout_wrong_too() {
    // Regression: an interval refused was replaced by the default (10s) before the timeout was
    // compared with it, so a valid `timeout: 30s` was reported as longer than an interval of 10s
    // the file never asked for.
    for interval in ["2h", "0s", "soon"] {
        let p = problems_of(
            &health(&format!(
                "{{ tcp: {{ port: 80 }}, interval: {interval}, timeout: 30s }}"
            )),
            Format::Yaml,
        );
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["tasks[0].health_check.interval"], "{interval}: {p}");
    }
}

#[test]
fn bad_health_check_values_are_reported_with_the_fix() {
    let cases = [
        (
            "{ tcp: { port: 80 }, interval: 2h }",
            "interval",
            "2h is longer than the 1h allowed (ask for at most 1h)",
        ),
        (
            "{ tcp: { port: 80 }, interval: 1h 1s }",
            "interval",
            "1h 1s is longer than the 1h allowed (ask for at most 1h)",
        ),
        (
            "{ tcp: { port: 80 }, interval: 0s }",
            "interval",
            "must be more than zero (e.g. 10s)",
        ),
        (
            "{ tcp: { port: 80 }, timeout: 0 }",
            "timeout",
            "must be more than zero (e.g. 10s)",
        ),
        (
            "{ tcp: { port: 80 }, timeout: -1 }",
            "timeout",
            "-1 is negative (use e.g. 30s, 5m)",
        ),
        (
            "{ tcp: { port: 80 }, interval: '30' }",
            "interval",
            "\"30\" is not a duration (use e.g. 500ms, 30s, 5m, 1h)",
        ),
        (
            "{ tcp: { port: 80 }, failures: 101 }",
            "failures",
            "101 is out of range (use 1 to 100)",
        ),
        (
            "{ tcp: { port: 80 }, failures: -1 }",
            "failures",
            "-1 is out of range (use 1 to 100)",
        ),
        (
            "{ tcp: { port: 80 }, failures: '3' }",
            "failures",
            "\"3\" is not a whole number (use e.g. 3)",
        ),
        (
            "{ tcp: { port: 80 }, failures: 2.5 }",
            "failures",
            "2.5 is not a whole number (use e.g. 3)",
        ),
        (
            "{ tcp: { port: '80' } }",
            "tcp.port",
            "\"80\" is not a port number (use an integer 1-65535)",
        ),
        (
            "{ tcp: { port: 0 } }",
            "tcp.port",
            "0 is out of range (ports are 1-65535)",
        ),
        (
            "{ http: { path: /healthz } }",
            "http.port",
            "is required (the container port to call)",
        ),
        (
            "{ http: { port: 80, path: '' } }",
            "http.path",
            "\"\" is not a URL path (use e.g. /healthz)",
        ),
        (
            "{ http: { port: 80, path: '/a b' } }",
            "http.path",
            "\"/a b\" is not a URL path (use e.g. /healthz)",
        ),
        (
            "{ exec: ['  ', x] }",
            "exec",
            "needs a command, e.g. [\"sh\", \"-c\", \"test -f /tmp/ready\"]",
        ),
    ];
    for (written, field, message) in cases {
        let (path, got) = one_problem(&health(written));
        assert_eq!(path, format!("tasks[0].health_check.{field}"), "{written}");
        assert_eq!(got, message, "{written}");
    }
}

#[test]
fn nul_characters_in_a_health_check_command_are_reported() {
    // Regression: `command` refused NUL characters but `health_check.exec` let them through, to
    // fail at every check on the worker instead.
    assert_problem(
        &health("{ exec: [sh, -c, \"test\\0\"] }"),
        "tasks[0].health_check.exec[2]",
        &["contains a NUL character"],
    );
}

#[test]
fn http_paths_may_hold_a_query_and_default_to_the_root() {
    use orkestrator_core::spec::Probe;
    let job = valid(&health(
        "{ http: { port: 80, path: '/health?full=1&x=%20' } }",
    ));
    assert_eq!(
        job.tasks[0].health_check.as_ref().unwrap().probe,
        Probe::Http {
            port: 80,
            path: "/health?full=1&x=%20".into()
        }
    );
}

#[test]
fn every_health_check_problem_is_reported_at_once() {
    let p = problems_of(
        &health(
            "{ http: { port: 0, path: x }, tcp: { port: 1 }, interval: 2h, timeout: 0s, failures: 0 }",
        ),
        Format::Yaml,
    );
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tasks[0].health_check.http.port",
            "tasks[0].health_check.http.path",
            "tasks[0].health_check",
            "tasks[0].health_check.interval",
            "tasks[0].health_check.timeout",
            "tasks[0].health_check.failures",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// All problems at once.

fn paths(text: &str) -> Vec<String> {
    problems_of(text, Format::Yaml)
        .iter()
        .map(|p| p.path.clone())
        .collect()
}

const MANY_PROBLEMS: &str = r#"name: Bad_Name
count: 0
constraints: [{ label: zone }, { label: "", equals: a, not_equals: b }]
tasks:
  - name: web
    image: nginx
    command: [""]
    env: { ORK_X: a }
    ports: [{ container: 0 }, { container: 80, host: 8080 }, { container: 81, host: 8080 }]
    resources: { cpu: 0, memory: 12Zi, disk: -1 }
    restart: { policy: sometimes, max_attempts: 1.5, backoff: { initial: 0s, max: 48h } }
    health_check: { http: { port: 70000, path: healthz }, interval: 2s, timeout: 3s, failures: 0 }
  - name: web
    image: Web:1
    health_check: { exec: [] }
"#;

#[test]
fn every_problem_of_a_file_is_reported_at_once_in_file_order() {
    assert_eq!(
        paths(MANY_PROBLEMS),
        [
            "name",
            "count",
            "constraints[0]",
            "constraints[1].label",
            "constraints[1]",
            "tasks[0].image",
            "tasks[0].command[0]",
            "tasks[0].env.ORK_X",
            "tasks[0].ports[0].container",
            "tasks[0].ports[2].host",
            "tasks[0].resources.cpu",
            "tasks[0].resources.memory",
            "tasks[0].resources.disk",
            "tasks[0].restart.policy",
            "tasks[0].restart.max_attempts",
            "tasks[0].restart.backoff.initial",
            "tasks[0].restart.backoff.max",
            "tasks[0].health_check.http.port",
            "tasks[0].health_check.http.path",
            "tasks[0].health_check.timeout",
            "tasks[0].health_check.failures",
            "tasks[1].name",
            "tasks[1].image",
            "tasks[1].health_check.exec",
        ]
    );
}

/// The problems of `text` without their lines, by path: what every format must agree on (the
/// lines, and so the order, follow how each file is written).
fn unplaced(text: &str, format: Format) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = problems_of(text, format)
        .iter()
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect();
    p.sort();
    p
}

#[test]
fn the_same_problems_are_found_in_every_format() {
    let yaml = unplaced(MANY_PROBLEMS, Format::Yaml);
    let job: serde_json::Value = serde_saphyr::from_str(MANY_PROBLEMS).unwrap();
    let json = unplaced(&serde_json::to_string(&job).unwrap(), Format::Json);
    assert_eq!(json, yaml);
    let toml = unplaced(&toml::to_string(&job).unwrap(), Format::Toml);
    assert_eq!(toml, yaml);
}

#[test]
fn problems_display_one_per_line_with_their_paths() {
    let e = parse_job(
        "name: Web\ntasks:\n  - name: t\n    image: x\n",
        Format::Yaml,
    )
    .unwrap_err();
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "invalid job spec (2 problems):");
    assert!(
        lines[1].starts_with("name (line 1): \"Web\" has characters"),
        "{shown}"
    );
    assert!(
        lines[2].starts_with("tasks[0].image (line 4): \"x\" has no tag"),
        "{shown}"
    );
    assert_eq!(lines.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Units, directly.

#[test]
fn units_format_to_what_they_parse() {
    assert_eq!(Cpu::from_millis(500).to_string(), "500m");
    assert_eq!(Cpu::from_millis(3000).to_string(), "3");
    assert_eq!(Cpu::parse(" 2 ").unwrap(), Cpu::from_cores(2));
    assert_eq!(ByteSize::mib(1536).to_string(), "1536Mi");
    assert_eq!(ByteSize::gib(2).to_string(), "2Gi");
    assert_eq!(ByteSize::b(1_000_000).to_string(), "1MB");
    assert_eq!(ByteSize::ZERO.to_string(), "0");
    assert_eq!(ByteSize::mib(1536).human(), "1.5Gi");
    assert_eq!(ByteSize::b(5).human(), "5B");
    assert_eq!(format_duration(Duration::ZERO), "0s");
    assert_eq!(format_duration(Duration::from_secs(90)), "1m 30s");
    assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration(" 5m ").unwrap(), Duration::from_secs(300));
    // The forms docs/job-file.md promises.
    for (written, secs) in [
        ("1h30m", 5400),
        ("2d", 172_800),
        ("10sec", 10),
        ("5min", 300),
        ("2hours", 7200),
    ] {
        assert_eq!(
            parse_duration(written).unwrap(),
            Duration::from_secs(secs),
            "{written}"
        );
    }
    assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
    assert_eq!(parse_duration("7ns").unwrap(), Duration::from_nanos(7));
}

#[test]
fn large_plain_byte_counts_parse() {
    // Regression: byte counts over 18446744073 overflowed the decimal scaling and were refused,
    // so a job asking for e.g. 20000000001 bytes of memory could not be read back once rendered.
    assert_eq!(
        ByteSize::parse("20000000001").unwrap(),
        ByteSize::b(20_000_000_001)
    );
    assert_eq!(
        ByteSize::parse(&u64::MAX.to_string()).unwrap(),
        ByteSize::b(u64::MAX)
    );
    let job = valid(&task_yaml(&["resources: {memory: 20000000001}"]));
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&job).unwrap();
        assert_eq!(parse_job(&text, format).unwrap(), job, "{format}");
    }
}

#[test]
fn units_edge_cases() {
    assert_eq!(ByteSize::parse("1.").unwrap(), ByteSize::b(1));
    assert_eq!(ByteSize::parse(".5Ki").unwrap(), ByteSize::b(512));
    assert_eq!(
        ByteSize::parse("16Ei").unwrap_err(),
        "\"16Ei\" is too large"
    );
    assert_eq!(ByteSize::parse("15Ei").unwrap(), ByteSize::b(15 << 60));
    assert!(ByteSize::parse("").is_err());
    assert!(ByteSize::parse(".").is_err());
    assert!(ByteSize::parse("1..5").is_err());
    assert!(ByteSize::parse("+1").is_err());
    assert!(ByteSize::parse("1e3").is_err());
    assert!(ByteSize::parse("1Mib").is_err());
    assert!(ByteSize::parse("١٢").is_err());
    assert!(
        Cpu::parse("18446744073709551616m")
            .unwrap_err()
            .contains("too large")
    );
    assert!(
        Cpu::parse("99999999999999999")
            .unwrap_err()
            .contains("too large")
    );
    assert!(Cpu::parse("-0").unwrap_err().contains("negative"));
    assert!(Cpu::parse("1.0001").unwrap_err().contains("precision"));
    assert_eq!(Cpu::parse("1.000000").unwrap(), Cpu::from_cores(1));
    assert!(Cpu::from_cores_f64(f64::INFINITY).is_err());
    assert!(Cpu::from_cores_f64(1e300).is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("-5s").is_err());
    assert!(parse_duration("99999999999999999999999h").is_err());
}

// ---------------------------------------------------------------------------------------------
// Safe containers: the process limit, the user and a read-only root filesystem.

#[test]
fn safety_fields_default_to_4096_processes_the_image_user_and_a_writable_root() {
    let job = valid(&task_yaml(&[]));
    let t = &job.tasks[0];
    assert_eq!(t.pids, 4096);
    assert_eq!(t.pids, Task::DEFAULT_PIDS);
    assert_eq!(t.user, None);
    assert!(!t.read_only);
    // Only some resources given: pids still defaults, and the others do too.
    let t = valid(&task_yaml(&["resources: { cpu: 250m }"])).tasks[0].clone();
    assert_eq!((t.pids, t.resources.cpu), (4096, Cpu::from_millis(250)));
}

#[test]
fn pids_is_read_and_bounded_and_not_reserved() {
    let job = valid(&task_yaml(&["resources: { pids: 50 }"]));
    assert_eq!(job.tasks[0].pids, 50);
    // The process limit is not part of what placement adds up.
    assert_eq!(job.resources(), valid(&task_yaml(&[])).resources());
    assert_eq!(
        valid(&task_yaml(&[&format!("resources: {{ pids: {MAX_PIDS} }}")])).tasks[0].pids,
        MAX_PIDS
    );
    assert_eq!(
        valid(&task_yaml(&["resources: { pids: 1 }"])).tasks[0].pids,
        1
    );
    for bad in ["0", "-1", &(MAX_PIDS as u64 + 1).to_string()] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{ pids: {bad} }}")]),
            "tasks[0].resources.pids",
            &[bad, "out of range", "1 to 1048576"],
        );
    }
    for bad in ["1.5", "many", "true"] {
        assert_problem(
            &task_yaml(&[&format!("resources: {{ pids: {bad} }}")]),
            "tasks[0].resources.pids",
            &["not a whole number", "e.g. 4096"],
        );
    }
}

#[test]
fn a_non_root_user_is_kept_as_written() {
    for (written, kept) in [
        ("1000", "1000"),
        ("\"1000:1000\"", "1000:1000"),
        ("1000:0", "1000:0"),
        ("app", "app"),
        ("app:staff", "app:staff"),
        ("_svc-1.x", "_svc-1.x"),
    ] {
        let job = valid(&task_yaml(&[&format!("user: {written}")]));
        assert_eq!(job.tasks[0].user.as_deref(), Some(kept), "{written}");
    }
}

#[test]
fn root_is_refused_naming_the_field_and_the_fix() {
    for root in [
        "root",
        "0",
        "\"0\"",
        "\"00\"",
        "\"0:0\"",
        "0:1000",
        "root:root",
    ] {
        assert_problem(
            &task_yaml(&[&format!("user: {root}")]),
            "tasks[0].user",
            &[
                "is root",
                "may not run as root",
                "\"1000:1000\"",
                "leave user out",
            ],
        );
    }
}

#[test]
fn a_malformed_user_is_refused() {
    for bad in [
        "\"\"",
        "\":1000\"",
        "\"1000:\"",
        "\"app user\"",
        "-1",
        "4294967295",
        "\"1a\"",
        "\"a:b:c\"",
        &"a".repeat(33),
    ] {
        assert_problem(
            &task_yaml(&[&format!("user: {bad}")]),
            "tasks[0].user",
            &["is not a user", "e.g."],
        );
    }
    assert_problem(
        &task_yaml(&["user: true"]),
        "tasks[0].user",
        &["true is not a user"],
    );
}

#[test]
fn read_only_is_a_boolean() {
    assert!(valid(&task_yaml(&["read_only: true"])).tasks[0].read_only);
    assert!(!valid(&task_yaml(&["read_only: false"])).tasks[0].read_only);
    for bad in ["enabled", "1", "\"true\""] {
        assert_problem(
            &task_yaml(&[&format!("read_only: {bad}")]),
            "tasks[0].read_only",
            &["is not true or false", "read_only: true"],
        );
    }
}

#[test]
fn the_safety_fields_read_the_same_in_yaml_toml_and_json() {
    let yaml = "name: j\ntasks:\n  - name: t\n    image: a:1\n    resources: { pids: 64 }\n    user: 1000\n    read_only: true\n";
    let toml = "name = \"j\"\n[[tasks]]\nname = \"t\"\nimage = \"a:1\"\nresources = { pids = 64 }\nuser = 1000\nread_only = true\n";
    let json = r#"{"name": "j", "tasks": [{"name": "t", "image": "a:1", "resources": {"pids": 64}, "user": "1000", "read_only": true}]}"#;
    let a = parse_job(yaml, Format::Yaml).unwrap();
    assert_eq!(a, parse_job(toml, Format::Toml).unwrap());
    assert_eq!(a, parse_job(json, Format::Json).unwrap());
    let t = &a.tasks[0];
    assert_eq!(
        (t.pids, t.user.as_deref(), t.read_only),
        (64, Some("1000"), true)
    );
    // The same problems in every format.
    let bad_yaml = "name: j\ntasks:\n  - name: t\n    image: a:1\n    resources: { pids: 0 }\n    user: root\n    read_only: 1\n";
    let bad_toml = "name = \"j\"\n[[tasks]]\nname = \"t\"\nimage = \"a:1\"\nresources = { pids = 0 }\nuser = \"root\"\nread_only = 1\n";
    let bad_json = r#"{"name": "j", "tasks": [{"name": "t", "image": "a:1", "resources": {"pids": 0}, "user": "root", "read_only": 1}]}"#;
    let expected = problems_of(bad_yaml, Format::Yaml);
    assert_eq!(
        expected.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        [
            "tasks[0].resources.pids",
            "tasks[0].user",
            "tasks[0].read_only"
        ]
    );
    // The same lines too: each file writes the three on lines 5 to 7 (JSON on line 1).
    assert_eq!(expected, problems_of(bad_toml, Format::Toml));
    let mut one_line = expected.clone();
    one_line.0.iter_mut().for_each(|p| p.line = Some(1));
    assert_eq!(one_line, problems_of(bad_json, Format::Json));
}

#[test]
fn rendering_shows_the_defaults_and_parses_back_equal() {
    let job = valid(&task_yaml(&[]));
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&job).unwrap();
        assert!(text.contains("pids"), "{format}: {text}");
        assert!(text.contains("4096"), "{format}: {text}");
        assert!(text.contains("read_only"), "{format}: {text}");
        assert!(
            !text.contains("user"),
            "{format}: no user is written: {text}"
        );
        assert_eq!(parse_job(&text, format).unwrap(), job, "{format}:\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&Format::Json.render(&job).unwrap()).unwrap();
    assert_eq!(json["tasks"][0]["resources"]["pids"], 4096);
    assert_eq!(json["tasks"][0]["read_only"], false);
    assert!(
        json["tasks"][0].get("pids").is_none(),
        "pids is written in resources"
    );
    let asked = valid(&task_yaml(&[
        "resources: { pids: 50 }",
        "user: \"1000:1000\"",
        "read_only: true",
    ]));
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&asked).unwrap();
        assert_eq!(
            parse_job(&text, format).unwrap(),
            asked,
            "{format}:\n{text}"
        );
    }
}

/// A job as the store held it before the safety fields existed (serialized `Job` JSON, without
/// `pids`, `user` or `read_only`).
const STORED_BEFORE: &str = r#"{
  "name": "web",
  "count": 2,
  "tasks": [
    {
      "name": "server",
      "image": "orkestrator/busybox:latest",
      "command": ["sh", "-c", "httpd -f -p 8080"],
      "env": {"MODE": "prod"},
      "ports": [{"container": 8080, "host": 18080, "protocol": "tcp"}],
      "resources": {"cpu": "250m", "memory": "64Mi", "disk": "256Mi"},
      "restart": {
        "policy": "on-failure",
        "max_attempts": 5,
        "backoff": {"initial": "10s", "max": "5m", "reset_after": "10m"}
      }
    }
  ]
}"#;

/// The job file the stored spec came from, as a user would submit it again today.
const ITS_FILE: &str = "name: web
count: 2
tasks:
  - name: server
    image: orkestrator/busybox:latest
    command: [sh, -c, httpd -f -p 8080]
    env: { MODE: prod }
    ports: [{ container: 8080, host: 18080 }]
    resources: { cpu: 250m, memory: 64Mi }
";

#[test]
fn a_spec_stored_before_the_safety_fields_equals_its_file_parsed_today() {
    let stored: Job = serde_json::from_str(STORED_BEFORE).unwrap();
    let today = parse_job(ITS_FILE, Format::Yaml).unwrap();
    // Equal, so a re-submission is `unchanged` and nothing rolls out.
    assert_eq!(stored, today);
    assert_eq!(stored.tasks[0].pids, Task::DEFAULT_PIDS);
    assert_eq!(stored.tasks[0].user, None);
    assert!(!stored.tasks[0].read_only);
    // Written back with the defaults, it reads the same again.
    let again: Job = serde_json::from_str(&serde_json::to_string(&stored).unwrap()).unwrap();
    assert_eq!(again, stored);
}

#[test]
fn a_job_read_as_a_value_is_held_to_the_same_safety_rules() {
    let with = |task_fields: &str| {
        format!(r#"{{"name": "j", "tasks": [{{"name": "t", "image": "a:1"{task_fields}}}]}}"#)
    };
    let job: Job =
        serde_json::from_str(&with(r#", "resources": {"pids": 7}, "user": "1000""#)).unwrap();
    assert_eq!(
        (job.tasks[0].pids, job.tasks[0].user.as_deref()),
        (7, Some("1000"))
    );
    for bad in [
        r#", "user": "root""#,
        r#", "user": 0"#,
        r#", "resources": {"pids": 0}"#,
        r#", "read_only": "yes""#,
    ] {
        let e = serde_json::from_str::<Job>(&with(bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tasks[0]."), "{bad}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Size limits: each names the limit and the value, at the field path.

/// A job named `job` with the tasks whose YAML bodies are `tasks` (each without the leading `- `).
fn job_with_tasks(tasks: &[String]) -> String {
    let mut s = String::from("name: job\ntasks:\n");
    for t in tasks {
        s.push_str("  - ");
        s.push_str(t);
        s.push('\n');
    }
    s
}

#[test]
fn a_job_has_at_most_max_tasks() {
    let tasks = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{{name: t{i}, image: 'busybox:1.36'}}"))
            .collect()
    };
    assert_eq!(
        valid(&job_with_tasks(&tasks(MAX_TASKS))).tasks.len(),
        MAX_TASKS
    );
    let n = MAX_TASKS + 1;
    assert_problem(
        &job_with_tasks(&tasks(n)),
        "tasks",
        &[&format!("{n} tasks; at most {MAX_TASKS} are allowed")],
    );
}

#[test]
fn a_job_has_at_most_max_constraints_with_bounded_values() {
    let job = |n: usize, value: &str| -> String {
        let cs: Vec<String> = (0..n)
            .map(|i| format!("{{label: l{i}, equals: '{value}'}}"))
            .collect();
        format!(
            "name: job\nconstraints: [{}]\ntasks: [{{name: t, image: 'busybox:1.36'}}]\n",
            cs.join(", ")
        )
    };
    assert_eq!(
        valid(&job(MAX_CONSTRAINTS, "a")).constraints.len(),
        MAX_CONSTRAINTS
    );
    let n = MAX_CONSTRAINTS + 1;
    assert_problem(
        &job(n, "a"),
        "constraints",
        &[&format!(
            "{n} constraints; at most {MAX_CONSTRAINTS} are allowed"
        )],
    );
    valid(&job(1, &"v".repeat(MAX_LABEL_VALUE_BYTES)));
    let long = MAX_LABEL_VALUE_BYTES + 1;
    assert_problem(
        &job(1, &"v".repeat(long)),
        "constraints[0].equals",
        &[&format!(
            "{long} bytes; at most {MAX_LABEL_VALUE_BYTES} are allowed"
        )],
    );
    let not_equals = format!(
        "name: job\nconstraints: [{{label: l, not_equals: '{}'}}]\ntasks: [{{name: t, image: 'busybox:1.36'}}]\n",
        "v".repeat(long)
    );
    assert_problem(
        &not_equals,
        "constraints[0].not_equals",
        &[&format!("at most {MAX_LABEL_VALUE_BYTES}")],
    );
}

#[test]
fn a_task_has_at_most_max_env_vars() {
    let env = |n: usize| -> String {
        let vars: Vec<String> = (0..n).map(|i| format!("V{i}: x")).collect();
        format!("env: {{{}}}", vars.join(", "))
    };
    assert_eq!(
        valid(&task_yaml(&[&env(MAX_ENV_VARS)])).tasks[0].env.len(),
        MAX_ENV_VARS
    );
    assert_problem(
        &task_yaml(&[&env(300)]),
        "tasks[0].env",
        &[&format!(
            "300 variables; at most {MAX_ENV_VARS} are allowed"
        )],
    );
}

#[test]
fn env_values_names_and_the_whole_environment_are_bounded() {
    let one =
        |name: &str, value_len: usize| format!("env: {{{name}: '{}'}}", "x".repeat(value_len));
    valid(&task_yaml(&[&one("BIG", MAX_ENV_VALUE_BYTES)]));
    let long = MAX_ENV_VALUE_BYTES + 1;
    assert_problem(
        &task_yaml(&[&one("BIG", long)]),
        "tasks[0].env.BIG",
        &[&format!(
            "{long} bytes; at most {MAX_ENV_VALUE_BYTES} are allowed"
        )],
    );
    // A name too long to be a path is reported on the environment, without repeating it.
    let name = "N".repeat(MAX_ENV_NAME_BYTES + 1);
    let (path, message) = one_problem(&task_yaml(&[&one(&name, 1)]));
    assert_eq!(path, "tasks[0].env");
    assert!(
        message.contains(&format!("at most {MAX_ENV_NAME_BYTES} are allowed")),
        "{message}"
    );
    assert!(!message.contains(&name), "{message}");
    // Values each under their limit, over the total: three of 30,000 bytes with their names.
    let vars: Vec<String> = (0..3)
        .map(|i| format!("V{i}: '{}'", "x".repeat(30_000)))
        .collect();
    let total = 3 * (2 + 30_000);
    assert!(total > MAX_ENV_BYTES);
    assert_problem(
        &task_yaml(&[&format!("env: {{{}}}", vars.join(", "))]),
        "tasks[0].env",
        &[&format!(
            "{total} bytes in all (names and values); at most {MAX_ENV_BYTES} are allowed"
        )],
    );
}

#[test]
fn commands_are_bounded_in_elements_and_bytes() {
    let command = |n: usize, len: usize| -> String {
        let args: Vec<String> = (0..n).map(|_| format!("'{}'", "a".repeat(len))).collect();
        format!("command: [{}]", args.join(", "))
    };
    assert_eq!(
        valid(&task_yaml(&[&command(MAX_COMMAND_ARGS, 1)])).tasks[0]
            .command
            .len(),
        MAX_COMMAND_ARGS
    );
    let n = MAX_COMMAND_ARGS + 1;
    assert_problem(
        &task_yaml(&[&command(n, 1)]),
        "tasks[0].command",
        &[&format!(
            "{n} elements; at most {MAX_COMMAND_ARGS} are allowed"
        )],
    );
    valid(&task_yaml(&[&command(1, MAX_COMMAND_ARG_BYTES)]));
    let long = MAX_COMMAND_ARG_BYTES + 1;
    assert_problem(
        &task_yaml(&[&command(1, long)]),
        "tasks[0].command[0]",
        &[&format!(
            "{long} bytes; at most {MAX_COMMAND_ARG_BYTES} are allowed"
        )],
    );
    // Elements each within their limit, over the total.
    let len = MAX_COMMAND_ARG_BYTES / 2 + 1;
    let total = 4 * len;
    assert!(total > MAX_COMMAND_BYTES);
    assert_problem(
        &task_yaml(&[&command(4, len)]),
        "tasks[0].command",
        &[&format!(
            "{total} bytes in all; at most {MAX_COMMAND_BYTES} are allowed"
        )],
    );
    // A health check's exec command is held to the same limits.
    let exec = format!(
        "health_check: {{exec: ['sh', '{}']}}",
        "a".repeat(MAX_COMMAND_ARG_BYTES + 1)
    );
    assert_problem(
        &task_yaml(&[&exec]),
        "tasks[0].health_check.exec[1]",
        &[&format!("at most {MAX_COMMAND_ARG_BYTES} are allowed")],
    );
}

#[test]
fn ports_probe_paths_and_label_keys_are_bounded() {
    let ports: Vec<String> = (1..=MAX_PORTS + 1)
        .map(|i| format!("{{container: {i}}}"))
        .collect();
    assert_problem(
        &task_yaml(&[&format!("ports: [{}]", ports.join(", "))]),
        "tasks[0].ports",
        &[&format!(
            "{} ports; at most {MAX_PORTS} are allowed",
            MAX_PORTS + 1
        )],
    );
    let path = format!("/{}", "p".repeat(MAX_PROBE_PATH_BYTES));
    assert_problem(
        &task_yaml(&[&format!(
            "health_check: {{http: {{port: 80, path: '{path}'}}}}"
        )]),
        "tasks[0].health_check.http.path",
        &[&format!(
            "{} bytes; at most {MAX_PROBE_PATH_BYTES} are allowed",
            MAX_PROBE_PATH_BYTES + 1
        )],
    );
    let key = "k".repeat(MAX_LABEL_KEY_BYTES + 1);
    let (path, message) = one_problem(&format!(
        "name: job\nconstraints: [{{label: {key}, equals: a}}]\ntasks: [{{name: t, image: 'busybox:1.36'}}]\n"
    ));
    assert_eq!(path, "constraints[0].label");
    assert!(
        message.contains(&format!("at most {MAX_LABEL_KEY_BYTES} are allowed")),
        "{message}"
    );
    let image = format!("{}:1", "a".repeat(MAX_IMAGE_BYTES));
    assert_problem(
        &task_yaml(&[]).replace("busybox:1.36", &image),
        "tasks[0].image",
        &[&format!("is {} bytes long", MAX_IMAGE_BYTES + 2)],
    );
}

#[test]
fn every_limit_broken_at_once_is_reported_at_once() {
    let env: Vec<String> = (0..MAX_ENV_VARS + 1).map(|i| format!("V{i}: x")).collect();
    let text = task_yaml(&[
        &format!("env: {{{}}}", env.join(", ")),
        &format!("command: ['{}']", "a".repeat(MAX_COMMAND_ARG_BYTES + 1)),
    ]);
    let p = problems_of(&text, Format::Yaml);
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    // In file order: the environment is written first.
    assert_eq!(paths, ["tasks[0].env", "tasks[0].command[0]"], "{p}");
}

#[test]
fn a_job_read_as_a_value_is_not_held_to_the_size_limits() {
    // A spec stored before the limits existed stays readable: the limits bind submissions only.
    let tasks: Vec<String> = (0..=MAX_TASKS)
        .map(|i| format!(r#"{{"name": "t{i}", "image": "busybox:1.36"}}"#))
        .collect();
    let text = format!(r#"{{"name": "job", "tasks": [{}]}}"#, tasks.join(", "));
    let stored: Job = serde_json::from_str(&text).expect("a stored job over a limit loads");
    assert_eq!(stored.tasks.len(), MAX_TASKS + 1);
    let submitted = problems_of(&text, Format::Json);
    assert_eq!(submitted.0[0].path, "tasks", "{submitted}");
}
