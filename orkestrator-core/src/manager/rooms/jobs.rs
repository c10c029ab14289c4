//! The jobs room: submissions, stops, the job list and views, and where a task's output is.

use std::future::Future;
use std::sync::Arc;

use crate::api::{ApiError, JobSummary, JobView, ListQuery, LogSource, Page, SubmitResponse};
use crate::ids::JobId;
use crate::runtime::{LogOptions, LogStream};
use crate::spec::Job;

use crate::ids::parse_id;
use crate::manager::inner::{ApiResult, Inner};
use crate::manager::jobs;
use crate::manager::locks::lock;
use crate::manager::logs;
use crate::manager::views;

/// The manager's jobs, from [`Manager::jobs`](crate::manager::Manager::jobs).
#[derive(Clone, Copy)]
pub struct Jobs<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Jobs<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Jobs { inner }
    }

    /// Creates or updates a job. An identical re-submission is a no-op (`unchanged`).
    ///
    /// The secrets the tasks name are pinned: each reference gets the secret's latest version
    /// (see [`SecretRef::version`](crate::spec::SecretRef::version)). A job naming a secret that
    /// does not exist is refused (`invalid_spec`, at `tasks[i].secrets[j].name`); one naming
    /// secrets on a manager without a key gets a 503 (`secrets_need_key`).
    pub async fn submit(&self, mut job: Job) -> ApiResult<SubmitResponse> {
        let (t, r) = self.inner.write(|st, txn, cfg, now| {
            super::secrets::pin(st, cfg, &mut job)?;
            let mut r = jobs::submit(st, txn, cfg, job, now);
            // Sealing takes the next index unless nothing changed.
            r.index = st.head + u64::from(!txn.is_empty());
            Ok(r)
        })?;
        t.durable().await?;
        Ok(r)
    }

    /// Restarts a job under its current version (no new version): a running job's instances are
    /// replaced one at a time, as a new version rolls out; a job that has ended (`Stopped`,
    /// `Failed`, `Completed`) starts every instance again at once. The outcome is `restarted`.
    pub async fn restart(&self, name: &JobId) -> ApiResult<SubmitResponse> {
        let (t, r) = self.inner.write(|st, txn, cfg, now| {
            let mut r = jobs::restart(st, txn, cfg, name, now)?;
            r.index = st.head + u64::from(!txn.is_empty());
            Ok(r)
        })?;
        t.durable().await?;
        Ok(r)
    }

    /// Stops a job: its instances' containers are stopped and removed.
    pub async fn stop(&self, name: &JobId) -> ApiResult<JobView> {
        let (t, v) = self.inner.write(|st, txn, _, now| {
            jobs::stop(st, txn, name, now.wall)?;
            let mut v =
                views::job_view(st, name).ok_or_else(|| ApiError::not_found("job", name))?;
            v.index = st.head + u64::from(!txn.is_empty());
            Ok(v)
        })?;
        t.durable().await?;
        Ok(v)
    }

    /// One page of the job list, by name.
    pub async fn list(&self, q: &ListQuery) -> ApiResult<Page<JobSummary>> {
        let now = self.inner.clock.wall();
        let (t, page) = self.inner.read(|st| views::job_page(st, q, now))?;
        t.durable().await?;
        Ok(page)
    }

    /// One job.
    pub async fn get(&self, name: &JobId) -> ApiResult<JobView> {
        let (t, mut v) = self
            .inner
            .read(|st| views::job_view(st, name).ok_or_else(|| ApiError::not_found("job", name)))?;
        t.durable().await?;
        self.add_usage(&mut v);
        Ok(v)
    }

    /// Fills each task's current CPU and memory in from the metrics window; a task that has
    /// ended has none (its last sample may still be held).
    fn add_usage(&self, v: &mut JobView) {
        let m = lock(&self.inner.metrics);
        for i in &mut v.instances {
            let Some((job, number)) = parse_id(&i.id) else {
                continue;
            };
            i.usage = i
                .tasks
                .iter()
                .filter(|(_, s)| !s.state.is_terminal())
                .filter_map(|(t, _)| Some((t.clone(), m.task_usage(&job, number, t)?)))
                .collect();
        }
    }

    /// Where the output of `task` of instance `index` of `job` can be read: its worker's endpoint
    /// and its container. `task` may be left out when the job has one task.
    pub async fn log_source(
        &self,
        job: &JobId,
        task: Option<&str>,
        index: u32,
    ) -> ApiResult<LogSource> {
        let (t, s) = self
            .inner
            .read(|st| views::log_source(st, job, task, index))?;
        t.durable().await?;
        Ok(s)
    }

    /// The output of `task` of instance `index` of `job`, followed: the current container's
    /// output as `options` selects it and what it writes next; when that container ends, the
    /// output of the task's next container (after a restart, or of the replacement instance of
    /// the same index) from its start; the stream ends once the job is stopped, the task has
    /// completed or failed for good, or the index is beyond the job's count. A task without a
    /// container yet is waited for.
    ///
    /// `open` serves one container's stream (it is called with `follow` set). Errors before the
    /// stream starts (no such job, task or index; the first container cannot be read) are
    /// returned; later, a container that cannot be read is skipped for the next one. While it
    /// waits for the next container, the job being gone ends the stream; a passing failure to
    /// read the state (`Unavailable`: a failed store commit, memory being rebuilt) is retried
    /// with a backoff for a while, and ends the stream with an error item if it lasts; any other
    /// error ends it with an error item at once.
    pub async fn follow_logs<F, Fut>(
        &self,
        job: &JobId,
        task: Option<&str>,
        index: u32,
        options: LogOptions,
        open: F,
    ) -> Result<LogStream, ApiError>
    where
        F: Fn(LogSource, LogOptions) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<LogStream, ApiError>> + Send + 'static,
    {
        logs::follow(self.inner, job, task, index, options, open).await
    }
}
