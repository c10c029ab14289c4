//! Secrets delivered to tasks (issue 20), against the real Docker engine and real processes: a
//! task reads its secret at its path, with its mode and owner; the value (a long random marker)
//! is found nowhere else — not in `docker inspect`, the engine's container directories and the
//! container's upper layer, the job view and `status`, the event stream, the manager's and
//! workers' logs, the redb file or the workers' data directories; another worker's credential
//! gets 403 for it (and so does an operator token); `secret update` reaches the running job by a
//! rollout; the files survive a worker restart for the containers it adopts, and are wiped when
//! the instance ends.
//!
//! (`secrets.rs` holds the CLI tests without Docker, the manager refusing another key among
//! them.) Same hygiene as `together.rs`: without a Docker engine the tests print a SKIP line and
//! pass, unless `CI=true` or `ORKESTRATOR_REQUIRE_DOCKER=1`.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{BIN, Cluster, docker, docker_or_skip, http, http_as, inspect, unique};
use serde_json::Value;

/// These tests start containers and search the engine's files: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A long random marker (hex of 24 random bytes, with a prefix).
fn marker() -> String {
    let mut raw = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .expect("random bytes");
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("mk{hex}")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir` (symbolic links not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// The files under `dir` that hold `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|b| contains(&b, needle.as_bytes())))
        .collect()
}

/// The instance of `version` whose task `main` runs, with its container: (instance, container).
fn running_instance(v: &Value, version: u64) -> Option<(String, String)> {
    v["instances"].as_array()?.iter().find_map(|i| {
        let t = &i["tasks"]["main"];
        (i["version"] == version && t["state"] == "Running")
            .then(|| {
                Some((
                    i["id"].as_str()?.to_owned(),
                    t["container_id"].as_str()?.to_owned(),
                ))
            })
            .flatten()
    })
}

/// `docker exec CONTAINER ARGS` (as the container's user): its standard output.
fn exec(container: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .arg("exec")
        .arg(container)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `orkestrator secret ARGS` with the value in a file that is removed at once.
fn secret(c: &Cluster, verb: &str, name: &str, value: &str) {
    let file = c.write("value.bin", value);
    let out = c.ork(&["secret", verb, name, "-f", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.code, Some(0), "secret {verb}: {}", out.describe());
}

/// A worker's secrets directory on the host's tmpfs.
fn shm(test: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(unique("ork-secrets", test))
}

/// `orkestrator events --from-index 1 -o json` writing to `file`, until killed.
fn follow_events(c: &Cluster, file: &Path) -> Child {
    Command::new(BIN)
        .args(["events", "--from-index", "1", "-o", "json"])
        .current_dir(c.dir())
        .env("ORKESTRATOR_ADDR", &c.addr)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("orkestrator events")
}

#[test]
fn a_task_reads_its_secret_and_the_value_is_nowhere_else_and_an_update_rolls_out() {
    let test = "secret-delivery";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let mut c = Cluster::start(test);
    let data = c.dir().join("workers");
    let (w0_data, w1_data) = (data.join("w0"), data.join("w1"));
    let (w0_shm, w1_shm) = (shm(&format!("{test}0")), shm(&format!("{test}1")));
    let (w0, w0_proc) = c.add_worker_proc(&[
        "--cpu",
        "2",
        "--memory",
        "1Gi",
        "--label",
        "role=runs",
        "--data-dir",
        w0_data.to_str().unwrap(),
        "--secrets-dir",
        w0_shm.to_str().unwrap(),
    ]);
    let w1 = c.add_worker(&[
        "--cpu",
        "2",
        "--memory",
        "1Gi",
        "--data-dir",
        w1_data.to_str().unwrap(),
        "--secrets-dir",
        w1_shm.to_str().unwrap(),
    ]);
    let events_file = c.dir().join("events.jsonl");
    let mut events = follow_events(&c, &events_file);

    let first = marker();
    secret(&c, "create", "db-password", &first);
    let job = unique("sec", test);
    let yaml = format!(
        "name: {job}
constraints: [{{ label: role, equals: runs }}]
tasks:
  - name: main
    image: {image}
    user: '1000:1000'
    command: [sh, -c, \"wc -c < /run/secrets/db-password; trap 'exit 0' TERM; while true; do sleep 1; done\"]
    secrets: [{{ name: db-password, mode: '0440' }}]
",
        image = common::IMAGE
    );
    c.write("job.yaml", &yaml);
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let (instance, container) = c.wait_until("the task runs", common::TIMEOUT, |c| {
        let v = c.job_view(&job)?;
        running_instance(&v, 1).ok_or_else(|| format!("{v:#}"))
    });

    // The task reads it at its path, with its mode, owned by its user.
    let read = c.wait_until("the secret is readable", common::TIMEOUT, |_| {
        exec(&container, &["cat", "/run/secrets/db-password"])
    });
    assert_eq!(read, first, "the task reads the value");
    let st = exec(
        &container,
        &["stat", "-c", "%a %u %g", "/run/secrets/db-password"],
    )
    .unwrap();
    assert_eq!(st.trim(), "440 1000 1000");
    let id = exec(&container, &["id", "-u"]).unwrap();
    assert_eq!(id.trim(), "1000", "the task runs as its user");
    // It cannot change it.
    assert!(
        exec(
            &container,
            &["sh", "-c", "echo x > /run/secrets/db-password"]
        )
        .is_err()
    );

    // Another worker's credential gets 403 for it; so does an operator token; its own worker
    // gets the value.
    let cred = |dir: &Path| {
        std::fs::read_to_string(dir.join("credential"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_owned()
    };
    let (cred0, cred1) = (cred(&w0_data), cred(&w1_data));
    let own = format!("/v1/workers/{w0}/instances/{instance}/secrets");
    let theirs = format!("/v1/workers/{w1}/instances/{instance}/secrets");
    for (who, token, path) in [
        ("w1 naming w0", Some(cred1.as_str()), own.as_str()),
        ("w1 naming itself", Some(cred1.as_str()), theirs.as_str()),
    ] {
        let r = http_as(c.port, token, "GET", path, None, b"").unwrap();
        assert_eq!(r.status, 403, "{who}: {}", r.text());
        assert!(!contains(&r.body, first.as_bytes()));
    }
    let r = http(c.port, "GET", &own, None, b"").unwrap();
    assert_eq!(r.status, 403, "an operator token: {}", r.text());
    assert_eq!(r.json()["code"], "not_your_instance", "{}", r.text());
    let r = http_as(c.port, None, "GET", &own, None, b"").unwrap();
    assert_eq!(r.status, 401, "no credential: {}", r.text());
    let r = http_as(c.port, Some(&cred0), "GET", &own, None, b"").unwrap();
    assert_eq!(r.status, 200, "its own worker: {}", r.text());
    let given = r.json();
    assert_eq!(
        given["tasks"]["main"][0]["name"], "db-password",
        "{given:#}"
    );
    assert_eq!(given["tasks"]["main"][0]["version"], 1);

    // The value is nowhere else.
    let engine_ids = common::containers_with_label("orkestrator.worker", &w0, true);
    assert!(engine_ids.contains(&container), "{engine_ids:?}");
    let inspected = serde_json::to_string(&inspect(&engine_ids)).unwrap();
    assert!(
        !inspected.contains(&first),
        "docker inspect shows the value"
    );
    assert!(inspected.contains("/run/secrets/db-password"));
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let root = PathBuf::from(root.trim());
    let details = &inspect(std::slice::from_ref(&container))[0];
    let mut searched = vec![
        root.join("containers")
            .join(details["Id"].as_str().unwrap()),
    ];
    match details["GraphDriver"]["Data"]["UpperDir"].as_str() {
        Some(upper) => searched.push(PathBuf::from(upper)),
        None => assert!(
            !details["GraphDriver"]["Name"]
                .as_str()
                .unwrap_or_default()
                .contains("overlay"),
            "an overlay driver without an upper dir: {:#}",
            details["GraphDriver"]
        ),
    }
    for dir in &searched {
        let found = holding(dir, &first);
        assert!(
            found.is_empty(),
            "the value is in the engine's files: {found:?}"
        );
    }
    assert!(
        !files_under(&searched[0]).is_empty(),
        "searched nothing under {}",
        searched[0].display()
    );
    let view = c.job_view(&job).unwrap().to_string();
    assert!(!view.contains(&first), "the job view shows the value");
    assert!(view.contains("\"version\":1"), "{view}");
    let status = c.ork(&["status", &job, "-o", "json"]);
    assert_eq!(status.code, Some(0), "{}", status.describe());
    assert!(!status.stdout.contains(&first) && !status.stderr.contains(&first));

    // An update reaches the running job by a rollout: a new job version, a new container.
    let second = marker();
    secret(&c, "update", "db-password", &second);
    let (_, new_container) = c.wait_until("version 2 runs", common::TIMEOUT, |c| {
        let v = c.job_view(&job)?;
        if v["version"] != 2 {
            return Err(format!("{v:#}"));
        }
        running_instance(&v, 2).ok_or_else(|| format!("{v:#}"))
    });
    assert_ne!(new_container, container);
    let read = c.wait_until("the new value is readable", common::TIMEOUT, |_| {
        exec(&new_container, &["cat", "/run/secrets/db-password"])
    });
    assert_eq!(read, second, "the task sees the new value");
    // The old instance's files are wiped once its container is gone.
    let old_dir = w0_shm.join(&instance);
    c.wait_until(
        "the old instance's secrets are wiped",
        common::TIMEOUT,
        |_| {
            if old_dir.exists() {
                Err(format!("{} is still there", old_dir.display()))
            } else {
                Ok(())
            }
        },
    );

    // A worker restart keeps the files of the containers it adopts.
    c.kill(w0_proc);
    let again = c.restart_worker(&w0);
    c.wait_worker_ready(&w0, again);
    let v = c.job_view(&job).unwrap();
    let (_, adopted) = running_instance(&v, 2).expect("still running");
    assert_eq!(adopted, new_container, "adopted, not replaced");
    assert_eq!(
        exec(&adopted, &["cat", "/run/secrets/db-password"]).unwrap(),
        second
    );

    // Nothing of either value in the logs, the events, the store or the workers' data.
    let _ = events.kill();
    let _ = events.wait();
    let stream = std::fs::read_to_string(&events_file).unwrap();
    assert!(stream.contains("job_updated"), "{stream}");
    for value in [&first, &second] {
        assert!(
            !stream.contains(value.as_str()),
            "the event stream shows the value"
        );
        for f in std::fs::read_dir(c.dir()).unwrap().flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "err" || e == "out") {
                let text = std::fs::read(&p).unwrap();
                assert!(
                    !contains(&text, value.as_bytes()),
                    "{} shows the value",
                    p.display()
                );
            }
        }
        for dir in [c.dir().join("data"), w0_data.clone(), w1_data.clone()] {
            let found = holding(&dir, value);
            assert!(found.is_empty(), "the value is in {found:?}");
        }
    }
    let redb: Vec<PathBuf> = files_under(&c.dir().join("data"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "redb"))
        .collect();
    assert!(!redb.is_empty(), "no redb file under {}", c.dir().display());

    // Stopped: every file of the job's secrets goes.
    let out = c.ork(&["stop", &job]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_until("the secrets directory is empty", common::TIMEOUT, |_| {
        let left = files_under(&w0_shm);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    let _ = std::fs::remove_dir_all(&w0_shm);
    let _ = std::fs::remove_dir_all(&w1_shm);
}

#[test]
fn a_job_naming_an_unknown_secret_is_refused_naming_it() {
    let test = "secret-unknown";
    let c = Cluster::start(test);
    c.write(
        "job.yaml",
        "name: web\ntasks:\n  - { name: a, image: x:1 }\n  - { name: b, image: x:1, secrets: [{ name: nope }] }\n",
    );
    let r = http(
        c.port,
        "POST",
        "/v1/jobs",
        Some("application/yaml"),
        &std::fs::read(c.dir().join("job.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["problems"][0]["path"], "tasks[1].secrets[0].name",
        "{v:#}"
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("tasks[1].secrets[0].name"),
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("nope"), "{}", out.describe());
}
