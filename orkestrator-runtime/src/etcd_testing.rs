//! Local etcd members for tests and benchmarks: starts the `etcd` binary (Debian's
//! `etcd-server`) on loopback ports, one member or a cluster of three, each with a data
//! directory of its own, and with the limits [`crate::EtcdStore`] needs.
//!
//! Where `etcd` is not installed, [`EtcdCluster::start`] answers `None` (the caller skips), except
//! when `CI=true` or `ORKESTRATOR_REQUIRE_ETCD=1`, where it panics: CI never skips silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::{REQUIRED_REQUEST_BYTES, REQUIRED_TXN_OPS};

/// One member: its process (while running), ports and data directory.
#[derive(Debug)]
pub struct EtcdMember {
    /// The member's name (`m0`, `m1`, ...).
    pub name: String,
    /// Its client address, `127.0.0.1:PORT`.
    pub client: String,
    /// Its peer address, `127.0.0.1:PORT`.
    pub peer: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    child: Option<Child>,
    initial_cluster: String,
    /// Whether it runs with the limits the manager needs (or etcd's defaults).
    limits: bool,
    /// The network namespace it runs in (`ip netns exec NS etcd ...`), if not the test's own.
    netns: Option<String>,
    /// The certificate and key it serves clients TLS with, if it does.
    tls: Option<(PathBuf, PathBuf)>,
    log: PathBuf,
}

/// A local etcd cluster. Members are killed when it is dropped.
#[derive(Debug)]
pub struct EtcdCluster {
    /// The members.
    pub members: Vec<EtcdMember>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A temporary directory removed on drop (no dependency for so little).
    #[derive(Debug)]
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("ORKESTRATOR_REQUIRE_ETCD").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether the `etcd` binary is installed.
pub fn etcd_installed() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl EtcdCluster {
    /// Starts `n` members on loopback and waits until the cluster answers; `None` when etcd is
    /// not installed (a panic under CI).
    pub fn start(n: usize) -> Option<Self> {
        Self::start_on(n, |_| "127.0.0.1".to_string(), |_, cmd| cmd)
    }

    /// One member with etcd's default limits (128 operations, 1.5 MiB a request), which the
    /// manager refuses.
    pub fn start_with_default_limits() -> Option<Self> {
        Self::build(
            1,
            |_| "127.0.0.1".to_string(),
            |_, cmd| cmd,
            |_| None,
            false,
        )
    }

    /// Starts `n` members, member `i` on address `host(i)`, each command passed through `wrap`
    /// first (to run it in a network namespace, say: `ip netns exec NS etcd ...`).
    pub fn start_on(
        n: usize,
        host: impl Fn(usize) -> String,
        wrap: impl Fn(usize, Command) -> Command,
    ) -> Option<Self> {
        Self::build(n, host, wrap, |_| None, true)
    }

    /// Starts `n` members, member `i` on address `host(i)` inside the network namespace
    /// `netns(i)` (as `ip netns exec NS etcd ...`, also when restarted), and waits until each
    /// answers its health endpoint, asked from inside its namespace (bash's `/dev/tcp`): the
    /// test process cannot reach an address in another namespace itself. The namespaces must
    /// exist and `ip` must run (as root). These members run with `--pre-vote=true`.
    pub fn start_in_namespaces(
        n: usize,
        host: impl Fn(usize) -> String,
        netns: impl Fn(usize) -> String,
    ) -> Option<Self> {
        Self::build(n, host, |_, cmd| cmd, |i| Some(netns(i)), true)
    }

    /// One member on loopback serving clients TLS with `cert` (a PEM chain for 127.0.0.1) and
    /// `key`; clients then need the CA (`EtcdOptions::ca_file`).
    pub fn start_tls(cert: &Path, key: &Path) -> Option<Self> {
        let tls = Some((cert.to_path_buf(), key.to_path_buf()));
        Self::build_with(1, |_| "127.0.0.1".into(), |_, c| c, |_| None, true, tls)
    }

    fn build(
        n: usize,
        host: impl Fn(usize) -> String,
        wrap: impl Fn(usize, Command) -> Command,
        netns: impl Fn(usize) -> Option<String>,
        limits: bool,
    ) -> Option<Self> {
        Self::build_with(n, host, wrap, netns, limits, None)
    }

    fn build_with(
        n: usize,
        host: impl Fn(usize) -> String,
        wrap: impl Fn(usize, Command) -> Command,
        netns: impl Fn(usize) -> Option<String>,
        limits: bool,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Option<Self> {
        if !etcd_installed() {
            if required() {
                panic!(
                    "etcd is not installed but CI=true: install Debian's etcd-server (.ci/run does)"
                );
            }
            eprintln!("SKIP: etcd is not installed (apt-get install etcd-server)");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("ork-etcd-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let dir = tempdir::Dir(dir);
        let mut members: Vec<EtcdMember> = (0..n)
            .map(|i| {
                let h = host(i);
                EtcdMember {
                    name: format!("m{i}"),
                    client: format!("{h}:{}", free_port()),
                    peer: format!("{h}:{}", free_port()),
                    data_dir: dir.0.join(format!("m{i}")),
                    child: None,
                    initial_cluster: String::new(),
                    limits: true,
                    netns: netns(i),
                    tls: None,
                    log: dir.0.join(format!("m{i}.log")),
                }
            })
            .collect();
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect();
        let initial = initial.join(",");
        for (i, m) in members.iter_mut().enumerate() {
            m.tls = tls.clone();
            m.initial_cluster = initial.clone();
            m.limits = limits;
            m.spawn(|c| wrap(i, c));
        }
        let cluster = EtcdCluster { members, _dir: dir };
        cluster.wait_healthy(Duration::from_secs(30));
        Some(cluster)
    }

    /// `etcd://` with every member's client address.
    pub fn url(&self) -> String {
        let c: Vec<&str> = self.members.iter().map(|m| m.client.as_str()).collect();
        format!("etcd://{}", c.join(","))
    }

    /// Kills member `i` (SIGKILL) and waits for it.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.members[i].spawn(|c| c);
    }

    /// Waits until every running member answers its health endpoint; panics with the logs'
    /// tails after `within`.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            while !m.healthy() {
                if Instant::now() > deadline {
                    panic!(
                        "etcd member {} did not become healthy within {within:?}; its log:\n{}",
                        m.name,
                        m.log_tail()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl EtcdMember {
    fn spawn(&mut self, wrap: impl FnOnce(Command) -> Command) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "etcd"]);
                c
            }
            None => Command::new("etcd"),
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        cmd.args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--listen-client-urls",
                &format!("{scheme}://{}", self.client),
            ])
            .args([
                "--advertise-client-urls",
                &format!("{scheme}://{}", self.client),
            ])
            .args(["--listen-peer-urls", &format!("http://{}", self.peer)])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{}", self.peer),
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "orkestrator-test"])
            // Fast elections on loopback.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"]);
        if self.netns.is_some() {
            // A member cut off and back must not depose the leader with its higher term
            // (etcd 3.5's default; 3.4 needs the flag).
            cmd.arg("--pre-vote=true");
        }
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
        }
        if self.limits {
            cmd.args(["--max-txn-ops", &REQUIRED_TXN_OPS.to_string()])
                .args(["--max-request-bytes", &REQUIRED_REQUEST_BYTES.to_string()]);
        }
        let mut cmd = wrap(cmd);
        let log = std::fs::File::create(&self.log).expect("an etcd log file");
        let err = log.try_clone().expect("an etcd log file");
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        self.child = Some(cmd.spawn().expect("etcd starts"));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the member is running (started and not killed).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        if let Some(ns) = &self.netns {
            return self.healthy_in(ns);
        }
        if self.tls.is_some() {
            // No TLS client here: the member says when it serves.
            return std::net::TcpStream::connect(&self.client).is_ok()
                && std::fs::read_to_string(&self.log)
                    .is_ok_and(|l| l.contains("ready to serve client requests"));
        }
        let Ok(mut s) = std::net::TcpStream::connect(&self.client) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let req = format!("GET /health HTTP/1.0\r\nHost: {}\r\n\r\n", self.client);
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// [`EtcdMember::healthy`] for a member in network namespace `ns`, asked from inside it.
    fn healthy_in(&self, ns: &str) -> bool {
        let Some((host, port)) = self.client.rsplit_once(':') else {
            return false;
        };
        let script = "exec 3<>/dev/tcp/$0/$1 || exit 1; \
                      printf 'GET /health HTTP/1.0\\r\\nHost: %s:%s\\r\\n\\r\\n' $0 $1 >&3; \
                      cat <&3";
        Command::new("timeout")
            .args([
                "2", "ip", "netns", "exec", ns, "bash", "-c", script, host, port,
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
    }

    /// The last lines of the member's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The member's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}
