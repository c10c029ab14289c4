//! Submission load: closed-loop requesters (one connection each) that submit a new one-task job
//! per request, the pre-loading of many pending tasks, and the store figures of `/v1/health`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::client::{Api, Conn};
use crate::report::Percentiles;

/// The most instances one job may ask for.
pub const MAX_COUNT: u64 = 1_000;

/// A job of `count` instances of one small task (the wrk script's job), as a request body.
pub fn job_body(name: &str, count: u64) -> Bytes {
    let count = if count > 1 {
        format!(",\"count\":{count}")
    } else {
        String::new()
    };
    Bytes::from(format!(
        "{{\"name\":\"{name}\"{count},\"tasks\":[{{\"name\":\"t\",\"image\":\"busybox:1.36\",\
         \"resources\":{{\"cpu\":\"10m\",\"memory\":\"6Mi\",\"disk\":\"1Mi\"}}}}]}}"
    ))
}

/// What one load level measured.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    /// Concurrent requesters.
    pub concurrency: usize,
    /// Requests answered (all 2xx: anything else fails the run).
    pub requests: u64,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// Latency of each request.
    pub latency: Percentiles,
}

impl LoadResult {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        crate::report::rate(self.requests, self.elapsed)
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "concurrency": self.concurrency,
            "requests": self.requests,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput(),
            "latency": self.latency.json(),
        })
    }
}

/// `concurrency` requesters, each on its own kept-alive connection presenting the operator
/// token, submit new one-task jobs named `PREFIX-REQUESTER-N` back to back for `duration`.
/// Connections are opened before the clock starts. Any non-2xx answer fails the run, naming the
/// request and the body.
pub async fn submit_load(
    api: &Api,
    concurrency: usize,
    duration: Duration,
    prefix: &str,
) -> Result<LoadResult> {
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let mut set = JoinSet::new();
    for r in 0..concurrency {
        let barrier = barrier.clone();
        let prefix = prefix.to_owned();
        let mut conn = api.open().await?;
        set.spawn(async move {
            barrier.wait().await;
            let end = Instant::now() + duration;
            let mut samples: Vec<u32> = Vec::with_capacity(8_192);
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let name = format!("{prefix}-{r}-{n}");
                let t = Instant::now();
                conn.post("/v1/jobs", job_body(&name, 1))
                    .await
                    .with_context(|| format!("submitting job {name}"))?;
                samples.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut all = Vec::new();
    while let Some(res) = set.join_next().await {
        all.extend(res??);
    }
    let elapsed = start.elapsed();
    Ok(LoadResult {
        concurrency,
        requests: all.len() as u64,
        elapsed,
        latency: Percentiles::of(&mut all),
    })
}

/// What a pre-load did.
#[derive(Debug, Clone, Copy)]
pub struct Preloaded {
    /// Jobs submitted.
    pub jobs: u64,
    /// Tasks they hold.
    pub tasks: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl Preloaded {
    /// As JSON.
    pub fn json(&self) -> Value {
        json!({ "jobs": self.jobs, "tasks": self.tasks, "elapsed_s": self.elapsed.as_secs_f64() })
    }
}

/// Submits `tasks` pending tasks as jobs of [`MAX_COUNT`] one-task instances (the last one
/// smaller) named `PREFIX-N`, over `conns` connections (operator token).
pub async fn preload(api: &Api, tasks: u64, conns: usize, prefix: &str) -> Result<Preloaded> {
    let jobs = tasks.div_ceil(MAX_COUNT);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..conns.max(1) {
        let next = next.clone();
        let prefix = prefix.to_owned();
        let mut conn = api.open().await?;
        set.spawn(async move {
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return Ok::<_, anyhow::Error>(());
                }
                let count = (tasks - j * MAX_COUNT).min(MAX_COUNT);
                let name = format!("{prefix}-{j}");
                conn.post("/v1/jobs", job_body(&name, count))
                    .await
                    .with_context(|| format!("pre-loading job {name} ({count} tasks)"))?;
            }
        });
    }
    let progress = {
        let next = next.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let sent = next.load(Ordering::Relaxed).min(jobs);
                eprintln!("scale: pre-loading: {sent} of {jobs} jobs sent");
            }
        })
    };
    let mut result = Ok(());
    while let Some(res) = set.join_next().await {
        if let Err(e) = res.map_err(anyhow::Error::from).and_then(|r| r) {
            result = Err(e);
            break;
        }
    }
    progress.abort();
    result?;
    Ok(Preloaded {
        jobs,
        tasks,
        elapsed: start.elapsed(),
    })
}

/// The store's figures in `GET /v1/health` → `manager.store` (absent before the rewrite).
pub use orkestrator_core::api::StoreStats;

/// Reads the store's figures, if the manager reports them (only to a read or operator token:
/// `conn` must present one).
pub async fn store_stats(conn: &mut Conn) -> Result<Option<StoreStats>> {
    let health: Value = conn.get("/v1/health").await?.json()?;
    Ok(parse_store_stats(&health))
}

/// The store's figures in a health report, if it has them.
fn parse_store_stats(health: &Value) -> Option<StoreStats> {
    serde_json::from_value(health.pointer("/manager/store")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::job_body;

    #[test]
    fn store_figures_are_read_when_reported() {
        let today = serde_json::json!({ "manager": { "status": "Ready", "index": 3 } });
        assert!(super::parse_store_stats(&today).is_none());
        let later = serde_json::json!({ "manager": { "store": {
            "commits": 10, "changes": 40, "commit_p50_us": 900, "commit_p99_us": 2500,
            "batch_max": 12
        } } });
        let s = super::parse_store_stats(&later).unwrap();
        assert_eq!(
            (s.commits, s.changes, s.commit_p99_us, s.batch_max),
            (10, 40, 2500, 12)
        );
    }

    #[test]
    fn job_bodies_are_json() {
        let one: serde_json::Value = serde_json::from_slice(&job_body("a-1", 1)).unwrap();
        assert!(one.get("count").is_none());
        let many: serde_json::Value = serde_json::from_slice(&job_body("b", 1000)).unwrap();
        assert_eq!(many["count"], 1000);
        assert_eq!(many["tasks"][0]["resources"]["cpu"], "10m");
    }
}
