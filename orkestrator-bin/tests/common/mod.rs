//! Helpers shared by the integration tests that run the real `orkestrator` binary: free ports,
//! child processes that are killed (and whose containers are removed) on drop, client commands
//! with a timeout, polling with a deadline that reports logs on failure, a tiny HTTP/1.1 client,
//! and the Docker checks (skip or fail without an engine; build the test image once).

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_orkestrator");
/// The locally built test image.
pub const IMAGE: &str = "orkestrator/busybox:latest";
/// A command that runs until SIGTERM and then exits at once (a shell as PID 1 ignores SIGTERM
/// unless it traps it).
pub const FOREVER: &str = r#"["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]"#;
/// The default poll deadline.
pub const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Ports and names

/// A port that was free a moment ago on 127.0.0.1, taken from below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): a port from inside it (what binding port 0 gives)
/// can be handed to an outgoing connection's local end before the process meant to listen on it
/// binds it, which failed a worker's start with "Address already in use". Each call in a test
/// process gives another port.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const LOW: u32 = 10_000;
    if ephemeral_low > LOW + 1_000 {
        let span = ephemeral_low - LOW;
        // Test processes run one after another, but spread them anyway.
        let seed = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = (LOW + (seed + n) % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A name unique to this test in this test process: `<prefix>-<test>-<pid>`, a DNS label.
pub fn unique(prefix: &str, test: &str) -> String {
    let name = format!("{prefix}-{test}-{}", std::process::id()).replace('_', "-");
    assert!(
        name.len() <= 63,
        "name {name:?} is too long for a DNS label"
    );
    name
}

// ---------------------------------------------------------------------------------------------
// Docker

fn docker_required() -> bool {
    std::env::var("ORKESTRATOR_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether the Docker engine answers. When it does not: panics if Docker is required
/// (`CI=true` or `ORKESTRATOR_REQUIRE_DOCKER=1`), otherwise prints a loud SKIP line and returns
/// false. When it does, makes sure the test image exists (built once per test process).
pub fn docker_or_skip(test: &str) -> bool {
    static ENGINE: OnceLock<Result<(), String>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| match Command::new("docker").arg("info").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(format!("cannot run the docker CLI: {e}")),
    });
    match engine {
        Ok(()) => {
            ensure_test_image();
            true
        }
        Err(e) if docker_required() => {
            panic!("{test}: the Docker engine is required (CI / ORKESTRATOR_REQUIRE_DOCKER): {e}")
        }
        Err(e) => {
            // Straight to the process's stderr in one piece: the harness captures `eprintln!`.
            let line = format!(
                "\nSKIP orkestrator-bin test `{test}`: no Docker engine ({e}); \
                 set ORKESTRATOR_REQUIRE_DOCKER=1 to fail instead\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            false
        }
    }
}

/// Whether the external program `tool` (e.g. `prometheus`) runs (`tool --version` succeeds).
/// When it does not: panics if it is required (`CI=true`, any case, or
/// `ORKESTRATOR_REQUIRE_<TOOL>=1`, e.g. `ORKESTRATOR_REQUIRE_PROMETHEUS=1`), otherwise prints a
/// loud SKIP line naming `install_hint` and returns false.
pub fn tool_or_skip(test: &str, tool: &str, install_hint: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let switch = format!(
        "ORKESTRATOR_REQUIRE_{}",
        tool.to_ascii_uppercase().replace('-', "_")
    );
    let required = std::env::var(&switch).is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    assert!(
        !required,
        "{test}: `{tool}` is required (CI / {switch}) but does not run; install it: {install_hint}"
    );
    // Straight to the process's stderr in one piece: the harness captures `eprintln!`.
    let line = format!(
        "\nSKIP orkestrator-bin test `{test}`: no `{tool}` ({install_hint}); \
         set {switch}=1 to fail instead\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Builds the test image with `scripts/build-test-image.sh` once, if it is missing.
fn ensure_test_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return Ok(());
        }
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-test-image.sh");
        match Command::new("bash").arg(&script).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!("cannot run {}: {e}", script.display())),
        }
    });
    if let Err(e) = built {
        panic!("the test image {IMAGE} is missing and could not be built: {e}");
    }
}

/// Runs `docker ARGS` and returns its standard output; panics if it fails.
pub fn docker(args: &[&str]) -> String {
    let o = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"));
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Ids of containers (running or not, with `all`) that carry the label `key=value`.
pub fn containers_with_label(key: &str, value: &str, all: bool) -> Vec<String> {
    let filter = format!("label={key}={value}");
    let mut args = vec!["ps", "-q", "--no-trunc", "--filter", filter.as_str()];
    if all {
        args.push("-a");
    }
    docker(&args).lines().map(str::to_owned).collect()
}

/// `docker inspect` of the given containers, as JSON objects.
pub fn inspect(ids: &[String]) -> Vec<Value> {
    let mut args = vec!["inspect"];
    args.extend(ids.iter().map(String::as_str));
    let out = docker(&args);
    match serde_json::from_str(&out) {
        Ok(Value::Array(v)) => v,
        other => panic!("docker inspect printed no JSON array: {other:?}\n{out}"),
    }
}

/// Removes (forcibly) every container of `worker`, twice a moment apart, so a create that was
/// in flight when the worker was killed is caught too, then its instances' networks and its
/// named volumes. Never panics (it runs in `Drop`).
pub fn remove_worker_containers(worker: &str) {
    remove_containers_of(worker);
    let filter = format!("label=orkestrator.worker={worker}");
    for kind in ["network", "volume"] {
        let Ok(o) = Command::new("docker")
            .args([kind, "ls", "-q", "--filter", &filter])
            .output()
        else {
            continue;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args([kind, "rm"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn remove_containers_of(worker: &str) {
    for round in 0..2 {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        let filter = format!("label=orkestrator.worker={worker}");
        let Ok(o) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
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
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A long-running `orkestrator` process (server or worker) whose output goes to files. Dropping
/// it kills the process and, for a worker, removes its containers.
pub struct Proc {
    /// What it is, for messages (`server`, `worker w1`).
    pub label: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    /// The worker name whose containers are removed on drop.
    worker: Option<String>,
}

impl Proc {
    /// Starts `orkestrator ARGS` with output in `dir/<file>.out` and `.err`, and a manager's
    /// default state directory under `dir/data` (`XDG_DATA_HOME`), so no test reads or leaves
    /// state in the user's home.
    pub fn spawn(
        dir: &Path,
        label: &str,
        args: &[String],
        cwd: &Path,
        worker: Option<String>,
    ) -> Proc {
        Self::spawn_with(dir, label, args, cwd, worker, &[])
    }

    /// [`Proc::spawn`] of a manager with `env` set too.
    pub fn spawn_env(
        dir: &Path,
        label: &str,
        args: &[String],
        cwd: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        Self::spawn_with(dir, label, args, cwd, None, env)
    }

    fn spawn_with(
        dir: &Path,
        label: &str,
        args: &[String],
        cwd: &Path,
        worker: Option<String>,
        env: &[(&str, &str)],
    ) -> Proc {
        let file = label.replace(' ', "-");
        let stdout = dir.join(format!("{file}.out"));
        let stderr = dir.join(format!("{file}.err"));
        let child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env("XDG_DATA_HOME", dir.join("data"))
            .env_remove("ORKESTRATOR_ADDR")
            .env_remove("ORKESTRATOR_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout log"))
            .stderr(File::create(&stderr).expect("create stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} {args:?}: {e}"));
        Proc {
            label: label.to_owned(),
            child,
            stdout,
            stderr,
            worker,
        }
    }

    /// The process's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL (what `Child::kill` sends on Unix), reaps it and returns how it
    /// ended.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("cannot reap {}: {e}", self.label))
    }

    /// The last `lines` lines of its stdout and stderr.
    pub fn tail(&self, lines: usize) -> String {
        format!(
            "--- {} (pid {}) stdout:\n{}--- {} stderr:\n{}",
            self.label,
            self.child.id(),
            tail_file(&self.stdout, lines),
            self.label,
            tail_file(&self.stderr, lines)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &self.worker {
            remove_worker_containers(w);
        }
    }
}

fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    for l in &all[start..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The result of a finished client command.
#[derive(Debug)]
pub struct CmdOut {
    /// The exit code (`None` if killed by a signal or the timeout).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CmdOut {
    /// Everything it printed, for messages.
    pub fn describe(&self) -> String {
        format!(
            "exit code {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Its standard output as JSON; panics with the output if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("output is not JSON ({e}):\n{}", self.describe()))
    }
}

/// Runs a prepared command to completion, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> CmdOut {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let mut stderr = err_reader.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n[killed after {timeout:?}]\n"));
    }
    CmdOut {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Runs `orkestrator ARGS` in `cwd` with `env` set (and `ORKESTRATOR_ADDR` unset unless given).
pub fn ork_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> CmdOut {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("ORKESTRATOR_ADDR")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(&mut cmd, Duration::from_secs(90))
}

// ---------------------------------------------------------------------------------------------
// A cluster of processes

/// A manager and its workers for one test, with a scratch directory. Dropping it kills every
/// process and removes every container of its workers.
pub struct Cluster {
    /// The test's name (prefix of workers' names).
    pub test: String,
    /// The manager's port.
    pub port: u16,
    /// The manager's address, `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Names of the workers started with [`Cluster::add_worker`].
    pub workers: Vec<String>,
    procs: RefCell<Vec<Proc>>,
    dir: tempfile::TempDir,
    /// The manager's command line, to start it again on the same port and state.
    manager_args: Vec<String>,
    /// Each worker's command line, to start it again under the same name.
    worker_args: BTreeMap<String, Vec<String>>,
    /// How many processes were started again (numbers their log files).
    restarts: Cell<usize>,
}

impl Cluster {
    /// Starts `orkestrator server` on a free port (heartbeats every 500 ms) and waits until it
    /// answers `GET /v1/health`.
    pub fn start(test: &str) -> Cluster {
        Cluster::start_server(test, &[])
    }

    /// Like [`Cluster::start`], with `extra` flags for the server (`--no-embedded-scheduler`,
    /// `--heartbeat-grace 2s`, ...).
    pub fn start_server(test: &str, extra: &[&str]) -> Cluster {
        let port = free_port();
        let mut args: Vec<String> = [
            "server",
            "--port",
            &port.to_string(),
            "--heartbeat-interval",
            "500ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Cluster::start_with(test, port, &args)
    }

    /// Starts a manager with exactly `args` that will listen on `port`, and waits for it.
    pub fn start_with(test: &str, port: u16, args: &[String]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ork-{test}-"))
            .tempdir()
            .expect("temp dir");
        let manager = Proc::spawn(dir.path(), "server", args, dir.path(), None);
        let c = Cluster {
            test: test.to_owned(),
            port,
            addr: format!("http://127.0.0.1:{port}"),
            workers: Vec::new(),
            procs: RefCell::new(vec![manager]),
            dir,
            manager_args: args.to_vec(),
            worker_args: BTreeMap::new(),
            restarts: Cell::new(0),
        };
        c.wait_manager();
        c
    }

    /// Waits until the manager (process 0) answers `GET /v1/health`; fails at once if it exits.
    fn wait_manager(&self) {
        self.wait_until("the manager answers GET /v1/health", TIMEOUT, |c| {
            if let Some(s) = c.exited(0) {
                return Err(format!("the manager exited: {s}"));
            }
            match http(c.port, "GET", "/v1/health", None, b"") {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("status {}: {}", r.status, r.text())),
                Err(e) => Err(e.to_string()),
            }
        });
    }

    /// Starts the manager again with the same command line (same port, same state directory),
    /// SIGKILLing it first if it still runs, and waits until it answers. The old process's logs
    /// stay in [`Cluster::logs`]; the new one is [`MANAGER`] again.
    pub fn restart_manager(&self) {
        let n = self.next_restart();
        let _ = self.procs.borrow_mut()[0].kill();
        wait_port_free(self.port);
        let fresh = Proc::spawn(
            self.dir.path(),
            &format!("server #{n}"),
            &self.manager_args,
            self.dir.path(),
            None,
        );
        {
            let mut procs = self.procs.borrow_mut();
            let old = std::mem::replace(&mut procs[0], fresh);
            procs.push(old);
        }
        self.wait_manager();
    }

    fn next_restart(&self) -> usize {
        let n = self.restarts.get() + 1;
        self.restarts.set(n);
        n
    }

    /// The exit status of process `index` (0 is the manager), if it has exited.
    fn exited(&self, index: usize) -> Option<ExitStatus> {
        self.procs.borrow_mut()[index].exited()
    }

    /// The scratch directory (the working directory of every command).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a worker named `<test>-w<N>-<pid>` on a free port with `--stop-grace 2s` and the
    /// `extra` flags, waits until the manager lists it as Ready, and returns its name.
    pub fn add_worker(&mut self, extra: &[&str]) -> String {
        self.add_worker_proc(extra).0
    }

    /// Like [`Cluster::add_worker`], and also returns the worker's process (to kill it).
    pub fn add_worker_proc(&mut self, extra: &[&str]) -> (String, ProcId) {
        let name = unique(&format!("e2e{}", self.workers.len()), &self.test);
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--manager".into(),
            self.addr.clone(),
            "--port".into(),
            free_port().to_string(),
            "--name".into(),
            name.clone(),
            "--stop-grace".into(),
            "2s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let id = self.spawn_worker(&name, &args);
        (name, id)
    }

    /// Starts a worker process with exactly `args` that registers as `name` (its containers are
    /// removed when the cluster drops), waits until it is Ready, and returns its process.
    pub fn spawn_worker(&mut self, name: &str, args: &[String]) -> ProcId {
        let id = self.spawn(&format!("worker {name}"), args, Some(name.to_owned()));
        self.workers.push(name.to_owned());
        self.worker_args.insert(name.to_owned(), args.to_vec());
        self.wait_worker_ready(name, id);
        id
    }

    /// Starts worker `name` again with the command line it was first started with (same name,
    /// port and flags) and returns its new process, without waiting for anything: the caller
    /// decides what "back" means (Ready again, containers adopted or removed). Kill the old
    /// process first.
    pub fn restart_worker(&mut self, name: &str) -> ProcId {
        let args = self
            .worker_args
            .get(name)
            .unwrap_or_else(|| panic!("no worker {name} was started"))
            .clone();
        let n = self.next_restart();
        self.spawn(&format!("worker {name} #{n}"), &args, Some(name.to_owned()))
    }

    /// Waits until the manager lists worker `name` as Ready; fails at once if process `id` exits.
    pub fn wait_worker_ready(&self, name: &str, ProcId(index): ProcId) {
        self.wait_until(&format!("worker {name} is Ready"), TIMEOUT, |c| {
            if let Some(s) = c.exited(index) {
                return Err(format!("the worker exited: {s}"));
            }
            let out = c.ork(&["workers", "-o", "json"]);
            if out.code != Some(0) {
                return Err(out.describe());
            }
            let list = out.json();
            let ready = list
                .as_array()
                .is_some_and(|ws| ws.iter().any(|w| w["id"] == name && w["status"] == "Ready"));
            if ready {
                Ok(())
            } else {
                Err(format!("workers: {list}"))
            }
        });
    }

    /// Starts `orkestrator ARGS` in the scratch directory as one of the cluster's processes.
    fn spawn(&self, label: &str, args: &[String], worker: Option<String>) -> ProcId {
        let p = Proc::spawn(self.dir.path(), label, args, self.dir.path(), worker);
        let mut procs = self.procs.borrow_mut();
        procs.push(p);
        ProcId(procs.len() - 1)
    }

    /// Starts `orkestrator scheduler --name NAME --algorithm ALGORITHM` against this manager and
    /// waits until `GET /v1/health` lists it as Ready.
    pub fn add_scheduler(&self, name: &str, algorithm: &str) -> ProcId {
        let args: Vec<String> = [
            "scheduler",
            "--manager",
            &self.addr,
            "--name",
            name,
            "--algorithm",
            algorithm,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let id = self.spawn(&format!("scheduler {name}"), &args, None);
        self.wait_scheduler(name, "Ready", Some(id));
        id
    }

    /// Waits until `GET /v1/health` lists scheduler `name` with `status` (Ready, Down), and
    /// returns the whole report. With `proc`, fails at once if that process exits.
    pub fn wait_scheduler(&self, name: &str, status: &str, proc: Option<ProcId>) -> Value {
        self.wait_until(
            &format!("health lists scheduler {name} as {status}"),
            TIMEOUT,
            |c| {
                if let Some(s) = proc.and_then(|ProcId(i)| c.exited(i)) {
                    return Err(format!("the scheduler exited: {s}"));
                }
                let h = c.health()?;
                match scheduler_in(&h, name) {
                    Some(s) if s["status"] == status => Ok(h),
                    _ => Err(serde_json::to_string_pretty(&h["schedulers"]).unwrap_or_default()),
                }
            },
        )
    }

    /// SIGKILLs process `id` and returns how it ended (asserting it was the signal that ended it).
    pub fn kill(&self, id: ProcId) -> ExitStatus {
        let mut procs = self.procs.borrow_mut();
        let p = &mut procs[id.0];
        let status = p.kill();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "{} did not die of SIGKILL: {status}",
                p.label
            );
        }
        status
    }

    /// Sends `signal` (`STOP`, `CONT`) to process `id` with kill(1).
    pub fn signal(&self, id: ProcId, signal: &str) {
        let procs = self.procs.borrow();
        let p = &procs[id.0];
        let pid = p.pid().to_string();
        let out = run_with_timeout(
            Command::new("kill").args([&format!("-{signal}"), pid.as_str()]),
            Duration::from_secs(10),
        );
        assert_eq!(
            out.code,
            Some(0),
            "kill -{signal} {} ({pid}): {}",
            p.label,
            out.describe()
        );
    }

    /// `GET /v1/health` as JSON, or why not.
    pub fn health(&self) -> Result<Value, String> {
        let r = http(self.port, "GET", "/v1/health", None, b"").map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))
    }

    /// Runs a client command against this manager (`ORKESTRATOR_ADDR` set).
    pub fn ork(&self, args: &[&str]) -> CmdOut {
        ork_in(self.dir.path(), args, &[("ORKESTRATOR_ADDR", &self.addr)])
    }

    /// Writes `contents` to `name` in the scratch directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write job file");
        path
    }

    /// `GET /v1/jobs/{job}` (as an operator, from the manager's host), or why not.
    pub fn job_view(&self, job: &str) -> Result<Value, String> {
        let r = http(self.port, "GET", &format!("/v1/jobs/{job}"), None, b"")
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("GET /v1/jobs/{job}: {} {}", r.status, r.text()));
        }
        serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))
    }

    /// `status JOB -o json`, or the command's output as the error.
    pub fn status(&self, job: &str) -> Result<Value, String> {
        let out = self.ork(&["status", job, "-o", "json"]);
        if out.code != Some(0) {
            return Err(out.describe());
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.describe()))
    }

    /// Waits until `job`'s phase is `phase` and returns its `status -o json`.
    pub fn wait_phase(&self, job: &str, phase: &str) -> Value {
        self.wait_until(&format!("job {job} is {phase}"), TIMEOUT, |c| {
            let v = c.status(job)?;
            if v["phase"] == phase {
                Ok(v)
            } else {
                Err(serde_json::to_string_pretty(&v).unwrap_or_default())
            }
        })
    }

    /// Polls `check` every 200 ms until it returns `Ok` or `timeout` passes; then panics with
    /// the last error and the tail of every process's logs.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut(&Cluster) -> Result<T, String>,
    ) -> T {
        self.wait_until_every(what, timeout, Duration::from_millis(200), check)
    }

    /// Like [`Cluster::wait_until`], polling every `every` (for measurements that need a finer
    /// grain than 200 ms).
    pub fn wait_until_every<T>(
        &self,
        what: &str,
        timeout: Duration,
        every: Duration,
        mut check: impl FnMut(&Cluster) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match check(self) {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting until {what}\nlast observation:\n{last}\n\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// The tail of every process's output.
    pub fn logs(&self) -> String {
        self.procs
            .borrow()
            .iter()
            .map(|p| p.tail(40))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A process started by a [`Cluster`] (its position in the cluster's list; 0 is the manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId(usize);

/// The manager's process (also after [`Cluster::restart_manager`]).
pub const MANAGER: ProcId = ProcId(0);

/// The entry for scheduler `name` in a health report (`schedulers: [{id, algorithm, status,
/// last_seen_ms_ago}]`).
pub fn scheduler_in<'a>(health: &'a Value, name: &str) -> Option<&'a Value> {
    health["schedulers"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == name)
}

// ---------------------------------------------------------------------------------------------
// A lock on a fixed port shared by test processes

/// Holds a fixed port for one test at a time, across threads (a static mutex) and across test
/// processes (a lock file created exclusively, holding the owner's pid; a file whose owner is
/// gone is taken over). Released on drop.
pub struct PortLock {
    path: PathBuf,
    _guard: MutexGuard<'static, ()>,
}

/// Takes the lock on `port`, waiting up to two minutes for another holder.
pub fn lock_port(port: u16) -> PortLock {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join(format!("orkestrator-test-port-{port}.lock"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let _ = write!(f, "{}", std::process::id());
                return PortLock {
                    path,
                    _guard: guard,
                };
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let age = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default();
                // An owner that no longer runs (or never wrote its pid) left a stale file.
                let stale = match owner.trim().parse::<u32>() {
                    Ok(pid) => {
                        cfg!(target_os = "linux") && !Path::new(&format!("/proc/{pid}")).exists()
                    }
                    Err(_) => age > Duration::from_secs(5),
                };
                if stale {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            }
            Err(e) => panic!("cannot create the lock file {}: {e}", path.display()),
        }
        assert!(
            Instant::now() < deadline,
            "port {port} stayed locked by {} for two minutes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for PortLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Waits until `port` on 127.0.0.1 can be bound (a previous holder may still be exiting).
pub fn wait_port_free(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("port {port} is still in use after 20s ({e}): stop whatever holds it")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client (one request per connection)

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the response if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {:?}\n{}",
                self.status,
                self.headers,
                self.text()
            )
        })
    }
}

/// The directory where a manager on this host records where its tokens are (as the binary's
/// `creds::runtime_dir`).
pub fn runtime_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("orkestrator"),
        None => {
            let uid = std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(0);
            std::env::temp_dir().join(format!("orkestrator-{uid}"))
        }
    }
}

/// The directory holding the tokens of the manager on `port`, as the server recorded it.
pub fn token_dir(port: u16) -> Option<PathBuf> {
    let pointer = std::fs::read_to_string(runtime_dir().join(format!("manager-{port}"))).ok()?;
    Some(PathBuf::from(pointer.trim()))
}

/// A token file (`operator.token`, `join.token`, `manager.token`) of the manager on `port`.
pub fn token_of(port: u16, file: &str) -> Option<String> {
    let text = std::fs::read_to_string(token_dir(port)?.join(file)).ok()?;
    Some(text.lines().next()?.trim().to_owned())
}

/// Sends one request to 127.0.0.1:`port` with `Connection: close` and reads the whole response,
/// presenting the operator token of the manager on `port` (if it wrote one). The body is written
/// from a second thread while the response is read, so a server that answers before reading all
/// of a large body (413) is heard, and a write the server cut short is not an error.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let token = token_of(port, "operator.token");
    http_as(port, token.as_deref(), method, path, content_type, body)
}

/// [`http`] presenting `token` (none: no `Authorization` header).
pub fn http_as(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    http_with(port, token, method, path, content_type, &[], body)
}

/// Like [`http_as`], with more request headers (`name`, `value`).
pub fn http_with(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = stream.try_clone()?;
    let mut payload = head.into_bytes();
    payload.extend_from_slice(body);
    let sender = std::thread::spawn(move || {
        // The server may answer and close before taking the whole body: that is not our error.
        let _ = writer.write_all(&payload);
        let _ = writer.flush();
    });
    let mut raw = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the response arrived (the server closed with body bytes unread).
            Err(e) if e.kind() == ErrorKind::ConnectionReset && response_complete(&raw) => break,
            Err(e) => return Err(e),
        }
    }
    let _ = reader.shutdown(Shutdown::Both);
    let _ = sender.join();
    parse_response(&raw)
}

/// Whether `raw` holds a whole response with a `Content-Length` body.
fn response_complete(raw: &[u8]) -> bool {
    parse_response(raw).is_ok_and(|r| {
        r.header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .is_some_and(|n| r.body.len() >= n)
    })
}

/// Parses one whole response as read from the wire (the body de-chunked).
pub fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let bad = |m: String| std::io::Error::new(ErrorKind::InvalidData, m);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(format!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // Skip interim responses (100 Continue) to the final one.
    if (100..200).contains(&status) {
        return parse_response(rest);
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("truncated chunk size".into()))?;
            let size_text = String::from_utf8_lossy(&rest[..end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| bad(format!("bad chunk size {size_text:?}: {e}")))?;
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return Err(bad("truncated chunk".into()));
            }
            body.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        body
    } else {
        match headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            Some(n) => rest.get(..n).unwrap_or(rest).to_vec(),
            None => rest.to_vec(),
        }
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
