//! The two rules of monotonic time, as pure functions of `now`: a component's liveness from its
//! last heartbeat, and when a scheduler's lease on a pending instance has expired. Placement
//! (taking work) and the liveness pass both decide leases with [`lease_expired`].

use std::time::Duration;

use tokio::time::Instant;

use crate::api::Liveness;

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
