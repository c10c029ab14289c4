//! `orkestrator compose` end to end (issue 21), against the real Docker engine and real
//! processes: one Compose file, which Debian's docker-compose 1.29 runs too, with an init
//! service writing a marker into a named volume, an api built from the project (`build:`) that
//! reads a file secret, a file bind-mounted from the project and the volume, waits for the init
//! service to complete and has a health check, and a web server published on a host port that
//! waits for the api to be healthy and serves the api's page. `compose up --wait` brings it to
//! Running, `compose down` keeps the volume and a second `up` finds its data, `compose down -v`
//! removes the volume and the secret; then docker-compose serves the same page from the same file.
//!
//! The tests run one at a time. Without a Docker engine (or without docker-compose, for the
//! part that needs it) they print a SKIP line and pass, unless `CI=true` or
//! `ORKESTRATOR_REQUIRE_DOCKER=1` (`ORKESTRATOR_REQUIRE_DOCKER_COMPOSE=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Cluster, CmdOut, docker, docker_or_skip, free_port, http_as, ork_in, run_with_timeout,
    tool_or_skip, unique,
};
use serde_json::Value;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Three services at 250m CPU and 512Mi each (the converter's defaults) fit with room to spare.
const WORKER: &[&str] = &["--cpu", "4", "--memory", "4Gi"];
/// How long a project may take to come up or go away.
const WAIT: Duration = Duration::from_secs(60);

/// The project, `examples/compose/` (which `scripts/bench-compose.sh` runs too): both
/// Orkestrator and docker-compose 1.29 read it (so no top-level `name:`; the project is named
/// with `-p`). `$$` is a literal `$` to both. The servers run under a shell that traps SIGTERM,
/// so that a stop is quick under either (a busybox httpd as PID 1 ignores SIGTERM). The api
/// serves a page made of the greeting (a file of the project), the secret, the marker the
/// migration left on the volume, and how many times it started (a line per start, on the
/// volume).
const PROJECT: &[(&str, &str)] = &[
    (
        "compose.yaml",
        include_str!("../../examples/compose/compose.yaml"),
    ),
    (
        "api/Dockerfile",
        include_str!("../../examples/compose/api/Dockerfile"),
    ),
    (
        "api/serve.sh",
        include_str!("../../examples/compose/api/serve.sh"),
    ),
    (
        "greeting.txt",
        include_str!("../../examples/compose/greeting.txt"),
    ),
    (
        "apikey.txt",
        include_str!("../../examples/compose/apikey.txt"),
    ),
];

/// The greeting the project's file holds.
fn greeting() -> &'static str {
    include_str!("../../examples/compose/greeting.txt").trim_end()
}

/// The secret the project's file holds.
const SECRET: &str = include_str!("../../examples/compose/apikey.txt");

/// Writes the project into `dir/app` and returns that directory.
fn write_project(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("api")).expect("create the project directory");
    for (file, text) in PROJECT {
        std::fs::write(app.join(file), text).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
    app
}

/// The page the api serves at its `n`th start on a fresh volume, as web passes it on.
fn page(starts: u32) -> String {
    format!(
        "greeting: {}\nkey: {SECRET}\nmarker: migrated-v1\nstarts: {starts}\n",
        greeting()
    )
}

/// `GET /` on 127.0.0.1:`port`: the body of a 200, or why not.
fn get(port: u16) -> Result<String, String> {
    match http_as(port, None, "GET", "/", None, b"") {
        Ok(r) if r.status == 200 => Ok(r.text()),
        Ok(r) => Err(format!("status {}: {}", r.status, r.text())),
        Err(e) => Err(e.to_string()),
    }
}

/// Polls `check` every 200 ms until it returns `Ok` or `WAIT` passes, then panics with the last
/// error and `context()`.
fn wait_for<T>(
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match check() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {WAIT:?} waiting until {what}\nlast observation:\n{last}\n\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A Compose project under test: runs `orkestrator` in its directory against the cluster, with
/// `WEB_PORT` set.
struct Project<'a> {
    c: &'a Cluster,
    dir: PathBuf,
    name: String,
    port: u16,
}

impl Project<'_> {
    fn ork(&self, args: &[&str]) -> CmdOut {
        let port = self.port.to_string();
        ork_in(
            &self.dir,
            args,
            &[("ORKESTRATOR_ADDR", &self.c.addr), ("WEB_PORT", &port)],
        )
    }

    /// `ARGS`, which must exit 0; returns its output.
    fn ok(&self, args: &[&str]) -> CmdOut {
        let out = self.ork(args);
        assert_eq!(
            out.code,
            Some(0),
            "orkestrator {args:?}: {}\n\n{}",
            out.describe(),
            self.c.logs()
        );
        out
    }

    /// The volumes `volume list --job NAME` shows.
    fn volumes(&self) -> Vec<Value> {
        let out = self.ok(&["volume", "list", "--job", &self.name, "-o", "json"]);
        out.json()["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The names of the manager's secrets.
    fn secrets(&self) -> Vec<String> {
        let out = self.ok(&["secret", "list", "-o", "json"]);
        out.json()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until web answers on the published port with `want`.
    fn wait_page(&self, want: &str) {
        let port = self.port;
        let name = &self.name;
        wait_for(
            &format!("web of {name} serves the api's page on port {port}"),
            || match get(port) {
                Ok(body) if body == want => Ok(()),
                Ok(body) => Err(format!("the page is {body:?}, not {want:?}")),
                Err(e) => Err(e),
            },
            || {
                let status = self.ork(&["status", name, "-o", "json"]);
                format!("status:\n{}\n\n{}", status.stdout, self.c.logs())
            },
        );
    }
}

/// Removes the images `compose up` built for `project` (repository `PROJECT-SERVICE`) on drop.
struct BuiltImages(String);

impl Drop for BuiltImages {
    fn drop(&mut self) {
        let reference = format!("reference={}-*", self.0);
        let Ok(o) = Command::new("docker")
            .args(["images", "-q", "--filter", &reference])
            .output()
        else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["image", "rm", "-f"])
                .args(&ids)
                .output();
        }
    }
}

/// `docker-compose -p NAME ARGS` in `dir` with `WEB_PORT` set, killed after two minutes.
fn docker_compose(dir: &Path, name: &str, port: u16, args: &[&str]) -> CmdOut {
    let mut cmd = Command::new("docker-compose");
    cmd.arg("-p")
        .arg(name)
        .args(args)
        .current_dir(dir)
        .env("WEB_PORT", port.to_string())
        .env("COMPOSE_DOCKER_CLI_BUILD", "0")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE");
    run_with_timeout(&mut cmd, Duration::from_secs(120))
}

/// Takes a docker-compose project down (containers, network, volumes and the image it built)
/// on drop, whatever happened before.
struct ComposeDown<'a> {
    dir: &'a Path,
    name: String,
    port: u16,
}

impl Drop for ComposeDown<'_> {
    fn drop(&mut self) {
        let _ = docker_compose(
            self.dir,
            &self.name,
            self.port,
            &["down", "-v", "--rmi", "local", "--remove-orphans"],
        );
    }
}

#[test]
fn one_compose_file_runs_under_orkestrator_and_docker_compose() {
    let test = "compose-app";
    if !docker_or_skip(test) {
        return;
    }
    let _one = one_at_a_time();
    let name = unique("app", "compose");
    // Dropped after the cluster, whose drop removes the containers that use the image.
    let _built = BuiltImages(name.clone());
    let mut c = Cluster::start(test);
    let worker = c.add_worker(WORKER);
    let app = write_project(c.dir());
    let p = Project {
        c: &c,
        dir: app.clone(),
        name: name.clone(),
        port: free_port(),
    };

    // `run -f` points at `compose up`; `validate -f` reads the file as a Compose file.
    let out = p.ork(&["run", "-f", "compose.yaml"]);
    assert_eq!(out.code, Some(2), "run -f compose.yaml: {}", out.describe());
    assert!(
        out.stderr.contains("compose up"),
        "run -f compose.yaml should point at compose up: {}",
        out.describe()
    );
    let out = p.ork(&["validate", "-f", "compose.yaml"]);
    assert_eq!(
        out.code,
        Some(0),
        "validate -f compose.yaml: {}",
        out.describe()
    );

    // Up: built, secret created, Running, and web passes on the api's page.
    let started = Instant::now();
    let out = p.ok(&["compose", "up", "-p", &name, "--wait", "--timeout", "60s"]);
    assert!(
        out.stdout.contains(&format!("built api as {name}-api:")),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains(&format!("created secret {name}_apikey")),
        "{}",
        out.describe()
    );
    let status = c.wait_phase(&name, "Running");
    // The image was built here and not pushed: the job is pinned to this engine.
    let engine = docker(&["info", "--format", "{{.ID}}"]).trim().to_owned();
    let view = c.job_view(&name).expect("GET /v1/jobs/NAME");
    let constraints = view["spec"]["constraints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        constraints
            .iter()
            .any(|k| k["label"] == "engine.id" && k["equals"] == engine.as_str()),
        "the job should be pinned to engine {engine}: {constraints:#?}"
    );
    p.wait_page(&page(1));
    eprintln!("compose up --wait until the page: {:?}", started.elapsed());
    let instance = &status["instances"][0];
    assert_eq!(instance["worker"], worker.as_str(), "{status:#}");
    assert_eq!(
        instance["tasks"]["migrate"]["state"], "Completed",
        "{status:#}"
    );
    assert!(p.secrets().contains(&format!("{name}_apikey")));
    let volumes = p.volumes();
    assert_eq!(volumes.len(), 1, "{volumes:#?}");
    assert_eq!(volumes[0]["volume"], "data", "{volumes:#?}");

    // Down keeps the volume (and the secret).
    p.ok(&["compose", "down", "-p", &name]);
    c.wait_phase(&name, "Stopped");
    assert!(get(p.port).is_err(), "web still answers after compose down");
    let volumes = p.volumes();
    assert_eq!(
        volumes.len(),
        1,
        "compose down keeps the volume: {volumes:#?}"
    );
    assert!(
        p.secrets().contains(&format!("{name}_apikey")),
        "compose down keeps the secret"
    );

    // Up again on the same data: the migration's marker is there, and a second start line.
    p.ok(&["compose", "up", "-p", &name, "--wait", "--timeout", "60s"]);
    p.wait_page(&page(2));

    // Down -v: the volume and the secret go.
    p.ok(&["compose", "down", "-p", &name, "-v"]);
    wait_for(
        "volume list shows no volume of the project",
        || match p.volumes() {
            v if v.is_empty() => Ok(()),
            v => Err(format!("{v:#?}")),
        },
        || c.logs(),
    );
    wait_for(
        "the engine has no volume of the project",
        || {
            let left = docker(&[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=orkestrator.job={name}"),
            ]);
            if left.trim().is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
        || c.logs(),
    );
    let secrets = p.secrets();
    assert!(
        !secrets.iter().any(|s| s.starts_with(&format!("{name}_"))),
        "compose down -v leaves the project's secrets: {secrets:?}"
    );

    // The same file under docker-compose, on the same engine, serves the same page.
    if !tool_or_skip(test, "docker-compose", "apt-get install docker-compose") {
        return;
    }
    let name2 = unique("dc", "compose");
    let port2 = free_port();
    let _down = ComposeDown {
        dir: &app,
        name: name2.clone(),
        port: port2,
    };
    let out = docker_compose(&app, &name2, port2, &["up", "-d", "--build"]);
    assert_eq!(out.code, Some(0), "docker-compose up: {}", out.describe());
    let want = page(1);
    wait_for(
        &format!("docker-compose's web serves the api's page on port {port2}"),
        || match get(port2) {
            Ok(body) if body == want => Ok(()),
            Ok(body) => Err(format!("the page is {body:?}, not {want:?}")),
            Err(e) => Err(e),
        },
        || docker_compose(&app, &name2, port2, &["ps"]).describe(),
    );
    let out = docker_compose(&app, &name2, port2, &["down", "-v"]);
    assert_eq!(
        out.code,
        Some(0),
        "docker-compose down -v: {}",
        out.describe()
    );
}
