//! The event bus: every state change the manager makes is published here, stamped with the
//! commit index of its change. It feeds long-polls, the SSE event stream (`GET /v1/events`), and
//! the manager's bounded window of recent events (`EventLog`) that lets a stream resume.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::api::Liveness;
use crate::clock::Millis;
use crate::ids::{InstanceId, JobId, SchedulerId, TaskName, WorkerId};
use crate::state::TaskState;

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The state index of the change: the commit index for changes of durable state; for soft
    /// changes (liveness, leases), the last commit index when it happened.
    pub index: u64,
    /// The event's place under its index: events of one change count from 0; soft events count
    /// on after them. `(index, seq)` rises with every event and never repeats, across restarts
    /// too, so a stream can resume after any event.
    #[serde(default)]
    pub seq: u32,
    /// When it happened.
    pub at: Millis,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A job was created or its spec changed.
    JobSubmitted {
        /// The job.
        job: JobId,
        /// Its new version.
        version: u64,
    },
    /// A job's spec changed (a new version; its instances are replaced).
    JobUpdated {
        /// The job.
        job: JobId,
        /// Its new version.
        version: u64,
    },
    /// A job was stopped.
    JobStopped {
        /// The job.
        job: JobId,
    },
    /// Garbage collection removed an ended job and everything of it.
    JobCollected {
        /// The job.
        job: JobId,
    },
    /// An instance was placed on a worker.
    InstancePlaced {
        /// The instance's job.
        job: JobId,
        /// The instance.
        instance: InstanceId,
        /// The worker.
        worker: WorkerId,
        /// The scheduler that decided.
        scheduler: SchedulerId,
        /// How long the instance waited for its placement, in milliseconds.
        #[serde(default)]
        pending_ms: u64,
    },
    /// An instance could not be placed.
    InstanceUnschedulable {
        /// The instance's job.
        job: JobId,
        /// The instance.
        instance: InstanceId,
        /// Why.
        reason: String,
    },
    /// A task changed state.
    TaskStateChanged {
        /// The instance's job.
        job: JobId,
        /// The instance.
        instance: InstanceId,
        /// The task.
        task: TaskName,
        /// The previous state.
        from: TaskState,
        /// The new state.
        to: TaskState,
        /// Why (an exit code, a failure, a pending reason), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A worker registered.
    WorkerRegistered {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker's liveness changed.
    WorkerLiveness {
        /// The worker.
        worker: WorkerId,
        /// Its new liveness.
        status: Liveness,
    },
    /// A scheduler registered.
    SchedulerRegistered {
        /// The scheduler.
        scheduler: SchedulerId,
    },
    /// A scheduler's liveness changed.
    SchedulerLiveness {
        /// The scheduler.
        scheduler: SchedulerId,
        /// Its new liveness.
        status: Liveness,
    },
    /// Instances leased to a scheduler that did not decide in time went back to the pool.
    LeasesExpired,
    /// Garbage collection removed what had ended long enough ago.
    Collected {
        /// Jobs removed with everything of theirs.
        jobs: u64,
        /// Instances removed (of removed jobs, and replaced ones of live jobs).
        instances: u64,
        /// Workers removed after being down for long.
        workers: u64,
    },
}

/// What an event is about, for filtering a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Jobs: submitted, updated, stopped, collected.
    Job,
    /// Instances and tasks: placed, unschedulable, state changes.
    Task,
    /// Workers: joined, liveness.
    Worker,
    /// Schedulers: joined, liveness.
    Scheduler,
    /// The manager itself: lease expiries, garbage collection totals.
    Manager,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 5] = [
        Topic::Job,
        Topic::Task,
        Topic::Worker,
        Topic::Scheduler,
        Topic::Manager,
    ];

    /// The topic's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Job => "job",
            Topic::Task => "task",
            Topic::Worker => "worker",
            Topic::Scheduler => "scheduler",
            Topic::Manager => "manager",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Topic {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown topic \"{s}\": use job, task, worker, scheduler or manager")
            })
    }
}

impl EventKind {
    /// The event's topic.
    pub fn topic(&self) -> Topic {
        match self {
            EventKind::JobSubmitted { .. }
            | EventKind::JobUpdated { .. }
            | EventKind::JobStopped { .. }
            | EventKind::JobCollected { .. } => Topic::Job,
            EventKind::InstancePlaced { .. }
            | EventKind::InstanceUnschedulable { .. }
            | EventKind::TaskStateChanged { .. } => Topic::Task,
            EventKind::WorkerRegistered { .. } | EventKind::WorkerLiveness { .. } => Topic::Worker,
            EventKind::SchedulerRegistered { .. } | EventKind::SchedulerLiveness { .. } => {
                Topic::Scheduler
            }
            EventKind::LeasesExpired | EventKind::Collected { .. } => Topic::Manager,
        }
    }

    /// The event's key: the job (for job and task events), the worker or the scheduler.
    pub fn key(&self) -> Option<&str> {
        match self {
            EventKind::JobSubmitted { job, .. }
            | EventKind::JobUpdated { job, .. }
            | EventKind::JobStopped { job }
            | EventKind::JobCollected { job }
            | EventKind::InstancePlaced { job, .. }
            | EventKind::InstanceUnschedulable { job, .. }
            | EventKind::TaskStateChanged { job, .. } => Some(job.as_str()),
            EventKind::WorkerRegistered { worker } | EventKind::WorkerLiveness { worker, .. } => {
                Some(worker.as_str())
            }
            EventKind::SchedulerRegistered { scheduler }
            | EventKind::SchedulerLiveness { scheduler, .. } => Some(scheduler.as_str()),
            EventKind::LeasesExpired | EventKind::Collected { .. } => None,
        }
    }

    /// The event's name on the wire (its `type`).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::JobSubmitted { .. } => "job_submitted",
            EventKind::JobUpdated { .. } => "job_updated",
            EventKind::JobStopped { .. } => "job_stopped",
            EventKind::JobCollected { .. } => "job_collected",
            EventKind::InstancePlaced { .. } => "instance_placed",
            EventKind::InstanceUnschedulable { .. } => "instance_unschedulable",
            EventKind::TaskStateChanged { .. } => "task_state_changed",
            EventKind::WorkerRegistered { .. } => "worker_registered",
            EventKind::WorkerLiveness { .. } => "worker_liveness",
            EventKind::SchedulerRegistered { .. } => "scheduler_registered",
            EventKind::SchedulerLiveness { .. } => "scheduler_liveness",
            EventKind::LeasesExpired => "leases_expired",
            EventKind::Collected { .. } => "collected",
        }
    }
}

/// A place in the event sequence: `(index, seq)`. Shown as `INDEX.SEQ` (the SSE event id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The state index.
    pub index: u64,
    /// The place under it.
    pub seq: u32,
}

impl Position {
    /// The position just before every event of `index` (so a stream "from index N" starts with
    /// the first event stamped N).
    pub fn before_index(index: u64) -> Option<Position> {
        index.checked_sub(1).map(|i| Position {
            index: i,
            seq: u32::MAX,
        })
    }
}

impl Position {
    /// Where a stream goes on after this position, as a user writes it: the next index for the
    /// position just before every event of that index (`--from-index 131`, where the position is
    /// `130.4294967295`), else after this event id.
    pub fn resume(self) -> StreamStart {
        match self.index.checked_add(1) {
            Some(next) if self.seq == u32::MAX => StreamStart::Index(next),
            _ => StreamStart::After(self),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.seq)
    }
}

impl FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("\"{s}\" is not an event id: use INDEX.SEQ, as in an event's `id`");
        let (i, q) = s.trim().split_once('.').ok_or_else(bad)?;
        Ok(Position {
            index: i.parse().map_err(|_| bad())?,
            seq: q.parse().map_err(|_| bad())?,
        })
    }
}

impl Event {
    /// The event's position.
    pub fn position(&self) -> Position {
        Position {
            index: self.index,
            seq: self.seq,
        }
    }

    /// The event's SSE id, `INDEX.SEQ`.
    pub fn id(&self) -> String {
        self.position().to_string()
    }
}

/// Which events a stream carries: any of `topics` (all when empty) whose key is `key` (any when
/// `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Topics to keep; empty keeps all.
    pub topics: Vec<Topic>,
    /// The key to keep (a job name, worker id or scheduler id).
    pub key: Option<String>,
}

impl EventFilter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &EventKind) -> bool {
        (self.topics.is_empty() || self.topics.contains(&e.topic()))
            && self.key.as_deref().is_none_or(|k| e.key() == Some(k))
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamStart {
    /// With the next event (nothing from before).
    #[default]
    Now,
    /// With the first event stamped with this index or later (`?index=N`).
    Index(u64),
    /// With the event after this one (`Last-Event-ID: INDEX.SEQ`, or `?index=INDEX.SEQ`).
    After(Position),
}

impl FromStr for StreamStart {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.contains('.') {
            return s.parse().map(StreamStart::After);
        }
        s.parse().map(StreamStart::Index).map_err(|_| {
            format!("\"{s}\" is not an index: use a commit index N, or an event id INDEX.SEQ")
        })
    }
}

/// As people read it: `from now`, `from index 131`, `after event 130.2`.
impl fmt::Display for StreamStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamStart::Now => f.write_str("from now"),
            StreamStart::Index(i) => write!(f, "from index {i}"),
            StreamStart::After(p) => write!(f, "after event {p}"),
        }
    }
}

/// Sent instead of events the manager no longer holds: the client missed events and must re-list
/// (as Kubernetes answers `410 Gone`). The stream goes on with the events after `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// The position the stream goes on after: re-list, then apply the events that follow.
    pub index: u64,
    /// See `index`.
    pub seq: u32,
    /// The oldest index the manager still holds events of.
    pub oldest_index: u64,
    /// What happened, for people.
    pub message: String,
}

impl Reset {
    /// The position the stream goes on after.
    pub fn position(&self) -> Position {
        Position {
            index: self.index,
            seq: self.seq,
        }
    }
}

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreamItem {
    /// An event.
    Event(Event),
    /// Events were missed: re-list.
    Reset(Reset),
    /// No event: the stream has covered everything up to this position (events the filter
    /// passed over included). A client resuming after it misses nothing; sent when a stream
    /// opens and now and then while a filtered stream is quiet (as Kubernetes' `BOOKMARK`).
    Bookmark(Bookmark),
}

/// A position a stream has covered (see [`StreamItem::Bookmark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    /// See [`Position::index`].
    pub index: u64,
    /// See [`Position::seq`].
    pub seq: u32,
}

impl From<Position> for Bookmark {
    fn from(p: Position) -> Self {
        Bookmark {
            index: p.index,
            seq: p.seq,
        }
    }
}

impl Bookmark {
    /// The position.
    pub fn position(&self) -> Position {
        Position {
            index: self.index,
            seq: self.seq,
        }
    }
}

impl StreamItem {
    /// The position a client that got this item resumes after.
    pub fn position(&self) -> Position {
        match self {
            StreamItem::Event(e) => e.position(),
            StreamItem::Reset(r) => r.position(),
            StreamItem::Bookmark(b) => b.position(),
        }
    }
}

/// The manager's bounded window of recent events. It knows every event after its `floor`; a
/// stream that would start before the floor gets a [`Reset`].
#[derive(Debug)]
pub(crate) struct EventLog {
    cap: usize,
    events: VecDeque<Event>,
    floor: Position,
}

impl EventLog {
    /// A window of at most `cap` events, holding everything after `floor` (the position the
    /// manager started at: what came before is not known).
    pub fn new(cap: usize, floor: Position) -> Self {
        EventLog {
            cap: cap.max(1),
            events: VecDeque::new(),
            floor,
        }
    }

    /// Appends an event (in position order), dropping the oldest when full.
    pub fn push(&mut self, e: Event) {
        if self.events.len() == self.cap
            && let Some(old) = self.events.pop_front()
        {
            self.floor = old.position();
        }
        self.events.push_back(e);
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// The last position known (the newest event's, or the floor).
    pub fn head(&self) -> Position {
        self.events.back().map_or(self.floor, Event::position)
    }

    /// The events after `after` that pass `filter`, or a reset when some of them are gone.
    #[cfg(test)]
    pub fn after(
        &self,
        after: Option<Position>,
        filter: &EventFilter,
    ) -> Result<Vec<Event>, Reset> {
        self.after_bounded(after, filter, usize::MAX)
            .map(|chunk| chunk.events)
    }

    /// Like [`EventLog::after`], looking at no more than `max_scan` events (so a caller holding
    /// a lock holds it briefly): the chunk says how far it got and whether that is the head.
    pub fn after_bounded(
        &self,
        after: Option<Position>,
        filter: &EventFilter,
        max_scan: usize,
    ) -> Result<Chunk, Reset> {
        // `None` is "before everything": served only while nothing was ever dropped.
        let missed = match after {
            None => self.floor > Position::default(),
            Some(p) => p < self.floor,
        };
        if missed {
            let head = self.head();
            return Err(Reset {
                index: head.index,
                seq: head.seq,
                oldest_index: self.events.front().map_or(self.floor.index, |e| e.index),
                message: format!(
                    "the events asked for are no longer held (the manager keeps the last {} and those since it started, and holds them {}): re-list, then follow {}",
                    self.cap,
                    self.floor.resume(),
                    head.resume()
                ),
            });
        }
        let after = after.unwrap_or_default();
        let start = self.events.partition_point(|e| e.position() <= after);
        let end = start.saturating_add(max_scan).min(self.events.len());
        let scanned = self.events.range(start..end);
        Ok(Chunk {
            events: scanned
                .clone()
                .filter(|e| filter.matches(&e.kind))
                .cloned()
                .collect(),
            through: scanned
                .last()
                .map_or(after.max(self.floor), Event::position),
            complete: end == self.events.len(),
        })
    }
}

/// A piece of the window, from [`EventLog::after_bounded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The events that passed the filter.
    pub events: Vec<Event>,
    /// The position of the last event looked at.
    pub through: Position,
    /// Whether that was the newest event held.
    pub complete: bool,
}

impl StreamStart {
    /// The position a stream from here resumes after (`None`: before everything), given the
    /// current head.
    pub fn after(self, head: Position) -> Option<Position> {
        match self {
            StreamStart::Now => Some(head),
            StreamStart::Index(i) => Position::before_index(i),
            StreamStart::After(p) => Some(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: u64, seq: u32, job: &str) -> Event {
        Event {
            index,
            seq,
            at: 0,
            kind: EventKind::JobStopped { job: job.into() },
        }
    }

    #[test]
    fn positions_parse_and_order() {
        let p: Position = "12.3".parse().unwrap();
        assert_eq!(p, Position { index: 12, seq: 3 });
        assert_eq!(p.to_string(), "12.3");
        assert!("12".parse::<Position>().is_err());
        assert!(matches!("7".parse(), Ok(StreamStart::Index(7))));
        assert!(matches!("7.1".parse(), Ok(StreamStart::After(_))));
        assert!(
            "x".parse::<StreamStart>()
                .unwrap_err()
                .contains("not an index")
        );
        assert!(Position { index: 3, seq: 9 } < Position { index: 4, seq: 0 });
    }

    #[test]
    fn the_log_resumes_after_a_position_and_resets_before_its_floor() {
        let mut log = EventLog::new(3, Position { index: 1, seq: 0 });
        for (i, s) in [(2, 0), (2, 1), (3, 0), (4, 0)] {
            log.push(ev(i, s, "a"));
        }
        // (2,0) was dropped: the floor is now (2,0).
        let all = EventFilter::default();
        let got = log
            .after(Some(Position { index: 2, seq: 0 }), &all)
            .unwrap();
        assert_eq!(
            got.iter().map(Event::position).collect::<Vec<_>>(),
            vec![
                Position { index: 2, seq: 1 },
                Position { index: 3, seq: 0 },
                Position { index: 4, seq: 0 }
            ]
        );
        let from3 = log
            .after(StreamStart::Index(3).after(log.head()), &all)
            .unwrap();
        assert_eq!(from3.len(), 2);
        let reset = log
            .after(StreamStart::Index(2).after(log.head()), &all)
            .unwrap_err();
        assert_eq!((reset.index, reset.seq, reset.oldest_index), (4, 0, 2));
        assert!(log.after(None, &all).is_err());
        assert!(log.after(Some(log.head()), &all).unwrap().is_empty());
    }

    /// Issue 18, item 8: a reset names positions as a user writes them (`--from-index 131`, or
    /// an event id), never the inner marker of "every event of an index" (`130.4294967295`).
    #[test]
    fn a_reset_message_shows_indexes_as_written() {
        // A manager that started at index 130 holds everything after it, and nothing yet.
        let mut log = EventLog::new(8, Position::before_index(131).unwrap());
        let all = EventFilter::default();
        let reset = log
            .after(StreamStart::Index(5).after(log.head()), &all)
            .unwrap_err();
        assert!(!reset.message.contains("4294967295"), "{}", reset.message);
        assert!(
            reset.message.contains("from index 131"),
            "{}",
            reset.message
        );
        // With events held, the way on is after the newest one.
        log.push(ev(131, 0, "a"));
        log.push(ev(131, 1, "a"));
        let reset = log
            .after(StreamStart::Index(5).after(log.head()), &all)
            .unwrap_err();
        assert!(!reset.message.contains("4294967295"), "{}", reset.message);
        assert!(
            reset.message.contains("after event 131.1"),
            "{}",
            reset.message
        );
        assert_eq!(StreamStart::Index(131).to_string(), "from index 131");
        assert_eq!(
            Position::before_index(131).unwrap().resume().to_string(),
            "from index 131"
        );
        assert_eq!(
            Position { index: 7, seq: 2 }.resume().to_string(),
            "after event 7.2"
        );
    }

    #[test]
    fn filters_match_topic_and_key() {
        let f = EventFilter {
            topics: vec![Topic::Job],
            key: Some("a".into()),
        };
        assert!(f.matches(&ev(1, 0, "a").kind));
        assert!(!f.matches(&ev(1, 0, "b").kind));
        assert!(!f.matches(&EventKind::LeasesExpired));
        assert_eq!("Worker".parse::<Topic>(), Ok(Topic::Worker));
        assert!(
            "jobs"
                .parse::<Topic>()
                .unwrap_err()
                .contains("unknown topic")
        );
    }
}
