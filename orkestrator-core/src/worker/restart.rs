//! The restart tracker: how many times a task was restarted, when its next start is due (the
//! backoff, doubled per restart, capped and jittered), since when its container runs (a long
//! enough run resets the count), and whether the task is finished for good.
//!
//! An exit and a failed start go through the same [`RestartTracker::exited`], so they count and
//! wait alike.

use std::time::Duration;

use tokio::time::Instant;

use crate::spec::{Backoff, RestartPolicy};

/// The restart bookkeeping of one task on one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestartTracker {
    /// Seeds this task's jitter, so that tasks that fail together spread out.
    seed: u64,
    /// Restarts counted against the policy's `max_attempts` (reported as `restarts`).
    attempts: u32,
    /// The newest container generation seen or created; the next start creates `generation`.
    /// Unlike `attempts`, it never goes down, so container names stay unique and ordered.
    generation: u32,
    /// While waiting out a backoff: when the next start is due.
    next_start: Option<Instant>,
    /// While the container runs: since when.
    running_since: Option<Instant>,
    /// No more starts (completed, failed, or out of attempts).
    done: bool,
}

/// What an exit (or a failed start) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterExit {
    /// Restart number `attempt` is due at `at`, `delay` after the exit.
    Restart {
        /// The restart's number (1 for the first).
        attempt: u32,
        /// The backoff waited.
        delay: Duration,
        /// When the start is due.
        at: Instant,
    },
    /// The task is finished: no restart under its policy, or none left.
    Done,
}

impl RestartTracker {
    /// A tracker for a task that has not run here yet; `seed` picks its jitter.
    pub(crate) fn new(seed: u64) -> Self {
        RestartTracker {
            seed,
            attempts: 0,
            generation: 0,
            next_start: None,
            running_since: None,
            done: false,
        }
    }

    /// Restarts counted so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the task is finished for good.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Since when the task's container runs, if it does.
    pub(crate) fn running_since(&self) -> Option<Instant> {
        self.running_since
    }

    /// When the pending restart is due, if one is.
    pub(crate) fn next_start(&self) -> Option<Instant> {
        self.next_start
    }

    /// Whether a container of generation `generation` was already accounted for: an exit or a
    /// refused start of it was counted and the tracker moved on to the next generation. Such a
    /// container is a leftover, never started again nor counted again.
    pub(crate) fn accounted(&self, generation: u32) -> bool {
        generation < self.generation
    }

    /// The manager recorded the task as ended for good: no more starts, whatever is left here.
    pub(crate) fn end(&mut self) {
        self.done = true;
        self.next_start = None;
        self.running_since = None;
    }

    /// Whether a start may happen at `now`: no backoff is still running.
    pub(crate) fn start_due(&self, now: Instant) -> bool {
        self.next_start.is_none_or(|t| now >= t)
    }

    /// A container of this task carries generation `generation`. One newer than any this tracker
    /// knows (after the agent restarted, say) was restarted that many more times: it is adopted
    /// with its count. One it knows changes nothing, so a count reset after a healthy run holds.
    pub(crate) fn saw_generation(&mut self, generation: u32) {
        if generation > self.generation {
            self.attempts = self.attempts.saturating_add(generation - self.generation);
            self.generation = generation;
        }
    }

    /// A start begins now: the backoff is over. Returns the generation to create.
    pub(crate) fn starting(&mut self) -> u32 {
        self.next_start = None;
        self.generation
    }

    /// The container started at `now`.
    pub(crate) fn started(&mut self, now: Instant) {
        self.running_since = Some(now);
    }

    /// The container is seen running at `now`. Returns since when it runs; once that is
    /// `reset_after` or longer, the restart count goes back to 0.
    pub(crate) fn observe_running(&mut self, now: Instant, backoff: &Backoff) -> Instant {
        let since = *self.running_since.get_or_insert(now);
        if self.attempts > 0 && now.duration_since(since) >= backoff.reset_after {
            self.attempts = 0;
        }
        since
    }

    /// The container exited at `now` (or could not start), `failed` or not: either the next
    /// restart with its due time, or the end of the task.
    pub(crate) fn exited(
        &mut self,
        policy: &RestartPolicy,
        failed: bool,
        now: Instant,
    ) -> AfterExit {
        self.running_since = None;
        if !policy.should_restart(i64::from(failed), self.attempts) {
            self.done = true;
            self.next_start = None;
            return AfterExit::Done;
        }
        let delay = self.delay(&policy.backoff, self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        self.generation = self.generation.saturating_add(1);
        let at = now + delay;
        self.next_start = Some(at);
        AfterExit::Restart {
            attempt: self.attempts,
            delay,
            at,
        }
    }

    /// The wait before restart number `attempt + 1`: `backoff.delay(attempt)` scaled by a factor
    /// in [0.9, 1.1) drawn from this tracker's seed and `attempt`, never more than `backoff.max`.
    pub(crate) fn delay(&self, backoff: &Backoff, attempt: u32) -> Duration {
        let unit = unit(mix(self.seed ^ u64::from(attempt).wrapping_mul(GOLDEN)));
        backoff
            .delay(attempt)
            .mul_f64(0.9 + 0.2 * unit)
            .min(backoff.max)
    }
}

/// The 64-bit golden ratio, to spread consecutive inputs apart before mixing.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The seed of one task's tracker: the worker's seed mixed with the instance and task names.
pub(crate) fn task_seed(worker_seed: u64, instance: &str, task: &str) -> u64 {
    let mut h = worker_seed;
    for part in [instance, task] {
        for b in part.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
        h = mix(h.wrapping_add(GOLDEN));
    }
    h
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `z`'s top 53 bits as a number in [0, 1).
fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RestartMode;

    fn policy(mode: RestartMode, max_attempts: u32, initial: u64, max: u64) -> RestartPolicy {
        RestartPolicy {
            policy: mode,
            max_attempts,
            backoff: Backoff {
                initial: Duration::from_secs(initial),
                max: Duration::from_secs(max),
                reset_after: Duration::from_secs(600),
            },
        }
    }

    fn within_10_percent(d: Duration, of: Duration) -> bool {
        d >= of.mul_f64(0.9) && d < of.mul_f64(1.1)
    }

    #[test]
    fn the_backoff_doubles_per_restart_up_to_the_cap() {
        let p = policy(RestartMode::OnFailure, 10, 1, 8);
        let mut t = RestartTracker::new(42);
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..6 {
            match t.exited(&p, true, t0) {
                AfterExit::Restart { delay, at, attempt } => {
                    assert_eq!(at, t0 + delay);
                    assert_eq!(attempt, t.attempts());
                    assert_eq!(t.next_start(), Some(at));
                    delays.push(delay);
                }
                AfterExit::Done => panic!("restarts are left"),
            }
        }
        for (d, secs) in delays.iter().zip([1, 2, 4, 8, 8, 8]) {
            let nominal = Duration::from_secs(secs);
            assert!(within_10_percent(*d, nominal), "{d:?} for {nominal:?}");
            assert!(*d <= p.backoff.max, "{d:?} is past the cap");
        }
        assert_eq!(t.attempts(), 6);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_differs_between_tasks() {
        let b = policy(RestartMode::Always, 5, 10, 1000).backoff;
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..500 {
            let t = RestartTracker::new(task_seed(7, &format!("i{i}"), "t"));
            for attempt in 0..4 {
                let nominal = b.delay(attempt);
                let d = t.delay(&b, attempt);
                assert!(within_10_percent(d, nominal), "{d:?} for {nominal:?}");
                assert_eq!(d, t.delay(&b, attempt), "reproducible");
            }
            seen.insert(t.delay(&b, 0).as_millis() / 100);
        }
        // 500 tasks spread over the 20 buckets of 100 ms between 9 s and 11 s.
        assert!(seen.len() >= 15, "poorly spread: {seen:?}");
        assert_ne!(task_seed(7, "i1", "t"), task_seed(8, "i1", "t"));
        assert_ne!(task_seed(7, "i1", "t"), task_seed(7, "i1t", ""));
    }

    #[test]
    fn attempts_run_out_and_policies_decide_what_restarts() {
        let now = Instant::now();
        let mut t = RestartTracker::new(1);
        let p = policy(RestartMode::OnFailure, 2, 1, 8);
        assert!(matches!(
            t.exited(&p, true, now),
            AfterExit::Restart { attempt: 1, .. }
        ));
        assert!(matches!(
            t.exited(&p, true, now),
            AfterExit::Restart { attempt: 2, .. }
        ));
        assert_eq!(t.exited(&p, true, now), AfterExit::Done);
        assert!(t.is_done());
        assert_eq!(t.next_start(), None);
        assert_eq!(t.attempts(), 2);

        let mut t = RestartTracker::new(1);
        assert_eq!(
            t.exited(&p, false, now),
            AfterExit::Done,
            "on-failure, exit 0"
        );
        let mut t = RestartTracker::new(1);
        let never = policy(RestartMode::Never, 5, 1, 8);
        assert_eq!(t.exited(&never, true, now), AfterExit::Done);
        let mut t = RestartTracker::new(1);
        let always = policy(RestartMode::Always, 5, 1, 8);
        assert!(matches!(
            t.exited(&always, false, now),
            AfterExit::Restart { .. }
        ));
    }

    #[test]
    fn a_healthy_run_of_reset_after_resets_the_count_and_the_backoff() {
        let p = policy(RestartMode::OnFailure, 3, 1, 60);
        let t0 = Instant::now();
        let mut t = RestartTracker::new(5);
        for _ in 0..3 {
            t.exited(&p, true, t0);
        }
        assert_eq!(t.starting(), 3, "the fourth container is generation 3");
        t.started(t0);
        let almost = t0 + p.backoff.reset_after - Duration::from_millis(1);
        assert_eq!(t.observe_running(almost, &p.backoff), t0);
        assert_eq!(t.attempts(), 3, "not yet");
        t.saw_generation(3);
        assert_eq!(
            t.observe_running(t0 + p.backoff.reset_after, &p.backoff),
            t0
        );
        assert_eq!(t.attempts(), 0);
        // The running container still carries generation 3: seeing it again keeps the reset.
        t.saw_generation(3);
        assert_eq!(t.attempts(), 0);
        let later = t0 + p.backoff.reset_after * 2;
        match t.exited(&p, true, later) {
            AfterExit::Restart { attempt, delay, .. } => {
                assert_eq!(attempt, 1, "counted from zero again");
                assert!(within_10_percent(delay, p.backoff.initial), "{delay:?}");
            }
            AfterExit::Done => panic!("the count was reset"),
        }
        assert_eq!(t.starting(), 4, "generations keep growing");
        assert_eq!(t.running_since(), None);
    }

    #[test]
    fn an_adopted_container_brings_its_count_and_backoffs_wait() {
        let now = Instant::now();
        let mut t = RestartTracker::new(3);
        t.saw_generation(2);
        assert_eq!((t.attempts(), t.starting()), (2, 2));
        t.saw_generation(1);
        assert_eq!(t.attempts(), 2, "an older container changes nothing");
        let p = policy(RestartMode::OnFailure, 5, 4, 60);
        let AfterExit::Restart { at, delay, .. } = t.exited(&p, true, now) else {
            panic!("restarts are left");
        };
        assert!(
            within_10_percent(delay, Duration::from_secs(16)),
            "{delay:?}"
        );
        assert!(!t.start_due(now));
        assert!(!t.start_due(at - Duration::from_millis(1)));
        assert!(t.start_due(at));
        assert_eq!(t.starting(), 3);
        assert_eq!(t.next_start(), None);
        assert!(t.start_due(now));
    }
}
