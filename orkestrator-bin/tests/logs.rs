//! `orkestrator logs`: `-f` streams a task's output through the manager from its worker as it is
//! written, on into the next container when the task is restarted, until the job stops; Ctrl-C
//! and a closed pipe end it quietly; `--tail` and `--since` select what a plain read shows. Real
//! processes on loopback and the real Docker engine with the locally built test image.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{BIN, Cluster, IMAGE, TIMEOUT, docker_or_skip, unique};

/// A job of one task `main` running the shell script `script`, with task lines `extra`.
fn job_yaml(job: &str, script: &str, extra: &str) -> String {
    format!(
        "name: {job}\n\
         tasks:\n\
         \x20 - name: main\n\
         \x20   image: {IMAGE}\n\
         \x20   command: [sh, -c, {script:?}]\n\
         \x20   resources: {{ cpu: 100m, memory: 16Mi }}\n\
         {extra}"
    )
}

/// A running `orkestrator logs -f`, its standard output read line by line as it comes.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every line received so far, with when.
    seen: Vec<(Instant, String)>,
    stderr: std::thread::JoinHandle<String>,
}

impl Follower {
    fn start(c: &Cluster, args: &[&str]) -> Follower {
        let mut child = Command::new(BIN)
            .arg("logs")
            .args(args)
            .env("ORKESTRATOR_ADDR", &c.addr)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start orkestrator logs -f");
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits until a line satisfies `want`; returns its position in `seen`.
    fn wait_line(&mut self, c: &Cluster, what: &str, want: impl Fn(&str) -> bool) -> usize {
        if let Some(i) = self.seen.iter().position(|(_, l)| want(l)) {
            return i;
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = want(&l.1);
                    self.seen.push(l);
                    if hit {
                        return self.seen.len() - 1;
                    }
                }
                Err(e) => panic!(
                    "no line {what} ({e}); lines so far: {:?}\n{}",
                    self.text(),
                    c.logs()
                ),
            }
        }
    }

    /// Waits for the process to end (and for the rest of its output); its exit status.
    fn wait_exit(&mut self, c: &Cluster) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(l);
                }
                return s;
            }
            if Instant::now() >= deadline {
                panic!(
                    "logs -f did not end; lines so far: {:?}\n{}",
                    self.text(),
                    c.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn text(&self) -> Vec<&str> {
        self.seen.iter().map(|(_, l)| l.as_str()).collect()
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{signal} failed");
    }

    fn stderr(self) -> String {
        let Follower {
            mut child, stderr, ..
        } = self;
        let _ = child.kill();
        let _ = child.wait();
        stderr.join().unwrap_or_default()
    }
}

/// The counter in `line-N`.
fn counter(l: &str) -> Option<u64> {
    l.strip_prefix("line-")?.parse().ok()
}

#[test]
fn follow_shows_new_lines_as_they_are_written_and_ctrl_c_or_a_closed_pipe_end_it() {
    let test = "logs-follow";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("logs-f", test);
    c.write(
        "job.yaml",
        &job_yaml(
            &job,
            "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done",
            "",
        ),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&job, "Running");

    let mut f = Follower::start(&c, &[&job, "-f", "-n", "1"]);
    let first = f.wait_line(&c, "with a counter", |l| counter(l).is_some());
    let start = counter(&f.seen[first].1).unwrap();
    // Lines go on arriving one by one as the container writes them, ~200 ms apart: ten more
    // take about two seconds, not an instant (as a buffered answer would) nor never.
    let last = f.wait_line(&c, "ten later", |l| counter(l) >= Some(start + 10));
    let took = f.seen[last].0 - f.seen[first].0;
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_secs(10),
        "ten lines 200 ms apart came {took:?} apart"
    );
    let counts: Vec<u64> = f.seen[first..=last]
        .iter()
        .map(|(_, l)| counter(l).expect("only counter lines"))
        .collect();
    assert_eq!(
        counts,
        (start..=start + 10).collect::<Vec<_>>(),
        "every line once, in order"
    );
    // Each line is passed on within a few hundred ms of the one before (no batching).
    let gaps: Vec<Duration> = f.seen[first..=last]
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .collect();
    let widest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        widest < Duration::from_millis(1200),
        "gaps between lines: {gaps:?}"
    );
    eprintln!(
        "[{test}] lines {start}..={}: {took:?} from first to last, widest gap {widest:?}",
        start + 10
    );

    // Ctrl-C ends it with success.
    f.signal("INT");
    let status = f.wait_exit(&c);
    assert_eq!(status.code(), Some(0), "Ctrl-C: {status}");
    let err = f.stderr();
    assert!(!err.contains("rror"), "quiet on Ctrl-C: {err}");

    // A reader that goes away (as `| head -n 1` does): it ends quietly too.
    let mut child = Command::new(BIN)
        .args(["logs", &job, "-f"])
        .env("ORKESTRATOR_ADDR", &c.addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("a line");
    assert!(counter(line.trim()).is_some(), "{line:?}");
    drop(out);
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "logs -f kept on with its reader gone"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(
        status.code(),
        Some(0),
        "closed pipe: {status}, stderr: {err}"
    );
    assert_eq!(err, "", "quiet on a closed pipe");
}

#[test]
fn follow_goes_on_into_the_restarted_container_and_ends_when_the_job_stops() {
    let test = "logs-restart";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("logs-r", test);
    // Each container (its hostname is its short id) prints three lines and exits; it is
    // restarted after a second.
    c.write(
        "job.yaml",
        &job_yaml(
            &job,
            "for i in 1 2 3; do echo run-$HOSTNAME-$i; sleep 0.2; done; exit 3",
            "\x20   restart: { policy: always, max_attempts: 10, backoff: { initial: 1s, max: 1s } }\n",
        ),
    );
    // Following starts before the task has a container: it waits for the first.
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    let mut f = Follower::start(&c, &[&job, "-f", "--task", "main"]);
    let host_of = |l: &str| -> Option<(String, u32)> {
        let rest = l.strip_prefix("run-")?;
        let (host, n) = rest.rsplit_once('-')?;
        Some((host.to_owned(), n.parse().ok()?))
    };
    let a = f.wait_line(&c, "of a first container", |l| host_of(l).is_some());
    let first_host = host_of(&f.seen[a].1).unwrap().0;
    let b = f.wait_line(&c, "of a second container's end", |l| {
        host_of(l).is_some_and(|(h, n)| h != first_host && n == 3)
    });
    let second_host = host_of(&f.seen[b].1).unwrap().0;

    let stop = c.ork(&["stop", &job]);
    assert_eq!(stop.code, Some(0), "stop: {}", stop.describe());
    let status = f.wait_exit(&c);
    assert_eq!(status.code(), Some(0), "ends when the job stops: {status}");

    // Container by container, in order: each one's lines 1, 2, 3 once (the one running at the
    // stop may be cut short), no container twice, the first two the ones seen above.
    let lines: Vec<String> = f.text().iter().map(|s| s.to_string()).collect();
    let mut runs: Vec<(String, Vec<u32>)> = Vec::new();
    for l in &lines {
        let (h, n) = host_of(l).unwrap_or_else(|| panic!("unexpected line {l:?} in {lines:?}"));
        match runs.last_mut() {
            Some((last, ns)) if *last == h => ns.push(n),
            _ => runs.push((h, vec![n])),
        }
    }
    let hosts: Vec<&String> = runs.iter().map(|(h, _)| h).collect();
    let mut unique_hosts = hosts.clone();
    unique_hosts.sort();
    unique_hosts.dedup();
    assert_eq!(
        unique_hosts.len(),
        hosts.len(),
        "a container twice: {lines:?}"
    );
    assert!(runs.len() >= 2, "{lines:?}");
    assert_eq!(runs[0].0, first_host, "{lines:?}");
    assert_eq!(runs[1].0, second_host, "{lines:?}");
    for (i, (h, ns)) in runs.iter().enumerate() {
        if i + 1 < runs.len() {
            assert_eq!(ns, &[1, 2, 3], "container {h}: {lines:?}");
        } else {
            assert_eq!(ns[..], [1, 2, 3][..ns.len()], "container {h}: {lines:?}");
        }
    }
    eprintln!(
        "[{test}] {} containers followed: {:?}",
        runs.len(),
        runs.iter()
            .map(|(h, ns)| format!("{h}:{ns:?}"))
            .collect::<Vec<_>>()
    );
    let _ = f.stderr();
}

#[test]
fn tail_and_since_select_what_a_plain_read_shows() {
    let test = "logs-select";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    c.add_worker(&["--cpu", "2", "--memory", "1Gi"]);
    let job = unique("logs-s", test);
    c.write(
        "job.yaml",
        &job_yaml(
            &job,
            "echo early-1; echo early-2; echo early-3; sleep 4; echo late-1; echo late-2; trap 'exit 0' TERM; while true; do sleep 1; done",
            "",
        ),
    );
    let out = c.ork(&["run", "-f", "job.yaml"]);
    assert_eq!(out.code, Some(0), "run: {}", out.describe());
    c.wait_phase(&job, "Running");
    c.wait_until("the early lines", TIMEOUT, |c| {
        let out = c.ork(&["logs", &job]);
        if out.stdout.contains("early-3") {
            Ok(())
        } else {
            Err(out.describe())
        }
    });
    // A second boundary after the early lines and (by the 4 s sleep) before the late ones.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mid = (now.as_secs() + 1).to_string();
    let read = |args: &[&str]| {
        let mut all = vec!["logs", job.as_str()];
        all.extend_from_slice(args);
        let out = c.ork(&all);
        assert_eq!(out.code, Some(0), "logs {args:?}: {}", out.describe());
        out.stdout
    };
    c.wait_until("the late lines", TIMEOUT, |_| {
        let s = read(&[]);
        if s.contains("late-2") { Ok(()) } else { Err(s) }
    });
    assert_eq!(read(&[]), "early-1\nearly-2\nearly-3\nlate-1\nlate-2\n");
    assert_eq!(read(&["--tail", "2"]), "late-1\nlate-2\n");
    assert_eq!(read(&["--since", &mid]), "late-1\nlate-2\n", "since {mid}");
    assert_eq!(read(&["--since", &mid, "-n", "1"]), "late-2\n");
    assert_eq!(
        read(&["--since", "1h"]),
        "early-1\nearly-2\nearly-3\nlate-1\nlate-2\n"
    );
    let v = serde_json::from_str::<serde_json::Value>(&read(&["--since", &mid, "-o", "json"]))
        .expect("json");
    assert_eq!(v["text"], "late-1\nlate-2\n", "{v:#}");

    // `-f` with --since and --tail: what they select, then it goes on (here: nothing new).
    let mut f = Follower::start(&c, &[&job, "-f", "--since", &mid]);
    f.wait_line(&c, "late-2", |l| l == "late-2");
    assert_eq!(f.text(), ["late-1", "late-2"]);
    f.signal("INT");
    assert_eq!(f.wait_exit(&c).code(), Some(0));
    let _ = f.stderr();

    let bad = c.ork(&["logs", &job, "--since", "yesterday"]);
    assert_ne!(bad.code, Some(0));
    assert!(
        bad.stderr.contains("\"yesterday\" is neither a duration"),
        "{}",
        bad.describe()
    );
    let bad = c.ork(&["logs", &job, "-f", "--since", "yesterday"]);
    assert!(
        bad.code != Some(0) && bad.stderr.contains("neither a duration"),
        "errors come before the stream: {}",
        bad.describe()
    );
    let bad = c.ork(&["logs", "no-such-job", "-f"]);
    assert!(
        bad.code != Some(0) && bad.stderr.contains("job \"no-such-job\" not found"),
        "{}",
        bad.describe()
    );
}
