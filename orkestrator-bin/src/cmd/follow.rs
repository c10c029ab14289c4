//! `run --wait` and `stop --wait`: follow one job's events until its instances run (or have
//! stopped), keeping a model of them: a `get_job` once for the starting picture, then every event
//! after it. No polling.
//!
//! The stream is opened first, at the commit index of the submit or stop, and the picture taken
//! after: events the picture already holds (index at or below the picture's) are skipped, and
//! nothing after it is missed. A dropped connection is resumed after the last event seen; a reset
//! (events the manager no longer holds) takes a new picture.

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
    /// Of the current version and desired to run.
    current: bool,
    pending: Option<String>,
    tasks: BTreeMap<TaskName, (TaskState, Option<String>)>,
}

impl Inst {
    fn all(&self, ok: impl Fn(TaskState) -> bool) -> bool {
        !self.tasks.is_empty() && self.tasks.values().all(|(s, _)| ok(*s))
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
    want: u32,
    instances: BTreeMap<InstanceId, Inst>,
    failure: Option<String>,
    gone: bool,
}

impl JobModel {
    /// The starting picture.
    pub fn from_view(v: &JobView, goal: Goal) -> JobModel {
        let instances = v
            .instances
            .iter()
            .map(|i| {
                let inst = Inst {
                    index: Some(i.index),
                    worker: i.worker.clone(),
                    current: i.desired == Desired::Run,
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
            want: v.spec.count,
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
                .filter(|_| i.current)?;
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
                    i.current = false;
                }
                let current = i.current;
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
            EventKind::JobUpdated { version, .. } | EventKind::JobSubmitted { version, .. } => {
                Some(format!("version {version} submitted"))
            }
            _ => None,
        }
    }

    fn instance(&mut self, id: &InstanceId) -> &mut Inst {
        self.instances.entry(id.clone()).or_insert_with(|| Inst {
            current: true,
            ..Inst::default()
        })
    }

    fn current(&self) -> impl Iterator<Item = &Inst> {
        self.instances.values().filter(|i| i.current)
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

/// Opens the job's stream at `start`, retrying a failed connection until `deadline`.
async fn open(
    client: &impl Transport,
    start: StreamStart,
    filter: &EventFilter,
    deadline: Instant,
) -> Result<EventStream> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.events(start, filter).await {
            Ok(s) => return Ok(s),
            Err(e @ orkestrator_core::Error::Unreachable { .. })
                if Instant::now() + backoff < deadline =>
            {
                tracing::debug!(error = %e, "event stream: reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Follows `job` from the commit index `from_index` until `goal`: 0 when it is reached, 1 when
/// a task fails (or the job is stopped while waiting for it to run), 5 on the timeout. With
/// `-o json` prints the job's final view.
pub async fn wait(
    client: &impl Transport,
    job: &JobId,
    from_index: u64,
    goal: Goal,
    timeout: Duration,
    output: Output,
) -> Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let filter = EventFilter {
        topics: vec![Topic::Job, Topic::Task],
        key: Some(job.to_string()),
    };
    let mut start = StreamStart::Index(from_index);
    let mut stream = open(client, start, &filter, deadline).await?;
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
                let at = *settled_at.get_or_insert_with(|| Instant::now() + SETTLE);
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
            Some(Ok(StreamItem::Reset(r))) => {
                start = StreamStart::After(r.position());
                let view = client.get_job(job).await?;
                seen = view.index;
                model = JobModel::from_view(&view, goal);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "event stream broke; resuming");
                stream = open(client, start, &filter, deadline).await?;
            }
            None => {
                stream = open(client, start, &filter, deadline).await?;
            }
        }
    };
    show.done();
    let final_view = client.get_job(job).await.ok();
    if let (Output::Json, Some(v)) = (output, &final_view) {
        super::print_json(v)?;
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
                        outln!("{job}: {phase} ({running}/{want} instances)");
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
mod tests {
    use super::*;
    use orkestrator_core::ids::SchedulerId;

    fn placed(i: &str) -> EventKind {
        EventKind::InstancePlaced {
            job: JobId::new("j"),
            instance: InstanceId::new(i),
            worker: WorkerId::new("w1"),
            scheduler: SchedulerId::new("s"),
            pending_ms: 0,
        }
    }

    fn task(i: &str, from: TaskState, to: TaskState, reason: Option<&str>) -> EventKind {
        EventKind::TaskStateChanged {
            job: JobId::new("j"),
            instance: InstanceId::new(i),
            task: TaskName::new("main"),
            from,
            to,
            reason: reason.map(String::from),
        }
    }

    fn empty(goal: Goal, want: u32) -> JobModel {
        JobModel {
            job: JobId::new("j"),
            goal,
            want,
            instances: BTreeMap::new(),
            failure: None,
            gone: false,
        }
    }

    #[test]
    fn running_needs_every_wanted_instance() {
        use TaskState::*;
        let mut m = empty(Goal::Running, 2);
        m.apply(&placed("a"));
        m.apply(&task("a", Scheduled, Running, None));
        assert_eq!(m.counts(), (1, 1, 2));
        assert_eq!(m.verdict(), Verdict::Waiting);
        m.apply(&placed("b"));
        m.apply(&task("b", Starting, Running, None));
        assert_eq!(m.verdict(), Verdict::Done { completed: false });
        assert_eq!(m.progress(), "j: placed 2/2, running 2/2");
    }

    #[test]
    fn a_failed_task_fails_the_wait_with_its_reason() {
        use TaskState::*;
        let mut m = empty(Goal::Running, 1);
        m.apply(&task("a", Starting, Running, None));
        m.apply(&task("a", Running, Failed, Some("exited with code 3")));
        match m.verdict() {
            Verdict::Failed(why) => assert!(why.contains("exited with code 3"), "{why}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_lost_instance_is_not_waited_for_and_its_replacement_is() {
        use TaskState::*;
        let mut m = empty(Goal::Running, 1);
        m.apply(&task("a", Running, Lost, Some("worker down")));
        assert_eq!(m.verdict(), Verdict::Waiting);
        m.apply(&placed("b"));
        m.apply(&task("b", Starting, Running, None));
        assert_eq!(m.verdict(), Verdict::Done { completed: false });
    }

    #[test]
    fn stop_is_done_when_every_task_ended() {
        use TaskState::*;
        let mut m = empty(Goal::Stopped, 1);
        m.apply(&task("a", Running, Stopping, None));
        assert_eq!(m.verdict(), Verdict::Waiting);
        m.apply(&task("a", Stopping, Stopped, None));
        assert_eq!(m.verdict(), Verdict::Done { completed: true });
    }
}
