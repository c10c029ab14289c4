//! TLS with the real binary: `tls init` writes a CA and the manager's certificate; a manager
//! serving them answers the CLI given the CA file or the CA's digest, and refuses one given
//! neither; a worker joins over TLS with nothing but the join token (which carries the CA's
//! digest) and serves its own endpoint over TLS, which the manager verifies against its CA to read logs; a
//! manager bound to an address other than loopback without TLS refuses to start and names
//! `--insecure`, and starts with it.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    BIN, CmdOut, IMAGE, Proc, TIMEOUT, docker_or_skip, free_port, ork_in, run_with_timeout, unique,
};

/// A scratch directory with a cluster's certificates from `orkestrator tls init`.
struct Pki {
    dir: tempfile::TempDir,
    /// The CA's digest as `tls init` printed it.
    digest: String,
}

impl Pki {
    fn init(test: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ork-{test}-"))
            .tempdir()
            .expect("temp dir");
        let out = ork_in(dir.path(), &["tls", "init", "pki"], &[]);
        assert_eq!(out.code, Some(0), "tls init: {}", out.describe());
        let digest = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("CA digest (SHA-256): "))
            .unwrap_or_else(|| panic!("tls init printed no digest:\n{}", out.describe()))
            .trim()
            .to_owned();
        assert_eq!(digest.len(), 64, "{digest:?}");
        Pki { dir, digest }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join("pki").join(file)
    }

    fn arg(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    /// Starts `orkestrator ARGS` with its output in the scratch directory.
    fn spawn(&self, label: &str, args: &[String], worker: Option<String>) -> Proc {
        Proc::spawn(self.dir.path(), label, args, self.dir.path(), worker)
    }

    /// Runs a client command with `extra` flags against the manager at `addr`.
    fn ork(&self, addr: &str, args: &[&str], extra: &[&str]) -> CmdOut {
        let mut all = args.to_vec();
        all.extend(["--manager", addr]);
        all.extend(extra);
        ork_in(self.dir.path(), &all, &[])
    }
}

/// Starts a manager on `port` serving the certificates of `pki`, bound to `bind`, with its
/// state (and tokens) in the scratch directory's `data/`.
fn tls_manager(pki: &Pki, port: u16, bind: &str) -> Proc {
    let args = strings(&[
        "server",
        "--port",
        &port.to_string(),
        "--bind",
        bind,
        "--data-dir",
        &pki.dir.path().join("data").display().to_string(),
        "--heartbeat-interval",
        "500ms",
        "--tls-cert",
        &pki.arg("manager.pem"),
        "--tls-key",
        &pki.arg("manager-key.pem"),
    ]);
    pki.spawn("server", &args, None)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Polls `check` every 100 ms until it returns `Ok`, failing at once if one of `procs` exits and
/// after [`TIMEOUT`] with the last observation and the processes' logs.
fn wait<T>(what: &str, procs: &mut [&mut Proc], mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let last = match check() {
            Ok(v) => return v,
            Err(e) => e,
        };
        let exited = procs
            .iter_mut()
            .find_map(|p| p.exited().map(|s| format!("{} exited ({s})", p.label)));
        let logs = || {
            procs
                .iter()
                .map(|p| p.tail(40))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let Some(why) = exited {
            panic!(
                "{why} while waiting until {what}\nlast observation:\n{last}\n{}",
                logs()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out waiting until {what}\nlast observation:\n{last}\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ok(out: CmdOut) -> Result<CmdOut, String> {
    if out.code == Some(0) {
        Ok(out)
    } else {
        Err(out.describe())
    }
}

#[test]
fn tls_init_writes_the_ca_and_the_managers_certificate_and_keeps_an_existing_ca() {
    let pki = Pki::init("tls-init");
    for f in ["ca.pem", "ca-key.pem", "manager.pem", "manager-key.pem"] {
        assert!(pki.path(f).is_file(), "{f} is missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca-key.pem", "manager-key.pem"] {
            let mode = std::fs::metadata(pki.path(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}: mode {mode:o}");
        }
    }
    let chain = std::fs::read_to_string(pki.path("manager.pem")).unwrap();
    let ca = std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    assert!(chain.ends_with(&ca), "the chain must end with the CA");

    // A second init refuses, and leaves the CA as it was.
    let again = ork_in(pki.dir.path(), &["tls", "init", "pki"], &[]);
    assert_eq!(again.code, Some(2), "{}", again.describe());
    assert!(
        again.stderr.contains("already holds a cluster CA"),
        "{}",
        again.describe()
    );
    assert_eq!(std::fs::read_to_string(pki.path("ca.pem")).unwrap(), ca);

    // `tls cert` issues from the same CA: the same digest.
    let cert = ork_in(
        pki.dir.path(),
        &[
            "tls",
            "cert",
            "pki",
            "--name",
            "worker-1",
            "--san",
            "w1.example",
        ],
        &[],
    );
    assert_eq!(cert.code, Some(0), "{}", cert.describe());
    assert!(cert.stdout.contains(&pki.digest), "{}", cert.describe());
    assert!(pki.path("worker-1.pem").is_file() && pki.path("worker-1-key.pem").is_file());
}

#[test]
fn the_cli_reaches_a_tls_manager_with_the_ca_file_or_the_digest() {
    let pki = Pki::init("tls-cli");
    let port = free_port();
    // On every address, loopback included: TLS makes a non-loopback bind acceptable.
    let mut server = tls_manager(&pki, port, "0.0.0.0");
    let addr = format!("https://127.0.0.1:{port}");
    let ca = pki.arg("ca.pem");
    wait(
        "the manager answers over https with --ca-file",
        &mut [&mut server],
        || ok(pki.ork(&addr, &["health"], &["--ca-file", &ca])),
    );
    let by_digest = pki.ork(
        &format!("https://localhost:{port}"),
        &["health", "-o", "json"],
        &["--ca-digest", &pki.digest],
    );
    assert_eq!(by_digest.code, Some(0), "{}", by_digest.describe());
    assert_eq!(
        by_digest.json()["manager"]["status"],
        "Ready",
        "{}",
        by_digest.describe()
    );

    // Without a CA: refused, and told what to pass.
    let none = pki.ork(&addr, &["health"], &[]);
    assert_eq!(none.code, Some(3), "{}", none.describe());
    assert!(none.stderr.contains("--ca-file"), "{}", none.describe());
    // Plain HTTP to the TLS port: refused, and told to use https://.
    let plain = pki.ork(&format!("http://127.0.0.1:{port}"), &["health"], &[]);
    assert_eq!(plain.code, Some(3), "{}", plain.describe());
    assert!(plain.stderr.contains("https://"), "{}", plain.describe());
    // Another cluster's digest: refused.
    let other = Pki::init("tls-cli-other");
    let wrong = pki.ork(&addr, &["health"], &["--ca-digest", &other.digest]);
    assert_eq!(wrong.code, Some(3), "{}", wrong.describe());
    assert!(
        wrong.stderr.contains("holds no CA with the digest"),
        "{}",
        wrong.describe()
    );
}

#[test]
fn a_non_loopback_bind_without_tls_refuses_to_start_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let args = [
        "server",
        "--bind",
        "0.0.0.0",
        "--port",
        &port,
        "--in-memory",
    ];
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("NO_COLOR", "1");
    let refused = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert_eq!(refused.code, Some(2), "{}", refused.describe());
    for what in [
        "without TLS",
        "--insecure",
        "orkestrator tls init",
        "--tls-cert",
    ] {
        assert!(
            refused.stderr.contains(what),
            "no {what:?}: {}",
            refused.describe()
        );
    }

    let mut insecure_args = strings(&args);
    insecure_args.push("--insecure".into());
    let mut server = Proc::spawn(dir.path(), "server", &insecure_args, dir.path(), None);
    let addr = format!("http://127.0.0.1:{port}");
    wait("the --insecure manager answers", &mut [&mut server], || {
        ok(ork_in(dir.path(), &["health", "--manager", &addr], &[]))
    });
}

#[test]
fn a_worker_joins_over_tls_with_nothing_but_the_join_token() {
    let test = "worker_joins_over_tls";
    if !docker_or_skip(test) {
        return;
    }
    let pki = Pki::init("tls-worker");
    let issued = ork_in(
        pki.dir.path(),
        &["tls", "cert", "pki", "--name", "worker"],
        &[],
    );
    assert_eq!(issued.code, Some(0), "{}", issued.describe());
    let port = free_port();
    let mut server = tls_manager(&pki, port, "127.0.0.1");
    let addr = format!("https://127.0.0.1:{port}");
    let ca = pki.arg("ca.pem");
    wait("the manager answers over https", &mut [&mut server], || {
        ok(pki.ork(&addr, &["health"], &["--ca-file", &ca]))
    });

    // The join token the manager wrote carries the CA's digest.
    let join_file = pki.dir.path().join("data").join("join.token");
    let join = std::fs::read_to_string(&join_file).expect("the manager writes its join token");
    assert!(
        join.trim().ends_with(&format!(".{}", pki.digest)),
        "the join token does not end with the CA digest {}: {join}",
        pki.digest
    );

    // The worker gets the manager's address and the join token: no CA file, no digest of its
    // own. Its endpoint serves a certificate from the same CA.
    let name = unique("tls", test);
    let worker_args = strings(&[
        "worker",
        "--manager",
        &addr,
        "--join-token-file",
        &join_file.display().to_string(),
        "--port",
        &free_port().to_string(),
        "--name",
        &name,
        "--stop-grace",
        "2s",
        "--tls-cert",
        &pki.arg("worker.pem"),
        "--tls-key",
        &pki.arg("worker-key.pem"),
    ]);
    let mut worker = pki.spawn("worker", &worker_args, Some(name.clone()));
    wait(
        &format!("worker {name} is Ready"),
        &mut [&mut server, &mut worker],
        || {
            let out = ok(pki.ork(&addr, &["workers", "-o", "json"], &["--ca-file", &ca]))?;
            let list = out.json();
            let ready = list.as_array().is_some_and(|ws| {
                ws.iter()
                    .any(|w| w["id"] == name.as_str() && w["status"] == "Ready")
            });
            if ready {
                Ok(())
            } else {
                Err(format!("workers: {list}"))
            }
        },
    );

    // A task's output, read by the manager from the worker's https endpoint.
    let job = unique("tlsjob", test);
    let file = write_job(pki.dir.path(), &job);
    let run = pki.ork(
        &addr,
        &["run", "-f", &file, "--wait", "--timeout", "60s"],
        &["--ca-file", &ca],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.describe(), worker.tail(40));
    wait(
        "the task's output comes through the manager",
        &mut [&mut server, &mut worker],
        || {
            let out = ok(pki.ork(&addr, &["logs", &job], &["--ca-file", &ca]))?;
            if out.stdout.contains("hello over tls") {
                Ok(())
            } else {
                Err(out.describe())
            }
        },
    );

    // Killed and started again without the join token, it comes back as itself: its
    // credential and the CA's digest are in its data directory.
    let kept = pki
        .dir
        .path()
        .join("data/orkestrator")
        .join(format!("worker-{name}"));
    let pin =
        std::fs::read_to_string(kept.join("ca.sha256")).expect("the worker keeps the CA digest");
    assert_eq!(
        pin.trim(),
        pki.digest,
        "the kept digest is the cluster CA's"
    );
    assert!(
        kept.join("credential").is_file(),
        "the worker keeps its credential"
    );
    let _ = worker.kill();
    let again_args: Vec<String> = {
        let mut v = worker_args.clone();
        let at = v.iter().position(|a| a == "--join-token-file").unwrap();
        v.drain(at..at + 2);
        v
    };
    let mut worker = pki.spawn("worker-again", &again_args, Some(name.clone()));
    let again_log = pki.dir.path().join("worker-again.err");
    wait(
        &format!("worker {name} is Ready again without the join token"),
        &mut [&mut server, &mut worker],
        || {
            let out = ok(pki.ork(&addr, &["workers", "-o", "json"], &["--ca-file", &ca]))?;
            let w = out.json();
            let ready = w.as_array().is_some_and(|ws| {
                ws.iter()
                    .any(|w| w["id"] == name.as_str() && w["status"] == "Ready")
            });
            let log = std::fs::read_to_string(&again_log).unwrap_or_default();
            if ready && log.contains("registered with the manager") {
                Ok(())
            } else {
                Err(format!("workers: {w}\n{log}"))
            }
        },
    );
    let stop = pki.ork(&addr, &["stop", &job, "--wait"], &["--ca-file", &ca]);
    assert_eq!(stop.code, Some(0), "{}", stop.describe());
}

/// A one-task job that prints a line and keeps running; returns the file's path.
fn write_job(dir: &Path, job: &str) -> String {
    let yaml = format!(
        "name: {job}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: [sh, -c, \"echo hello over tls; trap 'exit 0' TERM; while true; do sleep 1; done\"]\n\
         \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n"
    );
    let path = dir.join(format!("{job}.yaml"));
    std::fs::write(&path, yaml).expect("write the job file");
    path.display().to_string()
}
