//! `run --wait` and `stop --wait`: follow one job's events until its instances run (or have
//! stopped), keeping a model of them: a `get_job` once for the starting picture, then every event
//! after it. No polling.
//!
//! The stream is opened first, at the commit index of the submit or stop, and the picture taken
//! after: events the picture already holds (index at or below the picture's) are skipped, and
//! nothing after it is missed. A dropped connection is resumed after the last event seen, after a
//! pause ([`Backoff`]) that grows while connections bring nothing; a reset (events the manager no
//! longer holds) takes a new picture.
//!
//! `run --wait` waits for the instances of one spec version: the picture's, which is the submitted
//! one (the picture is taken after the submission's commit) unless a later submission has already
//! replaced it. Instances of older versions (the ones a rolling update is replacing) are not
//! counted, however they run. When another submission supersedes the version waited for (a
//! `JobUpdated` event), the wait follows it: it says so ("version N submitted; waiting for it
//! instead of version M"), takes a new picture (the new version's count and instances), and waits
//! for that version instead — the job is what the wait is about, and its newest spec is what will
//! be running.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use orkestrator_core::api::{Desired, JobView};
use orkestrator_core::events::{EventFilter, EventKind, StreamItem, StreamStart, Topic};
use orkestrator_core::ids::{InstanceId, JobId, TaskName, WorkerId};
use orkestrator_core::state::TaskState;
use orkestrator_core::transport::{EventStream, Transport};
use tokio::time::Instant;

use crate::cli::Output;
use crate::output::{exit, fail};

/// How long every instance must stay Running before `run --wait` calls it a success: a task that
/// exits right after it starts is reported on its worker's next check.
const SETTLE: Duration = Duration::from_secs(2);

/// What the wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Every current instance Running (or Completed).
    Running,
    /// Every task of every instance ended (containers removed).
    Stopped,
}

/// One instance as the wait sees it.
#[derive(Debug, Clone, Default)]
struct Inst {
    /// Which copy, when known (from the picture).
    index: Option<u32>,
    worker: Option<WorkerId>,
    /// The spec version it runs.
    version: u64,
    /// Desired to run (not lost, replaced or stopped since).
    run: bool,
    pending: Option<String>,
    tasks: BTreeMap<TaskName, (TaskState, Option<String>)>,
}

impl Inst {
    fn all(&self, ok: impl Fn(TaskState) -> bool) -> bool {
        !self.tasks.is_empty() && self.tasks.values().all(|(s, _)| ok(*s))
    }

    /// Whether the wait counts it: desired to run, and of the version waited for.
    fn current(&self, version: u64) -> bool {
        self.run && self.version == version
    }
}

/// Where a job stands, for the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not there yet.
    Waiting,
    /// There (for `Running`: every current instance runs, or every one completed).
    Done {
        /// Every task completed (no need to let Running settle).
        completed: bool,
    },
    /// It cannot get there: why.
    Failed(String),
}

/// The model of one job's instances.
#[derive(Debug, Clone)]
pub struct JobModel {
    job: JobId,
    goal: Goal,
    /// The spec version waited for: the picture's, or a later one submitted since. An instance
    /// first seen in an event (created after the picture) is of this version: the manager
    /// creates instances of the job's newest version only, and announces a new version before
    /// any event of its instances.
    version: u64,
    /// How many instances `version` wants.
    want: u32,
    /// A version newer than the picture's was submitted: `want` (and which instances there are)
    /// is not known until a new picture is taken; the wait does not end meanwhile.
    stale: bool,
    instances: BTreeMap<InstanceId, Inst>,
    failure: Option<String>,
    gone: bool,
}

impl JobModel {
    /// The starting picture: waits for the instances of the view's version.
    pub fn from_view(v: &JobView, goal: Goal) -> JobModel {
        let instances = v
            .instances
            .iter()
            .map(|i| {
                let inst = Inst {
                    index: Some(i.index),
                    worker: i.worker.clone(),
                    // 0: a manager that does not say; take it for the job's version.
                    version: if i.version == 0 { v.version } else { i.version },
                    run: i.desired == Desired::Run,
                    pending: i.pending_reason.clone(),
                    tasks: i
                        .tasks
                        .iter()
                        .map(|(n, t)| (n.clone(), (t.state, t.reason.clone())))
                        .collect(),
                };
                (i.id.clone(), inst)
            })
            .collect();
        let mut m = JobModel {
            job: v.name.clone(),
            goal,
            version: v.version,
            want: v.spec.count,
            stale: false,
            instances,
            failure: None,
            gone: false,
        };
        if goal == Goal::Running {
            m.failure = m.failed_task();
        }
        m
    }

    fn name(&self, id: &InstanceId) -> String {
        match self.instances.get(id).and_then(|i| i.index) {
            Some(n) => format!("instance {n}"),
            None => format!("instance {id}"),
        }
    }

    fn failed_task(&self) -> Option<String> {
        self.instances.iter().find_map(|(id, i)| {
            let (task, (_, reason)) = i
                .tasks
                .iter()
                .find(|(_, (s, _))| *s == TaskState::Failed)
                .filter(|_| i.current(self.version))?;
            Some(format!(
                "task {task} of {} failed{}",
                self.name(id),
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
        })
    }

    /// Applies one event; returns a line that tells what changed, if anything did.
    pub fn apply(&mut self, kind: &EventKind) -> Option<String> {
        let running = self.goal == Goal::Running;
        let version = self.version;
        match kind {
            EventKind::InstancePlaced {
                instance, worker, ..
            } => {
                let i = self.instance(instance);
                i.worker = Some(worker.clone());
                i.pending = None;
                Some(format!("{} placed on worker {worker}", self.name(instance)))
            }
            EventKind::InstanceUnschedulable {
                instance, reason, ..
            } => {
                let i = self.instance(instance);
                let changed = i.pending.as_deref() != Some(reason.as_str());
                i.pending = Some(reason.clone());
                changed.then(|| format!("{} cannot be placed: {reason}", self.name(instance)))
            }
            EventKind::TaskStateChanged {
                instance,
                task,
                from,
                to,
                reason,
                ..
            } => {
                let i = self.instance(instance);
                i.tasks.insert(task.clone(), (*to, reason.clone()));
                if matches!(
                    to,
                    TaskState::Lost | TaskState::Stopping | TaskState::Stopped
                ) {
                    // Lost, replaced or stopped: no longer one the job waits for to run.
                    i.run = false;
                }
                let current = i.current(version);
                let name = self.name(instance);
                let why = reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                if running && current && *to == TaskState::Failed {
                    self.failure = Some(format!(
                        "task {task} of {name} failed{}",
                        reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ));
                }
                Some(format!("task {task} of {name}: {from} -> {to}{why}"))
            }
            EventKind::JobStopped { .. } => {
                if running {
                    self.failure = Some("the job was stopped".into());
                }
                Some("stop requested".into())
            }
            EventKind::JobCollected { .. } => {
                self.gone = true;
                if running {
                    self.failure = Some("the job was removed by garbage collection".into());
                }
                Some("removed by garbage collection".into())
            }
            EventKind::JobUpdated { version: new, .. }
            | EventKind::JobSubmitted { version: new, .. } => {
                if running && *new > version {
                    // Superseded: follow the new version (see the module's documentation).
                    self.version = *new;
                    self.stale = true;
                    Some(format!(
                        "version {new} submitted; waiting for it instead of version {version}"
                    ))
                } else {
                    Some(format!("version {new} submitted"))
                }
            }
            _ => None,
        }
    }

    fn instance(&mut self, id: &InstanceId) -> &mut Inst {
        let version = self.version;
        self.instances.entry(id.clone()).or_insert_with(|| Inst {
            version,
            run: true,
            ..Inst::default()
        })
    }

    fn current(&self) -> impl Iterator<Item = &Inst> {
        self.instances.values().filter(|i| i.current(self.version))
    }

    /// The spec version waited for.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether a newer version was submitted since the picture: take a new one.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// How many current instances are placed, how many run (every task Running or Completed),
    /// and how many the job wants.
    pub fn counts(&self) -> (usize, usize, usize) {
        let placed = self.current().filter(|i| i.worker.is_some()).count();
        let running = self
            .current()
            .filter(|i| i.all(|s| matches!(s, TaskState::Running | TaskState::Completed)))
            .count();
        (placed, running, self.want as usize)
    }

    /// Why something is not running yet: a pending reason, or a task's reason.
    pub fn reason(&self) -> Option<String> {
        self.current().find_map(|i| {
            i.pending.clone().or_else(|| {
                i.tasks.iter().find_map(|(n, (s, r))| {
                    (!matches!(s, TaskState::Running | TaskState::Completed))
                        .then_some(r.as_ref())
                        .flatten()
                        .map(|r| format!("task {n}: {r}"))
                })
            })
        })
    }

    /// Where the job stands.
    pub fn verdict(&self) -> Verdict {
        if let Some(f) = &self.failure {
            return Verdict::Failed(f.clone());
        }
        match self.goal {
            Goal::Running if self.stale => Verdict::Waiting,
            Goal::Running => {
                let (_, running, want) = self.counts();
                let current = self.current().count();
                let all_ok = self
                    .current()
                    .all(|i| i.all(|s| matches!(s, TaskState::Running | TaskState::Completed)));
                if current >= want && running >= want && all_ok && (current > 0 || want == 0) {
                    let completed = self.current().all(|i| i.all(|s| s == TaskState::Completed));
                    Verdict::Done { completed }
                } else {
                    Verdict::Waiting
                }
            }
            Goal::Stopped => {
                let ended = self
                    .instances
                    .values()
                    .all(|i| i.tasks.values().all(|(s, _)| s.is_terminal()));
                if self.gone || ended {
                    Verdict::Done { completed: true }
                } else {
                    Verdict::Waiting
                }
            }
        }
    }

    /// A progress line: "placed X/N, running Y/N" (or, for a stop, how many have ended) and the
    /// current reason.
    pub fn progress(&self) -> String {
        let head = match self.goal {
            Goal::Running => {
                let (placed, running, want) = self.counts();
                format!("placed {placed}/{want}, running {running}/{want}")
            }
            Goal::Stopped => {
                let total = self.instances.len();
                let ended = self
                    .instances
                    .values()
                    .filter(|i| i.tasks.values().all(|(s, _)| s.is_terminal()))
                    .count();
                format!("stopped {ended}/{total} instances")
            }
        };
        match self.reason().filter(|_| self.goal == Goal::Running) {
            Some(r) => format!("{}: {head} — {r}", self.job),
            None => format!("{}: {head}", self.job),
        }
    }
}

/// How progress is shown.
enum Show {
    /// A spinner with the progress line on a terminal (standard error), changes above it.
    Bar(ProgressBar),
    /// Each change as a line on standard output.
    Lines,
    /// Nothing until the end (`-o json`).
    Quiet,
}

impl Show {
    fn new(output: Output) -> Show {
        if output == Output::Json {
            return Show::Quiet;
        }
        if crate::output::stdout_is_tty() && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                pb.set_style(style);
            }
            pb.enable_steady_tick(Duration::from_millis(120));
            return Show::Bar(pb);
        }
        Show::Lines
    }

    fn change(&self, job: &JobId, line: &str) -> Result<()> {
        match self {
            Show::Bar(pb) => pb.println(format!("{job}: {line}")),
            Show::Lines => outln!("{job}: {line}"),
            Show::Quiet => {}
        }
        Ok(())
    }

    fn progress(&self, m: &JobModel) {
        if let Show::Bar(pb) = self {
            pb.set_message(m.progress());
        }
    }

    fn done(&self) {
        if let Show::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}

/// The pause before opening an event stream again: [`Backoff::MIN`] at first, doubling with each
/// pause up to [`Backoff::MAX`]. It is kept across reconnections and goes back to the minimum only
/// when an item arrives ([`Backoff::reset`]), so a stream that opens and ends at once (or a
/// manager that refuses connections) is retried ever more slowly, never in a tight loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first pause.
    pub const MIN: Duration = Duration::from_millis(100);
    /// The longest pause.
    pub const MAX: Duration = Duration::from_secs(5);

    /// The pause to take now; the next one is twice as long (at most [`Backoff::MAX`]).
    pub fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        now
    }

    /// The pause [`Backoff::pause`] would return, without taking it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// An item arrived: the connection works; the next pause is the first one again.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: Self::MIN }
    }
}

/// Opens the job's stream at `start`, retrying a failed connection (pausing as `backoff` says)
/// until `deadline`.
async fn open(
    client: &impl Transport,
    start: StreamStart,
    filter: &EventFilter,
    deadline: Instant,
    backoff: &mut Backoff,
) -> Result<EventStream> {
    loop {
        match client.events(start, filter).await {
            Ok(s) => return Ok(s),
            Err(e @ orkestrator_core::Error::Unreachable { .. })
                if Instant::now() + backoff.peek() < deadline =>
            {
                tracing::debug!(error = %e, "event stream: reconnecting");
                tokio::time::sleep(backoff.pause()).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens the job's stream again at `start` after it ended or broke: pauses first (as `backoff`
/// says, but not past `deadline`), since a stream that ended at once may well end at once again.
async fn reopen(
    client: &impl Transport,
    start: StreamStart,
    filter: &EventFilter,
    deadline: Instant,
    backoff: &mut Backoff,
) -> Result<EventStream> {
    tokio::time::sleep_until((Instant::now() + backoff.pause()).min(deadline)).await;
    open(client, start, filter, deadline, backoff).await
}

/// Follows `job` from the commit index `from_index` until `goal`: 0 when it is reached, 1 when
/// a task fails (or the job is stopped while waiting for it to run), 5 on the timeout. With
/// `-o json` prints the job's final view. For [`Goal::Running`], `from_index` is a submission's
/// commit index, and the version waited for is the one current just after it, followed to newer
/// ones submitted meanwhile (see the module's documentation).
pub async fn wait(
    client: &impl Transport,
    job: &JobId,
    from_index: u64,
    goal: Goal,
    timeout: Duration,
    output: Output,
) -> Result<ExitCode> {
    wait_settled(client, job, from_index, goal, timeout, output, SETTLE).await
}

/// [`wait`], calling a job Running once every instance has stayed Running for `settle` (zero:
/// as soon as they all are).
pub async fn wait_settled(
    client: &impl Transport,
    job: &JobId,
    from_index: u64,
    goal: Goal,
    timeout: Duration,
    output: Output,
    settle: Duration,
) -> Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let filter = EventFilter {
        topics: vec![Topic::Job, Topic::Task],
        key: Some(job.to_string()),
    };
    let mut start = StreamStart::Index(from_index);
    let mut backoff = Backoff::default();
    let mut stream = open(client, start, &filter, deadline, &mut backoff).await?;
    let view = client.get_job(job).await?;
    let mut seen = view.index;
    let mut model = JobModel::from_view(&view, goal);
    let show = Show::new(output);
    let mut settled_at: Option<Instant> = None;
    let verdict = loop {
        show.progress(&model);
        match model.verdict() {
            Verdict::Failed(why) => break Err(why),
            Verdict::Done { completed: true } => break Ok(()),
            Verdict::Done { completed: false } => {
                let at = *settled_at.get_or_insert_with(|| Instant::now() + settle);
                if Instant::now() >= at {
                    break Ok(());
                }
            }
            Verdict::Waiting => settled_at = None,
        }
        let until = settled_at.map_or(deadline, |s| s.min(deadline));
        let item = match tokio::time::timeout_at(until, stream.next()).await {
            Ok(item) => item,
            Err(_) if settled_at.is_some_and(|s| Instant::now() >= s) => continue,
            Err(_) => {
                show.done();
                let what = match goal {
                    Goal::Running => "is not running",
                    Goal::Stopped => "has not stopped",
                };
                return Err(fail(
                    exit::TIMEOUT,
                    format!(
                        "{job} {what} after {}: {}",
                        orkestrator_core::units::format_duration(timeout),
                        model.progress()
                    ),
                ));
            }
        };
        // A bookmark comes first on every stream: only an event shows the stream works.
        if let Some(Ok(StreamItem::Event(_))) = &item {
            backoff.reset();
        }
        match item {
            Some(Ok(StreamItem::Event(e))) => {
                start = StreamStart::After(e.position());
                if e.index <= seen {
                    continue;
                }
                if let Some(line) = model.apply(&e.kind) {
                    show.change(job, &line)?;
                }
            }
            Some(Ok(StreamItem::Bookmark(b))) => start = StreamStart::After(b.position()),
            Some(Ok(StreamItem::Reset(r))) => {
                start = StreamStart::After(r.position());
                let view = client.get_job(job).await?;
                seen = view.index;
                model = JobModel::from_view(&view, goal);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "event stream broke; resuming");
                stream = reopen(client, start, &filter, deadline, &mut backoff).await?;
            }
            None => {
                stream = reopen(client, start, &filter, deadline, &mut backoff).await?;
            }
        }
        if model.stale() {
            // A newer version was submitted: its count and instances come from a new picture.
            let view = client.get_job(job).await?;
            seen = view.index;
            model = JobModel::from_view(&view, goal);
        }
    };
    show.done();
    let final_view = client.get_job(job).await.ok();
    if let (Output::Json, Some(v)) = (output, &final_view) {
        crate::output::print_json(v)?;
    }
    match verdict {
        Ok(()) => {
            if output == Output::Table {
                match goal {
                    Goal::Running => {
                        let (_, running, want) = model.counts();
                        let phase = final_view
                            .as_ref()
                            .map_or("Running".to_owned(), |v| v.phase.to_string());
                        let version = model.version();
                        outln!("{job}: {phase} ({running}/{want} instances of version {version})");
                    }
                    Goal::Stopped => outln!("job {job} stopped"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            if output == Output::Table {
                outln!("{job}: Failed — {why}");
            }
            Err(fail(exit::FAILED, format!("job {job} failed: {why}")))
        }
    }
}

#[cfg(test)]
mod tests;
