//! Time as a value. Two kinds of time:
//!
//! - wall time ([`Millis`]), which is persisted: ends, GC cut-offs, event times, token times;
//! - monotonic time ([`tokio::time::Instant`]), for leases, heartbeat deadlines and waits.
//!
//! The manager reads both from a [`Clock`] once per change and hands them to its decisions as a
//! [`Now`]. In production that is the [`SystemClock`]; tests and the deterministic simulation use
//! a [`TokioClock`], whose wall time follows tokio's (paused) clock, so that timers and decisions
//! agree.

use std::fmt::Debug;

use tokio::time::Instant;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Both kinds of time at one moment, read once and passed to decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall time, for what is persisted.
    pub wall: Millis,
    /// Monotonic time, for leases, heartbeat deadlines and waits.
    pub instant: Instant,
}

/// Where the time comes from.
pub trait Clock: Send + Sync + Debug {
    /// The wall time, in milliseconds since the Unix epoch.
    fn wall(&self) -> Millis;

    /// The monotonic time (tokio's, so that it follows a paused runtime's clock).
    fn instant(&self) -> Instant;

    /// Both at once.
    fn now(&self) -> Now {
        Now {
            wall: self.wall(),
            instant: self.instant(),
        }
    }
}

/// The clock of production: the system's wall time and tokio's monotonic time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> Millis {
        now_millis()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock for tests and simulations: its wall time starts at a given value and moves on with
/// tokio's clock, so under `start_paused` both kinds of time advance together, and only as tokio's
/// time does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall_at_start: Millis,
    start: Instant,
}

impl TokioClock {
    /// A clock whose wall time reads `wall` now (on tokio's clock).
    pub fn starting_at(wall: Millis) -> Self {
        TokioClock {
            wall_at_start: wall,
            start: Instant::now(),
        }
    }

    /// A clock whose wall time reads the system's wall time now.
    pub fn starting_now() -> Self {
        Self::starting_at(now_millis())
    }
}

impl Clock for TokioClock {
    fn wall(&self) -> Millis {
        let elapsed = Instant::now().duration_since(self.start).as_millis() as u64;
        self.wall_at_start.saturating_add(elapsed)
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_wall_time_follows_paused_time() {
        let c = TokioClock::starting_at(1_000);
        let before = c.now();
        assert_eq!(before.wall, 1_000);
        tokio::time::sleep(Duration::from_secs(90)).await;
        let after = c.now();
        assert_eq!(after.wall, 91_000);
        assert_eq!(
            after.instant.duration_since(before.instant),
            Duration::from_secs(90)
        );
    }
}
