//! Authentication of the real `orkestrator` binary: every endpoint of the manager's router
//! without a token (401), what read, join and component credentials may do (403 for the rest),
//! worker A acting as worker B (403), revocation taking effect at once, token files of mode 0600
//! whose secrets never reach a log, `token create/list/revoke` and tokens across a restart,
//! per-credential limits on streams and requests (429), and, with a Docker engine, the worker's
//! own endpoint and a worker coming back as itself after `kill -9` while a second process cannot
//! take its name.
//!
//! Every process of a test shares a private `XDG_RUNTIME_DIR`, so the CLI and the workers find
//! that test's manager tokens by themselves (as on one host) and no other test's.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{CmdOut, free_port, run_with_timeout, unique};
use orkestrator_core::api::{RegisterScheduler, RegisterWorker, TaskUpdate, WorkerResources};
use orkestrator_core::ids::{InstanceId, SchedulerId, WorkerId};
use orkestrator_core::spec::Resources;
use orkestrator_core::state::TaskState;
use orkestrator_core::units::{ByteSize, Cpu};
use serde_json::{Value, json};

/// How long any awaited state may take.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// HTTP over raw TCP, one request per connection

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.status, self.text()))
    }
}

fn head(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut h = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        h.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        h.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    let mut bytes = h.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends one request and reads the whole answer.
fn send(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> std::io::Result<Resp> {
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(&head(port, token, method, path, &body, extra))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |m: String| std::io::Error::new(ErrorKind::InvalidData, m);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(format!("no headers in {:?}", String::from_utf8_lossy(raw))))?;
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line in {text:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim(),
                16,
            )
            .map_err(|e| bad(format!("bad chunk size: {e}")))?;
            rest = &rest[nl + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        body
    } else {
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// A request whose answer may stay open (an event stream, a long-poll): its status once the
/// headers came, and the connection, held open until dropped.
struct Stream {
    status: u16,
    /// The whole answer when it was not a `200` (an error ends at once).
    refusal: Option<Resp>,
    sock: TcpStream,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Sends a request and reads until its answer's headers have come.
fn open(port: u16, token: Option<&str>, path: &str) -> std::io::Result<Stream> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    sock.write_all(&head(port, token, "GET", path, b"", &[]))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let status = parse(&raw)?.status;
    let refusal = if status == 200 {
        None
    } else {
        sock.read_to_end(&mut raw)?;
        Some(parse(&raw)?)
    };
    Ok(Stream {
        status,
        refusal,
        sock,
    })
}

/// Asserts `r` is a JSON error of `status` with `code`, and returns it.
#[track_caller]
fn error(r: &Resp, status: u16, code: &str, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{what}: not JSON: {:?} {}",
        r.headers,
        r.text()
    );
    let v = r.json();
    assert_eq!(v["status"], status, "{what}: {v}");
    assert_eq!(v["code"], code, "{what}: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message: {v}"
    );
    v
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A process of a test (server or worker), killed on drop (with a worker's containers).
struct Node {
    label: String,
    child: Child,
    log: PathBuf,
    worker: Option<String>,
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("cannot reap {}: {e}", self.label))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &self.worker {
            common::remove_worker_containers(w);
        }
    }
}

/// One test's manager (and workers), in a scratch directory.
struct Site {
    tmp: tempfile::TempDir,
    port: u16,
    addr: String,
    server_args: Vec<String>,
    nodes: RefCell<Vec<Node>>,
    spawned: Cell<usize>,
}

impl Site {
    /// `orkestrator server --port P --data-dir TMP/manager EXTRA...`, up and answering.
    fn start(test: &str, extra: &[&str]) -> Site {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("ork-auth-{test}-"))
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut server_args: Vec<String> = vec![
            "server".into(),
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            tmp.path().join("manager").display().to_string(),
            "--heartbeat-interval".into(),
            "500ms".into(),
        ];
        server_args.extend(extra.iter().map(|s| s.to_string()));
        let site = Site {
            tmp,
            port,
            addr: format!("http://127.0.0.1:{port}"),
            server_args,
            nodes: RefCell::new(Vec::new()),
            spawned: Cell::new(0),
        };
        let args = site.server_args.clone();
        site.spawn("server", &args, None);
        site.wait_up();
        site
    }

    /// A command of the binary with this test's environment.
    fn command(&self) -> Command {
        let mut c = Command::new(common::BIN);
        c.current_dir(self.tmp.path())
            .env("NO_COLOR", "1")
            .env("XDG_RUNTIME_DIR", self.tmp.path().join("run"))
            .env("XDG_DATA_HOME", self.tmp.path().join("xdg"));
        for v in [
            "ORKESTRATOR_ADDR",
            "ORKESTRATOR_DATA_DIR",
            "ORKESTRATOR_WORKER_DATA_DIR",
            "ORKESTRATOR_TOKEN",
            "ORKESTRATOR_JOIN_TOKEN",
            "ORKESTRATOR_LOG",
            "ORKESTRATOR_LOG_FORMAT",
        ] {
            c.env_remove(v);
        }
        c
    }

    /// Starts `orkestrator ARGS` as one of the site's processes, logging at debug level (so that
    /// the check for secrets in logs sees everything), and returns its index.
    fn spawn(&self, label: &str, args: &[String], worker: Option<String>) -> usize {
        let n = self.spawned.get();
        self.spawned.set(n + 1);
        let log = self
            .tmp
            .path()
            .join(format!("{n}-{}.log", label.replace(' ', "-")));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command()
            .args(args)
            .env("ORKESTRATOR_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            label: label.to_owned(),
            child,
            log,
            worker,
        });
        nodes.len() - 1
    }

    fn exited(&self, node: usize) -> Option<ExitStatus> {
        self.nodes.borrow_mut()[node]
            .child
            .try_wait()
            .ok()
            .flatten()
    }

    /// SIGKILLs a process (asserting the signal ended it).
    fn kill(&self, node: usize) {
        let status = self.nodes.borrow_mut()[node].kill();
        assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    }

    fn log_of(&self, node: usize) -> String {
        self.nodes.borrow()[node].log()
    }

    /// The tail of every process's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for n in self.nodes.borrow().iter() {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- {}:\n", n.label));
            for l in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Polls `check` every 100 ms until it is `Ok`, failing after [`DEADLINE`] with its last
    /// word and the logs.
    fn wait<T>(&self, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match check() {
                Ok(v) => return v,
                Err(e) if Instant::now() >= deadline => {
                    panic!("timed out waiting until {what}; last: {e}\n{}", self.logs())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits until the server (the newest one) answers `/v1/health` and has written its tokens.
    fn wait_up(&self) {
        let server = self.server();
        self.wait("the manager answers", || {
            if let Some(s) = self.exited(server) {
                return Err(format!("the server exited: {s}"));
            }
            if !self.data().join("operator.token").exists() {
                return Err("no operator.token yet".into());
            }
            send(self.port, None, "GET", "/v1/health", None, &[])
                .map_err(|e| e.to_string())
                .and_then(|r| match r.status {
                    200 => Ok(()),
                    s => Err(format!("{s}: {}", r.text())),
                })
        });
    }

    /// The index of the current server process.
    fn server(&self) -> usize {
        self.nodes
            .borrow()
            .iter()
            .rposition(|n| n.label == "server")
            .expect("a server")
    }

    /// Kills the server with SIGKILL and starts it again with the same command line.
    fn restart_server(&self) {
        let old = self.server();
        self.kill(old);
        self.nodes.borrow_mut()[old].label = "server (killed)".into();
        let deadline = Instant::now() + DEADLINE;
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "port {} stays taken", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = self.server_args.clone();
        self.spawn("server", &args, None);
        self.wait_up();
    }

    /// The manager's data directory (where it writes its token files).
    fn data(&self) -> PathBuf {
        self.tmp.path().join("manager")
    }

    /// A token file of the manager (`operator.token`, `join.token`, `manager.token`).
    fn file_token(&self, file: &str) -> String {
        read_token(&self.data().join(file))
    }

    fn operator(&self) -> String {
        self.file_token("operator.token")
    }

    fn call(&self, token: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> Resp {
        send(self.port, token, method, path, body, &[])
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()))
    }

    /// An operator's call that must succeed, as JSON.
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let r = self.call(Some(&self.operator()), method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}\n{}",
            r.status,
            r.text(),
            self.logs()
        );
        r.json()
    }

    /// Creates a token of `role` through the API: (id, token).
    fn create(&self, role: &str, name: &str) -> (String, String) {
        let v = self.ok(
            "POST",
            "/v1/tokens",
            Some(&json!({"role": role, "name": name})),
        );
        let token = v["token"].as_str().expect("a token").to_owned();
        assert!(token.starts_with("ork."), "{v}");
        (v["info"]["id"].as_str().expect("an id").to_owned(), token)
    }

    /// `orkestrator ARGS` against this manager, with `env` set.
    fn ork_with(&self, args: &[&str], env: &[(&str, &str)]) -> CmdOut {
        let mut c = self.command();
        c.args(args).env("ORKESTRATOR_ADDR", &self.addr);
        for (k, v) in env {
            c.env(k, v);
        }
        run_with_timeout(&mut c, Duration::from_secs(60))
    }

    fn ork(&self, args: &[&str]) -> CmdOut {
        self.ork_with(args, &[])
    }

    /// Starts `orkestrator worker` named `name` with its endpoint on `port` and its credential in
    /// `data` (the join token found by itself, as on one host).
    fn start_worker(&self, name: &str, port: u16, data: &Path) -> usize {
        let args: Vec<String> = [
            "worker",
            "--manager",
            &self.addr,
            "--port",
            &port.to_string(),
            "--name",
            name,
            "--data-dir",
            &data.display().to_string(),
            "--stop-grace",
            "2s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.spawn(&format!("worker {name}"), &args, Some(name.to_owned()))
    }

    /// Worker `name` as `GET /v1/workers` lists it.
    fn worker(&self, name: &str) -> Option<Value> {
        let list = self.ok("GET", "/v1/workers", None);
        list["items"]
            .as_array()
            .or(list.as_array())
            .and_then(|ws| ws.iter().find(|w| w["id"] == name).cloned())
    }

    /// Waits until worker `name` has `status` (failing at once if process `node` exits).
    fn wait_worker(&self, name: &str, status: &str, node: Option<usize>) -> Value {
        self.wait(&format!("worker {name} is {status}"), || {
            if let Some(s) = node.and_then(|n| self.exited(n)) {
                return Err(format!("the worker exited: {s}"));
            }
            match self.worker(name) {
                Some(w) if w["status"] == status => Ok(w),
                other => Err(format!("{other:?}")),
            }
        })
    }

    /// The credentials listed for component `subject`.
    fn credentials_of(&self, subject: &str) -> Vec<Value> {
        let out = self.ork(&["token", "list", "-o", "json"]);
        assert_eq!(out.code, Some(0), "token list: {}", out.describe());
        out.json()
            .as_array()
            .expect("a list")
            .iter()
            .filter(|t| t["subject"] == subject)
            .cloned()
            .collect()
    }

    /// Asserts that no process of the site ever wrote the secret of the manager's token files
    /// or of `more` tokens, and that the files have mode 0600.
    fn assert_no_secret_logged(&self, more: &[&str]) {
        let mut tokens: Vec<String> = more.iter().map(|s| s.to_string()).collect();
        for file in ["operator.token", "join.token", "manager.token"] {
            let path = self.data().join(file);
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "{} has mode {:o}",
                path.display(),
                mode
            );
            tokens.push(read_token(&path));
        }
        for n in self.nodes.borrow().iter() {
            let log = n.log();
            assert!(!log.is_empty(), "{} logged nothing", n.label);
            for t in &tokens {
                let secret = secret_of(t);
                assert!(
                    !log.contains(&secret),
                    "{} logged the secret of {}",
                    n.label,
                    t.split('.').take(2).collect::<Vec<_>>().join(".")
                );
            }
        }
    }
}

fn read_token(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let t = text.lines().next().unwrap_or_default().trim().to_owned();
    assert!(t.starts_with("ork."), "{} holds no token", path.display());
    t
}

/// The secret part of `ork.ID.SECRET[.CA]`.
fn secret_of(token: &str) -> String {
    let s = token.split('.').nth(2).unwrap_or_default().to_owned();
    assert_eq!(s.len(), 64, "not a token: {token:.12}...");
    s
}

// ---------------------------------------------------------------------------------------------
// The router's endpoints, read from its source

/// Every (method, path) the manager's router serves: read from the `.route(...)` calls of the
/// functions that build it, so that an endpoint added later is covered without editing this list.
fn routes() -> Vec<(String, String)> {
    let http = Path::new(env!("CARGO_MANIFEST_DIR")).join("../orkestrator-runtime/src/http");
    let mut all = Vec::new();
    for (file, function) in [("routes.rs", "pub fn table(")] {
        let path = http.join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let start = text
            .find(function)
            .unwrap_or_else(|| panic!("no `{function}` in {}", path.display()));
        let body = &text[start..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        for piece in body.split(".route(").skip(1) {
            let piece = [".merge(", ".fallback(", ".layer(", ".with_state("]
                .iter()
                .filter_map(|cut| piece.find(cut))
                .min()
                .map_or(piece, |i| &piece[..i]);
            let route = piece.split('"').nth(1).expect("a path").to_owned();
            for m in ["get", "post", "delete", "put", "patch"] {
                let call = format!("{m}(");
                let found = piece.match_indices(&call).any(|(i, _)| {
                    i == 0 || {
                        let c = piece.as_bytes()[i - 1];
                        !(c.is_ascii_alphanumeric() || c == b'_')
                    }
                });
                if found {
                    all.push((m.to_ascii_uppercase(), route.clone()));
                }
            }
        }
    }
    for known in [
        ("GET", "/metrics"),
        ("POST", "/v1/jobs"),
        ("DELETE", "/v1/jobs/{job}"),
        ("GET", "/v1/events"),
        ("POST", "/v1/workers/{id}/metrics"),
        ("GET", "/v1/schedulers/{id}/work"),
        ("DELETE", "/v1/tokens/{id}"),
        ("POST", "/v1/session"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/ui/app.js"),
    ] {
        assert!(
            all.iter().any(|(m, p)| m == known.0 && p == known.1),
            "the route reader missed {known:?}: {all:?}"
        );
    }
    all
}

/// Whether a route needs no credential.
fn public(method: &str, path: &str) -> bool {
    path == "/v1/session"
        || (method == "GET" && (path == "/" || path.starts_with("/ui/") || path == "/v1/health"))
}

/// A concrete path for a route: job `web`, worker `wa`, scheduler `sa`, a made-up token id.
fn fill(path: &str) -> String {
    let id = if path.starts_with("/v1/workers/") {
        "wa"
    } else if path.starts_with("/v1/schedulers/") {
        "sa"
    } else {
        "0123456789ab"
    };
    path.replace("{job}", "web")
        .replace("{id}", id)
        .replace("{instance}", "web-0-1")
}

fn resources() -> WorkerResources {
    let total = Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::gib(8),
        disk: ByteSize::gib(50),
    };
    WorkerResources {
        total,
        allocated: Resources::ZERO,
        available: total,
    }
}

fn worker_body(id: &str) -> Value {
    serde_json::to_value(RegisterWorker {
        id: WorkerId::new(id),
        address: Some(format!("http://{id}.invalid:5556")),
        labels: Default::default(),
        host_volumes: Default::default(),
        resources: resources(),
        version: String::new(),
    })
    .unwrap()
}

fn scheduler_body(id: &str) -> Value {
    serde_json::to_value(RegisterScheduler {
        id: SchedulerId::new(id),
        algorithm: "spread".into(),
    })
    .unwrap()
}

fn heartbeat_body() -> Value {
    json!({"resources": resources(), "healthy": true})
}

fn job_body(name: &str) -> Value {
    json!({"name": name, "tasks": [{"name": "t", "image": "x:1", "resources": {"memory": "16Mi"}}]})
}

/// Registers worker `id` with `token` (the join token) over HTTP; its credential.
fn join_worker(site: &Site, token: &str, id: &str) -> String {
    let r = site.call(Some(token), "POST", "/v1/workers", Some(&worker_body(id)));
    assert_eq!(r.status, 200, "register {id}: {}", r.text());
    let v = r.json();
    v["credential"]
        .as_str()
        .unwrap_or_else(|| panic!("no credential for {id}: {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn every_endpoint_needs_a_token_except_health_the_dashboard_and_signing_in() {
    let site = Site::start("anon", &[]);
    let routes = routes();
    assert!(routes.len() >= 30, "{routes:?}");
    let mut checked = 0;
    for (method, route) in &routes {
        if public(method, route) {
            continue;
        }
        let path = fill(route);
        let body = (method != "GET").then(|| json!({}));
        let r = site.call(None, method, &path, body.as_ref());
        error(&r, 401, "unauthenticated", &format!("{method} {path}"));
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} endpoints checked");
    // A path the router does not know is refused the same way (it says nothing to strangers).
    error(
        &site.call(None, "GET", "/v1/nothing-here", None),
        401,
        "unauthenticated",
        "GET /v1/nothing-here",
    );
    // A bad or revoked token is refused even where none is needed.
    let r = site.call(Some("ork.nonsense"), "GET", "/v1/health", None);
    error(&r, 401, "unauthenticated", "health with a malformed token");
    let r = send(
        site.port,
        None,
        "GET",
        "/v1/jobs",
        None,
        &[("Authorization", "Basic eDp5")],
    )
    .unwrap();
    error(&r, 401, "unauthenticated", "basic auth");

    // Health without a token says only that the manager is up; with one, the report.
    let r = site.call(None, "GET", "/v1/health", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"status": "up"}));
    let full = site.ok("GET", "/v1/health", None);
    assert!(full.get("manager").is_some(), "{full}");
    // The dashboard's files are public.
    for (method, route) in routes.iter().filter(|(m, p)| public(m, p)) {
        if route == "/v1/session" || route == "/v1/health" {
            continue;
        }
        let r = site.call(None, method, route, None);
        assert_eq!(r.status, 200, "{method} {route}: {}", r.text());
        assert!(!r.body.is_empty(), "{route}");
    }
    // Signing in needs a real token.
    let r = site.call(
        None,
        "POST",
        "/v1/session",
        Some(&json!({"token": "ork.x.y"})),
    );
    error(&r, 401, "unauthenticated", "sign in with a made-up token");
    site.assert_no_secret_logged(&[]);
}

#[test]
fn a_read_token_reads_everything_and_changes_nothing() {
    let site = Site::start("read", &["--no-embedded-scheduler"]);
    let (_, read) = site.create("read", "prometheus");
    site.ok("POST", "/v1/jobs", Some(&job_body("web")));
    let join = site.file_token("join.token");
    let wa = join_worker(&site, &join, "wa");
    let sched = site.call(
        Some(&join),
        "POST",
        "/v1/schedulers",
        Some(&scheduler_body("sa")),
    );
    assert_eq!(sched.status, 200, "{}", sched.text());

    let mut served = 0;
    for (method, route) in routes().iter().filter(|(m, _)| m == "GET") {
        let path = fill(route);
        let operator_only = route.starts_with("/v1/tokens") || route.starts_with("/v1/secrets");
        let component_only = route.ends_with("/assignments")
            || route.ends_with("/instances/{instance}/secrets")
            || (route.starts_with("/v1/schedulers/") && route.ends_with("/work"));
        if operator_only || component_only {
            let r = site.call(Some(&read), method, &path, None);
            error(&r, 403, "forbidden", &format!("read token: GET {path}"));
            continue;
        }
        let status = if route == "/v1/events" {
            open(site.port, Some(&read), &path).unwrap().status
        } else {
            let r = site.call(Some(&read), method, &path, None);
            assert!(
                r.status != 401 && r.status != 403,
                "read token: GET {path}: {} {}",
                r.status,
                r.text()
            );
            r.status
        };
        // What exists answers; only the logs of a job that is not placed yet may not.
        if !route.ends_with("/logs") {
            assert_eq!(status, 200, "read token: GET {path}");
        }
        served += 1;
    }
    assert!(served >= 12, "only {served} GETs served");
    let metrics = site.call(Some(&read), "GET", "/metrics", None);
    assert!(metrics.text().contains("ork_"), "{}", metrics.text());
    let health = site.call(Some(&read), "GET", "/v1/health", None).json();
    assert!(health.get("manager").is_some(), "{health}");

    // It changes nothing: submit, stop, GC, register, tokens.
    for (method, path, body) in [
        ("POST", "/v1/jobs", Some(job_body("other"))),
        ("DELETE", "/v1/jobs/web", None),
        ("POST", "/v1/jobs/web/stop", None),
        ("POST", "/v1/gc", None),
        ("POST", "/v1/workers", Some(worker_body("rogue"))),
        ("POST", "/v1/schedulers", Some(scheduler_body("rogue"))),
        ("POST", "/v1/tokens", Some(json!({"role": "operator"}))),
        ("POST", "/v1/workers/wa/heartbeat", Some(heartbeat_body())),
    ] {
        let r = site.call(Some(&read), method, path, body.as_ref());
        error(
            &r,
            403,
            "forbidden",
            &format!("read token: {method} {path}"),
        );
    }
    let jobs = site.ok("GET", "/v1/jobs", None).to_string();
    assert!(!jobs.contains("\"other\""), "{jobs}");
    let web = site.ok("GET", "/v1/jobs/web", None);
    assert!(
        web["instances"]
            .as_array()
            .is_some_and(|is| is.iter().all(|i| i["desired"] == "run")),
        "a read token stopped the job: {web}"
    );
    assert!(site.worker("rogue").is_none());
    // Signing in to the dashboard with it works (a cookie that reads, and changes nothing).
    let r = site.call(None, "POST", "/v1/session", Some(&json!({"token": read})));
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains(&secret_of(&read)),
        "the cookie holds the token"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let r = send(
        site.port,
        None,
        "GET",
        "/v1/jobs",
        None,
        &[("Cookie", &session)],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        site.port,
        None,
        "POST",
        "/v1/gc",
        Some(&json!({})),
        &[("Cookie", &session)],
    )
    .unwrap();
    error(&r, 403, "forbidden", "a read session collecting garbage");
    site.assert_no_secret_logged(&[&read, &wa]);
}

#[test]
fn a_join_token_registers_and_does_nothing_else() {
    let site = Site::start("join", &["--no-embedded-scheduler"]);
    let join = site.file_token("join.token");
    site.ok("POST", "/v1/jobs", Some(&job_body("web")));
    let wa = join_worker(&site, &join, "wa");
    let r = site.call(
        Some(&join),
        "POST",
        "/v1/schedulers",
        Some(&scheduler_body("sa")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sa = r.json()["credential"]
        .as_str()
        .expect("a credential")
        .to_owned();
    // Each credential is the component's own.
    let me = site.call(Some(&wa), "GET", "/v1/auth/whoami", None).json();
    assert_eq!(
        (me["role"].as_str(), me["subject"].as_str()),
        (Some("worker"), Some("wa")),
        "{me}"
    );
    let me = site.call(Some(&sa), "GET", "/v1/auth/whoami", None).json();
    assert_eq!(
        (me["role"].as_str(), me["subject"].as_str()),
        (Some("scheduler"), Some("sa")),
        "{me}"
    );
    let me = site
        .call(Some(&join), "GET", "/v1/auth/whoami", None)
        .json();
    assert_eq!(me["role"], "join", "{me}");

    let mut refused = 0;
    for (method, route) in routes() {
        let registering = method == "POST" && (route == "/v1/workers" || route == "/v1/schedulers");
        if public(&method, &route) || registering || route == "/v1/auth/whoami" {
            continue;
        }
        let path = fill(&route);
        let body = (method != "GET").then(|| json!({}));
        let r = site.call(Some(&join), &method, &path, body.as_ref());
        error(
            &r,
            403,
            "forbidden",
            &format!("join token: {method} {path}"),
        );
        refused += 1;
    }
    assert!(refused >= 20, "only {refused} endpoints checked");
    // Nor can it sign in to the dashboard.
    let r = site.call(None, "POST", "/v1/session", Some(&json!({"token": join})));
    error(&r, 403, "forbidden", "join token signing in");
    // The job is as it was.
    let web = site.ok("GET", "/v1/jobs/web", None);
    assert!(
        web["instances"]
            .as_array()
            .is_some_and(|is| !is.is_empty() && is.iter().all(|i| i["desired"] == "run")),
        "{web}"
    );
    site.assert_no_secret_logged(&[&wa, &sa]);
}

#[test]
fn worker_a_cannot_act_as_worker_b() {
    // Registered workers stay Ready without heartbeats for the length of the test.
    let site = Site::start("nodes", &["--heartbeat-grace", "10m"]);
    let join = site.file_token("join.token");
    let wb = join_worker(&site, &join, "wb");
    site.ok("POST", "/v1/jobs", Some(&job_body("web")));
    let instance = site.wait("the embedded scheduler places web on wb", || {
        let v = site.ok("GET", "/v1/jobs/web", None);
        match v["instances"].get(0) {
            Some(i) if i["worker"] == "wb" => Ok(i["id"].as_str().unwrap_or_default().to_owned()),
            _ => Err(v.to_string()),
        }
    });
    let wa = join_worker(&site, &join, "wa");
    let b_before = site.worker("wb").expect("wb is listed");

    let update = |state: TaskState| {
        serde_json::to_value(vec![TaskUpdate {
            instance: InstanceId::new(instance.clone()),
            task: "t".into(),
            state,
            exit_code: None,
            reason: None,
            container_id: Some("c0ffee".into()),
            restarts: 0,
            next_start_at: None,
            healthy: None,
        }])
        .unwrap()
    };
    let metrics = json!({"node": {"at": 0, "cpu_cores": 0.0, "memory_bytes": 0, "memory_total_bytes": 1}, "tasks": []});
    for (method, path, body) in [
        ("POST", "/v1/workers/wb/heartbeat", Some(heartbeat_body())),
        (
            "POST",
            "/v1/workers/wb/status",
            Some(update(TaskState::Failed)),
        ),
        ("GET", "/v1/workers/wb/assignments?index=0&wait=0s", None),
        ("POST", "/v1/workers/wb/metrics", Some(metrics.clone())),
        ("GET", "/v1/workers/wb/instances/web-0-1/secrets", None),
    ] {
        let r = site.call(Some(&wa), method, path, body.as_ref());
        error(
            &r,
            403,
            "forbidden",
            &format!("wa's credential: {method} {path}"),
        );
    }
    // Taking B's name with A's credential.
    let mut takeover = worker_body("wb");
    takeover["address"] = json!("http://attacker.invalid:1");
    let r = site.call(Some(&wa), "POST", "/v1/workers", Some(&takeover));
    error(&r, 403, "not_yourself", "wa registering as wb");
    // Nor with the join token: the name has its own credential.
    let r = site.call(Some(&join), "POST", "/v1/workers", Some(&takeover));
    error(&r, 403, "name_taken", "the join token registering wb again");
    // Reporting B's instance on its own path: refused whole.
    let r = site.call(
        Some(&wa),
        "POST",
        "/v1/workers/wa/status",
        Some(&update(TaskState::Failed)),
    );
    let v = error(&r, 403, "not_your_instance", "wa reporting wb's instance");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("wb"),
        "{v}"
    );

    // B is untouched: same address, its instance as it was; B itself is served.
    let b_after = site.worker("wb").expect("wb is listed");
    assert_eq!(b_after["address"], b_before["address"]);
    let web = site.ok("GET", "/v1/jobs/web", None);
    assert_eq!(web["instances"][0]["worker"], "wb", "{web}");
    assert_ne!(
        web["instances"][0]["tasks"]["t"]["state"], "Failed",
        "{web}"
    );
    for (method, path, body) in [
        ("POST", "/v1/workers/wb/heartbeat", Some(heartbeat_body())),
        ("GET", "/v1/workers/wb/assignments?index=0&wait=0s", None),
        (
            "POST",
            "/v1/workers/wb/status",
            Some(update(TaskState::Starting)),
        ),
        ("POST", "/v1/workers", Some(worker_body("wb"))),
    ] {
        let r = site.call(Some(&wb), method, path, body.as_ref());
        assert_eq!(
            r.status,
            200,
            "wb's credential: {method} {path}: {}",
            r.text()
        );
    }
    let web = site.ok("GET", "/v1/jobs/web", None);
    assert_eq!(
        web["instances"][0]["tasks"]["t"]["state"], "Starting",
        "{web}"
    );
    // A is served as itself.
    let r = site.call(
        Some(&wa),
        "POST",
        "/v1/workers/wa/heartbeat",
        Some(&heartbeat_body()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A component credential reads nothing else.
    let r = site.call(Some(&wa), "GET", "/v1/jobs", None);
    error(&r, 403, "forbidden", "a worker credential listing jobs");
    site.assert_no_secret_logged(&[&wa, &wb]);
}

#[test]
fn a_revoked_token_stops_working_at_once_and_the_cli_manages_tokens() {
    let site = Site::start("cli", &[]);
    // The server says where its tokens are, never what they are.
    let log = site.log_of(site.server());
    for file in ["operator.token", "join.token", "manager.token"] {
        assert!(
            log.contains(file),
            "the server does not say where {file} is:\n{log}"
        );
    }

    // Over HTTP: a read token, used, revoked, refused on the very next request.
    let (id, read) = site.create("read", "short-lived");
    let r = site.call(Some(&read), "GET", "/v1/jobs", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let session = {
        let r = site.call(None, "POST", "/v1/session", Some(&json!({"token": read})));
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let revoked = site.ok("DELETE", &format!("/v1/tokens/{id}"), None);
    assert_eq!(revoked["id"], id.as_str());
    error(
        &site.call(Some(&read), "GET", "/v1/jobs", None),
        401,
        "unauthenticated",
        "a revoked token",
    );
    let r = send(
        site.port,
        None,
        "GET",
        "/v1/jobs",
        None,
        &[("Cookie", &session)],
    )
    .unwrap();
    error(&r, 401, "unauthenticated", "a session of a revoked token");

    // The CLI on the manager's host: no --token needed.
    let out = site.ork(&["token", "create", "--role", "read", "--name", "ci"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let ci = out.stdout.trim().to_owned();
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "the token alone: {}",
        out.describe()
    );
    assert!(!out.stderr.contains(&secret_of(&ci)), "{}", out.describe());
    let whoami = site.call(Some(&ci), "GET", "/v1/auth/whoami", None).json();
    assert_eq!(
        (whoami["role"].as_str(), whoami["name"].as_str()),
        (Some("read"), Some("ci"))
    );
    let ci_id = whoami["id"].as_str().unwrap().to_owned();
    let out = site.ork(&["token", "create", "--role", "operator", "--name", "doomed"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let doomed = out.stdout.trim().to_owned();
    let doomed_id = site
        .call(Some(&doomed), "GET", "/v1/auth/whoami", None)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = site.ork(&["token", "list", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let list = out.json();
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        listed.contains(&ci_id.as_str()) && listed.contains(&doomed_id.as_str()),
        "{list}"
    );
    assert!(
        !listed.contains(&id.as_str()),
        "a revoked token is listed: {list}"
    );
    for t in [&ci, &doomed, &site.operator()] {
        assert!(
            !out.stdout.contains(&secret_of(t)),
            "token list shows a secret"
        );
    }
    let table = site.ork(&["token", "list"]);
    assert_eq!(table.code, Some(0), "{}", table.describe());
    assert!(
        table.stdout.contains(&ci_id) && table.stdout.contains("read"),
        "{}",
        table.stdout
    );

    // --token, ORKESTRATOR_TOKEN and --token-file take over from the token found on the host.
    let out = site.ork(&["token", "list", "--token", &ci]);
    assert_eq!(
        out.code,
        Some(4),
        "a read token listing tokens: {}",
        out.describe()
    );
    let out = site.ork_with(&["workers", "-o", "json"], &[("ORKESTRATOR_TOKEN", &ci)]);
    assert_eq!(
        out.code,
        Some(0),
        "a read token listing workers: {}",
        out.describe()
    );
    let file = site.tmp.path().join("ci.token");
    std::fs::write(&file, format!("{ci}\n")).unwrap();
    let out = site.ork(&["gc", "--token-file", file.to_str().unwrap()]);
    assert_eq!(
        out.code,
        Some(4),
        "a read token collecting garbage: {}",
        out.describe()
    );
    assert!(out.stderr.contains("operator token"), "{}", out.describe());

    let out = site.ork(&["token", "revoke", &doomed_id]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.contains(&doomed_id), "{}", out.describe());
    error(
        &site.call(Some(&doomed), "GET", "/v1/jobs", None),
        401,
        "unauthenticated",
        "a token revoked with the CLI",
    );
    let out = site.ork(&["token", "revoke", &doomed_id]);
    assert_eq!(out.code, Some(4), "revoking twice: {}", out.describe());

    // After a restart (same data dir): the same operator token, the kept one works, the
    // revoked ones stay revoked.
    let operator = site.operator();
    site.restart_server();
    assert_eq!(
        site.operator(),
        operator,
        "a restart replaced the operator token"
    );
    let r = site.call(Some(&ci), "GET", "/v1/jobs", None);
    assert_eq!(r.status, 200, "a kept token after a restart: {}", r.text());
    for t in [&read, &doomed] {
        error(
            &site.call(Some(t), "GET", "/v1/jobs", None),
            401,
            "unauthenticated",
            "revoked, restarted",
        );
    }
    let out = site.ork(&["token", "list", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.contains(&ci_id), "{}", out.describe());
    site.assert_no_secret_logged(&[&read, &ci, &doomed]);
}

#[test]
fn one_credential_holds_at_most_the_streams_limit_and_the_manager_keeps_serving() {
    let site = Site::start("streams", &["--max-streams-per-credential", "2"]);
    let (_, r1) = site.create("read", "one");
    let (_, r2) = site.create("read", "two");
    let events = "/v1/events?keepalive=200ms";
    let first = open(site.port, Some(&r1), events).unwrap();
    let second = open(site.port, Some(&r1), events).unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    let third = open(site.port, Some(&r1), events).unwrap();
    let refusal = third
        .refusal
        .as_ref()
        .unwrap_or_else(|| panic!("a third stream: {}", third.status));
    let v = error(refusal, 429, "limit_exceeded", "a third stream");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains('2') && msg.contains("stream"),
        "does not name the limit: {msg}"
    );
    // Another credential is served, and so are this one's plain requests.
    let other = open(site.port, Some(&r2), events).unwrap();
    assert_eq!(other.status, 200);
    assert_eq!(site.call(Some(&r1), "GET", "/v1/jobs", None).status, 200);
    // Once one of its streams closes, the credential is served again.
    drop(first);
    let again = site.wait("r1 may open a stream again", || {
        let s = open(site.port, Some(&r1), events).map_err(|e| e.to_string())?;
        if s.status == 200 {
            Ok(s)
        } else {
            Err(format!("{}", s.status))
        }
    });
    drop((second, other, again));

    // Long-polls count the same: worker wa's watches.
    let join = site.file_token("join.token");
    let wa = join_worker(&site, &join, "wa");
    // Two watches held open at the current index. One answered at once (the index moved on
    // between reading it and watching from it) no longer counts: it is opened again.
    let hold = || {
        let index = site
            .call(
                Some(&wa),
                "GET",
                "/v1/workers/wa/assignments?index=0&wait=0s",
                None,
            )
            .json()["index"]
            .as_u64()
            .expect("an index");
        let poll = format!("/v1/workers/wa/assignments?index={index}&wait=30s");
        let mut s = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
        s.write_all(&head(site.port, Some(&wa), "GET", &poll, b"", &[]))
            .unwrap();
        s
    };
    let mut held: Vec<TcpStream> = (0..2).map(|_| hold()).collect();
    let quick = "/v1/workers/wa/assignments?index=0&wait=0s";
    let v = site.wait("a third watch of wa is refused", || {
        for h in held.iter_mut() {
            h.set_nonblocking(true).unwrap();
            let answered = !matches!(
                std::io::Read::read(h, &mut [0u8; 1]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            );
            h.set_nonblocking(false).unwrap();
            if answered {
                *h = hold();
            }
        }
        let mut s = open(site.port, Some(&wa), quick).map_err(|e| e.to_string())?;
        match s.refusal.take() {
            Some(r) if r.status == 429 => Ok(r.json()),
            _ => Err(format!("{}", s.status)),
        }
    });
    assert_eq!(v["code"], "limit_exceeded", "{v}");
    // Heartbeats (not streams) still pass, and the manager serves everyone else.
    let r = site.call(
        Some(&wa),
        "POST",
        "/v1/workers/wa/heartbeat",
        Some(&heartbeat_body()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(site.call(Some(&r2), "GET", "/v1/workers", None).status, 200);
    for s in &held {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(held);
    site.wait("wa may watch again", || {
        let s = open(site.port, Some(&wa), quick).map_err(|e| e.to_string())?;
        if s.status == 200 {
            Ok(())
        } else {
            Err(format!("{}", s.status))
        }
    });
    site.assert_no_secret_logged(&[&r1, &r2, &wa]);
}

#[test]
fn one_credential_holds_at_most_the_requests_limit() {
    let site = Site::start("requests", &["--max-requests-per-credential", "2"]);
    let (_, r1) = site.create("read", "one");
    let (_, r2) = site.create("read", "two");
    let events = "/v1/events?keepalive=200ms";
    let first = open(site.port, Some(&r1), events).unwrap();
    let second = open(site.port, Some(&r1), events).unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    let r = site.call(Some(&r1), "GET", "/v1/jobs", None);
    let v = error(&r, 429, "limit_exceeded", "a third request");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains('2') && msg.contains("request"),
        "does not name the limit: {msg}"
    );
    assert_eq!(site.call(Some(&r2), "GET", "/v1/jobs", None).status, 200);
    assert_eq!(
        site.call(Some(&site.operator()), "GET", "/v1/jobs", None)
            .status,
        200
    );
    drop(first);
    site.wait("r1 is served again", || {
        let r = site.call(Some(&r1), "GET", "/v1/jobs", None);
        if r.status == 200 {
            Ok(())
        } else {
            Err(r.text())
        }
    });
    drop(second);
    site.assert_no_secret_logged(&[&r1, &r2]);
}

#[test]
fn the_worker_endpoint_answers_only_the_manager_and_read_tokens_on_metrics() {
    if !common::docker_or_skip(
        "the_worker_endpoint_answers_only_the_manager_and_read_tokens_on_metrics",
    ) {
        return;
    }
    let site = Site::start("wep", &[]);
    let name = unique("auth-wep", "endpoint");
    let port = free_port();
    let data = site.tmp.path().join("worker");
    let node = site.start_worker(&name, port, &data);
    site.wait_worker(&name, "Ready", Some(node));
    let credential = read_token(&data.join("credential"));
    let mode = std::fs::metadata(data.join("credential"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the worker's credential has mode {mode:o}"
    );
    let (_, read) = site.create("read", "scraper");
    let manager = site.file_token("manager.token");
    let operator = site.operator();
    let join = site.file_token("join.token");
    let ask = |token: Option<&str>, path: &str| {
        send(port, token, "GET", path, None, &[])
            .unwrap_or_else(|e| panic!("worker GET {path}: {e}\n{}", site.logs()))
    };
    let logs = "/v1/containers/x/logs";
    error(
        &ask(None, logs),
        401,
        "unauthenticated",
        "worker logs without a token",
    );
    error(
        &ask(Some("ork.bogus"), logs),
        401,
        "unauthenticated",
        "worker logs, a bad token",
    );
    error(
        &ask(Some(&read), logs),
        403,
        "forbidden",
        "worker logs with a read token",
    );
    error(
        &ask(Some(&join), logs),
        403,
        "forbidden",
        "worker logs with the join token",
    );
    error(
        &ask(Some(&credential), logs),
        403,
        "forbidden",
        "worker logs with its own credential",
    );
    let r = ask(Some(&manager), logs);
    assert_eq!(
        r.status,
        404,
        "the manager reading an unknown container: {}",
        r.text()
    );
    assert_eq!(ask(Some(&operator), logs).status, 404);

    error(
        &ask(None, "/metrics"),
        401,
        "unauthenticated",
        "worker metrics without a token",
    );
    error(
        &ask(Some(&join), "/metrics"),
        403,
        "forbidden",
        "worker metrics with the join token",
    );
    for t in [&read, &manager] {
        let r = ask(Some(t), "/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("ork_"), "{}", r.text());
    }
    let r = ask(None, "/health");
    assert_eq!(r.status, 200, "{}", r.text());
    // A revoked read token is refused once the worker's cache of answers has expired (10 s).
    let read_id = site
        .call(Some(&read), "GET", "/v1/auth/whoami", None)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    site.ok("DELETE", &format!("/v1/tokens/{read_id}"), None);
    site.wait("the worker refuses a revoked read token", || {
        let r = ask(Some(&read), "/metrics");
        if r.status == 401 {
            Ok(())
        } else {
            Err(format!("{}", r.status))
        }
    });
    site.assert_no_secret_logged(&[&credential, &read]);
}

#[test]
fn a_killed_worker_comes_back_as_itself_and_nobody_else_takes_its_name() {
    if !common::docker_or_skip(
        "a_killed_worker_comes_back_as_itself_and_nobody_else_takes_its_name",
    ) {
        return;
    }
    let site = Site::start("kill9", &["--heartbeat-grace", "2s"]);
    let name = unique("auth-k9", "restart");
    let port = free_port();
    let data = site.tmp.path().join("worker-a");
    let first = site.start_worker(&name, port, &data);
    let before = site.wait_worker(&name, "Ready", Some(first));
    let credential = read_token(&data.join("credential"));
    let me = site
        .call(Some(&credential), "GET", "/v1/auth/whoami", None)
        .json();
    assert_eq!(
        (me["role"].as_str(), me["subject"].as_str()),
        (Some("worker"), Some(name.as_str())),
        "{me}"
    );
    let creds = site.credentials_of(&name);
    assert_eq!(creds.len(), 1, "{creds:?}");
    let id = creds[0]["id"].clone();

    site.kill(first);
    site.wait_worker(&name, "Down", None);
    let again = site.start_worker(&name, port, &data);
    site.wait_worker(&name, "Ready", Some(again));
    assert_eq!(
        read_token(&data.join("credential")),
        credential,
        "a new credential"
    );
    let creds = site.credentials_of(&name);
    assert_eq!(
        creds.len(),
        1,
        "a second credential after the restart: {creds:?}"
    );
    assert_eq!(creds[0]["id"], id, "{creds:?}");
    let log = site.log_of(again);
    assert!(log.contains("registered with the manager"), "{log}");
    assert!(
        !log.contains("joining again"),
        "it did not come back as itself:\n{log}"
    );

    // Another process under the same name, with another data dir: refused, again and again.
    let other_data = site.tmp.path().join("worker-b");
    let other_port = free_port();
    let impostor = site.start_worker(&name, other_port, &other_data);
    let refusal = "is registered with a credential of its own";
    site.wait("the second process is refused twice", || {
        if site.exited(impostor).is_some() {
            return Ok(());
        }
        let log = site.log_of(impostor);
        if log.matches(refusal).count() >= 2 {
            Ok(())
        } else {
            Err(log)
        }
    });
    // What the manager answered (403 name_taken) is in its log, with what to do.
    let log = site.log_of(impostor);
    assert!(
        log.contains(&format!("worker \"{name}\" {refusal}"))
            && log.contains("pick another --name"),
        "the refused worker's log does not say its name is taken:\n{log}"
    );
    assert!(
        !other_data.join("credential").exists(),
        "the impostor got a credential"
    );
    let w = site.worker(&name).expect("listed");
    assert_eq!(w["status"], "Ready", "{w}");
    assert_eq!(
        w["address"], before["address"],
        "the impostor re-registered: {w}"
    );
    let creds = site.credentials_of(&name);
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(creds[0]["id"], id);
    let me = site.call(Some(&credential), "GET", "/v1/auth/whoami", None);
    assert_eq!(
        me.status,
        200,
        "the first worker's credential: {}",
        me.text()
    );
    site.assert_no_secret_logged(&[&credential]);
}
