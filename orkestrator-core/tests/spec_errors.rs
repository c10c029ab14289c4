//! Issue 18, item 4: every problem of a job file in one answer, each with its field path, its
//! line and the closest known name; a command written as one line; a health check's exec as one
//! line; environment variable names as the engine takes them.

use orkestrator_core::Error;
use orkestrator_core::api::ApiError;
use orkestrator_core::spec::{Format, Job, Probe, parse_job};
use serde_json::Value;

/// The issue's three misspellings, in each format, with the line each is written on.
const MISSPELT: [(Format, &str); 3] = [
    (
        Format::Yaml,
        "name: web\ntasks:\n  - name: server\n    imgae: busybox:1.36\n    comand: [\"sleep\", \"100\"]\n    resources: { memroy: 64Mi }\n",
    ),
    (
        Format::Toml,
        "name = \"web\"\n\n[[tasks]]\nname = \"server\"\nimgae = \"busybox:1.36\"\ncomand = [\"sleep\", \"100\"]\nresources = { memroy = \"64Mi\" }\n",
    ),
    (
        Format::Json,
        "{\n  \"name\": \"web\",\n  \"tasks\": [{\n    \"name\": \"server\",\n    \"imgae\": \"busybox:1.36\",\n    \"comand\": [\"sleep\", \"100\"],\n    \"resources\": { \"memroy\": \"64Mi\" }\n  }]\n}",
    ),
];

/// The problems of `text` as the wire carries them (path, line, message), in order.
fn problems(text: &str, format: Format) -> Vec<Value> {
    match parse_job(text, format) {
        Err(Error::Invalid(p)) => match serde_json::to_value(&p) {
            Ok(Value::Array(items)) => items,
            other => panic!("{other:?}"),
        },
        other => panic!("{format}: expected every problem at once, got {other:?}\n{text}"),
    }
}

fn paths(list: &[Value]) -> Vec<&str> {
    list.iter()
        .map(|p| p["path"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn three_misspelt_fields_come_in_one_answer_with_path_line_and_suggestion_in_every_format() {
    for (format, text) in MISSPELT {
        let list = problems(text, format);
        assert_eq!(
            paths(&list),
            [
                "tasks[0].imgae",
                "tasks[0].comand",
                "tasks[0].resources.memroy"
            ],
            "{format}: {list:#?}"
        );
        let first = if format == Format::Yaml { 4 } else { 5 };
        for (i, (p, known)) in list.iter().zip(["image", "command", "memory"]).enumerate() {
            assert_eq!(p["line"], first + i, "{format}: {p}");
            let message = p["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&format!("did you mean {known}?")),
                "{format}: {message}"
            );
        }
        // As the CLI shows it: path, line, message.
        let shown = parse_job(text, format).unwrap_err().to_string();
        assert!(
            shown.contains(&format!(
                "tasks[0].imgae (line {first}): unknown field `imgae`"
            )),
            "{format}: {shown}"
        );
    }
}

#[test]
fn the_api_answers_invalid_spec_with_the_same_problem_list() {
    for (format, text) in MISSPELT {
        let e = ApiError::from(parse_job(text, format).unwrap_err());
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(wire["code"], "invalid_spec", "{wire:#}");
        let list = wire["problems"].as_array().cloned().unwrap_or_default();
        assert_eq!(list, problems(text, format), "{format}");
    }
}

#[test]
fn wrong_types_and_unknown_fields_of_every_part_come_together() {
    let text = r#"name: web
count: [1]
tasks:
  - name: a
    image: busybox:1.36
    ports: 8080
    env: { A: [1] }
    restart: { policy: never, backoff: 1s }
    health_check: { tcp: 8080, intervall: 5s }
  - name: b
    image: { repo: busybox }
    resources: [1, 2]
    replicas: 3
"#;
    let list = problems(text, Format::Yaml);
    assert_eq!(
        paths(&list),
        [
            "count",
            "tasks[0].ports",
            "tasks[0].env.A",
            "tasks[0].restart.backoff",
            "tasks[0].health_check.intervall",
            "tasks[0].health_check.tcp",
            "tasks[1].image",
            "tasks[1].resources",
            "tasks[1].replicas",
        ],
        "{list:#?}"
    );
    let lines: Vec<u64> = list.iter().filter_map(|p| p["line"].as_u64()).collect();
    assert_eq!(lines, [2, 6, 7, 8, 9, 9, 11, 12, 13]);
    let message = |path: &str| {
        list.iter()
            .find(|p| p["path"] == path)
            .and_then(|p| p["message"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        message("tasks[1].resources"),
        "expected resources (a mapping with cpu, memory, disk, pids), found a list"
    );
    assert!(message("tasks[0].health_check.intervall").contains("did you mean interval?"));
    // No suggestion where nothing is close; the known fields instead.
    assert_eq!(
        message("tasks[1].replicas"),
        "unknown field `replicas` (known fields: name, image, command, env, ports, resources, restart, health_check, user, read_only, entrypoint, working_dir, depends_on, sidecar, stop_signal, stop_grace, init, files, mounts, secrets, aliases, shm_size, labels, extra_hosts)"
    );
}

#[test]
fn problems_of_values_come_with_those_of_shape_and_have_lines_too() {
    let text = "name: Web\ntasks:\n  - name: a\n    image: busybox\n    cpu: 1\n    resources: { memory: lots }\n";
    let list = problems(text, Format::Yaml);
    assert_eq!(
        paths(&list),
        [
            "name",
            "tasks[0].image",
            "tasks[0].cpu",
            "tasks[0].resources.memory"
        ],
        "{list:#?}"
    );
    let lines: Vec<u64> = list.iter().filter_map(|p| p["line"].as_u64()).collect();
    assert_eq!(lines, [1, 4, 5, 6]);
    // A missing field is placed at the mapping that lacks it.
    let list = problems("name: web\ntasks:\n  - name: a\n", Format::Yaml);
    assert_eq!(paths(&list), ["tasks[0].image"]);
    assert_eq!(list[0]["line"], 3);
}

#[test]
fn a_field_written_twice_in_json_is_a_problem_with_its_line() {
    let text = "{\"name\": \"a\",\n \"name\": \"b\",\n \"tasks\": [{\"name\": \"t\", \"image\": \"c:1\"}]}";
    let list = problems(text, Format::Json);
    assert_eq!(paths(&list), ["name"]);
    assert_eq!(list[0]["line"], 2);
    assert!(
        list[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("twice")
    );
}

#[test]
fn a_job_read_back_as_a_value_reports_every_problem_too() {
    let e = serde_json::from_str::<Job>(
        r#"{"name": "web", "tasks": [{"name": "a", "imgae": "b:1", "comand": "x"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("tasks[0].imgae") && e.contains("tasks[0].comand"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// A command written as one line.

fn task_of(text: &str, format: Format) -> orkestrator_core::spec::Task {
    match parse_job(text, format) {
        Ok(job) => job.tasks[0].clone(),
        Err(e) => panic!("{format}: {e}\n{text}"),
    }
}

#[test]
fn a_command_written_as_one_line_is_split_into_words_in_every_format() {
    let want = ["sh", "-c", "echo \"hi there\" $HOME"];
    let texts = [
        (
            Format::Yaml,
            "name: a\ntasks:\n  - name: b\n    image: c:1\n    command: sh -c 'echo \"hi there\" $HOME'\n",
        ),
        (
            Format::Toml,
            "name = 'a'\n[[tasks]]\nname = 'b'\nimage = 'c:1'\ncommand = \"sh -c 'echo \\\"hi there\\\" $HOME'\"\n",
        ),
        (
            Format::Json,
            r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "command": "sh -c 'echo \"hi there\" $HOME'"}]}"#,
        ),
    ];
    for (format, text) in texts {
        assert_eq!(task_of(text, format).command, want, "{format}");
    }
    // The most common mistake, as the issue writes it.
    let t = task_of(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    command: sleep 100\n",
        Format::Yaml,
    );
    assert_eq!(t.command, ["sleep", "100"]);
}

#[test]
fn a_command_line_that_needs_a_shell_or_is_unclosed_is_refused_at_its_path() {
    for (line, says) in [
        ("echo $HOME", "sh"),
        ("a | b", "sh"),
        ("echo 'unclosed", "not closed"),
        ("  ", "is empty"),
    ] {
        let text = format!(
            "{{\"name\": \"a\", \"tasks\": [{{\"name\": \"b\", \"image\": \"c:1\", \"command\": {}}}]}}",
            serde_json::to_string(line).unwrap()
        );
        let list = problems(&text, Format::Json);
        assert_eq!(paths(&list), ["tasks[0].command"], "{line}: {list:#?}");
        let message = list[0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{line}: {message}");
    }
    // A word of the wrong type in a list.
    let list = problems(
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "command": ["sleep", 100]}]}"#,
        Format::Json,
    );
    assert_eq!(paths(&list), ["tasks[0].command[1]"]);
}

#[test]
fn a_command_line_renders_as_its_list_and_reads_back_equal() {
    let job = parse_job(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    command: httpd -f -p 8080\n",
        Format::Yaml,
    )
    .unwrap();
    let listed = parse_job(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    command: [httpd, -f, -p, \"8080\"]\n",
        Format::Yaml,
    )
    .unwrap();
    // Equal to the job written with a list: a manager comparing the two sees no change.
    assert_eq!(job, listed);
    let shown = Format::Yaml.render(&job).unwrap();
    assert!(shown.contains("- httpd\n"), "{shown}");
    assert_eq!(parse_job(&shown, Format::Yaml).unwrap(), job);
}

#[test]
fn a_health_check_exec_written_as_one_line_runs_through_sh_c() {
    let t = task_of(
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    health_check: { exec: test -f /tmp/ready && echo ok }\n",
        Format::Yaml,
    );
    let probe = t.health_check.map(|h| h.probe);
    assert_eq!(
        probe,
        Some(Probe::Exec(vec![
            "sh".into(),
            "-c".into(),
            "test -f /tmp/ready && echo ok".into()
        ]))
    );
    let t = task_of(
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "health_check": {"exec": ["pg_isready"]}}]}"#,
        Format::Json,
    );
    assert_eq!(
        t.health_check.map(|h| h.probe),
        Some(Probe::Exec(vec!["pg_isready".into()]))
    );
}

// ---------------------------------------------------------------------------------------------
// The reference (docs/job-file.md) shows what the parser does.

/// The body of the fenced block of `doc` whose language line is `lang`.
fn block(doc: &str, lang: &str) -> String {
    let mut lines = doc.lines().skip_while(|l| l.trim() != format!("```{lang}"));
    lines.next().unwrap_or_else(|| panic!("no ```{lang} block"));
    let body: Vec<&str> = lines
        .take_while(|l| l.trim() != "```")
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect();
    body.join("\n") + "\n"
}

#[test]
fn the_reference_shows_the_misspellings_and_a_quoted_toml_env_name_as_they_are() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/job-file.md"),
    )
    .unwrap();
    let e = parse_job(&block(&doc, "yaml misspelt"), Format::Yaml).unwrap_err();
    assert_eq!(block(&doc, "text misspelt").trim_end(), e.to_string());
    let job = parse_job(&block(&doc, "toml env"), Format::Toml).unwrap();
    assert_eq!(job.tasks[0].env["discovery.type"], "single-node");
}

#[test]
fn a_reserved_env_name_stored_before_the_rule_still_reads_back() {
    let stored =
        r#"{"name": "a", "tasks": [{"name": "b", "image": "c:1", "env": {"ORK_X": "1"}}]}"#;
    let job: Job = serde_json::from_str(stored).expect("a stored spec stays readable");
    assert_eq!(job.tasks[0].env["ORK_X"], "1");
    let list = problems(stored, Format::Json);
    assert_eq!(paths(&list), ["tasks[0].env.ORK_X"]);
}

#[tokio::test]
async fn a_command_line_equal_to_the_stored_list_is_unchanged() {
    use orkestrator_core::api::SubmitOutcome;
    use orkestrator_core::manager::{Manager, ManagerConfig};
    use orkestrator_core::store::MemoryStore;

    let m = Manager::new(
        ManagerConfig::default(),
        std::sync::Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap();
    let listed =
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    command: [\"sleep\", \"100\"]\n";
    let line = "name: a\ntasks:\n  - name: b\n    image: c:1\n    command: sleep 100\n";
    let first = m
        .jobs()
        .submit(parse_job(listed, Format::Yaml).unwrap())
        .await;
    assert_eq!(first.unwrap().outcome, SubmitOutcome::Created);
    let again = m
        .jobs()
        .submit(parse_job(line, Format::Yaml).unwrap())
        .await;
    assert_eq!(again.unwrap().outcome, SubmitOutcome::Unchanged);
    let other = line.replace("sleep 100", "sleep 200");
    let changed = m
        .jobs()
        .submit(parse_job(&other, Format::Yaml).unwrap())
        .await;
    assert_eq!(changed.unwrap().outcome, SubmitOutcome::Updated);
}

#[test]
fn a_yaml_env_value_from_an_anchor_keeps_the_anchors_text() {
    let text =
        "name: a\ntasks:\n  - name: b\n    image: c:1\n    env:\n      A: &v 3.10\n      B: *v\n";
    let job = parse_job(text, Format::Yaml).unwrap();
    assert_eq!(job.tasks[0].env["A"], "3.10");
    assert_eq!(job.tasks[0].env["B"], "3.10");
}
