//! Several managers on etcd, as real processes: `kill -9` of the leader during a burst of
//! submissions (a new leader within 5 s, every acknowledged job kept, no container restarted or
//! run twice, one etcd member lost and the cluster still working), a leader paused past its lease
//! (it steps down and commits nothing), and etcd stopped entirely (writes refused with 503,
//! nothing lost, all back once etcd returns).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use orkestrator_runtime::etcd_testing::EtcdCluster;
use serde_json::Value;

/// Managers on one etcd, each a process of its own.
struct Ha {
    test: String,
    dir: tempfile::TempDir,
    etcd: EtcdCluster,
    ports: Vec<u16>,
    managers: Vec<Option<Proc>>,
    workers: Vec<Proc>,
    token: Mutex<Option<String>>,
}

impl Ha {
    fn start(test: &str, members: usize, managers: usize, extra: &[&str]) -> Option<Ha> {
        let etcd = EtcdCluster::start(members)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("ork-{test}-"))
            .tempdir()
            .expect("temp dir");
        let mut ha = Ha {
            test: test.to_owned(),
            dir,
            etcd,
            ports: Vec::new(),
            managers: Vec::new(),
            workers: Vec::new(),
            token: Mutex::new(None),
        };
        for i in 0..managers {
            let port = free_port();
            ha.ports.push(port);
            let p = ha.spawn_manager(i, port, extra);
            ha.managers.push(Some(p));
        }
        Some(ha)
    }

    fn manager_args(&self, i: usize, port: u16, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "server".into(),
            "--port".into(),
            port.to_string(),
            "--store".into(),
            self.etcd.url(),
            "--data-dir".into(),
            self.data_dir(i).display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn spawn_manager(&self, i: usize, port: u16, extra: &[&str]) -> Proc {
        let args = self.manager_args(i, port, extra);
        Proc::spawn(
            self.dir.path(),
            &format!("manager {i}"),
            &args,
            self.dir.path(),
            None,
        )
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("m{i}"))
    }

    fn addrs(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The operator token, from the data directory of the manager that led first.
    fn token(&self) -> String {
        self.try_token()
            .expect("a manager wrote the operator token")
    }

    fn try_token(&self) -> Option<String> {
        let mut t = self.token.lock().unwrap();
        if t.is_none() {
            for i in 0..self.ports.len() {
                if let Ok(text) = std::fs::read_to_string(self.data_dir(i).join("operator.token")) {
                    *t = Some(text.trim().to_owned());
                    break;
                }
            }
        }
        t.clone()
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.ports.len()).filter(|i| self.managers[*i].is_some())
    }

    fn request(&self, i: usize, method: &str, path: &str, body: &[u8]) -> Option<HttpResponse> {
        let token = self.try_token();
        let ct = (!body.is_empty()).then_some("application/json");
        http_as(self.ports[i], token.as_deref(), method, path, ct, body).ok()
    }

    /// Which manager leads, as manager `via` tells (its own answer or the leader's, forwarded).
    fn leader_via(&self, via: usize) -> Option<usize> {
        let r = self.request(via, "GET", "/v1/health", b"")?;
        if r.status != 200 {
            return None;
        }
        let h = r.json();
        let addr = h["managers"]
            .as_array()?
            .iter()
            .find(|m| m["leader"] == true)?["addr"]
            .as_str()?
            .to_owned();
        self.ports
            .iter()
            .position(|p| addr == format!("http://127.0.0.1:{p}"))
    }

    /// Waits until the live managers agree on a leader other than `not`.
    fn wait_leader(&self, not: Option<usize>, within: Duration) -> usize {
        let what = format!("an agreed leader other than {not:?}");
        self.wait(&what, within, || {
            let seen: Vec<Option<usize>> = self.live().map(|i| self.leader_via(i)).collect();
            let l = (*seen.first()?)?;
            (Some(l) != not && self.managers[l].is_some() && seen.iter().all(|s| *s == Some(l)))
                .then_some(l)
        })
    }

    /// Submits job `name` (`cpu` cores) through manager `via`: the HTTP status, if it answered.
    fn submit(&self, via: usize, name: &str, extra: &str) -> Option<u16> {
        let spec = format!(
            r#"{{"name": "{name}", {extra} "tasks": [{{"name": "t", "image": "{IMAGE}",
               "command": {FOREVER}, "resources": {{"cpu": 0.05, "memory": "16MiB"}}}}]}}"#
        );
        self.request(via, "POST", "/v1/jobs", spec.as_bytes())
            .map(|r| r.status)
    }

    /// Submits a job that no worker can take (it stays pending): a commit, and nothing to run.
    fn submit_pending(&self, via: usize, name: &str) -> Option<u16> {
        self.request(via, "POST", "/v1/jobs", pending_spec(name).as_bytes())
            .map(|r| r.status)
    }

    /// The jobs' names, as manager `via` lists them (waiting out a 503 while it reloads).
    fn job_names(&self, via: usize) -> Vec<String> {
        let items = self.wait("the jobs list", Duration::from_secs(20), || {
            let r = self.request(via, "GET", "/v1/jobs?limit=5000", b"")?;
            assert!(
                r.status == 200 || r.status == 503,
                "{}\n{}",
                r.text(),
                self.logs()
            );
            (r.status == 200).then(|| r.json()["items"].clone())
        });
        items
            .as_array()
            .expect("items")
            .iter()
            .map(|j| j["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn job(&self, via: usize, name: &str) -> Option<Value> {
        let r = self.request(via, "GET", &format!("/v1/jobs/{name}"), b"")?;
        (r.status == 200).then(|| r.json())
    }

    fn kill_manager(&mut self, i: usize) {
        if let Some(mut p) = self.managers[i].take() {
            p.kill();
        }
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.managers[i].as_ref().expect("running").pid();
        let s = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(s.success(), "kill -{sig} {pid}");
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for p in self.managers.iter().flatten() {
            out.push_str(&p.tail(30));
        }
        for w in &self.workers {
            out.push_str(&w.tail(20));
        }
        out
    }

    fn wait<T>(&self, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: {what}: not within {within:?}\n{}",
                    self.test,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A job no worker can take (512 cores): it stays pending.
fn pending_spec(name: &str) -> String {
    format!(
        r#"{{"name": "{name}", "tasks": [{{"name": "t", "image": "{IMAGE}",
           "resources": {{"cpu": 512, "memory": "16MiB"}}}}]}}"#
    )
}

fn ok(status: Option<u16>) -> bool {
    matches!(status, Some(200..=299))
}

/// A container's id, start time and restart count.
fn container_facts(ids: &[String]) -> Vec<(String, String, i64)> {
    let mut facts: Vec<(String, String, i64)> = inspect(ids)
        .iter()
        .map(|c| {
            (
                c["Id"].as_str().unwrap_or_default().to_owned(),
                c["State"]["StartedAt"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                c["RestartCount"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    facts.sort();
    facts
}

#[test]
fn killing_the_leader_during_a_burst_loses_nothing_and_restarts_nothing() {
    let test = "ha-kill";
    if !docker_or_skip(test) {
        return;
    }
    let Some(mut ha) = Ha::start(test, 3, 3, &["--heartbeat-grace", "3s"]) else {
        return;
    };
    let first = ha.wait_leader(None, Duration::from_secs(30));
    ha.token();

    // A worker that knows all three managers, and a job running on it.
    let worker = unique("haw", test);
    let join = ha.data_dir(first).join("join.token");
    let wargs: Vec<String> = [
        "worker",
        "--manager",
        &ha.addrs(),
        "--port",
        &free_port().to_string(),
        "--name",
        &worker,
        "--join-token-file",
        &join.display().to_string(),
        "--data-dir",
        &ha.dir.path().join("w").display().to_string(),
        "--stop-grace",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let w = Proc::spawn(
        ha.dir.path(),
        &format!("worker {worker}"),
        &wargs,
        ha.dir.path(),
        Some(worker.clone()),
    );
    ha.workers.push(w);
    let follower = (first + 1) % 3;
    assert!(
        ok(ha.submit(follower, "web", r#""count": 2,"#)),
        "web is acknowledged"
    );
    ha.wait("web runs both copies", Duration::from_secs(60), || {
        let j = ha.job(follower, "web")?;
        (j["phase"] == "Running").then_some(())
    });
    let ids = containers_with_label("orkestrator.worker", &worker, false);
    assert_eq!(ids.len(), 2, "two containers for web: {ids:?}");
    let before = container_facts(&ids);

    // A burst of submissions through the followers, while the leader is killed.
    let ha = Arc::new(Mutex::new(ha));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let burst = {
        let (ha, stop, acked) = (ha.clone(), stop.clone(), acked.clone());
        let ports = ha.lock().unwrap().ports.clone();
        let token = ha.lock().unwrap().token();
        std::thread::spawn(move || {
            let mut n = 0u32;
            let deadline = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let name = format!("burst-{n}");
                // Through the followers of the first leader, in turn.
                let via = [(first + 1) % 3, (first + 2) % 3][n as usize % 2];
                let spec = pending_spec(&name);
                let r = http_as(
                    ports[via],
                    Some(&token),
                    "POST",
                    "/v1/jobs",
                    Some("application/json"),
                    spec.as_bytes(),
                );
                if let Ok(r) = r
                    && (200..300).contains(&r.status)
                {
                    acked.lock().unwrap().push((name, Instant::now()));
                    n += 1;
                } else {
                    // Not acknowledged: sent again under the same name.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    let wait_acks = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "the burst stalled at {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_acks(20);
    let killed = Instant::now();
    ha.lock().unwrap().kill_manager(first);
    let second = {
        let ha = ha.lock().unwrap();
        ha.wait_leader(Some(first), Duration::from_secs(5))
    };
    let elected = killed.elapsed();
    let before_kill = acked.lock().unwrap().len();
    wait_acks(before_kill + 20);
    stop.store(true, Ordering::Relaxed);
    burst.join().expect("the burst thread");
    let first_ack = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(_, at)| *at)
        .find(|at| *at > killed)
        .map(|at| at - killed);
    eprintln!(
        "{test}: new leader {second} after {elected:?}; first acknowledged write after the kill: \
         {first_ack:?}"
    );
    assert!(
        elected < Duration::from_secs(5),
        "a new leader within 5 s: {elected:?}"
    );

    let mut ha = Arc::try_unwrap(ha)
        .ok()
        .expect("the burst is done")
        .into_inner()
        .unwrap();
    // Every acknowledged job is there.
    let names = ha.job_names(second);
    let acked: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|n| !names.contains(n)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(names.contains(&"web".to_owned()));

    // The worker stays Ready under the new leader (a fresh grace, not Down) and its containers
    // were neither restarted nor started twice: watched over more than a heartbeat grace.
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        let j = ha.job(second, "web").expect("web answers");
        assert_eq!(j["phase"], "Running", "web after the failover: {j}");
        let now = containers_with_label("orkestrator.worker", &worker, true);
        assert_eq!(
            container_facts(&now),
            before,
            "the worker's containers changed after the failover\n{}",
            ha.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // One etcd member killed: the cluster keeps working.
    ha.etcd.kill(0);
    ha.wait(
        "a write with one etcd member down",
        Duration::from_secs(20),
        || {
            let via = ha.live().next()?;
            ok(ha.submit_pending(via, "after-member-loss")).then_some(())
        },
    );
    // A follower's own list is its warm copy, which may trail an acknowledged write by a moment
    // (read-your-writes takes `?index=N`): the write must be listed within a deadline.
    let via = ha.live().next().expect("a live manager");
    ha.wait(
        "the write listed with one etcd member down",
        Duration::from_secs(5),
        || {
            ha.job_names(via)
                .contains(&"after-member-loss".to_owned())
                .then_some(())
        },
    );
}

#[test]
fn a_leader_paused_past_its_lease_steps_down_and_commits_nothing() {
    paused_leader("ha-pause", false);
}

/// The same with the old leader blind to its lease's loss (fault injection): only the fence on
/// its commits can stop it, and does.
#[test]
fn a_paused_leader_blind_to_its_lease_is_stopped_by_the_fence() {
    paused_leader("ha-fence", true);
}

fn paused_leader(test: &str, blind: bool) {
    let Some(mut ha) = Ha::start(test, 1, 2, &["--leader-lease", "2s"]) else {
        return;
    };
    if blind {
        // Manager 0 again, blind to the loss of its lease; it leads (manager 1 follows).
        ha.kill_manager(1);
        ha.kill_manager(0);
        let args = ha.manager_args(0, ha.ports[0], &["--leader-lease", "2s"]);
        let p = Proc::spawn_env(
            ha.dir.path(),
            "manager 0 (blind)",
            &args,
            ha.dir.path(),
            &[("ORKESTRATOR_FAULT_IGNORE_LEASE_LOSS", "1")],
        );
        ha.managers[0] = Some(p);
        ha.wait_leader(None, Duration::from_secs(30));
        let p = ha.spawn_manager(1, ha.ports[1], &["--leader-lease", "2s"]);
        ha.managers[1] = Some(p);
    }
    let old = ha.wait_leader(None, Duration::from_secs(30));
    let other = 1 - old;
    ha.token();
    assert!(ok(ha.submit_pending(old, "before")));
    let old_pid = ha.managers[old].as_ref().unwrap().pid();

    ha.signal(old, "STOP");
    let new = ha.wait("the other manager to lead", Duration::from_secs(15), || {
        (ha.leader_via(other) == Some(other)).then_some(other)
    });
    assert!(
        ok(ha.submit_pending(new, "fresh")),
        "the new leader takes writes"
    );

    // A submission sent to the paused leader waits in its socket; it runs once it continues.
    let token = ha.token();
    let port = ha.ports[old];
    let stale = std::thread::spawn(move || {
        let spec = pending_spec("stale");
        http_as(
            port,
            Some(&token),
            "POST",
            "/v1/jobs",
            Some("application/json"),
            spec.as_bytes(),
        )
        .map(|r| (r.status, r.text()))
    });
    // Give the request time to reach the paused process's socket (it cannot answer).
    ha.wait(
        "the stale request to be sent",
        Duration::from_secs(5),
        || {
            std::fs::read_dir(format!("/proc/{old_pid}/fd"))
                .ok()
                .map(|d| d.count())
                .filter(|n| *n > 0)
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    ha.signal(old, "CONT");

    match stale.join().expect("the stale request's thread") {
        Ok((status, body)) => {
            assert!(
                !(200..300).contains(&status),
                "the paused leader acknowledged a write after losing its lease: {status} {body}"
            );
            eprintln!("{test}: the stale request was refused: {status} {body}");
            if blind {
                assert!(body.contains("not_leader"), "refused by the fence: {body}");
            }
        }
        Err(e) if !blind => {
            eprintln!("{test}: the stale request was cut off ({e}), not acknowledged")
        }
        Err(e) => panic!("{test}: the fenced leader did not answer its refusal: {e}"),
    }
    // It stepped down: same process, now following the new leader.
    ha.wait(
        "the old leader to follow the new one",
        Duration::from_secs(20),
        || {
            let r = ha.request(old, "GET", "/v1/health", b"")?;
            (r.status == 200
                && r.header("orkestrator-leader")
                    == Some(&format!("http://127.0.0.1:{}", ha.ports[new])))
            .then_some(())
        },
    );
    assert!(
        std::path::Path::new(&format!("/proc/{old_pid}")).exists(),
        "it stepped down in place (same pid)"
    );
    let log = ha.managers[old].as_ref().unwrap().tail(200);
    assert!(log.contains("lost the leadership"), "{log}");
    if blind {
        assert!(log.contains("etcd refused its commit"), "{log}");
    }
    for line in log.lines().filter(|l| {
        l.contains("lost the leadership") || l.contains("commit failed") || l.contains("lease")
    }) {
        eprintln!("{test}: old leader: {line}");
    }

    let names = ha.job_names(new);
    assert!(names.contains(&"before".to_owned()), "{names:?}");
    assert!(names.contains(&"fresh".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"stale".to_owned()),
        "the fenced write landed: {names:?}"
    );
    // A token made through a follower works on the leader (tokens live in the store).
    let made = ha
        .request(
            old,
            "POST",
            "/v1/tokens",
            br#"{"role": "read", "name": "via a follower"}"#,
        )
        .expect("token create answers");
    assert_eq!(made.status, 200, "{}", made.text());
    let secret = made.json()["token"]
        .as_str()
        .expect("the secret")
        .to_owned();
    let r = http_as(ha.ports[new], Some(&secret), "GET", "/v1/jobs", None, b"").expect("jobs");
    assert_eq!(r.status, 200, "the new token on the leader: {}", r.text());
    // And the new leader still commits: nobody wrote behind its back.
    assert!(
        ok(ha.submit_pending(old, "after")),
        "a write through the old leader, now forwarded"
    );
}

#[test]
fn with_etcd_stopped_writes_are_refused_and_all_comes_back() {
    let test = "ha-etcd-down";
    let Some(mut ha) = Ha::start(test, 1, 2, &["--leader-lease", "2s"]) else {
        return;
    };
    let leader = ha.wait_leader(None, Duration::from_secs(30));
    ha.token();
    assert!(ok(ha.submit_pending(leader, "before")));

    ha.etcd.kill(0);
    let refused = ha.wait("a write refused with 503", Duration::from_secs(20), || {
        let r = ha.request(
            leader,
            "POST",
            "/v1/jobs",
            pending_spec("during").as_bytes(),
        )?;
        assert!(
            !(200..300).contains(&r.status),
            "a write was acknowledged with etcd down: {}",
            r.text()
        );
        (r.status == 503).then(|| r.text())
    });
    assert!(
        refused.contains("etcd") || refused.contains("store"),
        "{refused}"
    );

    ha.etcd.restart(0);
    ha.etcd.wait_healthy(Duration::from_secs(30));
    let via = ha.wait(
        "a write acknowledged once etcd is back",
        Duration::from_secs(40),
        || (0..2).find(|i| ok(ha.submit_pending(*i, "after"))),
    );
    let names = ha.job_names(via);
    assert!(names.contains(&"before".to_owned()), "{names:?}");
    assert!(names.contains(&"after".to_owned()), "{names:?}");
    assert!(!names.contains(&"during".to_owned()), "{names:?}");
}

#[test]
fn store_copy_moves_a_cluster_from_redb_onto_etcd() {
    let test = "ha-copy";
    let Some(mut ha) = Ha::start(test, 1, 0, &[]) else {
        return;
    };
    // A manager on redb, with jobs; then stopped.
    let port = free_port();
    let redb = ha.dir.path().join("redb");
    let args: Vec<String> = [
        "server",
        "--port",
        &port.to_string(),
        "--data-dir",
        &redb.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = Proc::spawn(ha.dir.path(), "redb manager", &args, ha.dir.path(), None);
    let token = ha.wait("the redb manager's token", Duration::from_secs(30), || {
        std::fs::read_to_string(redb.join("operator.token")).ok()
    });
    let token = token.trim().to_owned();
    *ha.token.lock().unwrap() = Some(token.clone());
    for name in ["kept-1", "kept-2"] {
        let spec = format!(
            r#"{{"name": "{name}", "count": 3, "tasks": [{{"name": "t", "image": "{IMAGE}",
               "resources": {{"cpu": 512, "memory": "16MiB"}}}}]}}"#
        );
        ha.wait(
            "the redb manager takes a job",
            Duration::from_secs(30),
            || {
                let r = http_as(
                    port,
                    Some(&token),
                    "POST",
                    "/v1/jobs",
                    Some("application/json"),
                    spec.as_bytes(),
                )
                .ok()?;
                (200..300).contains(&r.status).then_some(())
            },
        );
    }
    // A secret, sealed under the key the redb manager made in its data directory.
    let secret = http_as(
        port,
        Some(&token),
        "POST",
        "/v1/secrets",
        Some("application/json"),
        br#"{"name": "db-password", "value_base64": "Y29waWVkLXNlYWxlZA=="}"#,
    )
    .expect("create a secret");
    assert_eq!(secret.status, 200, "{}", secret.text());
    let index = http_as(port, Some(&token), "GET", "/v1/health", None, b"")
        .expect("health")
        .json()["manager"]["index"]
        .as_u64()
        .expect("an index");
    p.kill();

    let url = ha.etcd.url();
    let redb_s = redb.display().to_string();
    let out = ork_in(
        ha.dir.path(),
        &["store", "copy", "--from", &redb_s, "--to", &url],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .contains("2 jobs, 6 instances, 1 secret versions"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("secret.key"), "{}", out.describe());
    // Twice: refused, the prefix holds a cluster now.
    let again = ork_in(
        ha.dir.path(),
        &["store", "copy", "--from", &redb_s, "--to", &url],
        &[],
    );
    assert_ne!(again.code, Some(0), "{}", again.describe());
    assert!(again.stderr.contains("--replace"), "{}", again.describe());

    // A manager on etcd with another key refuses to start, and says so.
    let wrong = ha.dir.path().join("wrong.key");
    std::fs::write(&wrong, [9u8; 32]).unwrap();
    let wrong_s = wrong.display().to_string();
    let mut refused = ha.spawn_manager(0, free_port(), &["--secret-key-file", &wrong_s]);
    let status = ha.wait(
        "the manager with another key to exit",
        Duration::from_secs(30),
        || refused.exited(),
    );
    assert!(!status.success(), "{}", refused.tail(20));
    assert!(
        refused.tail(20).contains("not the key"),
        "{}",
        refused.tail(20)
    );

    // A manager on etcd carries on: the jobs, the index, the old operator token, and the
    // secrets with the redb manager's key.
    let port = free_port();
    ha.ports.push(port);
    let key = redb.join("secret.key").display().to_string();
    let m = ha.spawn_manager(0, port, &["--secret-key-file", &key]);
    ha.managers.push(Some(m));
    ha.wait_leader(None, Duration::from_secs(30));
    let secrets = ha
        .request(0, "GET", "/v1/secrets", b"")
        .expect("secrets")
        .json();
    assert_eq!(secrets[0]["name"], "db-password", "{secrets}");
    let names = ha.job_names(0);
    assert!(
        names.contains(&"kept-1".to_owned()) && names.contains(&"kept-2".to_owned()),
        "{names:?}"
    );
    let h = ha
        .request(0, "GET", "/v1/health", b"")
        .expect("health")
        .json();
    assert!(
        h["manager"]["index"].as_u64().expect("an index") > index,
        "{h}"
    );
    assert!(
        !ha.data_dir(0).join("operator.token").exists(),
        "the copied operator token is the cluster's: no new one is made"
    );
}

#[test]
fn a_manager_reaches_etcd_over_tls_with_its_ca() {
    let test = "ha-etcd-tls";
    let dir = tempfile::Builder::new()
        .prefix("ork-ha-etcd-tls-")
        .tempdir()
        .expect("temp dir");
    let pki = dir.path().join("pki");
    let pki_s = pki.display().to_string();
    let out = ork_in(
        dir.path(),
        &[
            "tls",
            "init",
            &pki_s,
            "--name",
            "etcd",
            "--san",
            "127.0.0.1",
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let Some(etcd) = EtcdCluster::start_tls(&pki.join("etcd.pem"), &pki.join("etcd-key.pem"))
    else {
        return;
    };
    let ca = pki.join("ca.pem").display().to_string();
    let mut ha = Ha {
        test: test.to_owned(),
        dir,
        etcd,
        ports: vec![free_port(), free_port()],
        managers: vec![None, None],
        workers: Vec::new(),
        token: Mutex::new(None),
    };
    let with_ca = ha.spawn_manager(0, ha.ports[0], &["--etcd-ca-file", &ca]);
    ha.managers[0] = Some(with_ca);
    ha.wait_leader(None, Duration::from_secs(30));
    assert!(
        ok(ha.submit_pending(0, "over-tls")),
        "a write over TLS to etcd"
    );
    assert!(ha.job_names(0).contains(&"over-tls".to_owned()));

    // Without the CA (plain HTTP to a TLS port) it cannot reach etcd, and says so.
    let without = ha.spawn_manager(1, ha.ports[1], &[]);
    ha.managers[1] = Some(without);
    let answer = ha.wait(
        "the manager without the CA to refuse",
        Duration::from_secs(30),
        || {
            let r = ha.request(1, "GET", "/v1/jobs", b"")?;
            (r.status == 503).then(|| r.text())
        },
    );
    assert!(answer.contains("etcd"), "{answer}");
}

#[test]
fn a_follower_answers_job_reads_itself_at_the_index_asked() {
    let test = "ha-reads";
    let Some(ha) = Ha::start(test, 1, 2, &[]) else {
        return;
    };
    let leader = ha.wait_leader(None, Duration::from_secs(30));
    let follower = 1 - leader;
    ha.token();
    let r = ha
        .request(leader, "POST", "/v1/jobs", pending_spec("mine").as_bytes())
        .expect("submit");
    assert!((200..300).contains(&r.status), "{}", r.text());
    let index = r.json()["index"].as_u64().expect("the commit index");

    // With the leader stopped, the follower still answers reads of what it has: itself.
    ha.signal(leader, "STOP");
    let job = ha.request(
        follower,
        "GET",
        &format!("/v1/jobs/mine?index={index}"),
        b"",
    );
    let list = ha.request(follower, "GET", &format!("/v1/jobs?index={index}"), b"");
    ha.signal(leader, "CONT");
    let job = job.expect("the follower answers");
    assert_eq!(job.status, 200, "{}", job.text());
    assert_eq!(job.json()["name"], "mine");
    let served_at: u64 = job
        .header("orkestrator-index")
        .expect("answered from the follower's copy")
        .parse()
        .unwrap();
    assert!(
        served_at >= index,
        "a read that names index {index} was answered at {served_at}"
    );
    let list = list.expect("the follower answers the list");
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(list.text().contains("\"mine\""), "{}", list.text());

    // Only a read or operator token is answered there; anything else goes to the leader.
    let none = http_as(ha.ports[follower], None, "GET", "/v1/jobs", None, b"").expect("answer");
    assert_eq!(none.status, 401, "{}", none.text());
    assert!(
        none.header("orkestrator-index").is_none(),
        "the leader refused it"
    );
}
