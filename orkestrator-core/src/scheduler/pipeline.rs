//! A scheduler composed of named filters and weighted scores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::filters::{Constraints, HostPorts, ResourceFit};
use super::{Explanation, Filter, Placement, Request, Scheduler, Score};
use crate::api::WorkerSnapshot;

/// Filters, then weighted scores, over every worker or a sample of them.
///
/// Every filter must pass; the feasible worker with the highest weighted score wins, ties going to
/// the earlier worker in the snapshot (the manager lists workers by id), so decisions are
/// deterministic. With [`Pipeline::with_sample`] the scan
/// starts at a pseudo-random worker and stops after that many feasible ones (Nomad's limit
/// iterator; kube-scheduler's percentage of nodes to score): constant work per placement however
/// large the cluster, at the price of sometimes missing the best worker.
pub struct Pipeline {
    name: String,
    filters: Vec<Arc<dyn Filter>>,
    scores: Vec<(Arc<dyn Score>, u32)>,
    sample: Option<usize>,
    rng: AtomicU64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field(
                "filters",
                &self
                    .filters
                    .iter()
                    .map(|x| x.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field(
                "scores",
                &self
                    .scores
                    .iter()
                    .map(|(s, w)| (s.name().to_owned(), *w))
                    .collect::<Vec<_>>(),
            )
            .field("sample", &self.sample)
            .finish()
    }
}

impl Pipeline {
    /// An empty pipeline (every worker passes; ties decide).
    pub fn new(name: impl Into<String>) -> Self {
        Pipeline {
            name: name.into(),
            filters: Vec::new(),
            scores: Vec::new(),
            sample: None,
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// A pipeline with the standard filters: resource fit, host ports, constraints.
    pub fn standard(name: impl Into<String>) -> Self {
        Self::new(name)
            .with_filter(ResourceFit)
            .with_filter(HostPorts)
            .with_filter(Constraints)
    }

    /// Adds a filter.
    pub fn with_filter(mut self, f: impl Filter + 'static) -> Self {
        self.filters.push(Arc::new(f));
        self
    }

    /// Adds a score with a weight.
    pub fn with_score(mut self, s: impl Score + 'static, weight: u32) -> Self {
        self.scores.push((Arc::new(s), weight));
        self
    }

    /// Scores at most `n` feasible workers per placement (`None` scans all).
    pub fn with_sample(mut self, n: Option<usize>) -> Self {
        self.sample = n.filter(|n| *n > 0);
        self
    }

    /// Seeds the sampling start (for reproducible runs).
    pub fn with_seed(self, seed: u64) -> Self {
        self.rng.store(seed, Ordering::Relaxed);
        self
    }

    /// The names of the filters, in order.
    pub fn filter_names(&self) -> Vec<&str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// The names and weights of the scores.
    pub fn score_names(&self) -> Vec<(&str, u32)> {
        self.scores.iter().map(|(s, w)| (s.name(), *w)).collect()
    }

    fn next_random(&self) -> u64 {
        // splitmix64 over an atomic counter: cheap, lock-free, reproducible from the seed.
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Scheduler for Pipeline {
    fn name(&self) -> &str {
        &self.name
    }

    fn place(&self, req: &Request<'_>, workers: &[WorkerSnapshot]) -> Placement {
        let n = workers.len();
        if n == 0 {
            return Placement::Unschedulable(Explanation::default().render(0));
        }
        let start = match self.sample {
            Some(_) => (self.next_random() % n as u64) as usize,
            None => 0,
        };
        let limit = self.sample.unwrap_or(usize::MAX);
        let filters: Vec<&dyn Filter> = self
            .filters
            .iter()
            .map(|f| f.as_ref())
            .filter(|f| f.relevant(req))
            .collect();
        let mut explanation = Explanation::default();
        // Ties go to the earlier worker in the snapshot (the manager lists workers by id), whatever
        // the sampling start: (score, position) decides, so a scan never compares ids.
        let mut best: Option<(u64, usize)> = None;
        let mut feasible = 0usize;
        let mut scanned = 0usize;
        'workers: for k in 0..n {
            let i = if start + k >= n {
                start + k - n
            } else {
                start + k
            };
            let w = &workers[i];
            scanned += 1;
            for f in &filters {
                if let Err(r) = f.check(req, w) {
                    explanation.add(r);
                    continue 'workers;
                }
            }
            feasible += 1;
            let score: u64 = self
                .scores
                .iter()
                .map(|(s, weight)| u64::from(s.score(req, w).min(100)) * u64::from(*weight))
                .sum();
            let better = match best {
                None => true,
                Some((bs, bi)) => score > bs || (score == bs && i < bi),
            };
            if better {
                best = Some((score, i));
            }
            if feasible >= limit {
                break;
            }
        }
        let best = best.map(|(s, i)| (s, &workers[i]));
        match best {
            Some((_, w)) => {
                for (s, _) in &self.scores {
                    s.placed(&w.id);
                }
                Placement::Worker(w.id.clone())
            }
            None => Placement::Unschedulable(explanation.render(scanned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scores::{BinPack, RoundRobin, Spread};
    use super::super::tests_support::*;
    use super::*;
    use crate::ids::WorkerId;

    fn placed(p: Placement) -> String {
        match p {
            Placement::Worker(w) => w.to_string(),
            Placement::Unschedulable(r) => panic!("unschedulable: {r}"),
        }
    }

    #[test]
    fn spread_and_binpack_choose_opposite_ends() {
        let j = job_with("cpu: 100m, memory: 64Mi", "");
        let r = Request::new(&j, 0);
        let ws = vec![
            worker("a", 1000, 1024, 512),
            worker("b", 1000, 1024, 0),
            worker("c", 1000, 1024, 900),
        ];
        assert_eq!(
            placed(Pipeline::standard("s").with_score(Spread, 1).place(&r, &ws)),
            "b"
        );
        assert_eq!(
            placed(
                Pipeline::standard("b")
                    .with_score(BinPack, 1)
                    .place(&r, &ws)
            ),
            "c"
        );
    }

    #[test]
    fn ties_go_to_the_earlier_worker_in_the_snapshot() {
        let j = job_with("cpu: 100m", "");
        let r = Request::new(&j, 0);
        let ws = vec![
            worker("c", 1000, 1024, 0),
            worker("a", 1000, 1024, 0),
            worker("b", 1000, 1024, 0),
        ];
        let p = Pipeline::standard("s").with_score(Spread, 1);
        // The manager lists workers by id; a scan never compares ids, it keeps the first best.
        assert!((0..10).all(|_| placed(p.place(&r, &ws)) == "c"));
    }

    #[test]
    fn weights_combine_scores() {
        let j = job_with("cpu: 100m, memory: 64Mi", "");
        let r = Request::new(&j, 0);
        let ws = vec![worker("a", 1000, 1024, 512), worker("b", 1000, 1024, 0)];
        let p = Pipeline::standard("mix")
            .with_score(Spread, 1)
            .with_score(BinPack, 3);
        assert_eq!(
            placed(p.place(&r, &ws)),
            "a",
            "binpack outweighs spread 3:1"
        );
    }

    #[test]
    fn filters_explain_when_nothing_fits() {
        let j = job_with("memory: 2Gi", "");
        let r = Request::new(&j, 0);
        let ws = vec![
            worker("a", 1000, 1024, 0),
            worker("b", 1000, 512, 0),
            worker("c", 50, 4096, 0),
        ];
        let p = Pipeline::standard("s").with_score(Spread, 1);
        assert_eq!(
            p.place(&r, &ws),
            Placement::Unschedulable(
                "2 workers: insufficient memory (need 2Gi, max free 1Gi); 1 worker: insufficient cpu (need 100m, free 50m)".into()
            )
        );
        assert_eq!(
            p.place(&r, &[]),
            Placement::Unschedulable("no ready workers".into())
        );
    }

    #[test]
    fn sampling_scores_at_most_n_feasible_workers() {
        let j = job_with("cpu: 100m", "");
        let r = Request::new(&j, 0);
        // 100 workers; only w050 is empty. A full scan always finds it; a sample of 2 rarely does.
        let ws: Vec<_> = (0..100)
            .map(|i| {
                worker(
                    &format!("w{i:03}"),
                    1000,
                    1024,
                    if i == 50 { 0 } else { 512 },
                )
            })
            .collect();
        let full = Pipeline::standard("full").with_score(Spread, 1);
        assert_eq!(placed(full.place(&r, &ws)), "w050");
        let sampled = Pipeline::standard("s2")
            .with_score(Spread, 1)
            .with_sample(Some(2))
            .with_seed(7);
        let hits = (0..200)
            .filter(|_| placed(sampled.place(&r, &ws)) == "w050")
            .count();
        assert!(
            hits < 20,
            "a 2-sample finds the one best worker about 2% of the time, got {hits}/200"
        );
        // Reproducible from the seed.
        let a = Pipeline::standard("x").with_sample(Some(2)).with_seed(42);
        let b = Pipeline::standard("x").with_sample(Some(2)).with_seed(42);
        let sa: Vec<_> = (0..20).map(|_| placed(a.place(&r, &ws))).collect();
        let sb: Vec<_> = (0..20).map(|_| placed(b.place(&r, &ws))).collect();
        assert_eq!(sa, sb);
    }

    #[test]
    fn sampling_skips_infeasible_workers() {
        let j = job_with("memory: 600Mi", "");
        let r = Request::new(&j, 0);
        let ws: Vec<_> = (0..10)
            .map(|i| worker(&format!("w{i}"), 1000, 1024, if i == 7 { 0 } else { 900 }))
            .collect();
        let p = Pipeline::standard("s")
            .with_score(Spread, 1)
            .with_sample(Some(1));
        for _ in 0..20 {
            assert_eq!(placed(p.place(&r, &ws)), "w7");
        }
    }

    #[test]
    fn round_robin_cycles_through_feasible_workers() {
        let j = job_with("cpu: 100m", "");
        let r = Request::new(&j, 0);
        let ws = vec![
            worker("a", 1000, 1024, 0),
            worker("b", 1000, 1024, 0),
            worker("c", 1000, 1024, 0),
        ];
        let p = Pipeline::standard("rr").with_score(RoundRobin::default(), 1);
        let seq: Vec<_> = (0..5).map(|_| placed(p.place(&r, &ws))).collect();
        assert_eq!(seq, ["a", "b", "c", "a", "b"]);
    }

    #[test]
    fn custom_filter_and_score_plug_in() {
        struct OnlyEven;
        impl Filter for OnlyEven {
            fn name(&self) -> &str {
                "only-even"
            }
            fn check(
                &self,
                _: &Request<'_>,
                w: &WorkerSnapshot,
            ) -> Result<(), super::super::Rejection> {
                let n: u32 = w.id.as_str()[1..].parse().unwrap();
                if n.is_multiple_of(2) {
                    Ok(())
                } else {
                    Err(super::super::Rejection::new("odd"))
                }
            }
        }
        struct PreferHigh;
        impl Score for PreferHigh {
            fn name(&self) -> &str {
                "prefer-high"
            }
            fn score(&self, _: &Request<'_>, w: &WorkerSnapshot) -> u32 {
                w.id.as_str()[1..].parse().unwrap()
            }
        }
        let j = job_with("cpu: 100m", "");
        let r = Request::new(&j, 0);
        let ws: Vec<_> = (0..7)
            .map(|i| worker(&format!("w{i}"), 1000, 1024, 0))
            .collect();
        let p = Pipeline::new("custom")
            .with_filter(OnlyEven)
            .with_score(PreferHigh, 1);
        assert_eq!(p.place(&r, &ws), Placement::Worker(WorkerId::new("w6")));
        assert_eq!(p.filter_names(), ["only-even"]);
    }
}
