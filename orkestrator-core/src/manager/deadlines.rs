//! The rules of monotonic time, as pure functions: a component's liveness from its last
//! heartbeat, when a scheduler's lease on a pending instance has expired, the workers' heartbeat
//! pace for their number, and when so many workers are silent at once that the manager suspects
//! itself or the network rather than them. Placement (taking work) and the liveness pass both
//! decide leases with [`lease_expired`].

use std::time::Duration;

use tokio::time::Instant;

use crate::api::Liveness;

use super::config::ManagerConfig;

/// The heartbeat pace the manager asks of workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// How often each worker heartbeats.
    pub interval: Duration,
    /// How long after its last heartbeat a worker misses its deadline.
    pub grace: Duration,
}

/// The pace for `workers` workers, as Nomad's `max_heartbeats_per_second` widens its heartbeat
/// TTL: `interval = max(heartbeat_interval, workers / max_heartbeats_per_second)` and the grace
/// grows in proportion, `grace = heartbeat_grace × interval / heartbeat_interval` (3 × the interval
/// with the defaults: 1 s and 3 s up to 100 workers, 100 s and 300 s at 10,000).
pub(crate) fn pace(workers: usize, cfg: &ManagerConfig) -> Pace {
    let base = cfg.heartbeat_interval.max(Duration::from_millis(1));
    let rate = cfg.max_heartbeats_per_second.max(1) as u64;
    let spread = Duration::from_millis(workers as u64 * 1000 / rate);
    let interval = base.max(spread);
    let grace = cfg
        .heartbeat_grace
        .mul_f64(interval.as_secs_f64() / base.as_secs_f64());
    Pace { interval, grace }
}

/// How often the liveness pass runs: twice per heartbeat interval, at least every 50 ms apart.
pub(crate) fn pass_every(cfg: &ManagerConfig) -> Duration {
    (cfg.heartbeat_interval / 2).max(Duration::from_millis(50))
}

/// How long the manager itself stalled between two liveness passes: the gap beyond the interval
/// they are meant to run at. Runtime starvation, lock waits and a store that holds commits all
/// show here, and in that time the manager could not process heartbeats either.
pub(crate) fn stall(previous: Option<Instant>, now: Instant, every: Duration) -> Duration {
    previous.map_or(Duration::ZERO, |p| {
        now.saturating_duration_since(p).saturating_sub(every)
    })
}

/// The fewest workers for which mass silence is judged.
pub(crate) const MASS_MIN_WORKERS: usize = 10;
/// The share of workers (in percent) that, silent in one pass, makes the manager suspect itself
/// or the network (Kubernetes' `unhealthy-zone-threshold`, 0.55).
pub(crate) const MASS_SILENT_PERCENT: usize = 55;

/// Whether `silent` of `considered` workers (those not already `Down`) missing their deadline in
/// one pass is mass silence: at least [`MASS_MIN_WORKERS`] considered and more than
/// [`MASS_SILENT_PERCENT`] of them silent.
pub(crate) fn mass_silence(considered: usize, silent: usize) -> bool {
    considered >= MASS_MIN_WORKERS && silent * 100 > considered * MASS_SILENT_PERCENT
}

/// A component's liveness at `now` from its last heartbeat: `Down` once more than `grace` has
/// passed since, else `Ready` or `Unhealthy` as it last said.
pub(crate) fn liveness(
    healthy: bool,
    last_seen: Instant,
    grace: Duration,
    now: Instant,
) -> Liveness {
    if now.duration_since(last_seen) > grace {
        Liveness::Down
    } else if healthy {
        Liveness::Ready
    } else {
        Liveness::Unhealthy
    }
}

/// Whether a lease taken at `leased_at` has expired at `now`: it has been held for
/// `lease_timeout` or longer, or its scheduler (last seen at `holder_seen`; `None` if it is
/// unknown) is down.
pub(crate) fn lease_expired(
    leased_at: Instant,
    holder_seen: Option<Instant>,
    now: Instant,
    lease_timeout: Duration,
    grace: Duration,
) -> bool {
    now.duration_since(leased_at) >= lease_timeout
        || holder_seen.is_none_or(|seen| liveness(true, seen, grace, now) == Liveness::Down)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn liveness_follows_the_last_heartbeat() {
        let t0 = SystemClock.instant();
        // (healthy, seconds since the heartbeat, expected) with a 3 s grace.
        let table = [
            (true, 0, Liveness::Ready),
            (false, 0, Liveness::Unhealthy),
            (true, 3, Liveness::Ready),
            (false, 3, Liveness::Unhealthy),
            (true, 4, Liveness::Down),
            (false, 4, Liveness::Down),
        ];
        for (healthy, ago, want) in table {
            let got = liveness(healthy, t0, 3 * S, t0 + ago * S);
            assert_eq!(got, want, "healthy {healthy}, {ago} s ago");
        }
    }

    #[test]
    fn the_pace_widens_with_the_workers() {
        let cfg = ManagerConfig::default();
        // (workers, interval ms, grace ms) with the defaults: 1 s, 3 s, 100 heartbeats a second.
        let table = [
            (0, 1_000, 3_000),
            (1, 1_000, 3_000),
            (100, 1_000, 3_000),
            (150, 1_500, 4_500),
            (250, 2_500, 7_500),
            (10_000, 100_000, 300_000),
        ];
        for (workers, interval, grace) in table {
            let p = pace(workers, &cfg);
            assert_eq!(p.interval.as_millis(), interval, "{workers} workers");
            assert_eq!(p.grace.as_millis(), grace, "{workers} workers");
        }
    }

    #[test]
    fn a_stall_is_the_gap_between_passes_beyond_their_interval() {
        let t0 = SystemClock.instant();
        let every = S / 2;
        assert_eq!(stall(None, t0 + 9 * S, every), Duration::ZERO);
        assert_eq!(stall(Some(t0), t0 + every, every), Duration::ZERO);
        assert_eq!(stall(Some(t0), t0 + S / 4, every), Duration::ZERO);
        assert_eq!(stall(Some(t0), t0 + 6 * S, every), 6 * S - every);
    }

    #[test]
    fn mass_silence_needs_ten_workers_and_more_than_55_percent() {
        // (considered, silent, mass?)
        let table = [
            (2, 1, false),
            (2, 2, false),
            (9, 9, false),
            (10, 5, false),
            (10, 6, true),
            (12, 7, true),
            (20, 11, false),
            (20, 12, true),
            (100, 55, false),
            (100, 56, true),
        ];
        for (considered, silent, want) in table {
            assert_eq!(
                mass_silence(considered, silent),
                want,
                "{silent} of {considered}"
            );
        }
    }

    #[test]
    fn a_lease_expires_on_timeout_or_when_its_scheduler_is_down_or_gone() {
        let t0 = SystemClock.instant();
        // (lease age s, scheduler last seen s ago (None: unknown), expired?) with a 10 s lease
        // timeout and a 3 s grace.
        let table = [
            (0, Some(0), false),
            (9, Some(0), false),
            (10, Some(0), true),
            (11, Some(0), true),
            (5, Some(3), false),
            (5, Some(4), true),
            (0, None, true),
            (9, None, true),
        ];
        for (age, seen_ago, want) in table {
            let now = t0 + 20 * S;
            let leased_at = now - age * S;
            let seen = seen_ago.map(|ago: u32| now - ago * S);
            let got = lease_expired(leased_at, seen, now, 10 * S, 3 * S);
            assert_eq!(
                got, want,
                "lease {age} s old, scheduler seen {seen_ago:?} s ago"
            );
        }
    }
}
