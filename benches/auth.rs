//! What checking a token costs (issue 11: "checking one must stay cheap at 10,000
//! heartbeats/s").
//!
//! A manager on the in-memory store holds an operator token, a join token and the credentials of
//! `WORKERS` workers registered with the join token (as a 10,000-worker cluster's table would).
//! Measured, all in this process, no network:
//!
//! - `parse`: [`TokenParts::parse`] of a credential (`ork.ID.SECRET`).
//! - `sha256`: the digest of a secret ([`orkestrator_core::auth::digest`]).
//! - `authenticate/*`: [`Tokens::authenticate`](orkestrator_core::manager::Tokens::authenticate) — parse, SHA-256, look-up by id, constant-time
//!   compare, under the token table's read lock — for a worker's credential, the operator token,
//!   a wrong secret of a known id, and a malformed token.
//! - `authenticate/worker, 2 threads`: two threads authenticating at once (the read lock shared).
//! - `heartbeat/in-process`: [`Workers::heartbeat`](orkestrator_core::manager::Workers::heartbeat) alone (what an HTTP heartbeat asks of
//!   the manager's core), the yardstick.
//! - `heartbeat/router`: a whole `POST /v1/workers/ID/heartbeat` through the real router
//!   (authentication layer, rule, per-credential counting, JSON body, handler), in memory.
//!
//! A scripted part first prints each figure as the median of 5 runs, its ratio to an HTTP
//! heartbeat through the router, and what authenticating 10,000 heartbeats a second costs in
//! share of one core; then criterion measures the same functions.
//!
//! `cargo bench -p orkestrator-benches --bench auth` (add `-- --quick` for a short criterion run,
//! a criterion filter such as `-- authenticate` to run only what it selects, or `-- scripted` for
//! the scripted part alone).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use criterion::Criterion;
use http_body_util::BodyExt;
use orkestrator_core::api::{RegisterWorker, WorkerHeartbeat, WorkerResources};
use orkestrator_core::auth::{CreateToken, Role, TokenParts};
use orkestrator_core::ids::WorkerId;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::Resources;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::units::{ByteSize, Cpu};
use tower::ServiceExt;

/// Worker credentials in the table (the 10,000-worker cluster).
const WORKERS: usize = 10_000;
/// Calls per scripted run.
const CALLS: u32 = 100_000;
/// Scripted runs per figure (the median is printed).
const RUNS: usize = 5;
/// The heartbeat rate the issue names.
const RATE: f64 = 10_000.0;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A manager with its tokens, and what the measured calls present.
struct Fixture {
    rt: tokio::runtime::Runtime,
    manager: Manager,
    router: Router,
    operator: String,
    /// Worker `WORKERS / 2`'s credential, and its id.
    credential: String,
    worker: WorkerId,
    /// The operator token's id with another secret.
    wrong: String,
    heartbeat: WorkerHeartbeat,
    heartbeat_body: String,
}

fn resources() -> WorkerResources {
    let total = Resources {
        cpu: Cpu::from_cores(16),
        memory: ByteSize::gib(64),
        disk: ByteSize::gib(500),
    };
    WorkerResources {
        total,
        allocated: Resources::ZERO,
        available: total,
    }
}

fn fixture() -> Res<Fixture> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (manager, operator, credential, worker) = rt.block_on(async {
        let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new())).await?;
        let token = |role: Role| {
            let m = m.clone();
            async move {
                m.tokens()
                    .create(CreateToken {
                        role,
                        name: Some("auth bench".into()),
                    })
                    .await
                    .map(|t| t.token)
            }
        };
        let operator = token(Role::Operator).await?;
        let join = m.tokens().authenticate(&token(Role::Join).await?)?;
        let mut picked = None;
        for i in 0..WORKERS {
            let id = WorkerId::new(format!("w{i}"));
            let registered = m
                .workers()
                .register_as(
                    RegisterWorker {
                        id: id.clone(),
                        address: None,
                        labels: BTreeMap::new(),
                        host_volumes: Default::default(),
                        resources: resources(),
                        version: "bench".into(),
                    },
                    &join,
                )
                .await?;
            if i == WORKERS / 2 {
                let credential = registered
                    .credential
                    .ok_or("registering with the join token issued no credential")?;
                picked = Some((credential, id));
            }
        }
        let (credential, worker) = picked.ok_or("no worker registered")?;
        Res::Ok((m, operator, credential, worker))
    })?;
    let wrong = {
        let p = TokenParts::parse(&operator).ok_or("the operator token does not parse")?;
        let flipped: String = p
            .secret
            .chars()
            .rev()
            .map(|c| if c == '0' { '1' } else { '0' })
            .collect();
        format!("ork.{}.{flipped}", p.id)
    };
    let heartbeat = WorkerHeartbeat {
        resources: resources(),
        healthy: true,
        message: None,
    };
    let heartbeat_body = serde_json::to_string(&heartbeat)?;
    let router = orkestrator_runtime::http::server::router(manager.clone());
    Ok(Fixture {
        rt,
        manager,
        router,
        operator,
        credential,
        worker,
        wrong,
        heartbeat,
        heartbeat_body,
    })
}

impl Fixture {
    fn authenticate(&self, token: &str) -> bool {
        self.manager.tokens().authenticate(black_box(token)).is_ok()
    }

    fn heartbeat_in_process(&self) {
        self.rt
            .block_on(
                self.manager
                    .workers()
                    .heartbeat(&self.worker, self.heartbeat.clone()),
            )
            .expect("the heartbeat is taken");
    }

    fn heartbeat_over_router(&self) {
        let req = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/v1/workers/{}/heartbeat", self.worker))
            .header("authorization", format!("Bearer {}", self.credential))
            .header("content-type", "application/json")
            .body(Body::from(self.heartbeat_body.clone()))
            .expect("a valid request");
        let status = self.rt.block_on(async {
            let resp = self
                .router
                .clone()
                .oneshot(req)
                .await
                .expect("the router answers");
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status
        });
        assert!(status.is_success(), "heartbeat answered {status}");
    }

    /// Two threads authenticating `calls` times each at once; the wall time.
    fn authenticate_two_threads(&self, calls: u64) -> Duration {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..calls {
                        black_box(self.authenticate(&self.credential));
                    }
                });
            }
        });
        start.elapsed()
    }
}

/// The median time per call of `f` over [`RUNS`] runs of `calls` calls.
fn median_per_call(calls: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..calls / 10 {
        f();
    }
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed() / calls
        })
        .collect();
    runs.sort();
    runs[RUNS / 2]
}

fn ns(d: Duration) -> String {
    format!("{:.0} ns", d.as_secs_f64() * 1e9)
}

fn scripted(fx: &Fixture) {
    assert!(fx.authenticate(&fx.credential), "the credential is valid");
    assert!(fx.authenticate(&fx.operator), "the operator token is valid");
    assert!(!fx.authenticate(&fx.wrong), "a wrong secret is refused");
    assert!(!fx.authenticate("ork.nope"), "a malformed token is refused");

    let p = TokenParts::parse(&fx.credential).expect("the credential parses");
    let secret = p.secret.to_owned();
    let rows: Vec<(&str, Duration)> = vec![
        (
            "parse (TokenParts::parse)",
            median_per_call(CALLS, || {
                black_box(TokenParts::parse(black_box(&fx.credential)));
            }),
        ),
        (
            "sha256 of the secret",
            median_per_call(CALLS, || {
                black_box(orkestrator_core::auth::digest(black_box(&secret)));
            }),
        ),
        (
            "authenticate: worker credential",
            median_per_call(CALLS, || {
                black_box(fx.authenticate(&fx.credential));
            }),
        ),
        (
            "authenticate: operator token",
            median_per_call(CALLS, || {
                black_box(fx.authenticate(&fx.operator));
            }),
        ),
        (
            "authenticate: wrong secret (401)",
            median_per_call(CALLS, || {
                black_box(fx.authenticate(&fx.wrong));
            }),
        ),
        (
            "authenticate: malformed (401)",
            median_per_call(CALLS, || {
                black_box(fx.authenticate("ork.nope"));
            }),
        ),
        ("authenticate: worker, 2 threads at once (wall per call)", {
            let mut runs: Vec<Duration> = (0..RUNS)
                .map(|_| fx.authenticate_two_threads(u64::from(CALLS)) / CALLS)
                .collect();
            runs.sort();
            runs[RUNS / 2]
        }),
        (
            "heartbeat: Manager::worker_heartbeat (in-process)",
            median_per_call(CALLS / 10, || fx.heartbeat_in_process()),
        ),
        (
            "heartbeat: POST through the router (in memory)",
            median_per_call(CALLS / 10, || fx.heartbeat_over_router()),
        ),
    ];
    let router = rows.last().map_or(Duration::ZERO, |r| r.1);
    println!(
        "\n== token checks: median of {RUNS} runs, {} worker credentials in the table ==",
        WORKERS
    );
    println!(
        "{:<58} {:>10} {:>14} {:>22}",
        "what", "per call", "/ router hb", "at 10,000/s, one core"
    );
    for (what, d) in &rows {
        let share = d.as_secs_f64() * RATE * 100.0;
        let ratio = d.as_secs_f64() / router.as_secs_f64().max(1e-12);
        println!(
            "{what:<58} {:>10} {:>13.3}× {:>21.3}%",
            ns(*d),
            ratio,
            share
        );
    }
}

fn criterion_benches(c: &mut Criterion, fx: &Fixture) {
    let p = TokenParts::parse(&fx.credential).expect("the credential parses");
    let secret = p.secret.to_owned();
    c.bench_function("parse", |b| {
        b.iter(|| TokenParts::parse(black_box(&fx.credential)).is_some())
    });
    c.bench_function("sha256", |b| {
        b.iter(|| orkestrator_core::auth::digest(black_box(&secret)))
    });
    let mut g = c.benchmark_group("authenticate");
    g.bench_function("worker", |b| b.iter(|| fx.authenticate(&fx.credential)));
    g.bench_function("operator", |b| b.iter(|| fx.authenticate(&fx.operator)));
    g.bench_function("wrong_secret", |b| b.iter(|| fx.authenticate(&fx.wrong)));
    g.bench_function("malformed", |b| b.iter(|| fx.authenticate("ork.nope")));
    g.bench_function("worker_2_threads", |b| {
        b.iter_custom(|iters| fx.authenticate_two_threads(iters))
    });
    g.finish();
    let mut g = c.benchmark_group("heartbeat");
    g.bench_function("in_process", |b| b.iter(|| fx.heartbeat_in_process()));
    g.bench_function("router", |b| b.iter(|| fx.heartbeat_over_router()));
    g.finish();
}

fn main() -> Res<()> {
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("auth: run with `cargo bench` to measure");
        return Ok(());
    }
    let started = Instant::now();
    let fx = fixture()?;
    println!(
        "auth: {} workers registered with the join token in {:.1} s",
        WORKERS,
        started.elapsed().as_secs_f64()
    );
    // A criterion filter runs only the criterion benchmarks it selects; `scripted` (which
    // selects none of them) runs the scripted part alone.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty() || filters.iter().any(|f| f == "scripted") {
        scripted(&fx);
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &fx);
    c.final_summary();
    Ok(())
}
