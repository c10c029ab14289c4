//! The manager's own measurements, for exporters (the HTTP server turns them into Prometheus
//! metrics): counts by state read at scrape time, and histograms the committer fills as batches
//! become durable — commit latency, batch sizes, and, from the events each batch publishes,
//! placements and how long instances waited for them. Nothing here takes the state lock for long
//! or touches the store.

use std::collections::BTreeMap;

use crate::api::{JobPhase, Liveness};
use crate::events::{Event, EventKind};
use crate::state::TaskState;

/// A histogram with fixed bucket bounds (upper bounds, ascending; `+Inf` is implied).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value.
    pub fn observe(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
    }

    /// The sum of every value.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `(upper bound, values at or under it)`, cumulative, as exposition formats want them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c;
                (*b, acc)
            })
            .collect()
    }
}

/// Seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Seconds, for waits that may be long: 1 ms to 5 minutes.
pub const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Counts of things per batch: 1 to 4096.
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// What the committer has measured since the manager started.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Store commit latency, seconds.
    pub commit_seconds: Histogram,
    /// Changes (requests) per store commit.
    pub batch_changes: Histogram,
    /// Store ops per commit.
    pub batch_ops: Histogram,
    /// Failed store commits.
    pub commit_failures: u64,
    /// Instances placed.
    pub placements: u64,
    /// How long placed instances waited, seconds.
    pub scheduling_seconds: Histogram,
    /// Events published, by type.
    pub events: BTreeMap<&'static str, u64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
            batch_changes: Histogram::new(SIZE_BUCKETS),
            batch_ops: Histogram::new(SIZE_BUCKETS),
            commit_failures: 0,
            placements: 0,
            scheduling_seconds: Histogram::new(WAIT_BUCKETS),
            events: BTreeMap::new(),
        }
    }
}

impl Telemetry {
    /// Counts one published event.
    pub(crate) fn saw(&mut self, e: &Event) {
        *self.events.entry(e.kind.name()).or_default() += 1;
        if let EventKind::InstancePlaced { pending_ms, .. } = e.kind {
            self.placements += 1;
            self.scheduling_seconds.observe(pending_ms as f64 / 1000.0);
        }
    }
}

/// The manager's counts by state right now (cheap: kept up to date as state changes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gauges {
    /// Jobs by phase.
    pub jobs: BTreeMap<JobPhase, u64>,
    /// Tasks by state.
    pub tasks: BTreeMap<TaskState, u64>,
    /// Workers by liveness.
    pub workers: BTreeMap<Liveness, u64>,
    /// Schedulers by liveness.
    pub schedulers: BTreeMap<Liveness, u64>,
    /// The last durable commit index.
    pub durable_index: u64,
    /// Events held for streams to resume from.
    pub event_window: u64,
    /// Task series in the metrics window.
    pub metrics_series: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_keep_values_past_the_last_bound() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 7.0] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), vec![(1.0, 2), (2.0, 3)]);
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 10.0).abs() < 1e-9);
    }
}
