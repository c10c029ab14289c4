//! Following a task's output across its containers: the stream of one container, then, once it
//! ends, the next container of the same task (a restart, or a replacement instance of the same
//! index on another worker) from its start, until the job is stopped or the task has ended for
//! good. The manager reads no output itself: an opener (the worker's HTTP endpoint in
//! production, a runtime directly in tests) serves each container's stream.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use crate::api::{ApiError, ErrorKind, LogSource};
use crate::events::{EventFilter, StreamStart, Topic};
use crate::ids::JobId;
use crate::runtime::{LogOptions, LogStream};

use super::inner::Inner;
use super::stream::EventSubscription;
use super::views::{self, LogTarget};

/// How long a follower waits for an event about its job before it looks at the state again
/// anyway (a new container reported without a state change emits no event).
const RECHECK: Duration = Duration::from_secs(2);

/// The first wait before a follower reads the state again after a passing failure (a store
/// commit that failed, the manager rebuilding its memory); it doubles up to [`RECHECK`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// How long a follower retries reads that keep failing with a passing failure before it ends its
/// stream with the error.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// What the follower of one task is doing.
struct Follower<F> {
    inner: Weak<Inner>,
    job: JobId,
    task: Option<String>,
    index: u32,
    open: Arc<F>,
    events: EventSubscription,
    /// The container whose output was last streamed (or could not be opened), by worker and id
    /// (ids are unique per engine only).
    seen: Option<(String, String)>,
    current: Option<LogStream>,
}

/// Follows a task's output across its containers: what [`Jobs::follow_logs`] promises.
///
/// [`Jobs::follow_logs`]: crate::manager::Jobs::follow_logs
pub(crate) async fn follow<F, Fut>(
    inner: &Arc<Inner>,
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
    // Subscribed before the state is read, so that no change after the read goes unseen.
    let events = EventSubscription::open(
        inner,
        StreamStart::Now,
        EventFilter {
            topics: vec![Topic::Job, Topic::Task],
            key: Some(job.as_str().to_owned()),
        },
    );
    let target = log_target(inner, job, task, index).await?;
    let options = LogOptions {
        follow: true,
        ..options
    };
    let (seen, current) = match target.source {
        Ok(src) => {
            let id = identity(&src);
            (Some(id), Some(open(src, options).await?))
        }
        Err(e) if target.ended => return Err(e),
        // Not placed or not started yet: the stream waits for its first container.
        Err(_) => (None, None),
    };
    let follower = Follower {
        inner: Arc::downgrade(inner),
        job: job.clone(),
        task: task.map(str::to_owned),
        index,
        open: Arc::new(open),
        events,
        seen,
        current,
    };
    // After an error item the stream ends (`None` as the state).
    Ok(Box::pin(futures_util::stream::unfold(
        Some(follower),
        |f| async move {
            let mut f = f?;
            match f.next_chunk().await? {
                Ok(chunk) => Some((Ok(chunk), Some(f))),
                Err(e) => Some((Err(crate::Error::Api(e)), None)),
            }
        },
    )))
}

/// Where a task's output is now and whether more can come, once what it says is durable.
async fn log_target(
    inner: &Inner,
    job: &JobId,
    task: Option<&str>,
    index: u32,
) -> Result<LogTarget, ApiError> {
    let (t, target) = inner.read(|st| views::log_target(st, job, task, index))?;
    t.durable().await?;
    Ok(target)
}

impl<F, Fut> Follower<F>
where
    F: Fn(LogSource, LogOptions) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<LogStream, ApiError>> + Send + 'static,
{
    /// The next chunk of output; `None` once nothing more can come, an error if the follower
    /// cannot go on (see [`Follower::next_container`]).
    async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, ApiError>> {
        loop {
            if let Some(stream) = &mut self.current {
                match stream.next().await {
                    Some(Ok(chunk)) if chunk.is_empty() => continue,
                    Some(Ok(chunk)) => return Some(Ok(chunk)),
                    Some(Err(e)) => {
                        tracing::debug!(job = %self.job, error = %e, "a followed log stream broke");
                        self.current = None;
                    }
                    None => self.current = None,
                }
            }
            match self.next_container().await? {
                Ok(stream) => self.current = Some(stream),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Waits for the task's next container and opens its output from the start; `None` once the
    /// job or task has ended, the job is gone (not found), or the manager is gone. A state read
    /// that fails with `Unavailable` is retried with a backoff for up to [`RETRY_FOR`]; that
    /// error once it lasts longer, or any other error, is returned.
    async fn next_container(&mut self) -> Option<Result<LogStream, ApiError>> {
        // Since when reads have been failing, and the next wait after a failure.
        let mut failing: Option<(tokio::time::Instant, Duration)> = None;
        loop {
            let inner = self.inner.upgrade()?;
            let read = log_target(&inner, &self.job, self.task.as_deref(), self.index).await;
            drop(inner);
            let target = match read {
                Ok(target) => {
                    failing = None;
                    target
                }
                Err(e) if e.kind == ErrorKind::NotFound => return None,
                Err(e) if e.kind == ErrorKind::Unavailable => {
                    let now = inner_now(&self.inner)?;
                    let (since, wait) = failing.unwrap_or((now, RETRY_FIRST));
                    if now.duration_since(since) >= RETRY_FOR {
                        return Some(Err(e));
                    }
                    tracing::debug!(
                        job = %self.job, error = %e.message, retry_in = ?wait,
                        "a follower cannot read the state; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    failing = Some((since, (wait * 2).min(RECHECK)));
                    continue;
                }
                Err(e) => return Some(Err(e)),
            };
            match target.source {
                Ok(src) if self.seen.as_ref() != Some(&identity(&src)) => {
                    self.seen = Some(identity(&src));
                    let options = LogOptions {
                        since: None,
                        tail: None,
                        follow: true,
                    };
                    let container = src.container_id.clone();
                    match (self.open)(src, options).await {
                        Ok(stream) => return Some(Ok(stream)),
                        Err(e) => tracing::warn!(
                            job = %self.job, container, error = %e.message,
                            "cannot read the output of a followed task's next container; waiting for the one after"
                        ),
                    }
                    continue;
                }
                _ if target.ended => return None,
                _ => {}
            }
            // Wait for a change of the job (or look again after a while anyway).
            if let Ok(None) = tokio::time::timeout(RECHECK, self.events.next()).await {
                return None;
            }
        }
    }
}

/// What tells one container from another: its worker and its id.
fn identity(src: &LogSource) -> (String, String) {
    (src.worker.as_str().to_owned(), src.container_id.clone())
}

/// Monotonic time now on the manager's clock; `None` once the manager is gone.
fn inner_now(inner: &Weak<Inner>) -> Option<tokio::time::Instant> {
    Some(inner.upgrade()?.clock.instant())
}
