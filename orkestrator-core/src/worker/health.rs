//! The health-check tracker of one task's running container: when its next check is due and the
//! verdict its checks add up to. No I/O and no clock: the time comes in as a value. A task that
//! fails its check `failures` times in a row is unhealthy: the agent stops its container, and the
//! exit goes through the restart policy like any other, as a failure whatever the exit code.
//! Which checks are due, and running them, is in `checks`.

use tokio::time::Instant;

use crate::spec::HealthCheck;

/// The health-check bookkeeping of one task's running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HealthTracker {
    /// When the next check is due.
    next_probe: Option<Instant>,
    /// Failed checks in a row.
    failures: u32,
    /// The last verdict, once there is one.
    healthy: Option<bool>,
    /// Why the container was found unhealthy (it is being stopped; reported with its exit).
    unhealthy: Option<String>,
    /// Until when failures do not count (the check's `start_period` from the container's
    /// start); the first success ends it early.
    booting_until: Option<Instant>,
}

/// What one check's result leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeOutcome {
    /// It passed: the task is healthy.
    Passed,
    /// It failed within the check's `start_period`, which does not count.
    Booting,
    /// It failed, `failures` times in a row, fewer than the check allows.
    Failed {
        /// Failures in a row.
        failures: u32,
    },
    /// It failed once too often: stop the container. `reason` goes with its exit.
    Unhealthy {
        /// Failures in a row.
        failures: u32,
        /// What failed and why.
        reason: String,
    },
}

impl HealthTracker {
    /// The last verdict (`None` before the first check, or without a check).
    pub(crate) fn verdict(&self) -> Option<bool> {
        self.healthy
    }

    /// The container runs since `since`: the first check is due one interval after it started.
    pub(crate) fn running(&mut self, since: Instant, check: Option<&HealthCheck>) {
        if let Some(hc) = check
            && self.next_probe.is_none()
        {
            self.next_probe = Some(since + hc.interval);
            self.booting_until = (!hc.start_period.is_zero()).then(|| since + hc.start_period);
        }
    }

    /// The container exited: start afresh with the next one. Returns why it had been found
    /// unhealthy, if it had.
    pub(crate) fn exited(&mut self) -> Option<String> {
        std::mem::take(self).unhealthy
    }

    /// When the next check is due (none once the container is being stopped as unhealthy).
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        self.next_probe.filter(|_| self.unhealthy.is_none())
    }

    /// Whether a check is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.wake_at().is_some_and(|at| at <= now)
    }

    /// A check finished at `now` without a result (the engine's own check of the image has
    /// not passed or failed yet): nothing changes but that the next is due one interval later.
    pub(crate) fn no_result(&mut self, check: &HealthCheck, now: Instant) {
        self.next_probe = Some(now + check.interval);
    }

    /// Records one check's `result`, finished at `now`; the next is due one interval later.
    pub(crate) fn record(
        &mut self,
        check: &HealthCheck,
        result: Result<(), String>,
        now: Instant,
    ) -> ProbeOutcome {
        self.next_probe = Some(now + check.interval);
        match result {
            Ok(()) => {
                self.failures = 0;
                self.healthy = Some(true);
                self.booting_until = None;
                ProbeOutcome::Passed
            }
            Err(_) if self.booting_until.is_some_and(|until| now < until) => ProbeOutcome::Booting,
            Err(why) => {
                self.booting_until = None;
                self.failures += 1;
                let failures = self.failures;
                if failures < check.failures {
                    return ProbeOutcome::Failed { failures };
                }
                self.healthy = Some(false);
                let reason = format!("{} failed {failures} times in a row: {why}", check.probe);
                self.unhealthy = Some(reason.clone());
                ProbeOutcome::Unhealthy { failures, reason }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::Probe;

    fn check(failures: u32) -> HealthCheck {
        HealthCheck {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            failures,
            probe: Probe::Tcp { port: 80 },
            start_period: Duration::ZERO,
        }
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_and_a_success_ends_it() {
        let t0 = Instant::now();
        let hc = HealthCheck {
            start_period: Duration::from_secs(30),
            ..check(1)
        };
        let fail = || Err("refused".to_owned());
        let mut h = HealthTracker::default();
        h.running(t0, Some(&hc));
        let early = t0 + Duration::from_secs(10);
        assert_eq!(h.record(&hc, fail(), early), ProbeOutcome::Booting);
        assert_eq!(h.verdict(), None, "no verdict while booting");
        assert_eq!(h.wake_at(), Some(early + hc.interval), "checks go on");
        // After the period, a failure counts (one is enough here).
        let mut late = h.clone();
        assert!(matches!(
            late.record(&hc, fail(), t0 + Duration::from_secs(30)),
            ProbeOutcome::Unhealthy { .. }
        ));
        // The first success ends the period early: the next failure counts.
        assert_eq!(h.record(&hc, Ok(()), early), ProbeOutcome::Passed);
        assert!(matches!(
            h.record(&hc, fail(), early + Duration::from_secs(1)),
            ProbeOutcome::Unhealthy { .. }
        ));
    }

    #[test]
    fn checks_are_due_one_interval_apart_from_the_start() {
        let t0 = Instant::now();
        let hc = check(2);
        let mut h = HealthTracker::default();
        h.running(t0, None);
        assert_eq!(h.wake_at(), None, "no check, nothing due");
        h.running(t0, Some(&hc));
        assert_eq!(h.wake_at(), Some(t0 + hc.interval));
        h.running(t0 + Duration::from_secs(1), Some(&hc));
        assert_eq!(
            h.wake_at(),
            Some(t0 + hc.interval),
            "set once per container"
        );
        assert!(!h.due(t0 + Duration::from_millis(4999)));
        assert!(h.due(t0 + hc.interval));
        let done = t0 + Duration::from_secs(6);
        assert_eq!(h.record(&hc, Ok(()), done), ProbeOutcome::Passed);
        assert_eq!(h.verdict(), Some(true));
        assert_eq!(h.wake_at(), Some(done + hc.interval));
    }

    #[test]
    fn failures_in_a_row_make_it_unhealthy_and_a_pass_forgives() {
        let t0 = Instant::now();
        let hc = check(2);
        let mut h = HealthTracker::default();
        h.running(t0, Some(&hc));
        let fail = || Err("refused".to_owned());
        assert_eq!(
            h.record(&hc, fail(), t0),
            ProbeOutcome::Failed { failures: 1 }
        );
        assert_eq!(h.record(&hc, Ok(()), t0), ProbeOutcome::Passed);
        assert_eq!(
            h.record(&hc, fail(), t0),
            ProbeOutcome::Failed { failures: 1 }
        );
        assert_eq!(h.verdict(), Some(true), "one failure is not a verdict");
        let reason = "tcp :80 failed 2 times in a row: refused".to_owned();
        assert_eq!(
            h.record(&hc, fail(), t0),
            ProbeOutcome::Unhealthy {
                failures: 2,
                reason: reason.clone()
            }
        );
        assert_eq!(h.verdict(), Some(false));
        assert_eq!(h.wake_at(), None, "no more checks while it is stopped");
        assert!(!h.due(t0 + Duration::from_secs(60)));
        assert_eq!(h.exited(), Some(reason));
        assert_eq!(
            h,
            HealthTracker::default(),
            "the next container starts afresh"
        );
        assert_eq!(h.exited(), None);
    }
}
