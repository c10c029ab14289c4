//! Issue 20's fields in job files: the job's `volumes`, each task's `mounts` and `secrets`, read
//! as written and checked (every problem at once, with its path and fix), the helpers that
//! count tmpfs memory and reserved disk, and the round trip through every format.

use orkestrator_core::Error;
use orkestrator_core::spec::{
    Format, Job, MAX_MOUNTS_PER_TASK, MAX_SECRETS_PER_TASK, MAX_VOLUMES, Mount, OnWorkerLoss,
    Problem, SecretRef, Volume, VolumeKind, parse_job,
};
use orkestrator_core::units::ByteSize;

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
    assert_eq!(p.len(), 1, "{p:#?}\n{text}");
    assert_eq!(p[0].path, path, "{p:#?}");
    for n in needles {
        assert!(p[0].message.contains(n), "{n:?} not in {:?}", p[0].message);
    }
}

/// A job with the job-level lines `volumes` (each under `volumes:`) and one task `t` with the
/// task fields in `extra`.
fn job(volumes: &[&str], extra: &[&str]) -> String {
    let mut s = String::from("name: job\n");
    if !volumes.is_empty() {
        s.push_str("volumes:\n");
        for line in volumes {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s.push_str("tasks:\n  - name: t\n    image: busybox:1.36\n");
    for line in extra {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

const ISSUE_EXAMPLE: &str = r#"
name: db
volumes:
  data:  { type: volume, size: 1Gi }
  cache: { type: tmpfs, size: 64Mi }
  logs:  { type: host, source: applogs, read_only: true }
tasks:
  - name: db
    image: postgres:16
    resources: { memory: 256Mi }
    mounts: [{ volume: data, path: /var/lib/db }, { volume: logs, path: /logs, subpath: db }, { volume: cache, path: /tmp/cache }]
    secrets: [{ name: db-password, path: /run/secrets/db-password, mode: "0400" }]
"#;

#[test]
fn the_issues_example_reads_as_written() {
    let j = valid(ISSUE_EXAMPLE);
    assert_eq!(
        j.volumes["data"],
        Volume {
            kind: VolumeKind::Volume {
                size: Some(ByteSize::gib(1)),
                retain: false,
                on_worker_loss: OnWorkerLoss::Wait,
            },
            read_only: false,
        }
    );
    assert_eq!(
        j.volumes["cache"].kind,
        VolumeKind::Tmpfs {
            size: ByteSize::mib(64)
        }
    );
    assert_eq!(
        j.volumes["logs"],
        Volume {
            kind: VolumeKind::Host {
                source: "applogs".into()
            },
            read_only: true,
        }
    );
    let t = &j.tasks[0];
    assert_eq!(
        t.mounts[1],
        Mount {
            volume: "logs".into(),
            path: "/logs".into(),
            read_only: false,
            subpath: Some("db".into()),
        }
    );
    assert_eq!(
        t.secrets,
        [SecretRef {
            name: "db-password".into(),
            path: "/run/secrets/db-password".into(),
            mode: 0o400,
            version: None,
        }]
    );
    assert_eq!(
        j.host_volumes().into_iter().collect::<Vec<_>>(),
        [("applogs", true)]
    );
}

#[test]
fn defaults() {
    let j = valid(&job(
        &["data:", "empty: {}", "mem: { type: tmpfs }"],
        &[
            "mounts: [{ volume: data, path: /data/ }, { volume: mem, path: /scratch }]",
            "secrets: [{ name: api.key }]",
        ],
    ));
    assert_eq!(
        j.volumes["data"].kind,
        VolumeKind::Volume {
            size: None,
            retain: false,
            on_worker_loss: OnWorkerLoss::Wait
        }
    );
    assert_eq!(j.volumes["empty"], j.volumes["data"]);
    assert_eq!(
        j.volumes["mem"].tmpfs_size(),
        Some(Volume::DEFAULT_TMPFS_SIZE)
    );
    let t = &j.tasks[0];
    assert_eq!(t.mounts[0].path, "/data", "paths are normalised");
    assert_eq!(t.secrets[0].path, "/run/secrets/api.key");
    assert_eq!(t.secrets[0].mode, SecretRef::DEFAULT_MODE);
    // A volume declared but never mounted is allowed.
    valid(&job(&["unused: { type: volume }"], &[]));
    // A job without them has none.
    let j = valid(&job(&[], &[]));
    assert!(j.volumes.is_empty() && j.tasks[0].mounts.is_empty() && j.tasks[0].secrets.is_empty());
}

#[test]
fn tmpfs_counts_in_memory_and_volumes_reserve_disk() {
    let j = valid(
        r#"
name: j
volumes:
  a: { type: volume, size: 1Gi }
  b: { type: volume, size: 512Mi, retain: true, on_worker_loss: recreate }
  c: { type: volume }
  m: { type: tmpfs, size: 32Mi }
  n: { type: tmpfs }
tasks:
  - name: x
    image: busybox:1.36
    resources: { memory: 100Mi }
    mounts: [{ volume: m, path: /m1 }, { volume: m, path: /m2 }, { volume: n, path: /n }, { volume: a, path: /a }]
  - name: y
    image: busybox:1.36
"#,
    );
    let (x, y) = (&j.tasks[0], &j.tasks[1]);
    // Each mount of a tmpfs is a tmpfs of its own.
    assert_eq!(x.tmpfs_memory(&j), ByteSize::mib(32 + 32 + 64));
    assert_eq!(x.memory_with_tmpfs(&j), ByteSize::mib(100 + 128));
    assert_eq!(y.tmpfs_memory(&j), ByteSize::ZERO);
    assert_eq!(y.memory_with_tmpfs(&j), y.resources.memory);
    assert_eq!(j.volume_disk(), ByteSize::mib(1024 + 512));
    assert_eq!(valid(&job(&[], &[])).volume_disk(), ByteSize::ZERO);
}

#[test]
fn one_job_with_many_problems_reports_every_one_with_its_path() {
    let text = r#"
name: j
volumes:
  data: { type: volume, size: lots, source: /srv/data }
  Bad_Name: { type: tmpfs }
  mem: { type: tmpfs, size: 0, retain: true, on_worker_loss: recreate }
  logs: { type: host, source: /var/log/app, size: 1Gi }
  nosrc: { type: host }
  b: { type: bind }
  c: { type: tmpfss }
  d: { type: volume, on_worker_loss: later, retian: true }
tasks:
  - name: t
    image: busybox:1.36
    files: [{ path: /etc/app.conf, content: x }]
    mounts:
      - { volume: dta, path: /data }
      - { volume: mem, path: relative }
      - { volume: mem, path: /data, subpath: x }
      - { volume: logs, path: /etc/app.conf }
      - { volume: logs, path: /l, subpath: /abs }
      - { volume: logs, path: /l2, subpath: ../up }
      - { volume: logs, path: /l3/../x }
      - { path: /nothing }
      - { volume: data, path: /data }
    secrets:
      - { name: DB }
      - { name: db, path: /run/secrets/db, mode: "0644" }
      - { name: db, path: /other }
      - { name: x, path: /data }
      - { name: y, mode: "0200" }
      - { name: z, mode: "9" }
"#;
    let p = problems(text);
    let has = |path: &str, needle: &str| {
        assert!(
            p.iter()
                .any(|q| q.path == path && q.message.contains(needle)),
            "no problem at {path} with {needle:?} in {p:#?}"
        )
    };
    has("volumes.data.size", "lots");
    has("volumes.data.source", "does not apply to type: volume");
    has("volumes.Bad_Name", "DNS label");
    has("volumes.mem.size", "more than zero");
    has("volumes.mem.retain", "does not apply to type: tmpfs");
    has(
        "volumes.mem.on_worker_loss",
        "does not apply to type: tmpfs",
    );
    has("volumes.logs.source", "never names a host path");
    has("volumes.logs.source", "worker --host-volume NAME=/path");
    has("volumes.logs.size", "does not apply to type: host");
    has("volumes.nosrc.source", "is required");
    has("volumes.b.type", "never names a host path");
    has("volumes.b.type", "worker --host-volume");
    has("volumes.c.type", "did you mean tmpfs?");
    has("volumes.d.on_worker_loss", "recreate");
    has("volumes.d.retian", "did you mean retain?");
    has("tasks[0].mounts[0].volume", "did you mean data?");
    has("tasks[0].mounts[1].path", "not an absolute path");
    has("tasks[0].mounts[2].subpath", "does not apply to a tmpfs");
    has("tasks[0].mounts[4].subpath", "is absolute");
    has("tasks[0].mounts[5].subpath", "`..`");
    has("tasks[0].mounts[6].path", "`..`");
    has("tasks[0].mounts[7].volume", "is required");
    has("tasks[0].secrets[0].name", "not a secret name");
    has(
        "tasks[0].secrets[2].name",
        "already listed at tasks[0].secrets[1]",
    );
    has("tasks[0].secrets[4].mode", "owner");
    has("tasks[0].secrets[5].mode", "not a file mode");
    // The paths of one container: a mount on a file's path, a secret on a mount's.
    has("tasks[0].mounts[3].path", "tasks[0].files[0]");
    // mounts[0] and mounts[2] have problems of their own: the secret meets mounts[8] on /data.
    has("tasks[0].secrets[3].path", "tasks[0].mounts[8]");
    // Nothing is reported twice, and nothing else is reported.
    assert_eq!(p.len(), 26, "{p:#?}");
}

#[test]
fn paths_in_one_container_are_taken_once() {
    one(
        &job(
            &["a: {}", "b: {}"],
            &["mounts: [{ volume: a, path: /x }, { volume: b, path: /x/ }]"],
        ),
        "tasks[0].mounts[1].path",
        &["/x is also the path of tasks[0].mounts[0]"],
    );
    one(
        &job(
            &["a: {}"],
            &[
                "mounts: [{ volume: a, path: /run/secrets/s }]",
                "secrets: [{ name: s }]",
            ],
        ),
        "tasks[0].secrets[0].path",
        &["tasks[0].mounts[0]"],
    );
    one(
        &job(
            &["a: {}"],
            &[
                "secrets: [{ name: s, path: /etc/s }]",
                "mounts: [{ volume: a, path: /etc/s/d }]",
            ],
        ),
        "tasks[0].secrets[0].path",
        &["is a file itself"],
    );
    one(
        &job(
            &[],
            &["secrets: [{ name: a, path: /s }, { name: b, path: /s }]"],
        ),
        "tasks[0].secrets[1].path",
        &["tasks[0].secrets[0]"],
    );
    // Nested mounts, and files inside a mount, are fine; so are two tasks on one path.
    valid(&job(
        &["a: {}", "b: {}"],
        &[
            "mounts: [{ volume: a, path: /x }, { volume: b, path: /x/y }]",
            "files: [{ path: /x/app.conf, content: hi }]",
            "secrets: [{ name: s, path: /x/y/s }]",
        ],
    ));
    one(
        &job(&["a: {}"], &["mounts: [{ volume: a, path: / }]"]),
        "tasks[0].mounts[0].path",
        &["root directory"],
    );
}

#[test]
fn unknown_volumes_name_the_declared_ones() {
    one(
        &job(&[], &["mounts: [{ volume: data, path: /d }]"]),
        "tasks[0].mounts[0].volume",
        &["declares no volume named \"data\"", "volumes: { data:"],
    );
    one(
        &job(
            &["cache: { type: tmpfs }", "logs: {}"],
            &["mounts: [{ volume: zzz, path: /d }]"],
        ),
        "tasks[0].mounts[0].volume",
        &["cache, logs"],
    );
    // A volume of the wrong shape is still declared: its mount is not "unknown" too.
    one(
        &job(&["data: 5"], &["mounts: [{ volume: data, path: /d }]"]),
        "volumes.data",
        &["expected a volume"],
    );
}

#[test]
fn sizes_use_the_units_of_resources() {
    let j = valid(&job(
        &[
            "a: { type: volume, size: 10G }",
            "b: { type: tmpfs, size: 1048576 }",
        ],
        &[],
    ));
    assert_eq!(
        j.volumes["a"].kind,
        VolumeKind::Volume {
            size: Some(ByteSize::b(10_000_000_000)),
            retain: false,
            on_worker_loss: OnWorkerLoss::Wait
        }
    );
    assert_eq!(j.volumes["b"].tmpfs_size(), Some(ByteSize::mib(1)));
    one(
        &job(&["b: { type: tmpfs, size: 65Gi }"], &[]),
        "volumes.b.size",
        &["at most 64Gi"],
    );
    one(
        &job(&["b: { type: tmpfs, size: 1.5 }"], &[]),
        "volumes.b.size",
        &["not a size"],
    );
}

#[test]
fn host_sources_are_names() {
    for (source, hint) in [("/srv/logs", "logs"), ("./data", "data"), ("~/x", "x")] {
        one(
            &job(
                &[&format!("h: {{ type: host, source: \"{source}\" }}")],
                &[],
            ),
            "volumes.h.source",
            &["never names a host path", &format!("e.g. {hint}")],
        );
    }
    one(
        &job(&["h: { type: host, source: Big_Logs }"], &[]),
        "volumes.h.source",
        &["big-logs"],
    );
}

#[test]
fn limits() {
    let many: Vec<String> = (0..=MAX_VOLUMES).map(|i| format!("v{i}: {{}}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    one(&job(&many, &[]), "volumes", &["at most 32"]);
    let mounts: Vec<String> = (0..=MAX_MOUNTS_PER_TASK)
        .map(|i| format!("{{ volume: a, path: /m{i} }}"))
        .collect();
    one(
        &job(&["a: {}"], &[&format!("mounts: [{}]", mounts.join(", "))]),
        "tasks[0].mounts",
        &["at most"],
    );
    let secrets: Vec<String> = (0..=MAX_SECRETS_PER_TASK)
        .map(|i| format!("{{ name: s{i} }}"))
        .collect();
    one(
        &job(&[], &[&format!("secrets: [{}]", secrets.join(", "))]),
        "tasks[0].secrets",
        &["at most 32"],
    );
    one(
        &job(
            &[],
            &[&format!("secrets: [{{ name: {} }}]", "a".repeat(254))],
        ),
        "tasks[0].secrets[0].name",
        &["at most 253"],
    );
}

#[test]
fn unknown_fields_know_the_new_names() {
    one(
        &job(&[], &["mount: []"]),
        "tasks[0].mount",
        &["did you mean mounts?"],
    );
    one(
        &job(&[], &["secret: []"]),
        "tasks[0].secret",
        &["did you mean secrets?"],
    );
    one(
        "name: j\nvolume: {}\ntasks: [{ name: t, image: busybox:1.36 }]\n",
        "volume",
        &["did you mean volumes?"],
    );
    one(
        &job(
            &["a: {}"],
            &["mounts: [{ volume: a, path: /a, sub_path: x }]"],
        ),
        "tasks[0].mounts[0].sub_path",
        &["did you mean subpath?"],
    );
    one(
        &job(&[], &["secrets: [{ name: a, mod: \"0400\" }]"]),
        "tasks[0].secrets[0].mod",
        &["did you mean mode?"],
    );
    one(
        &job(&["a: { typ: tmpfs }"], &[]),
        "volumes.a.typ",
        &["did you mean type?"],
    );
}

#[test]
fn round_trips_through_every_format() {
    let j = valid(
        r#"
name: j
volumes:
  data: { type: volume, size: 1Gi, retain: true, on_worker_loss: recreate, read_only: false }
  plain: {}
  cache: { type: tmpfs, size: 16Mi, read_only: true }
  logs: { type: host, source: applogs, read_only: true }
tasks:
  - name: t
    image: busybox:1.36
    mounts:
      - { volume: data, path: /data, subpath: ./a/b/ }
      - { volume: cache, path: /cache, read_only: true }
      - { volume: logs, path: /logs }
      - { volume: plain, path: /plain }
    secrets:
      - { name: db-password }
      - { name: tls.key, path: /etc/tls/key, mode: "0440" }
"#,
    );
    assert_eq!(j.tasks[0].mounts[0].subpath.as_deref(), Some("a/b"));
    for format in [Format::Yaml, Format::Toml, Format::Json] {
        let text = format.render(&j).unwrap();
        let back = parse_job(&text, format).unwrap_or_else(|e| panic!("{format}: {e}\n{text}"));
        assert_eq!(back, j, "{format}:\n{text}");
        assert_eq!(format.render(&back).unwrap(), text, "{format} is stable");
    }
    // The stored form (JSON through serde) reads back the same, and a spec without the new
    // fields writes none of them.
    let json = serde_json::to_string(&j).unwrap();
    assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), j);
    let plain = valid(&job(&[], &[]));
    let text = serde_json::to_string(&plain).unwrap();
    for word in ["volumes", "mounts", "secrets"] {
        assert!(!text.contains(word), "{text}");
    }
    assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), plain);
}

#[test]
fn yaml_keys_are_names_as_written() {
    // YAML 1.1 reads `n` and `on` as booleans; a volume's name is the text written.
    let j = valid(&job(
        &["n: {}", "on: { type: tmpfs }", "\"y\": {}"],
        &["mounts: [{ volume: n, path: /n }, { volume: on, path: /on }, { volume: y, path: /y }]"],
    ));
    assert_eq!(j.volumes.keys().collect::<Vec<_>>(), ["n", "on", "y"]);
}

/// The body of the fenced block of `doc` whose language line is `lang`.
fn block(doc: &str, lang: &str) -> String {
    let mut lines = doc.lines().skip_while(|l| l.trim() != format!("```{lang}"));
    lines.next().unwrap_or_else(|| panic!("no ```{lang} block"));
    let body: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    body.join("\n") + "\n"
}

#[test]
fn the_reference_shows_what_the_code_does() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/job-file.md"),
    )
    .unwrap();
    let j = valid(&block(&doc, "yaml volumes"));
    assert_eq!(j.volumes.len(), 3);
    assert_eq!(j.tasks[0].mounts.len(), 3);
    assert_eq!(j.tasks[0].secrets[0].mode, 0o400);
    // Messages the reference quotes, as the code gives them.
    let cases: &[(String, &str)] = &[
        (
            job(&["logs: { type: host, source: /var/log/app }"], &[]),
            "volumes.logs.source",
        ),
        (job(&["logs: { type: host }"], &[]), "volumes.logs.source"),
        (job(&["logs: { type: bind }"], &[]), "volumes.logs.type"),
        (job(&["c: { type: tmpfss }"], &[]), "volumes.c.type"),
        (
            job(&["c: { type: tmpfs, retain: true }"], &[]),
            "volumes.c.retain",
        ),
        (
            job(&["logs: { type: host, source: applogs, size: 1Gi }"], &[]),
            "volumes.logs.size",
        ),
        (job(&["c: { type: tmpfs, size: 0 }"], &[]), "volumes.c.size"),
        (
            job(
                &["cache: {}", "data: {}", "logs: {}"],
                &["mounts: [{ volume: dta, path: /data }]"],
            ),
            "tasks[0].mounts[0].volume",
        ),
        (
            job(
                &["logs: {}"],
                &["mounts: [{ volume: logs, path: /l, subpath: ../x }]"],
            ),
            "tasks[0].mounts[0].subpath",
        ),
        (
            job(&[], &["secrets: [{ name: DB_Password }]"]),
            "tasks[0].secrets[0].name",
        ),
        (
            job(&[], &["secrets: [{ name: db }, { name: db }]"]),
            "tasks[0].secrets[1].name",
        ),
        (
            job(&[], &["secrets: [{ name: db, version: 0 }]"]),
            "tasks[0].secrets[0].version",
        ),
    ];
    for (text, path) in cases {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].path, *path);
        assert!(
            doc.contains(&p[0].message),
            "the reference does not quote {:?}",
            p[0].message
        );
    }
}

#[test]
fn host_volumes_name_what_a_worker_must_offer() {
    let j = valid(
        r#"
name: j
volumes:
  ro: { type: host, source: shared, read_only: true }
  rw: { type: host, source: shared }
  other: { type: host, source: logs }
  unmounted: { type: host, source: never }
  data: {}
tasks:
  - name: a
    image: busybox:1.36
    mounts: [{ volume: ro, path: /ro }, { volume: other, path: /o, read_only: true }, { volume: data, path: /d }]
  - name: b
    image: busybox:1.36
    mounts: [{ volume: rw, path: /rw }]
"#,
    );
    // `shared` is mounted read-write once, so a read-only offer of it will not do; `logs` is
    // only read; a host volume no task mounts needs no offer.
    assert_eq!(
        j.host_volumes().into_iter().collect::<Vec<_>>(),
        [("logs", true), ("shared", false)]
    );
}

#[test]
fn an_instance_reserves_its_tmpfs_in_memory_and_its_volume_sizes_in_disk() {
    let job = orkestrator_core::spec::parse_job(
        "name: db
volumes:
  data: { type: volume, size: 1Gi }
  spare: { type: volume }
  cache: { type: tmpfs, size: 64Mi }
tasks:
  - { name: a, image: x:1, resources: { memory: 100Mi, disk: 10Mi }, mounts: [{ volume: data, path: /d }, { volume: cache, path: /c }] }
  - { name: b, image: x:1, resources: { memory: 100Mi, disk: 10Mi }, mounts: [{ volume: cache, path: /c }] }
",
        orkestrator_core::spec::Format::Yaml,
    )
    .unwrap();
    let r = job.resources();
    assert_eq!(
        r.memory,
        ByteSize::mib(100 + 64 + 100 + 64),
        "each container's own tmpfs"
    );
    assert_eq!(r.disk, ByteSize::mib(20).saturating_add(ByteSize::gib(1)));
    let plain = orkestrator_core::spec::parse_job(
        "name: db\ntasks: [{ name: a, image: x:1, resources: { memory: 100Mi, disk: 10Mi } }]",
        orkestrator_core::spec::Format::Yaml,
    )
    .unwrap();
    assert_eq!(plain.resources().memory, ByteSize::mib(100));
    assert_eq!(plain.resources().disk, ByteSize::mib(10));
}
