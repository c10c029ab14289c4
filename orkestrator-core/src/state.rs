//! The task lifecycle: observed states and the one place where transitions are checked.
//!
//! ```text
//! Pending → Scheduled → Starting → Running → Completed | Failed
//!                         ↑   ↓       ↓
//!                        Restarting ←─┘      Lost (worker down)    Stopping → Stopped
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// The observed state of one task of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for a placement.
    Pending,
    /// Placed on a worker, not yet started there.
    Scheduled,
    /// On its worker, waiting for the tasks it depends on (`depends_on`) before its first start;
    /// the reason says which (`waiting for db to be healthy`).
    Waiting,
    /// The worker is creating and starting the container (pulling its image if needed).
    Starting,
    /// The container runs.
    Running,
    /// Waiting out a backoff before the next start.
    Restarting,
    /// Exited with code 0 and will not be restarted.
    Completed,
    /// Exited non-zero (or could not start) and will not be restarted.
    Failed,
    /// Its worker is down; the instance is rescheduled elsewhere.
    Lost,
    /// Being stopped (SIGTERM, grace period, SIGKILL).
    Stopping,
    /// Stopped on request, container removed.
    Stopped,
}

impl TaskState {
    /// All states, in lifecycle order.
    pub const ALL: [TaskState; 11] = [
        TaskState::Pending,
        TaskState::Scheduled,
        TaskState::Waiting,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Restarting,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Lost,
        TaskState::Stopping,
        TaskState::Stopped,
    ];

    /// Whether the task will not change state again on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Lost | TaskState::Stopped
        )
    }

    /// Whether the task holds resources on its worker (placed and not finished).
    pub fn holds_resources(self) -> bool {
        matches!(
            self,
            TaskState::Scheduled
                | TaskState::Waiting
                | TaskState::Starting
                | TaskState::Running
                | TaskState::Restarting
                | TaskState::Stopping
        )
    }

    /// Whether the lifecycle allows going from `self` to `to`. Staying in the same state is allowed
    /// (reports are idempotent).
    pub fn can_transition_to(self, to: TaskState) -> bool {
        use TaskState::*;
        if self == to {
            return true;
        }
        match self {
            Pending => matches!(to, Scheduled | Stopped),
            Scheduled => matches!(
                to,
                Waiting | Starting | Running | Failed | Lost | Stopping | Stopped | Restarting
            ),
            // A dependency that fails for good fails its waiting dependents.
            Waiting => matches!(to, Starting | Running | Failed | Lost | Stopping | Stopped),
            Starting => matches!(
                to,
                Running | Completed | Failed | Restarting | Lost | Stopping | Stopped
            ),
            Running => matches!(
                to,
                Completed | Failed | Restarting | Lost | Stopping | Stopped
            ),
            Restarting => matches!(to, Starting | Running | Failed | Lost | Stopping | Stopped),
            // An `always` or `on-failure` policy may restart a task that just exited.
            Completed | Failed => matches!(to, Restarting | Stopping | Stopped),
            Lost => matches!(to, Stopping | Stopped),
            Stopping => matches!(to, Stopped | Lost | Failed | Completed),
            Stopped => false,
        }
    }

    /// Checks a transition: `Ok(to)` or [`IllegalTransition`] (which converts into
    /// [`Error::IllegalTransition`](crate::Error::IllegalTransition)).
    pub fn transition(self, to: TaskState) -> Result<TaskState, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

/// A task state transition that the lifecycle does not allow: the lifecycle's own error, which
/// converts into the crate's [`Error::IllegalTransition`](crate::Error::IllegalTransition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal task transition from {from} to {to}")]
pub struct IllegalTransition {
    /// The current state.
    pub from: TaskState,
    /// The requested state.
    pub to: TaskState,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn happy_path_is_legal() {
        let path = [Pending, Scheduled, Waiting, Starting, Running, Completed];
        for w in path.windows(2) {
            assert!(w[0].can_transition_to(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn terminal_states_are_sticky() {
        for to in TaskState::ALL {
            if to != Stopped {
                assert!(Stopped.transition(to).is_err(), "Stopped -> {to}");
            }
        }
        assert!(Lost.transition(Running).is_err());
        assert!(Completed.transition(Running).is_err());
    }

    #[test]
    fn illegal_transition_is_an_error_naming_both_states() {
        let e = Pending.transition(Running).unwrap_err();
        assert_eq!(
            e.to_string(),
            "illegal task transition from Pending to Running"
        );
    }

    #[test]
    fn same_state_is_idempotent() {
        for s in TaskState::ALL {
            assert!(s.can_transition_to(s));
        }
    }

    #[test]
    fn resources_held_only_while_placed_and_live() {
        assert!(!Pending.holds_resources());
        assert!(Running.holds_resources());
        for s in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(!s.holds_resources(), "{s}");
        }
    }
}
