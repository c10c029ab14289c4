//! Simulated workers: light agents inside the generator. Each registers, heartbeats at the interval
//! the manager's answers give (every second up to 100 workers; wider beyond, issue 18) over a
//! shared pool of connections, and optionally watches its assignments on a connection of
//! its own, reporting `Starting` then `Running` for every new instance in batches. A worker the
//! manager does not know (404) registers again.
//!
//! As real workers do (issue 11), each registers with the cluster's join token, keeps the
//! credential the answer carries, and presents that credential alone from then on: heartbeats
//! (each heartbeat on the shared connections with its own worker's credential), watches, status
//! reports and re-registrations. So the manager checks one credential per worker, and its
//! per-credential limits apply to each worker separately.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use orkestrator_core::api::{HeartbeatAnswer, Registered};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Api, Bearer, Conn};

/// How much a simulated worker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Room for thousands of the bench's tasks (100 cores, 1 TiB).
    Big,
    /// Room for none of them (1 millicore, 1 MiB): the tasks present stay pending.
    Tiny,
}

impl Size {
    fn resources(self) -> Value {
        let total = match self {
            Size::Big => json!({ "cpu": "100", "memory": "1Ti", "disk": "10Ti" }),
            Size::Tiny => json!({ "cpu": "1m", "memory": "1Mi", "disk": "1Mi" }),
        };
        json!({
            "total": total,
            "allocated": { "cpu": "0", "memory": "0", "disk": "0" },
            "available": total,
        })
    }
}

/// How a fleet behaves.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of workers.
    pub workers: usize,
    /// Worker ids are `PREFIX-N`.
    pub prefix: String,
    /// What each offers.
    pub size: Size,
    /// Connections shared by the heartbeats.
    pub heartbeat_conns: usize,
    /// Time between two heartbeats of one worker until the manager's answers give another.
    pub interval: Duration,
    /// Whether lost connections are expected (the manager is being restarted): counted and
    /// retried instead of failing the run. Non-2xx answers other than 404 fail it either way.
    pub tolerant: bool,
}

/// Counters of a fleet, as a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetStats {
    /// Heartbeats answered 2xx.
    pub heartbeats: u64,
    /// Heartbeats that got no answer (connection lost or refused).
    pub heartbeat_errors: u64,
    /// Registrations after a 404.
    pub reregistrations: u64,
    /// The longest time between two acknowledged heartbeats of one worker.
    pub max_gap: Duration,
    /// The slowest heartbeat answer.
    pub slowest_heartbeat: Duration,
    /// The heartbeat interval the manager's last answer gave.
    pub interval: Duration,
    /// The longest grace the manager's answers gave (zero before the first answer).
    pub grace: Duration,
    /// Watch answers received.
    pub watch_answers: u64,
    /// Status reports sent.
    pub status_reports: u64,
    /// Tasks reported `Running` and not rejected.
    pub running: u64,
    /// Task updates the manager rejected.
    pub rejected: u64,
}

impl FleetStats {
    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "heartbeats": self.heartbeats,
            "heartbeat_errors": self.heartbeat_errors,
            "reregistrations": self.reregistrations,
            "max_heartbeat_gap_ms": self.max_gap.as_millis() as u64,
            "slowest_heartbeat_ms": self.slowest_heartbeat.as_millis() as u64,
            "heartbeat_interval_ms": self.interval.as_millis() as u64,
            "heartbeat_grace_ms": self.grace.as_millis() as u64,
            "watch_answers": self.watch_answers,
            "status_reports": self.status_reports,
            "running": self.running,
            "rejected": self.rejected,
        })
    }
}

struct Shared {
    addr: SocketAddr,
    join: Option<Bearer>,
    cfg: FleetConfig,
    resources: Value,
    heartbeat_body: Bytes,
    epoch: Instant,
    /// Set once a worker has registered (until then it sends nothing else): its own credential,
    /// the one its first registration issued (`None` against a manager from before tokens).
    credentials: Vec<OnceLock<Option<Bearer>>>,
    last_beat_ms: Vec<AtomicU64>,
    heartbeats: AtomicU64,
    heartbeat_errors: AtomicU64,
    reregistrations: AtomicU64,
    max_gap_ms: AtomicU64,
    slowest_heartbeat_us: AtomicU64,
    /// The interval the manager's last heartbeat answer gave.
    interval_ms: AtomicU64,
    /// The longest grace its answers gave.
    grace_ms: AtomicU64,
    watch_answers: AtomicU64,
    status_reports: AtomicU64,
    running: AtomicU64,
    rejected: AtomicU64,
    first_rejection: Mutex<Option<String>>,
    fatal: Mutex<Option<String>>,
}

impl Shared {
    fn id(&self, i: usize) -> String {
        format!("{}-{i}", self.cfg.prefix)
    }

    fn register_body(&self, i: usize) -> Bytes {
        Bytes::from(
            json!({ "id": self.id(i), "resources": self.resources, "version": "scale-sim" })
                .to_string(),
        )
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn beat(&self, i: usize) {
        let now = self.now_ms();
        let last = self.last_beat_ms[i].swap(now, Ordering::Relaxed);
        self.max_gap_ms
            .fetch_max(now.saturating_sub(last), Ordering::Relaxed);
    }

    fn fail(&self, message: String) {
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(message);
        }
    }

    /// Whether worker `i` has registered.
    fn registered(&self, i: usize) -> bool {
        self.credentials[i].get().is_some()
    }

    /// Worker `i`'s own credential, once it has registered with a manager that takes tokens.
    fn credential(&self, i: usize) -> Option<&Bearer> {
        self.credentials[i].get().and_then(Option::as_ref)
    }

    /// Registers worker `i`: the first time with the join token (keeping the credential the
    /// answer carries), after that with its own credential, as a restarted worker does.
    async fn register(&self, conn: &mut Conn, i: usize) -> Result<()> {
        let first = !self.registered(i);
        let auth = if first {
            self.join.as_ref()
        } else {
            self.credential(i)
        };
        let answer = conn
            .expect_ok_as(
                auth,
                Method::POST,
                "/v1/workers",
                Some(self.register_body(i)),
            )
            .await
            .with_context(|| format!("registering worker {}", self.id(i)))?;
        // Before the worker counts as registered, so that its first heartbeat's gap is measured
        // from now.
        self.last_beat_ms[i].store(self.now_ms(), Ordering::Relaxed);
        if first {
            let credential = match &self.join {
                None => None,
                Some(_) => {
                    let registered: Registered = answer.json()?;
                    let Some(c) = registered.credential else {
                        bail!(
                            "registering worker {} with the join token issued no credential",
                            self.id(i)
                        );
                    };
                    Some(Bearer::new(&c)?)
                }
            };
            let _ = self.credentials[i].set(credential);
        }
        Ok(())
    }
}

/// A fleet of simulated workers; dropping it stops them.
pub struct Fleet {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// A fleet for the manager `api` names (its join token registers the workers); nothing runs
    /// until [`Fleet::start_heartbeats`].
    pub fn new(api: &Api, cfg: FleetConfig) -> Self {
        let resources = cfg.size.resources();
        let heartbeat_body =
            Bytes::from(json!({ "resources": resources, "healthy": true }).to_string());
        let n = cfg.workers;
        Fleet {
            shared: Arc::new(Shared {
                addr: api.addr,
                join: api.join.clone(),
                resources,
                heartbeat_body,
                epoch: Instant::now(),
                credentials: (0..n).map(|_| OnceLock::new()).collect(),
                last_beat_ms: (0..n).map(|_| AtomicU64::new(0)).collect(),
                heartbeats: AtomicU64::new(0),
                heartbeat_errors: AtomicU64::new(0),
                reregistrations: AtomicU64::new(0),
                max_gap_ms: AtomicU64::new(0),
                slowest_heartbeat_us: AtomicU64::new(0),
                interval_ms: AtomicU64::new(cfg.interval.as_millis() as u64),
                grace_ms: AtomicU64::new(0),
                watch_answers: AtomicU64::new(0),
                status_reports: AtomicU64::new(0),
                running: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                first_rejection: Mutex::new(None),
                fatal: Mutex::new(None),
                cfg,
            }),
            tasks: JoinSet::new(),
        }
    }

    /// Starts the heartbeat pool: each connection serves every K-th worker, spacing its workers'
    /// heartbeats evenly over the interval. Workers not yet registered are skipped.
    pub fn start_heartbeats(&mut self) {
        let k = self.shared.cfg.heartbeat_conns.max(1);
        for first in 0..k {
            let s = self.shared.clone();
            self.tasks
                .spawn(async move { heartbeat_loop(s, first, k).await });
        }
    }

    /// Registers every worker over `conns` connections; returns how long it took.
    pub async fn register_all(&self, conns: usize) -> Result<Duration> {
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut set = JoinSet::new();
        for _ in 0..conns.max(1) {
            let s = self.shared.clone();
            let next = next.clone();
            set.spawn(async move {
                let mut conn = Conn::new(s.addr);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= s.cfg.workers {
                        return Ok::<_, anyhow::Error>(());
                    }
                    s.register(&mut conn, i).await?;
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        Ok(start.elapsed())
    }

    /// Starts one watcher per worker, each on its own connection (at most 64 connecting at once).
    pub fn start_watchers(&mut self) {
        let gate = Arc::new(Semaphore::new(64));
        for i in 0..self.shared.cfg.workers {
            let s = self.shared.clone();
            let gate = gate.clone();
            self.tasks.spawn(async move {
                if let Err(e) = watch_loop(&s, i, gate).await {
                    s.fail(format!("{e:#}"));
                }
            });
        }
    }

    /// The first error that should end the run, if any.
    pub fn fatal(&self) -> Option<String> {
        self.shared
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The first rejected update's reason, if any.
    pub fn first_rejection(&self) -> Option<String> {
        self.shared
            .first_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resets the longest heartbeat gap and the slowest answer (e.g. before the manager is
    /// killed).
    pub fn reset_max_gap(&self) {
        self.shared.max_gap_ms.store(0, Ordering::Relaxed);
        self.shared.slowest_heartbeat_us.store(0, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn stats(&self) -> FleetStats {
        let s = &self.shared;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FleetStats {
            heartbeats: get(&s.heartbeats),
            heartbeat_errors: get(&s.heartbeat_errors),
            reregistrations: get(&s.reregistrations),
            max_gap: Duration::from_millis(get(&s.max_gap_ms)),
            slowest_heartbeat: Duration::from_micros(get(&s.slowest_heartbeat_us)),
            interval: Duration::from_millis(get(&s.interval_ms)),
            grace: Duration::from_millis(get(&s.grace_ms)),
            watch_answers: get(&s.watch_answers),
            status_reports: get(&s.status_reports),
            running: get(&s.running),
            rejected: get(&s.rejected),
        }
    }
}

async fn heartbeat_loop(s: Arc<Shared>, first: usize, k: usize) {
    let mine: Vec<usize> = (first..s.cfg.workers).step_by(k).collect();
    if mine.is_empty() {
        return;
    }
    let mut conn = Conn::new(s.addr);
    let interval = || Duration::from_millis(s.interval_ms.load(Ordering::Relaxed).max(1));
    // Stagger the pool's connections over the first interval too.
    let mut round = tokio::time::Instant::now() + interval().mul_f64(first as f64 / k as f64);
    loop {
        // Each round at the interval the manager gave last.
        let every = interval();
        let spacing = every / mine.len() as u32;
        for (j, &i) in mine.iter().enumerate() {
            tokio::time::sleep_until(round + spacing * j as u32).await;
            if !s.registered(i) {
                continue;
            }
            if let Err(e) = heartbeat(&s, &mut conn, i).await {
                if s.cfg.tolerant {
                    s.heartbeat_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.fail(format!("{e:#}"));
                    return;
                }
            }
        }
        round += every;
        let now = tokio::time::Instant::now();
        if round < now {
            // Behind (the manager answers slowly): start the next round at once.
            round = now;
        }
    }
}

async fn heartbeat(s: &Shared, conn: &mut Conn, i: usize) -> Result<()> {
    let path = format!("/v1/workers/{}/heartbeat", s.id(i));
    let sent = Instant::now();
    let a = conn
        .call_as(
            s.credential(i),
            Method::POST,
            &path,
            Some(s.heartbeat_body.clone()),
        )
        .await?;
    s.slowest_heartbeat_us
        .fetch_max(sent.elapsed().as_micros() as u64, Ordering::Relaxed);
    if a.ok() {
        s.heartbeats.fetch_add(1, Ordering::Relaxed);
        s.beat(i);
        // A manager from before issue 18 answers `null`: the interval stays as it was.
        if let Some(pace) = a.json::<Option<HeartbeatAnswer>>()? {
            s.interval_ms
                .store(pace.heartbeat_interval_ms, Ordering::Relaxed);
            s.grace_ms
                .fetch_max(pace.heartbeat_grace_ms, Ordering::Relaxed);
        }
        Ok(())
    } else if a.status == StatusCode::NOT_FOUND {
        s.reregistrations.fetch_add(1, Ordering::Relaxed);
        s.register(conn, i).await
    } else {
        let message = format!("POST {path} answered {}: {}", a.status, a.body_text());
        s.fail(message.clone());
        anyhow::bail!(message)
    }
}

/// A watch answer, reading only what a simulated worker needs.
#[derive(Deserialize)]
struct WatchAnswer {
    index: u64,
    #[serde(default = "yes")]
    full: bool,
    instances: Vec<LeanAssignment>,
    #[serde(default)]
    removed: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct LeanAssignment {
    instance: String,
    desired: String,
    job: LeanJob,
}

#[derive(Deserialize)]
struct LeanJob {
    tasks: Vec<LeanTask>,
}

#[derive(Deserialize)]
struct LeanTask {
    name: String,
}

/// Task updates per status report.
const BATCH: usize = 500;

async fn watch_loop(s: &Shared, i: usize, gate: Arc<Semaphore>) -> Result<()> {
    while !s.registered(i) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let credential = s.credential(i).cloned();
    // Its own connection, presenting its own credential on every call.
    let mut conn = {
        let _permit = gate.acquire().await?;
        Conn::open(s.addr, credential).await?
    };
    let id = s.id(i);
    let mut index = 0u64;
    // Instance → whether it was reported started.
    let mut held: HashMap<String, bool> = HashMap::new();
    loop {
        let path = format!("/v1/workers/{id}/assignments?index={index}&wait=30s");
        let a = conn.call(Method::GET, &path, None).await?;
        if a.status == StatusCode::NOT_FOUND {
            s.reregistrations.fetch_add(1, Ordering::Relaxed);
            s.register(&mut conn, i).await?;
            index = 0;
            continue;
        }
        if !a.ok() {
            anyhow::bail!("GET {path} answered {}: {}", a.status, a.body_text());
        }
        s.watch_answers.fetch_add(1, Ordering::Relaxed);
        let answer: WatchAnswer = a.json()?;
        index = answer.index;
        if answer.full {
            let live: std::collections::HashSet<&str> = answer
                .instances
                .iter()
                .map(|x| x.instance.as_str())
                .collect();
            held.retain(|k, _| live.contains(k.as_str()));
        }
        for r in &answer.removed {
            held.remove(r);
        }
        let mut starting = Vec::new();
        for x in answer.instances {
            let run = x.desired.eq_ignore_ascii_case("run");
            let started = held.entry(x.instance.clone()).or_insert(false);
            if run && !*started {
                *started = true;
                for t in x.job.tasks {
                    starting.push((x.instance.clone(), t.name));
                }
            }
        }
        for chunk in starting.chunks(BATCH) {
            report(s, &mut conn, &id, chunk, "Starting").await?;
        }
        for chunk in starting.chunks(BATCH) {
            let accepted = report(s, &mut conn, &id, chunk, "Running").await?;
            s.running.fetch_add(accepted, Ordering::Relaxed);
        }
    }
}

/// Reports `state` for every (instance, task) of `chunk`; returns how many were accepted.
async fn report(
    s: &Shared,
    conn: &mut Conn,
    id: &str,
    chunk: &[(String, String)],
    state: &str,
) -> Result<u64> {
    let updates: Vec<Value> = chunk
        .iter()
        .map(|(instance, task)| json!({ "instance": instance, "task": task, "state": state }))
        .collect();
    let body = Bytes::from(Value::Array(updates).to_string());
    let path = format!("/v1/workers/{id}/status");
    let answer: Value = conn.post(&path, body).await?.json()?;
    s.status_reports.fetch_add(1, Ordering::Relaxed);
    let rejected = answer
        .get("rejected")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(first) = rejected.first() {
        s.rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        let mut f = s.first_rejection.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(format!("{state} for worker {id}: {first}"));
        }
    }
    Ok((chunk.len() - rejected.len()) as u64)
}
