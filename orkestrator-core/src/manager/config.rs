//! The manager's settings.

use std::time::Duration;

/// Manager settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// How often components should heartbeat. Default 1 s.
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before a component is `Down`. Default 3 s.
    ///
    /// Both are the workers' pace up to `max_heartbeats_per_second` workers; beyond, the
    /// interval widens to `workers / max_heartbeats_per_second` seconds and the grace grows in
    /// proportion (3 × the interval with the defaults). Schedulers keep these two.
    pub heartbeat_grace: Duration,
    /// The most worker heartbeats a second the manager asks for, as Nomad's
    /// `max_heartbeats_per_second`. Default 100: 100 workers at 1 s, 10,000 at 100 s.
    pub max_heartbeats_per_second: u32,
    /// How long a scheduler holds pending instances before they go to another. Default 10 s.
    pub lease_timeout: Duration,
    /// Longest long-poll a caller may ask for. Default 60 s.
    pub max_wait: Duration,
    /// How long a replacement must run during a rolling update before the next instance is
    /// replaced. Default 5 s.
    pub min_healthy_time: Duration,
    /// How long ended jobs, replaced instances, unused spec versions and down workers are kept
    /// before garbage collection removes them. Default 1 h.
    pub gc_after: Duration,
    /// The most pending instances one scheduler's request for work gets. Default 2,000.
    pub max_work: usize,
    /// How many recent events the manager keeps for streams to resume from. Default 50,000.
    pub event_window: usize,
    /// How many metrics samples the manager keeps per task and per worker. Default 60 (five
    /// minutes at the workers' default 5 s interval).
    pub metrics_window: usize,
    /// The most tasks whose figures `/metrics` exposes (so that a million tasks cannot make it
    /// unbounded). Default 10,000.
    pub metrics_max_series: usize,
    /// How long after it starts (a new leader, after a failover) the manager waits before it
    /// judges any worker `Down`, so that workers have time to find it (Nomad renews every
    /// heartbeat timer on failover the same way). Default 0: only the heartbeat grace.
    pub failover_grace: Duration,
    /// The key secrets are sealed with (`server --secret-key-file`). Without one, every secret
    /// operation answers 503. A key that does not match the store's stops the manager starting.
    pub secret_key: Option<crate::secrets::SecretKey>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_grace: Duration::from_secs(3),
            max_heartbeats_per_second: 100,
            lease_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            min_healthy_time: Duration::from_secs(5),
            gc_after: Duration::from_secs(3600),
            max_work: 2_000,
            event_window: 50_000,
            metrics_window: 60,
            metrics_max_series: 10_000,
            failover_grace: Duration::ZERO,
            secret_key: None,
        }
    }
}

/// A task series is dropped when its worker has sent this many reports without it.
pub(crate) const METRICS_STALE_REPORTS: u64 = 3;
