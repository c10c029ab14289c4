//! What the daemons and `stop --wait` tell a user (issue 18, item 8), against real processes:
//! `stop --wait` says `stopped` once, the manager logs its shutdown on SIGTERM, and a worker
//! started with the seed's flags (`-worker -port N`) prints the address it serves on.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Cluster, IMAGE, TIMEOUT, docker_or_skip, free_port, unique};

/// A process of this file's own, its standard error in a file; killed on drop.
struct Daemon {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Daemon {
    fn spawn(dir: &Path, label: &str, args: &[String]) -> Daemon {
        let stderr = dir.join(format!("{label}.stderr"));
        let child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env_remove("ORKESTRATOR_ADDR")
            .env_remove("ORKESTRATOR_LOG")
            .env("NO_COLOR", "1")
            .env("XDG_DATA_HOME", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start orkestrator");
        Daemon { child, stderr }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until its log has a line that `want` accepts, and returns that line.
    fn line(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(l) = self.log().lines().find(|l| want(l)) {
                return l.to_owned();
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("exited ({s}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits until it exits.
    fn terminate(&mut self) -> ExitStatus {
        let out = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .output()
            .expect("kill");
        assert!(out.status.success(), "kill -TERM: {out:?}");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "still running {TIMEOUT:?} after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stop_wait_says_stopped_once() {
    let test = "stop_once";
    let c = Cluster::start(test);
    // No worker: the job stays Pending, and a stop ends it at once.
    let job = unique("once", test);
    let file = c.write(
        "job.yaml",
        &format!("name: {job}\ntasks:\n  - name: main\n    image: {IMAGE}\n"),
    );
    let run = c.ork(&["run", "-f", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let stop = c.ork(&["stop", &job, "--wait", "--timeout", "30s"]);
    assert_eq!(stop.code, Some(0), "{}", stop.describe());
    assert_eq!(
        stop.stdout.matches("stopped").count(),
        1,
        "`stopped` once:\n{}",
        stop.describe()
    );
}

#[test]
fn the_manager_logs_its_shutdown_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut m = Daemon::spawn(
        dir.path(),
        "manager",
        &[
            "server".into(),
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            dir.path().join("state").display().to_string(),
        ],
    );
    m.line("the manager listening", |l| {
        l.contains("manager listening on")
    });
    let status = m.terminate();
    assert!(status.success(), "{status}:\n{}", m.log());
    let log = m.log();
    assert!(
        log.lines()
            .any(|l| l.contains("SIGTERM") && l.contains("shutting down")),
        "no shutdown line naming SIGTERM:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("manager stopped")),
        "no line saying the manager stopped:\n{log}"
    );
}

#[test]
fn a_worker_started_with_seed_flags_prints_the_address_it_serves_on() {
    let test = "seed_worker";
    if !docker_or_skip(test) {
        return;
    }
    let c = Cluster::start(test);
    let port = free_port();
    let name = unique("w", test);
    let mut w = Daemon::spawn(
        c.dir(),
        "worker",
        &[
            "-worker".into(),
            "-port".into(),
            c.port.to_string(),
            "--port".into(),
            port.to_string(),
            "--name".into(),
            name.clone(),
            "--data-dir".into(),
            c.dir().join(&name).display().to_string(),
        ],
    );
    let want = format!("serving on http://127.0.0.1:{port}");
    let line = w.line(&want, |l| l.contains(&want));
    assert!(line.contains(&c.addr), "names its manager too: {line}");
    w.terminate();
}
