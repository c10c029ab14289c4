//! `compose up --push REGISTRY`: the built image is pushed to a registry (Debian's
//! `docker-registry`, started by the test on a loopback port) and the job names it there, so a
//! worker pulls it; the local tags are removed before the worker starts, so the pull is real.
//! Without `--push`, a built image ties the job to this engine (`engine.id`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, docker, docker_or_skip, free_port, ork_in, tool_or_skip, unique};

const REGISTRY: &str = "docker-registry";

/// A registry of the test's own, stopped when dropped.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(REGISTRY)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let r = Registry {
        child,
        _dir: dir,
        addr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&r.addr, "/v2/").map(|(s, _)| s) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "docker-registry did not answer within 30s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    r
}

/// `GET path` on `addr` over HTTP/1.0: the status and body, or none if nothing answers.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Runs `docker ARGS`, whatever it answers (removing what may not be there).
fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).output();
}

/// A project whose one service is built from `./app` and serves `marker` on `port`.
fn project(dir: &Path, port: u16, marker: &str) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(
        dir.join("app/Dockerfile"),
        format!(
            "FROM orkestrator/busybox:latest\nRUN mkdir -p /www && echo {marker} > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:\n  app:\n    build: ./app\n    ports: [\"{port}:8080\"]\n    deploy:\n      resources:\n        limits: {{cpus: '0.2', memory: 64M}}\n"
        ),
    )
    .unwrap();
}

#[test]
fn compose_up_push_runs_the_image_from_the_registry() {
    let test = "compose_push";
    if !docker_or_skip(test) || !tool_or_skip(test, REGISTRY, "apt-get install docker-registry") {
        return;
    }
    let registry = start_registry();
    let mut c = Cluster::start(test);
    let work = tempfile::tempdir().unwrap();
    let project_dir = work.path().join("pushed");
    let port = free_port();
    let marker = unique("marker", test);
    project(&project_dir, port, &marker);
    let name = unique("push", test);
    let addr = c.addr.clone();
    let env = [("ORKESTRATOR_ADDR", addr.as_str())];

    // No worker yet: the job waits while the local tags go.
    let up = ork_in(
        &project_dir,
        &["compose", "up", "-p", &name, "--push", &registry.addr],
        &env,
    );
    assert_eq!(up.code, Some(0), "{}", up.describe());
    let view = c.job_view(&name).unwrap();
    let image = view["spec"]["tasks"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        image.starts_with(&format!("{}/{name}-app:", registry.addr)),
        "the job names the image in the registry: {image}"
    );
    assert!(
        view["spec"]["constraints"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "a pushed image ties the job to no engine: {}",
        view["spec"]
    );
    let local = image
        .trim_start_matches(&format!("{}/", registry.addr))
        .to_owned();
    docker_quiet(&["image", "rm", "-f", &image, &local]);
    let gone = Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "{image} is still on the engine");

    c.add_worker(&[]);
    c.wait_phase(&name, "Running");
    c.wait_until(
        "the pulled image answers",
        Duration::from_secs(30),
        |_| match http_get(&format!("127.0.0.1:{port}"), "/") {
            Some((200, body)) if body.contains(&marker) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let down = ork_in(&project_dir, &["compose", "down", "-p", &name], &env);
    assert_eq!(down.code, Some(0), "{}", down.describe());
    docker_quiet(&["image", "rm", "-f", &image]);
}

#[test]
fn a_built_image_ties_the_job_to_this_engine() {
    let test = "compose_engine";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&[]);
    let work = tempfile::tempdir().unwrap();
    let project_dir = work.path().join("local");
    let port = free_port();
    let marker = unique("marker", test);
    project(&project_dir, port, &marker);
    let name = unique("local", test);
    let env = [("ORKESTRATOR_ADDR", c.addr.as_str())];
    let up = ork_in(
        &project_dir,
        &["compose", "up", "-p", &name, "--wait"],
        &env,
    );
    assert_eq!(up.code, Some(0), "{}", up.describe());
    let engine = docker(&["info", "--format", "{{.ID}}"]);
    let view = c.job_view(&name).unwrap();
    assert_eq!(
        view["spec"]["constraints"],
        serde_json::json!([{"label": "engine.id", "equals": engine.trim()}]),
        "{}",
        view["spec"]
    );
    assert!(
        up.stdout.contains("built app as"),
        "up says what it built: {}",
        up.describe()
    );
    match http_get(&format!("127.0.0.1:{port}"), "/") {
        Some((200, body)) => assert!(body.contains(&marker), "{body}"),
        other => panic!("{other:?}"),
    }
    // Up again: the same context is the same tag, not built again; the job is unchanged.
    let again = ork_in(&project_dir, &["compose", "up", "-p", &name], &env);
    assert_eq!(again.code, Some(0), "{}", again.describe());
    assert!(again.stdout.contains("unchanged"), "{}", again.describe());
    let image = view["spec"]["tasks"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let down = ork_in(&project_dir, &["compose", "down", "-p", &name], &env);
    assert_eq!(down.code, Some(0), "{}", down.describe());
    c.wait_phase(&name, "Stopped");
    docker_quiet(&["image", "rm", "-f", &image]);
}
