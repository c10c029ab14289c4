//! Highly available managers as separate hosts: network namespaces joined by veth pairs on one
//! bridge, all made by the test, and the leader cut off by the network, not by a signal.
//!
//! The test builds a "switch" namespace holding a bridge and host namespaces, each with one veth
//! pair (`eth0` in the host, `p<i>` on the bridge) and an address in 10.213.X.0/24, a range that
//! exists only inside these namespaces (X comes from the test's pid). Three hosts run an etcd
//! member each, three run a manager each (`--bind <its address> --insecure --leader-lease 2s`),
//! on hosts of their own ([`SEPARATE`]) or one member and one manager per host ([`COLOCATED`]);
//! one more host is the client side: every client command runs there (`ip netns exec ...
//! orkestrator ...`), and so does a worker when a Docker engine answers (the worker reaches
//! Docker through its unix socket, which works from any network namespace; containers use
//! Docker's own networking).
//!
//! The scenario: a leader is elected; a job is acknowledged through a follower; the leader's
//! port on the bridge is set down (the cable pulled at the switch: the host keeps its address
//! and can still talk to itself). Within a deadline another manager leads, a new submission
//! through a reachable manager is acknowledged (the time from the cut to the new leader is
//! printed as `CUT_TO_LEADER_MS=<n>`, and to that acknowledgement as `CUT_TO_ACK_MS=<n>`), the
//! cut-off manager steps down, a write sent to it on its own host during the cut is neither
//! acknowledged nor committed, and every acknowledged job is listed. Then the port is set up
//! again and the old leader comes back as a follower: asked from the client, it names the new
//! leader, as every manager does. With a worker, its container keeps running through all of it
//! (same container, no restart) and the worker stays Ready.
//!
//! Needs root, `ip` (iproute2), bash and etcd; without them the test prints a SKIP line and
//! passes, except under `CI=true` (or `ORKESTRATOR_REQUIRE_NETNS=1`), where it fails.
//! Namespaces and processes are removed when the test ends, also when it panics; namespaces
//! left by a test process that was killed are removed by the next run. Nothing is sent to an
//! address outside these namespaces.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    BIN, FOREVER, IMAGE, docker, docker_or_skip, remove_worker_containers, run_with_timeout,
    tool_or_skip,
};
use orkestrator_runtime::etcd_testing::EtcdCluster;
use serde_json::Value;

/// The test's name, for SKIP lines.
const TEST: &str = "ha_netns";
/// Managers, and etcd members.
const MANAGERS: usize = 3;
/// The managers' port (the same on every host: each has its own network stack).
const PORT: u16 = 5555;
/// The worker's port.
const WORKER_PORT: u16 = 5556;
/// Prefix of the namespaces' names: `orknet-<pid>-sw`, `orknet-<pid>-h<i>`.
const NS_PREFIX: &str = "orknet-";
/// How long a failover may take, from the cut to an acknowledged write (a 2 s lease).
const FAILOVER: Duration = Duration::from_secs(15);
/// How long a CLI command may take before it is killed.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// Which host runs what (hosts are numbered from 0).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Part of the namespaces' names, so that layouts run side by side.
    tag: &'static str,
    /// How many hosts.
    hosts: usize,
    /// The host of each etcd member.
    etcd: [usize; MANAGERS],
    /// The host of each manager.
    managers: [usize; MANAGERS],
    /// The client's (and worker's) host.
    client: usize,
}

/// Etcd members, managers and the client each on hosts of their own: a cut-off manager host
/// takes no etcd member with it.
const SEPARATE: Layout = Layout {
    tag: "sep",
    hosts: 7,
    etcd: [0, 1, 2],
    managers: [3, 4, 5],
    client: 6,
};

/// Each of three hosts runs an etcd member and a manager: cutting the leader's host off cuts
/// an etcd member off too.
const COLOCATED: Layout = Layout {
    tag: "col",
    hosts: 4,
    etcd: [0, 1, 2],
    managers: [0, 1, 2],
    client: 3,
};

// ---------------------------------------------------------------------------------------------
// Prerequisites

/// Whether `ip netns` can be used here (root, iproute2): `Err` says why not. Tried once per
/// test process.
fn netns_usable() -> Result<(), String> {
    static USABLE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    USABLE.get_or_init(try_netns).clone()
}

/// Makes and removes a namespace.
fn try_netns() -> Result<(), String> {
    let probe = format!("{NS_PREFIX}{}-probe", std::process::id());
    let out = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map_err(|e| format!("cannot run `ip` ({e}): install iproute2"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip netns add` failed (root needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    Ok(())
}

/// Whether this test can run: root with `ip netns`, bash and etcd. Panics under `CI=true` (or
/// `ORKESTRATOR_REQUIRE_NETNS=1`) when not, otherwise prints a SKIP line and answers false.
fn prerequisites_or_skip() -> bool {
    let required = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("ORKESTRATOR_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    if let Err(why) = netns_usable() {
        assert!(
            !required,
            "{TEST}: network namespaces are required (CI / ORKESTRATOR_REQUIRE_NETNS) but {why}"
        );
        eprintln!(
            "\nSKIP orkestrator-bin test `{TEST}`: {why}; \
             set ORKESTRATOR_REQUIRE_NETNS=1 to fail instead\n"
        );
        return false;
    }
    tool_or_skip(TEST, "bash", "apt-get install bash")
        && tool_or_skip(TEST, "etcd", "apt-get install etcd-server")
}

// ---------------------------------------------------------------------------------------------
// The network

/// Runs `ip ARGS` and panics with its output when it fails.
fn ip(args: &[&str]) {
    let out = run_with_timeout(Command::new("ip").args(args), Duration::from_secs(10));
    assert_eq!(
        out.code,
        Some(0),
        "ip {}: {}",
        args.join(" "),
        out.describe()
    );
}

/// Namespaces named after a test process that no longer runs (it was killed before its guard
/// could remove them).
fn stale_namespaces() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            name.strip_prefix(NS_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(str::to_owned)
        .collect()
}

/// The test's hosts: a switch namespace with a bridge, and host namespaces each joined to it by
/// a veth pair. Dropping it deletes every namespace it made (which removes the bridge and the
/// veth pairs with them).
struct Net {
    /// The switch's namespace (holds `br0` and the bridge ends `p<i>`).
    switch: String,
    /// Each host's namespace.
    hosts: Vec<String>,
    /// The third octet of the hosts' addresses.
    subnet: u8,
    /// Namespaces created so far (removed on drop, also after a failure half-way).
    created: Vec<String>,
}

impl Net {
    /// Makes the switch and `n` hosts, host `i` at `10.213.X.(i + 1)/24`, every link up; `tag`
    /// goes into the namespaces' names.
    fn create(n: usize, tag: &str) -> Net {
        for stale in stale_namespaces() {
            eprintln!("removing namespace {stale} left by a test process that is gone");
            let _ = Command::new("ip").args(["netns", "del", &stale]).status();
        }
        let pid = std::process::id();
        let mut net = Net {
            switch: format!("{NS_PREFIX}{pid}-{tag}-sw"),
            hosts: (0..n)
                .map(|i| format!("{NS_PREFIX}{pid}-{tag}-h{i}"))
                .collect(),
            subnet: (pid % 250) as u8 + 1,
            created: Vec::new(),
        };
        let sw = net.switch.clone();
        ip(&["netns", "add", &sw]);
        net.created.push(sw.clone());
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..n {
            let host = net.hosts[i].clone();
            ip(&["netns", "add", &host]);
            net.created.push(host.clone());
            let port = format!("p{i}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &host,
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &sw, "link", "set", &port, "up"]);
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &host, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &host, "link", "set", "eth0", "up"]);
            ip(&["-n", &host, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Host `i`'s address.
    fn addr(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.subnet, i + 1)
    }

    /// The URL of a manager on host `i`.
    fn url(&self, i: usize) -> String {
        format!("http://{}:{PORT}", self.addr(i))
    }

    /// A command running `program` in host `i`'s namespace.
    fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i], program]);
        cmd
    }

    /// Sets host `i`'s port on the bridge down (`false`) or up (`true`).
    fn link(&self, i: usize, up: bool) {
        let port = format!("p{i}");
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switch, "link", "set", &port, state]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes on the hosts

/// A long-running `orkestrator` process in a host's namespace, output in a log file. Dropping
/// it kills it (and removes a worker's containers).
struct HostProc {
    label: String,
    child: Child,
    log: PathBuf,
    worker: Option<String>,
}

impl HostProc {
    /// Starts `orkestrator ARGS` on host `host` with its logs in `dir/<label>.log`, and its
    /// default directories under `dir/<label>` (so nothing is read from or left in the home).
    fn spawn(net: &Net, host: usize, dir: &Path, label: &str, args: &[String]) -> HostProc {
        let log = dir.join(format!("{label}.log"));
        let home = dir.join(label);
        std::fs::create_dir_all(home.join("run")).expect("a runtime directory");
        let out = File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a log file");
        let child = net
            .command(host, BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env_remove("ORKESTRATOR_ADDR")
            .env_remove("ORKESTRATOR_DATA_DIR")
            .env_remove("ORKESTRATOR_TOKEN")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        HostProc {
            label: label.to_owned(),
            child,
            log,
            worker: None,
        }
    }

    /// Panics (with its log) if the process has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.label, self.tail(60));
        }
    }

    /// Its whole log.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    fn tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- {} (pid {}):\n{}\n",
            self.label,
            self.child.id(),
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &self.worker {
            remove_worker_containers(w);
        }
    }
}

/// Everything the test runs, for polling with a deadline and for logs on failure.
/// Fields drop in this order: the processes first, the namespaces last.
struct Hosts {
    layout: Layout,
    managers: Vec<HostProc>,
    worker: Option<HostProc>,
    etcd: Option<EtcdCluster>,
    /// The operator token's file (written by the first leader).
    token: Option<PathBuf>,
    dir: tempfile::TempDir,
    net: Net,
}

impl Hosts {
    /// The tail of every log (managers, worker, etcd members).
    fn logs(&self) -> String {
        let mut out: String = self.managers.iter().map(|m| m.tail(40)).collect();
        if let Some(w) = &self.worker {
            out.push_str(&w.tail(40));
        }
        if let Some(etcd) = &self.etcd {
            for m in &etcd.members {
                out.push_str(&format!("--- etcd {}:\n{}\n", m.name, m.log_tail()));
            }
        }
        out
    }

    /// Polls `check` every `every` until it answers `Ok` or `within` passes, then panics with
    /// the last observation and the logs. Fails at once if a manager exited.
    fn wait<T>(
        &mut self,
        what: &str,
        within: Duration,
        every: Duration,
        mut check: impl FnMut(&Hosts) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            for m in &mut self.managers {
                m.assert_running();
            }
            let last = match check(self) {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {within:?} waiting until {what}\nlast observation:\n{last}\n\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// Manager `k`'s URL.
    fn url(&self, k: usize) -> String {
        self.net.url(self.layout.managers[k])
    }

    /// The manager that advertises `addr`.
    fn manager_at(&self, addr: &str) -> usize {
        (0..MANAGERS)
            .find(|&k| self.url(k) == addr)
            .unwrap_or_else(|| panic!("no manager advertises {addr}"))
    }

    /// Runs `orkestrator ARGS --manager MANAGERS` on host `host` with the operator token
    /// (`managers` are managers' numbers, not hosts).
    fn ork(&self, host: usize, managers: &[usize], args: &[&str]) -> common::CmdOut {
        let urls: Vec<String> = managers.iter().map(|&k| self.url(k)).collect();
        ork_in_ns(&self.net.hosts[host], &urls, self.token.as_deref(), args)
    }

    /// `health -o json` asked on host `host` through the managers `via`.
    fn health(&self, host: usize, via: &[usize]) -> Result<Value, String> {
        let out = self.ork(host, via, &["health", "-o", "json"]);
        if out.code != Some(0) {
            return Err(out.describe());
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.describe()))
    }

    /// The address of the manager that `health` (asked from the client through `via`) names
    /// as the leader, and the managers it lists.
    fn leader_via(&self, via: usize) -> Result<(String, Value), String> {
        let h = self.health(self.layout.client, &[via])?;
        let leaders: Vec<&str> = h["managers"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter(|m| m["leader"] == true)
                    .filter_map(|m| m["addr"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        match leaders.as_slice() {
            [one] => Ok((one.to_string(), h["managers"].clone())),
            _ => Err(format!(
                "not exactly one leader in {}",
                serde_json::to_string(&h["managers"]).unwrap_or_default()
            )),
        }
    }

    /// Submits job `name` (one long-running task) from the client through `via`.
    fn submit(&self, via: &[usize], name: &str) -> common::CmdOut {
        let file = self.job_file(name);
        let file = file.to_string_lossy().into_owned();
        self.ork(self.layout.client, via, &["run", &file])
    }

    /// Writes job `name`'s file into the scratch directory and returns its path.
    fn job_file(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, job_yaml(name)).expect("a job file");
        path
    }

    /// The names of the jobs the cluster lists, asked from the client through `via`.
    fn jobs(&self, via: &[usize]) -> Result<Vec<String>, String> {
        let out = self.ork(self.layout.client, via, &["status", "-o", "json"]);
        if out.code != Some(0) {
            return Err(out.describe());
        }
        let v: Value =
            serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.describe()))?;
        let list = v
            .as_array()
            .or_else(|| v["jobs"].as_array())
            .ok_or_else(|| format!("no list of jobs in {v}"))?;
        Ok(list
            .iter()
            .filter_map(|j| j["name"].as_str().map(str::to_owned))
            .collect())
    }
}

/// Runs `orkestrator ARGS --manager URLS` in namespace `ns`, presenting the token in `token`
/// (when known), killed after [`CLI_TIMEOUT`].
fn ork_in_ns(ns: &str, urls: &[String], token: Option<&Path>, args: &[&str]) -> common::CmdOut {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, BIN])
        .args(args)
        .args(["--manager", &urls.join(",")])
        .env("NO_COLOR", "1")
        .env_remove("ORKESTRATOR_ADDR")
        .env_remove("ORKESTRATOR_TOKEN");
    if let Some(t) = token {
        cmd.arg("--token-file").arg(t);
    }
    run_with_timeout(&mut cmd, CLI_TIMEOUT)
}

/// A job of one long-running task.
fn job_yaml(name: &str) -> String {
    format!(
        "name: {name}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: {FOREVER}\n\
         \x20   resources: {{ cpu: 100m, memory: 8Mi }}\n"
    )
}

/// The container of job `job` (one task) on worker `worker`: `(id, running, restart count)`.
fn job_container(worker: &str, job: &str) -> Result<(String, bool, u64), String> {
    let by_worker = format!("label=orkestrator.worker={worker}");
    let by_job = format!("label=orkestrator.job={job}");
    let ids = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &by_worker,
        "--filter",
        &by_job,
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let [id] = ids.as_slice() else {
        return Err(format!(
            "job {job} has containers {ids:?} on {worker}, not one"
        ));
    };
    let v: Value = serde_json::from_str(&docker(&["inspect", id])).map_err(|e| e.to_string())?;
    let state = &v[0]["State"];
    Ok((
        id.to_string(),
        state["Running"] == true,
        v[0]["RestartCount"].as_u64().unwrap_or(0),
    ))
}

/// Etcd members, managers and the client on hosts of their own; the leader's host is cut off.
#[test]
fn leader_cut_off_by_the_network_is_replaced_and_returns_as_follower() {
    scenario(SEPARATE);
}

/// Each host runs an etcd member and a manager; the leader's host is cut off with its member.
///
/// A manager elected while one etcd endpoint of its `--store` is cut off may send its first
/// reads or its take-over commit there: reads are sent again, and a take-over that fails makes it
/// step down (start again as a follower) rather than exit, so another is elected; the new
/// leader's failover grace keeps the worker from being judged Down meanwhile.
#[test]
fn leader_cut_off_with_its_etcd_member_is_replaced_and_returns_as_follower() {
    scenario(COLOCATED);
}

/// The scenario of the module's doc on `layout`.
fn scenario(layout: Layout) {
    if !prerequisites_or_skip() {
        return;
    }
    let with_worker = docker_or_skip(TEST);
    if !with_worker {
        eprintln!("{TEST}: no Docker engine: running the managers' part without a worker");
    }
    let started = Instant::now();
    let tag = layout.tag;
    let pid = std::process::id();

    // The network first, so that it is dropped last (after every process in it).
    let net = Net::create(layout.hosts, tag);
    let dir = tempfile::Builder::new()
        .prefix(&format!("ork-ha-netns-{tag}-"))
        .tempdir()
        .expect("a temporary directory");
    let etcd = EtcdCluster::start_in_namespaces(
        MANAGERS,
        |i| net.addr(layout.etcd[i]),
        |i| net.hosts[layout.etcd[i]].clone(),
    )
    .expect("etcd is installed (checked above)");
    eprintln!(
        "{TEST} {tag}: etcd {} up after {:?}",
        etcd.url(),
        started.elapsed()
    );
    let prefix = format!("/ork-netns-{pid}-{tag}/");
    let client = layout.client;
    let mut hosts = Hosts {
        layout,
        managers: Vec::new(),
        worker: None,
        etcd: None,
        token: None,
        dir,
        net,
    };
    for i in 0..MANAGERS {
        let addr = hosts.net.addr(layout.managers[i]);
        let data = hosts.dir.path().join(format!("manager{i}-data"));
        let args: Vec<String> = [
            "server",
            "--port",
            &PORT.to_string(),
            "--bind",
            &addr,
            "--insecure",
            "--advertise-addr",
            &hosts.url(i),
            "--store",
            &etcd.url(),
            "--etcd-prefix",
            &prefix,
            "--leader-lease",
            "2s",
            "--heartbeat-interval",
            "500ms",
            "--data-dir",
            &data.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = HostProc::spawn(
            &hosts.net,
            layout.managers[i],
            hosts.dir.path(),
            &format!("manager{i}"),
            &args,
        );
        hosts.managers.push(m);
    }
    hosts.etcd = Some(etcd);

    // The first leader writes the operator token into its data directory.
    let token = hosts.wait(
        "a manager wrote operator.token",
        Duration::from_secs(30),
        Duration::from_millis(100),
        |h| {
            (0..MANAGERS)
                .map(|i| {
                    h.dir
                        .path()
                        .join(format!("manager{i}-data"))
                        .join("operator.token")
                })
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
                .ok_or_else(|| "no operator.token yet".to_string())
        },
    );
    hosts.token = Some(token);

    // Every manager, asked from the client host, names the same leader.
    let leader = hosts.wait(
        "every manager names the same leader",
        Duration::from_secs(30),
        Duration::from_millis(200),
        |h| {
            let seen: Vec<String> = (0..MANAGERS)
                .map(|i| h.leader_via(i).map(|(l, _)| l))
                .collect::<Result<_, _>>()?;
            if seen.iter().all(|l| *l == seen[0]) {
                Ok(seen[0].clone())
            } else {
                Err(format!("the managers name {seen:?}"))
            }
        },
    );
    let old = hosts.manager_at(&leader);
    let followers: Vec<usize> = (0..MANAGERS).filter(|&i| i != old).collect();
    eprintln!(
        "{TEST} {tag}: leader {leader} (manager {old}) after {:?}",
        started.elapsed()
    );

    // A worker on the client's host, knowing every manager.
    let worker_name = format!("netns-{tag}-w-{pid}");
    if with_worker {
        let join = hosts
            .token
            .as_ref()
            .map(|t| t.with_file_name("join.token"))
            .expect("the token's directory");
        let wdata = hosts.dir.path().join("worker-data");
        let urls: Vec<String> = (0..MANAGERS).map(|i| hosts.url(i)).collect();
        let args: Vec<String> = [
            "worker",
            "--manager",
            &urls.join(","),
            "--join-token-file",
            &join.to_string_lossy(),
            "--bind",
            &hosts.net.addr(client),
            "--port",
            &WORKER_PORT.to_string(),
            "--advertise",
            &format!("{}:{WORKER_PORT}", hosts.net.addr(client)),
            "--name",
            &worker_name,
            "--cpu",
            "2",
            "--memory",
            "1Gi",
            "--stop-grace",
            "2s",
            "--data-dir",
            &wdata.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut w = HostProc::spawn(&hosts.net, client, hosts.dir.path(), "worker", &args);
        w.worker = Some(worker_name.clone());
        hosts.worker = Some(w);
        hosts.wait(
            "the worker is Ready",
            Duration::from_secs(30),
            Duration::from_millis(200),
            |h| {
                let out = h.ork(client, &followers, &["workers", "-o", "json"]);
                if out.code != Some(0) {
                    return Err(out.describe());
                }
                let ready = serde_json::from_str::<Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .is_some_and(|ws| {
                        ws.iter()
                            .any(|w| w["id"] == worker_name.as_str() && w["status"] == "Ready")
                    });
                if ready { Ok(()) } else { Err(out.stdout) }
            },
        );
    }

    // A job acknowledged through a follower before the cut.
    let before = format!("netns-{tag}-before-{pid}");
    let out = hosts.submit(&[followers[0]], &before);
    assert_eq!(
        out.code,
        Some(0),
        "submitting {before} through follower {}: {}\n{}",
        hosts.url(followers[0]),
        out.describe(),
        hosts.logs()
    );
    let container = if with_worker {
        let c = hosts.wait(
            "the job's container runs",
            Duration::from_secs(60),
            Duration::from_millis(250),
            |_| match job_container(&worker_name, &before)? {
                (id, true, _) => Ok(id),
                other => Err(format!("container {other:?}")),
            },
        );
        eprintln!("{TEST} {tag}: container {} runs on the worker", &c[..12]);
        Some(c)
    } else {
        None
    };

    // Cut the leader's host off at the switch.
    let cut = Instant::now();
    let old_host = layout.managers[old];
    hosts.net.link(old_host, false);
    eprintln!(
        "{TEST} {tag}: cut host {old_host} off at {:?} after the start",
        started.elapsed()
    );

    // A write sent to the cut-off leader on its own host: never acknowledged (it cannot reach
    // an etcd quorum, and once another leads its fence refuses it).
    let fenced_job = format!("netns-{tag}-fenced-{pid}");
    let fenced_file = hosts.job_file(&fenced_job);
    let fenced_write = {
        let ns = hosts.net.hosts[old_host].clone();
        let urls = vec![leader.clone()];
        let token = hosts.token.clone();
        std::thread::spawn(move || {
            let file = fenced_file.to_string_lossy().into_owned();
            ork_in_ns(&ns, &urls, token.as_deref(), &["run", &file])
        })
    };

    // Another manager leads, as seen through each reachable one.
    let new_leader = hosts.wait(
        "a reachable manager names another leader",
        FAILOVER,
        Duration::from_millis(100),
        |h| {
            let (l, _) = h
                .leader_via(followers[0])
                .or_else(|_| h.leader_via(followers[1]))?;
            if l == leader {
                Err(format!("still {l}"))
            } else {
                Ok(l)
            }
        },
    );
    let to_leader = cut.elapsed();
    eprintln!("{TEST} {tag}: new leader {new_leader} {to_leader:?} after the cut");
    println!("CUT_TO_LEADER_MS={}", to_leader.as_millis());

    // A new submission through the reachable managers is acknowledged.
    let after = format!("netns-{tag}-after-{pid}");
    let remaining = FAILOVER.saturating_sub(cut.elapsed());
    hosts.wait(
        "a submission through a reachable manager is acknowledged",
        remaining.max(Duration::from_secs(1)),
        Duration::from_millis(100),
        |h| {
            let out = h.submit(&followers, &after);
            if out.code == Some(0) {
                Ok(())
            } else {
                Err(out.describe())
            }
        },
    );
    let to_ack = cut.elapsed();
    eprintln!("{TEST} {tag}: first write acknowledged {to_ack:?} after the cut");
    println!("CUT_TO_ACK_MS={}", to_ack.as_millis());
    assert!(
        to_ack <= FAILOVER,
        "the first write after the cut took {to_ack:?} (more than {FAILOVER:?})"
    );

    // The cut-off manager stepped down (its lease ran out) instead of leading on.
    hosts.wait(
        "the cut-off manager steps down",
        Duration::from_secs(15),
        Duration::from_millis(200),
        |h| {
            if h.managers[old].log().contains("lost the leadership") {
                Ok(())
            } else {
                Err(h.managers[old].tail(10))
            }
        },
    );
    let fenced = fenced_write.join().expect("the fenced write's thread");
    assert_ne!(
        fenced.code,
        Some(0),
        "the cut-off leader acknowledged {fenced_job}: {}\n{}",
        fenced.describe(),
        hosts.logs()
    );
    eprintln!(
        "{TEST} {tag}: the write sent to the cut-off leader was refused: {}",
        fenced.stderr.lines().last().unwrap_or_default().trim()
    );

    // Every acknowledged job is listed; the refused one is not.
    let listed = hosts.wait(
        "the acknowledged jobs are listed",
        Duration::from_secs(10),
        Duration::from_millis(200),
        |h| {
            let jobs = h.jobs(&followers)?;
            if jobs.contains(&before) && jobs.contains(&after) {
                Ok(jobs)
            } else {
                Err(format!("jobs: {jobs:?}"))
            }
        },
    );
    assert!(
        !listed.contains(&fenced_job),
        "{fenced_job}, never acknowledged, was committed: {listed:?}"
    );

    // The link back: the old leader returns as a follower of the new one.
    hosts.net.link(old_host, true);
    let restored = Instant::now();
    let managers = hosts.wait(
        "the old leader, asked from the client, names the new leader",
        Duration::from_secs(20),
        Duration::from_millis(200),
        |h| {
            let (l, managers) = h.leader_via(old)?;
            let listed = managers.as_array().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m["addr"] == leader.as_str() && m["leader"] == false)
            });
            if l == new_leader && listed {
                Ok(managers)
            } else {
                Err(format!("leader {l}, managers {managers}"))
            }
        },
    );
    eprintln!(
        "{TEST} {tag}: manager {old} back as a follower {:?} after the link came back: {managers}",
        restored.elapsed()
    );
    for i in 0..MANAGERS {
        let (l, _) = hosts
            .leader_via(i)
            .unwrap_or_else(|e| panic!("manager {i} after the restore: {e}\n{}", hosts.logs()));
        assert_eq!(l, new_leader, "manager {i} names another leader");
    }
    let jobs = hosts
        .jobs(&[old])
        .unwrap_or_else(|e| panic!("jobs through the old leader: {e}\n{}", hosts.logs()));
    assert!(
        jobs.contains(&before) && jobs.contains(&after) && !jobs.contains(&fenced_job),
        "jobs through the old leader: {jobs:?}"
    );

    // The worker's container ran through it all, and the worker is still Ready.
    if let Some(first) = container {
        let (id, running, restarts) = job_container(&worker_name, &before)
            .unwrap_or_else(|e| panic!("{e}\n{}", hosts.logs()));
        let logs = hosts.logs();
        assert_eq!(id, first, "the job's container was replaced\n{logs}");
        assert!(running, "the job's container stopped\n{logs}");
        assert_eq!(restarts, 0, "the job's container was restarted\n{logs}");
        let out = hosts.ork(client, &[old], &["workers", "-o", "json"]);
        let v: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
        let status = v
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["id"] == worker_name.as_str()))
            .map(|w| w["status"].clone());
        assert_eq!(
            status,
            Some(Value::from("Ready")),
            "the worker after the failover: {v}"
        );
    }
    eprintln!("{TEST} {tag}: done in {:?}", started.elapsed());
}
