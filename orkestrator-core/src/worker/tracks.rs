//! What the agent remembers about every task it holds ([`Tracks`]): its restarts, its health
//! checks and the last update reported. Below the plan, the health-check loop and the metrics,
//! which all read or update it.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::health::HealthTracker;
use super::restart::{RestartTracker, task_seed};
use crate::api::{Assignment, TaskUpdate};
use crate::ids::{InstanceId, TaskName};
use crate::state::TaskState;

/// One task of one instance.
pub(crate) type TaskKey = (InstanceId, TaskName);

/// What the agent remembers about one task.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    /// Restarts, backoff, running time.
    pub(crate) restart: RestartTracker,
    /// Health checks of the running container.
    pub(crate) health: HealthTracker,
    /// The last update sent (or being sent), so that each is sent once.
    reported: Option<TaskUpdate>,
    /// Whether it has had a container (started here, or found after a worker restart): its
    /// `depends_on` gate only its first start.
    pub(crate) opened: bool,
    /// Whether it has run (a `Running` report): a `started` condition is met.
    started: bool,
    /// Whether it has passed a health check: a `healthy` condition is met.
    healthy: bool,
    /// How it ended for good (`Completed` or `Failed`, with the reason), if it has.
    outcome: Option<(TaskState, Option<String>)>,
}

impl Track {
    /// The container last reported for the task.
    pub(crate) fn container(&self) -> Option<&str> {
        self.reported.as_ref()?.container_id.as_deref()
    }

    /// Whether it has run.
    pub(crate) fn was_started(&self) -> bool {
        self.started
    }

    /// Whether it has passed a health check.
    pub(crate) fn was_healthy(&self) -> bool {
        self.healthy
    }

    /// How it ended for good, if it has: `Completed` or `Failed`, and the reason.
    pub(crate) fn outcome(&self) -> Option<(TaskState, Option<&str>)> {
        self.outcome.as_ref().map(|(s, r)| (*s, r.as_deref()))
    }

    /// Remembers `u` as reported; returns it unless it was reported already.
    pub(crate) fn report(&mut self, u: TaskUpdate) -> Option<TaskUpdate> {
        self.started |= u.state == TaskState::Running;
        self.healthy |= u.healthy == Some(true);
        self.outcome = match u.state {
            TaskState::Completed | TaskState::Failed => Some((u.state, u.reason.clone())),
            _ => None,
        };
        if self.reported.as_ref() == Some(&u) {
            return None;
        }
        self.reported = Some(u.clone());
        Some(u)
    }
}

/// What the agent remembers about every task it holds.
#[derive(Debug, Clone)]
pub(crate) struct Tracks {
    /// The worker's jitter seed; each task's is drawn from it and the task's names.
    seed: u64,
    map: BTreeMap<TaskKey, Track>,
}

impl Tracks {
    /// No tasks yet; `seed` drives the restart jitter.
    pub(crate) fn new(seed: u64) -> Self {
        Tracks {
            seed,
            map: BTreeMap::new(),
        }
    }

    /// Forgets the tasks of instances no longer in `held`.
    pub(crate) fn retain_held(&mut self, held: &BTreeMap<InstanceId, Assignment>) {
        self.map.retain(|(i, _), _| held.contains_key(i));
    }

    /// One task's track, if it has one.
    pub(crate) fn get(&self, key: &TaskKey) -> Option<&Track> {
        self.map.get(key)
    }

    /// One task's track, created if it has none.
    pub(crate) fn entry(&mut self, instance: &InstanceId, task: &TaskName) -> &mut Track {
        let seed = self.seed;
        self.map
            .entry((instance.clone(), task.clone()))
            .or_insert_with(|| Track {
                restart: RestartTracker::new(task_seed(seed, instance.as_str(), task.as_str())),
                health: HealthTracker::default(),
                reported: None,
                opened: false,
                started: false,
                healthy: false,
                outcome: None,
            })
    }

    /// One task's track, to change, if it has one.
    pub(crate) fn get_mut(&mut self, key: &TaskKey) -> Option<&mut Track> {
        self.map.get_mut(key)
    }

    /// Whether the task is finished for good (it no longer needs its resources).
    pub(crate) fn is_done(&self, key: &TaskKey) -> bool {
        self.map.get(key).is_some_and(|t| t.restart.is_done())
    }

    /// The earliest time something is due: a restart after its backoff, or a health check.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        self.map
            .values()
            .flat_map(|t| [t.restart.next_start(), t.health.wake_at()])
            .flatten()
            .min()
    }

    /// The earliest restart due after its backoff (what the reconcile loop wakes for).
    pub(crate) fn next_restart(&self) -> Option<Instant> {
        self.map
            .values()
            .filter_map(|t| t.restart.next_start())
            .min()
    }

    /// The containers of tasks that run (and may exit).
    pub(crate) fn running_containers(&self) -> Vec<String> {
        self.map
            .values()
            .filter(|t| t.restart.running_since().is_some() && !t.restart.is_done())
            .filter_map(|t| t.container().map(str::to_owned))
            .collect()
    }

    /// `updates` did not reach the manager: forget them, so the next pass reports them again.
    pub(crate) fn unreport(&mut self, updates: &[TaskUpdate]) {
        for u in updates {
            if let Some(t) = self.map.get_mut(&(u.instance.clone(), u.task.clone()))
                && t.reported.as_ref() == Some(u)
            {
                t.reported = None;
            }
        }
    }
}
