//! The manager's API over [`HttpTransport`]: the three audiences' traits, and the calls only
//! HTTP has (tokens, spec text, logs).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::Method;
use orkestrator_core::api::*;
use orkestrator_core::events::{EventFilter, StreamItem, StreamStart};
use orkestrator_core::ids::{JobId, SchedulerId, WorkerId};
use orkestrator_core::metrics::{JobMetrics, MetricsAccepted, MetricsReport, WorkerMetrics};
use orkestrator_core::runtime::LogOptions;
use orkestrator_core::spec::Job;
use orkestrator_core::transport::{ClientApi, EventStream, SchedulerApi, WorkerApi};
use orkestrator_core::{Error, Result};

use super::transport::{ByteStream, HttpTransport};

impl HttpTransport {
    /// What the manager says of the token this client presents (`GET /v1/auth/whoami`).
    pub async fn whoami(&self) -> Result<orkestrator_core::auth::TokenInfo> {
        self.call(Method::GET, "/v1/auth/whoami", NONE, Duration::ZERO)
            .await
    }

    /// Every token and credential (`GET /v1/tokens`; operators only).
    pub async fn list_tokens(&self) -> Result<Vec<orkestrator_core::auth::TokenInfo>> {
        self.call(Method::GET, "/v1/tokens", NONE, Duration::ZERO)
            .await
    }

    /// Creates a token (`POST /v1/tokens`; operators only).
    pub async fn create_token(
        &self,
        req: &orkestrator_core::auth::CreateToken,
    ) -> Result<orkestrator_core::auth::IssuedToken> {
        self.call(Method::POST, "/v1/tokens", Some(req), Duration::ZERO)
            .await
    }

    /// Revokes a token (`DELETE /v1/tokens/ID`; operators only).
    pub async fn revoke_token(&self, id: &str) -> Result<orkestrator_core::auth::TokenInfo> {
        self.call(
            Method::DELETE,
            &format!("/v1/tokens/{}", seg(id)),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    /// Collects one ended job now, whatever the manager's `--gc-after` (`POST /v1/gc?job=NAME`;
    /// operators only): a 409 while it has not ended.
    pub async fn gc_job(&self, job: &str) -> Result<orkestrator_core::manager::GcReport> {
        let path = format!("/v1/gc?job={}", seg(job));
        self.call(Method::POST, &path, NONE, Duration::ZERO).await
    }

    /// Every secret: names, versions, sizes and times, never values (`GET /v1/secrets`;
    /// operators only).
    pub async fn list_secrets(&self) -> Result<Vec<orkestrator_core::secrets::SecretInfo>> {
        self.call(Method::GET, "/v1/secrets", NONE, Duration::ZERO)
            .await
    }

    /// Creates a secret (`POST /v1/secrets`; operators only).
    pub async fn create_secret(
        &self,
        req: &orkestrator_core::secrets::CreateSecret,
    ) -> Result<orkestrator_core::secrets::SecretInfo> {
        self.call(Method::POST, "/v1/secrets", Some(req), Duration::ZERO)
            .await
    }

    /// Makes a new version of a secret (`PUT /v1/secrets/NAME`; operators only).
    pub async fn update_secret(
        &self,
        name: &str,
        req: &orkestrator_core::secrets::UpdateSecret,
    ) -> Result<orkestrator_core::secrets::SecretInfo> {
        self.call(
            Method::PUT,
            &format!("/v1/secrets/{}", seg(name)),
            Some(req),
            Duration::ZERO,
        )
        .await
    }

    /// Removes a secret (`DELETE /v1/secrets/NAME`; operators only).
    pub async fn remove_secret(&self, name: &str) -> Result<orkestrator_core::secrets::SecretInfo> {
        self.call(
            Method::DELETE,
            &format!("/v1/secrets/{}", seg(name)),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    /// The named volumes, of one job or all (`GET /v1/volumes[?job=J]`).
    pub async fn list_volumes(&self, job: Option<&str>) -> Result<VolumeList> {
        let path = match job {
            Some(j) => format!("/v1/volumes?job={}", seg(j)),
            None => "/v1/volumes".to_owned(),
        };
        self.call(Method::GET, &path, NONE, Duration::ZERO).await
    }

    /// Tells the worker holding a volume to remove it
    /// (`DELETE /v1/volumes/{job}/{index}/{volume}[?worker=W]`; operators only).
    pub async fn remove_volume(&self, of: &VolumeRef, worker: Option<&str>) -> Result<VolumeView> {
        let mut path = format!(
            "/v1/volumes/{}/{}/{}",
            seg(of.job.as_str()),
            of.index,
            seg(&of.volume)
        );
        if let Some(w) = worker {
            path.push_str(&format!("?worker={}", seg(w)));
        }
        self.call(Method::DELETE, &path, NONE, Duration::ZERO).await
    }

    /// Submits a job spec as text in its own format (the manager parses and validates it, so
    /// errors carry the same field paths as `orkestrator validate`).
    pub async fn submit_spec_text(
        &self,
        text: String,
        format: orkestrator_core::spec::Format,
    ) -> Result<SubmitResponse> {
        let ctype = match format {
            orkestrator_core::spec::Format::Yaml => "application/yaml",
            orkestrator_core::spec::Format::Toml => "application/toml",
            orkestrator_core::spec::Format::Json => "application/json",
        };
        self.send(
            Method::POST,
            "/v1/jobs",
            ctype,
            Bytes::from(text),
            Duration::ZERO,
        )
        .await
    }
}

impl HttpTransport {
    /// The last lines of one task's output: `GET /v1/jobs/{job}/logs` (the manager reads them from
    /// the task's worker). `q.follow` is ignored: see [`HttpTransport::follow_logs`].
    pub async fn logs(&self, job: &JobId, q: &LogsQuery) -> Result<Logs> {
        let path = logs_path(job, q, false);
        self.call::<(), _>(Method::GET, &path, None, Duration::ZERO)
            .await
    }

    /// One task's output as it is written: `GET /v1/jobs/{job}/logs?follow=true`. The stream
    /// goes on into the task's next containers (restarts, replacements) and ends when the job
    /// does. Errors before it starts (unknown job or task, worker unreachable) are returned.
    pub async fn follow_logs(&self, job: &JobId, q: &LogsQuery) -> Result<ByteStream> {
        self.stream_get(&logs_path(job, q, true), "text/plain", &[])
            .await
    }

    /// One container's output from a worker's own endpoint: `GET /v1/containers/{id}/logs`, the
    /// last `tail` lines, since Unix time `since` (seconds) if given.
    pub async fn container_logs(
        &self,
        container: &str,
        tail: usize,
        since: Option<i64>,
    ) -> Result<ContainerLogs> {
        let mut path = format!("/v1/containers/{}/logs?tail={tail}", seg(container));
        if let Some(s) = since {
            path.push_str(&format!("&since={s}"));
        }
        self.call::<(), _>(Method::GET, &path, None, Duration::ZERO)
            .await
    }

    /// One container's output from a worker's own endpoint as a stream
    /// (`GET /v1/containers/{id}/logs?follow=true` when `options.follow`): it ends when the
    /// container stops.
    pub async fn container_log_stream(
        &self,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let mut path = format!(
            "/v1/containers/{}/logs?tail={tail}&follow={}",
            seg(container),
            options.follow
        );
        if let Some(s) = options.since {
            path.push_str(&format!("&since={s}"));
        }
        self.stream_get(&path, "text/plain", &[]).await
    }
}

/// `/v1/jobs/{job}/logs?...` for `q`, following or not.
fn logs_path(job: &JobId, q: &LogsQuery, follow: bool) -> String {
    let mut query = Vec::new();
    if let Some(t) = &q.task {
        query.push(format!("task={}", seg(t)));
    }
    if let Some(i) = q.index {
        query.push(format!("index={i}"));
    }
    if let Some(n) = q.tail {
        query.push(format!("tail={n}"));
    }
    if let Some(s) = &q.since {
        query.push(format!("since={}", seg(s)));
    }
    if follow {
        query.push("follow=true".to_owned());
    }
    format!("/v1/jobs/{}/logs?{}", seg(job.as_str()), query.join("&"))
}

fn seg(s: &str) -> String {
    // Ids are DNS-label-like, but escape anything else so a path can never be broken out of.
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn wait_query(index: u64, wait: Duration) -> String {
    format!("?index={index}&wait={}ms", wait.as_millis())
}

const NONE: Option<&()> = None;

/// `path?limit=N&continue=TOKEN` for a list request.
fn list_path(path: &str, q: &ListQuery) -> String {
    let mut out = path.to_owned();
    let mut sep = '?';
    if let Some(l) = q.limit {
        out.push_str(&format!("{sep}limit={l}"));
        sep = '&';
    }
    if let Some(t) = &q.after {
        out.push_str(&format!("{sep}continue={}", seg(t)));
    }
    out
}

#[async_trait]
impl ClientApi for HttpTransport {
    async fn submit_job(&self, job: &Job) -> Result<SubmitResponse> {
        self.call(Method::POST, "/v1/jobs", Some(job), Duration::ZERO)
            .await
    }

    async fn list_jobs_page(&self, q: &ListQuery) -> Result<Page<JobSummary>> {
        self.call(Method::GET, &list_path("/v1/jobs", q), NONE, Duration::ZERO)
            .await
    }

    async fn get_job(&self, job: &JobId) -> Result<JobView> {
        self.call(
            Method::GET,
            &format!("/v1/jobs/{}", seg(job.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn stop_job(&self, job: &JobId) -> Result<JobView> {
        self.call(
            Method::POST,
            &format!("/v1/jobs/{}/stop", seg(job.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn restart_job(&self, job: &JobId) -> Result<SubmitResponse> {
        self.call(
            Method::POST,
            &format!("/v1/jobs/{}/restart", seg(job.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn list_workers_page(&self, q: &ListQuery) -> Result<Page<WorkerView>> {
        self.call(
            Method::GET,
            &list_path("/v1/workers", q),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn gc(&self) -> Result<orkestrator_core::manager::GcReport> {
        self.call(Method::POST, "/v1/gc", NONE, Duration::ZERO)
            .await
    }

    async fn health(&self) -> Result<HealthReport> {
        self.call(Method::GET, "/v1/health", NONE, Duration::ZERO)
            .await
    }

    async fn events(&self, start: StreamStart, filter: &EventFilter) -> Result<EventStream> {
        let mut query = Vec::new();
        match start {
            StreamStart::Now => {}
            StreamStart::Index(i) => query.push(format!("index={i}")),
            StreamStart::After(p) => query.push(format!("index={p}")),
        }
        if !filter.topics.is_empty() {
            let t: Vec<&str> = filter.topics.iter().map(|t| t.as_str()).collect();
            query.push(format!("topic={}", t.join(",")));
        }
        if let Some(k) = &filter.key {
            query.push(format!("key={}", seg(k)));
        }
        let path = format!("/v1/events?{}", query.join("&"));
        let body = self.stream_get(&path, "text/event-stream", &[]).await?;
        let base = self.base().to_owned();
        let decoded = body
            .scan(crate::http::sse::SseDecoder::new(), move |dec, chunk| {
                let out: Vec<Result<StreamItem>> = match chunk {
                    Err(e) => vec![Err(e)],
                    Ok(bytes) => match dec.feed(&bytes) {
                        Err(m) => vec![Err(Error::Unreachable {
                            addr: base.clone(),
                            message: m,
                        })],
                        Ok(msgs) => msgs
                            .into_iter()
                            .map(|m| {
                                let item = match m.event.as_str() {
                                    "reset" => serde_json::from_str(&m.data).map(StreamItem::Reset),
                                    "bookmark" => {
                                        serde_json::from_str(&m.data).map(StreamItem::Bookmark)
                                    }
                                    _ => serde_json::from_str(&m.data).map(StreamItem::Event),
                                };
                                item.map_err(|e| Error::Unreachable {
                                    addr: base.clone(),
                                    message: format!("an event the client cannot read: {e}"),
                                })
                            })
                            .collect(),
                    },
                };
                futures_util::future::ready(Some(futures_util::stream::iter(out)))
            })
            .flatten();
        Ok(Box::pin(decoded))
    }

    async fn job_metrics(&self, job: &JobId) -> Result<JobMetrics> {
        let path = format!("/v1/jobs/{}/metrics", seg(job.as_str()));
        self.call(Method::GET, &path, NONE, Duration::ZERO).await
    }

    async fn worker_metrics(&self, worker: &WorkerId) -> Result<WorkerMetrics> {
        let path = format!("/v1/workers/{}/metrics", seg(worker.as_str()));
        self.call(Method::GET, &path, NONE, Duration::ZERO).await
    }
}

#[async_trait]
impl WorkerApi for HttpTransport {
    async fn report_metrics(
        &self,
        worker: &WorkerId,
        report: &MetricsReport,
    ) -> Result<MetricsAccepted> {
        let path = format!("/v1/workers/{}/metrics", seg(worker.as_str()));
        self.call(Method::POST, &path, Some(report), Duration::ZERO)
            .await
    }

    async fn register_worker(&self, req: &RegisterWorker) -> Result<Registered> {
        self.register("/v1/workers", req).await
    }

    async fn worker_heartbeat(
        &self,
        worker: &WorkerId,
        hb: &WorkerHeartbeat,
    ) -> Result<HeartbeatAnswer> {
        self.call(
            Method::POST,
            &format!("/v1/workers/{}/heartbeat", seg(worker.as_str())),
            Some(hb),
            Duration::ZERO,
        )
        .await
    }

    async fn watch_assignments(
        &self,
        worker: &WorkerId,
        index: u64,
        wait: Duration,
    ) -> Result<Assignments> {
        let path = format!(
            "/v1/workers/{}/assignments{}",
            seg(worker.as_str()),
            wait_query(index, wait)
        );
        self.call(Method::GET, &path, NONE, wait).await
    }

    async fn report_status(
        &self,
        worker: &WorkerId,
        updates: &[TaskUpdate],
    ) -> Result<ReportResponse> {
        self.call(
            Method::POST,
            &format!("/v1/workers/{}/status", seg(worker.as_str())),
            Some(updates),
            Duration::ZERO,
        )
        .await
    }

    async fn volumes_removed(&self, worker: &WorkerId, removed: &VolumesRemoved) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/v1/workers/{}/volumes/removed", seg(worker.as_str())),
            Some(removed),
            Duration::ZERO,
        )
        .await
    }

    async fn instance_secrets(
        &self,
        worker: &WorkerId,
        instance: &orkestrator_core::ids::InstanceId,
    ) -> Result<orkestrator_core::secrets::InstanceSecrets> {
        let path = format!(
            "/v1/workers/{}/instances/{}/secrets",
            seg(worker.as_str()),
            seg(instance.as_str())
        );
        self.call(Method::GET, &path, NONE, Duration::ZERO).await
    }
}

#[async_trait]
impl SchedulerApi for HttpTransport {
    async fn register_scheduler(&self, req: &RegisterScheduler) -> Result<Registered> {
        self.register("/v1/schedulers", req).await
    }

    async fn scheduler_heartbeat(&self, scheduler: &SchedulerId) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/v1/schedulers/{}/heartbeat", seg(scheduler.as_str())),
            NONE,
            Duration::ZERO,
        )
        .await
    }

    async fn scheduling_work(
        &self,
        scheduler: &SchedulerId,
        index: u64,
        wait: Duration,
    ) -> Result<SchedulingWork> {
        let path = format!(
            "/v1/schedulers/{}/work{}",
            seg(scheduler.as_str()),
            wait_query(index, wait)
        );
        self.call(Method::GET, &path, NONE, wait).await
    }

    async fn submit_decisions(
        &self,
        scheduler: &SchedulerId,
        decisions: &[Decision],
    ) -> Result<Vec<DecisionResult>> {
        self.call(
            Method::POST,
            &format!("/v1/schedulers/{}/decisions", seg(scheduler.as_str())),
            Some(decisions),
            Duration::ZERO,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("web-1"), "web-1");
        assert_eq!(seg("a/../b"), "a%2F..%2Fb");
    }
}
