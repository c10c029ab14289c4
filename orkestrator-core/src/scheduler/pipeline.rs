//! A scheduler composed of named filters and weighted scores.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::{DENSE_BUDGET, JobIndex};
use super::filters::{Constraints, HostPorts, ResourceFit};
use super::parts::{Filter, Placement, Scheduler, Score};
use super::rejection::Explanation;
use super::request::{Request, commit_to_snapshot};
use super::scores::{
    BinPack, Epvm, JOB_SPREAD_CAPPED, JobSpread, Spread, binpack_unchained, spread_unchained,
};
use crate::api::WorkerSnapshot;

/// Filters, then weighted scores, over every worker or a sample of them.
///
/// Every filter must pass; the feasible worker with the highest weighted score wins, ties going to
/// the earlier worker in the snapshot (the manager lists workers by id), so decisions are
/// deterministic. With [`Pipeline::with_sample`] the scan
/// starts at a pseudo-random worker and stops after that many feasible ones (Nomad's limit
/// iterator; kube-scheduler's percentage of nodes to score): constant work per placement however
/// large the cluster, at the price of sometimes missing the best worker.
///
/// How a scan stays fast, without changing any decision:
/// - a pipeline made only of built-in filters and scores is scanned without dynamic calls (the
///   built-ins are recognised when they are added), its cheapest scores first;
/// - a worker stops being scored as soon as the scores still to come cannot lift it above the
///   best so far (each score is at most 100 times its weight);
/// - rejections are put into words only when no worker fits;
/// - placing a batch ([`Scheduler::place_batch`]), a pipeline of built-ins with job-spread indexes
///   once where each job of the batch runs, by worker position, so that job-spread reads an array
///   instead of each worker's map of jobs.
pub struct Pipeline {
    name: String,
    filters: Vec<FilterStep>,
    /// The scores as added.
    scores: Weighted<Arc<dyn Score>>,
    /// The same scores as built-ins, cheapest first, when every one of them is a built-in.
    builtin_scores: Option<Weighted<BuiltinScore>>,
    sample: Option<usize>,
    rng: AtomicU64,
}

/// A filter of the pipeline, and which built-in it is, if it is one.
struct FilterStep {
    filter: Arc<dyn Filter>,
    builtin: Option<BuiltinFilter>,
}

/// The built-in filters the scan calls directly.
#[derive(Debug, Clone, Copy)]
enum BuiltinFilter {
    ResourceFit,
    HostPorts,
    Constraints,
}

impl BuiltinFilter {
    fn of(f: &dyn Any) -> Option<Self> {
        if f.is::<ResourceFit>() {
            Some(Self::ResourceFit)
        } else if f.is::<HostPorts>() {
            Some(Self::HostPorts)
        } else if f.is::<Constraints>() {
            Some(Self::Constraints)
        } else {
            None
        }
    }

    /// Resource fit is inlined into the scan; the others are calls, to keep the loop small.
    #[inline(always)]
    fn passes(self, req: &Request<'_>, w: &WorkerSnapshot) -> bool {
        #[inline(never)]
        fn call(f: &dyn Filter, req: &Request<'_>, w: &WorkerSnapshot) -> bool {
            f.check(req, w).is_ok()
        }
        match self {
            Self::ResourceFit => ResourceFit::fits(req, w),
            Self::HostPorts => call(&HostPorts, req, w),
            Self::Constraints => call(&Constraints, req, w),
        }
    }
}

/// The built-in stateless scores the scan calls directly.
#[derive(Debug, Clone, Copy)]
enum BuiltinScore {
    BinPack,
    Spread,
    JobSpread,
    Epvm(Epvm),
}

impl BuiltinScore {
    fn of(s: &dyn Any) -> Option<Self> {
        if s.is::<BinPack>() {
            Some(Self::BinPack)
        } else if s.is::<Spread>() {
            Some(Self::Spread)
        } else if s.is::<JobSpread>() {
            Some(Self::JobSpread)
        } else {
            s.downcast_ref::<Epvm>().map(|e| Self::Epvm(*e))
        }
    }

    /// The order of evaluation: a few arithmetic operations, a map lookup (an array read within a
    /// batch), four powers.
    fn cost(self) -> u8 {
        match self {
            Self::BinPack | Self::Spread => 0,
            Self::JobSpread => 1,
            Self::Epvm(_) => 2,
        }
    }

    /// Bin-pack, spread and job-spread from the batch's index are inlined into the scan; the
    /// others are calls. `siblings` is the job's count on each worker, by position, if indexed;
    /// `i` is the worker's position.
    #[inline(always)]
    fn score(self, req: &Request<'_>, w: &WorkerSnapshot, i: usize, siblings: Siblings<'_>) -> u32 {
        #[inline(never)]
        fn call(s: &dyn Score, req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
            s.score(req, w)
        }
        match (self, siblings) {
            (Self::BinPack, _) => BinPack.score(req, w),
            (Self::Spread, _) => Spread.score(req, w),
            (Self::JobSpread, Some(counts)) => job_spread_at(counts, i),
            (Self::JobSpread, None) => call(&JobSpread, req, w),
            (Self::Epvm(e), _) => call(&e, req, w),
        }
    }
}

/// How many instances of the job being placed run on each worker (capped at 255), by position:
/// the batch's index, when there is one.
type Siblings<'a> = Option<&'a [u8]>;

/// Job-spread's score for the worker at position `i`, from the batch's index.
#[inline(always)]
fn job_spread_at(siblings: &[u8], i: usize) -> u32 {
    u32::from(JOB_SPREAD_CAPPED[usize::from(siblings[i])])
}

/// Weighted scores in the order they are evaluated, each with the most that it and the scores
/// after it can still add (100 times their weights), so that scoring a worker stops as soon as it
/// cannot win.
struct Weighted<S> {
    steps: Vec<(S, u32)>,
    rest: Vec<u64>,
}

impl<S> Weighted<S> {
    fn new() -> Self {
        Weighted {
            steps: Vec::new(),
            rest: Vec::new(),
        }
    }

    /// Adds a score at `at` (the end unless given).
    fn insert(&mut self, at: Option<usize>, s: S, weight: u32) {
        let at = at.unwrap_or(self.steps.len());
        self.steps.insert(at, (s, weight));
        let mut rest = 0u64;
        self.rest = self
            .steps
            .iter()
            .rev()
            .map(|(_, w)| {
                rest = rest.saturating_add(100 * u64::from(*w));
                rest
            })
            .collect();
        self.rest.reverse();
    }

    /// The weighted sum of the scores `score` gives (each clamped to 100), or `None` as soon as it
    /// cannot reach `floor`.
    #[inline(always)]
    fn total(&self, floor: u64, score: impl Fn(&S) -> u32) -> Option<u64> {
        let mut total = 0u64;
        for ((s, weight), rest) in self.steps.iter().zip(&self.rest) {
            if total + rest < floor {
                return None;
            }
            total += u64::from(score(s).min(100)) * u64::from(*weight);
        }
        Some(total)
    }
}

/// What a scan learns of one worker.
enum Verdict {
    /// A filter rejected it.
    Rejected,
    /// It fits, but scores below the best so far.
    Beaten,
    /// It fits, with this score.
    Scored(u64),
}

impl Verdict {
    /// The verdict on a worker that passed (or not) the filters, with its score if it can win.
    #[inline(always)]
    fn of(passes: bool, score: impl FnOnce() -> Option<u64>) -> Self {
        if !passes {
            return Verdict::Rejected;
        }
        match score() {
            Some(s) => Verdict::Scored(s),
            None => Verdict::Beaten,
        }
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("filters", &self.filter_names())
            .field("scores", &self.score_names())
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
            scores: Weighted::new(),
            builtin_scores: Some(Weighted::new()),
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
        self.filters.push(FilterStep {
            builtin: BuiltinFilter::of(&f),
            filter: Arc::new(f),
        });
        self
    }

    /// Adds a score with a weight.
    pub fn with_score(mut self, s: impl Score + 'static, weight: u32) -> Self {
        self.builtin_scores = match (self.builtin_scores.take(), BuiltinScore::of(&s)) {
            (Some(mut b), Some(score)) => {
                let at = b.steps.iter().position(|(x, _)| x.cost() > score.cost());
                b.insert(at, score, weight);
                Some(b)
            }
            _ => None,
        };
        self.scores.insert(None, Arc::new(s), weight);
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
        self.filters.iter().map(|f| f.filter.name()).collect()
    }

    /// The names and weights of the scores.
    pub fn score_names(&self) -> Vec<(&str, u32)> {
        self.scores
            .steps
            .iter()
            .map(|(s, w)| (s.name(), *w))
            .collect()
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

    /// The filters that can reject anything for this request.
    fn relevant<'p>(&'p self, req: &Request<'_>) -> impl Iterator<Item = &'p FilterStep> + Clone {
        self.filters.iter().filter(|f| f.filter.relevant(req))
    }

    /// Whether placing a batch should index where its jobs run: job-spread is one of the scores
    /// and the scan calls the built-ins directly (the general path calls job-spread as given).
    fn indexes_siblings(&self) -> bool {
        self.filters.iter().all(|f| f.builtin.is_some())
            && self.builtin_scores.as_ref().is_some_and(|b| {
                b.steps
                    .iter()
                    .any(|(s, _)| matches!(s, BuiltinScore::JobSpread))
            })
    }

    /// The position of the best worker among the first `limit` feasible ones from `start`.
    /// `siblings` is the batch's index of the job's instances (used by built-in job-spread).
    fn choose(
        &self,
        req: &Request<'_>,
        workers: &[WorkerSnapshot],
        (start, limit): (usize, usize),
        siblings: Siblings<'_>,
    ) -> Option<usize> {
        let relevant = self.relevant(req);
        let builtin_filters: Option<Vec<BuiltinFilter>> =
            relevant.clone().map(|f| f.builtin).collect();
        match (builtin_filters, &self.builtin_scores) {
            (Some(filters), Some(scores)) => {
                let siblings = siblings.filter(|c| c.len() == workers.len());
                scan_builtins(req, workers, (start, limit), &filters, scores, siblings)
            }
            _ => {
                let filters: Vec<&dyn Filter> = relevant.map(|f| f.filter.as_ref()).collect();
                scan(workers, start, limit, |_, w, floor| {
                    Verdict::of(filters.iter().all(|f| f.check(req, w).is_ok()), || {
                        self.scores.total(floor, |s| s.score(req, w))
                    })
                })
            }
        }
    }

    /// Why no worker fits: every worker's first failing filter, grouped.
    fn explain(&self, req: &Request<'_>, workers: &[WorkerSnapshot]) -> String {
        let filters: Vec<&dyn Filter> = self.relevant(req).map(|f| f.filter.as_ref()).collect();
        let mut explanation = Explanation::default();
        for w in workers {
            if let Some(r) = filters.iter().find_map(|f| f.check(req, w).err()) {
                explanation.add(r);
            }
        }
        explanation.render(workers.len())
    }
}

/// Scans the workers from `start` (wrapping round) until `limit` of them are feasible, and
/// returns the position of the best one. Ties go to the earlier position, whatever the start, so
/// a scan never compares ids. `eval` gets a worker and the score to reach (the best so far), and
/// may give up on a worker that cannot reach it; it gets the worker's position too. Generic over
/// the evaluation, so that each kind of pipeline gets a loop of its own with the evaluation inlined.
#[inline(always)]
fn scan<'w>(
    workers: &'w [WorkerSnapshot],
    start: usize,
    limit: usize,
    eval: impl Fn(usize, &'w WorkerSnapshot, u64) -> Verdict,
) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    let mut feasible = 0usize;
    // From the start to the end, then from the beginning to the start: in the first part positions
    // only grow, so a tie keeps the best so far; in the second they are all smaller than the first
    // part's, so a tie with a best from there moves.
    let (head, tail) = workers.split_at(start);
    for (k, w) in tail.iter().enumerate() {
        let verdict = eval(start + k, w, best.map_or(0, |(s, _)| s));
        if let Verdict::Scored(score) = verdict
            && best.is_none_or(|(bs, _)| score > bs)
        {
            best = Some((score, start + k));
        }
        if !matches!(verdict, Verdict::Rejected) {
            feasible += 1;
            if feasible >= limit {
                return best.map(|(_, i)| i);
            }
        }
    }
    for (i, w) in head.iter().enumerate() {
        let verdict = eval(i, w, best.map_or(0, |(s, _)| s));
        if let Verdict::Scored(score) = verdict
            && best.is_none_or(|(bs, bi)| score > bs || (score == bs && bi >= start))
        {
            best = Some((score, i));
        }
        if !matches!(verdict, Verdict::Rejected) {
            feasible += 1;
            if feasible >= limit {
                break;
            }
        }
    }
    best.map(|(_, i)| i)
}

/// [`scan`] for a pipeline of built-ins. The commonest shapes get loops of their own with
/// everything inlined: resource fit as the only relevant filter with one bin-pack or spread score,
/// and the same with job-spread from the batch's index (the registry's `binpack` and `spread`).
fn scan_builtins(
    req: &Request<'_>,
    workers: &[WorkerSnapshot],
    (start, limit): (usize, usize),
    filters: &[BuiltinFilter],
    scores: &Weighted<BuiltinScore>,
    siblings: Siblings<'_>,
) -> Option<usize> {
    let fits = |w| ResourceFit::fits(req, w);
    // Job-spread first, an array read, so that a worker it already rules out is not scored further
    // (the bound is exact, so the order changes no decision).
    let with_job_spread = |counts: &[u8], i: usize, floor: u64, k: u32, kj: u32| {
        let js = u64::from(job_spread_at(counts, i)) * u64::from(kj);
        (js + 100 * u64::from(k) >= floor).then_some(js)
    };
    match (filters, scores.steps.as_slice(), siblings) {
        ([BuiltinFilter::ResourceFit], [(BuiltinScore::BinPack, k)], _) => {
            scan(workers, start, limit, |_, w, _| {
                Verdict::of(fits(w), || {
                    Some(u64::from(BinPack.score(req, w)) * u64::from(*k))
                })
            })
        }
        ([BuiltinFilter::ResourceFit], [(BuiltinScore::Spread, k)], _) => {
            scan(workers, start, limit, |_, w, _| {
                Verdict::of(fits(w), || {
                    Some(u64::from(Spread.score(req, w)) * u64::from(*k))
                })
            })
        }
        (
            [BuiltinFilter::ResourceFit],
            [(BuiltinScore::BinPack, k), (BuiltinScore::JobSpread, kj)],
            Some(counts),
        ) => scan(workers, start, limit, |i, w, floor| {
            Verdict::of(fits(w), || {
                let js = with_job_spread(counts, i, floor, *k, *kj)?;
                Some(js + u64::from(binpack_unchained(req, w)) * u64::from(*k))
            })
        }),
        (
            [BuiltinFilter::ResourceFit],
            [(BuiltinScore::Spread, k), (BuiltinScore::JobSpread, kj)],
            Some(counts),
        ) => scan(workers, start, limit, |i, w, floor| {
            Verdict::of(fits(w), || {
                let js = with_job_spread(counts, i, floor, *k, *kj)?;
                Some(js + u64::from(spread_unchained(req, w)) * u64::from(*k))
            })
        }),
        _ => scan(workers, start, limit, |i, w, floor| {
            Verdict::of(filters.iter().all(|f| f.passes(req, w)), || {
                scores.total(floor, |s| s.score(req, w, i, siblings))
            })
        }),
    }
}

impl Pipeline {
    /// The position of the worker chosen for `req`, or why none fits. `siblings` as in
    /// [`Pipeline::choose`].
    fn place_at(
        &self,
        req: &Request<'_>,
        workers: &[WorkerSnapshot],
        siblings: Siblings<'_>,
    ) -> Result<usize, String> {
        let n = workers.len();
        if n == 0 {
            return Err(Explanation::default().render(0));
        }
        let start = match self.sample {
            Some(_) => (self.next_random() % n as u64) as usize,
            None => 0,
        };
        let limit = self.sample.unwrap_or(usize::MAX);
        match self.choose(req, workers, (start, limit), siblings) {
            Some(i) => {
                for (s, _) in &self.scores.steps {
                    s.placed(&workers[i].id);
                }
                Ok(i)
            }
            None => Err(self.explain(req, workers)),
        }
    }

    /// [`Scheduler::place_batch`], with at most `budget` bytes for the index of siblings.
    fn place_batch_within(
        &self,
        reqs: &[Request<'_>],
        workers: &mut [WorkerSnapshot],
        budget: usize,
    ) -> Vec<Placement> {
        let mut index = self
            .indexes_siblings()
            .then(|| JobIndex::new(reqs, workers, budget));
        reqs.iter()
            .enumerate()
            .map(|(r, req)| {
                let siblings = index.as_mut().map(|x| x.siblings(r));
                match self.place_at(req, workers, siblings) {
                    Ok(i) => {
                        commit_to_snapshot(&mut workers[i], req);
                        if let Some(x) = index.as_mut() {
                            x.placed(r, i);
                        }
                        Placement::Worker(workers[i].id.clone())
                    }
                    Err(why) => Placement::Unschedulable(why),
                }
            })
            .collect()
    }
}

impl Scheduler for Pipeline {
    fn name(&self) -> &str {
        &self.name
    }

    fn place(&self, req: &Request<'_>, workers: &[WorkerSnapshot]) -> Placement {
        match self.place_at(req, workers, None) {
            Ok(i) => Placement::Worker(workers[i].id.clone()),
            Err(why) => Placement::Unschedulable(why),
        }
    }

    fn place_batch(&self, reqs: &[Request<'_>], workers: &mut [WorkerSnapshot]) -> Vec<Placement> {
        self.place_batch_within(reqs, workers, DENSE_BUDGET)
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

    /// Wraps a built-in so that the pipeline cannot recognise it, which sends it down the general
    /// path (dynamic calls, scores in the order they were added).
    struct Opaque<T>(T);

    impl<T: Filter> Filter for Opaque<T> {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn check(
            &self,
            req: &Request<'_>,
            w: &WorkerSnapshot,
        ) -> Result<(), super::super::Rejection> {
            self.0.check(req, w)
        }
        fn relevant(&self, req: &Request<'_>) -> bool {
            self.0.relevant(req)
        }
    }

    impl<T: Score> Score for Opaque<T> {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn score(&self, req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
            self.0.score(req, w)
        }
    }

    /// The plain definition of a scan: from `start`, wrapping round, every filter and every score
    /// of the first `limit` feasible workers; the highest weighted sum wins, ties to the earlier
    /// position.
    fn reference(
        filters: &[&dyn Filter],
        scores: &[(&dyn Score, u32)],
        req: &Request<'_>,
        ws: &[WorkerSnapshot],
        (start, limit): (usize, usize),
    ) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        let feasible = (start..ws.len())
            .chain(0..start)
            .filter(|&i| filters.iter().all(|f| f.check(req, &ws[i]).is_ok()));
        for i in feasible.take(limit) {
            let total: u64 = scores
                .iter()
                .map(|(s, k)| u64::from(s.score(req, &ws[i]).min(100)) * u64::from(*k))
                .sum();
            if best.is_none_or(|(b, bi)| total > b || (total == b && i < bi)) {
                best = Some((total, i));
            }
        }
        best.map(|(_, i)| i)
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Workers of a few shapes and loads (so that scores tie often), some with the job's port in
    /// use, some in zone a, some already running instances of the job (a few, or enough for
    /// job-spread to score 0 whether capped at 255 or not), some running instances of another job.
    fn random_cluster(rng: &mut Rng, n: usize, job: &crate::spec::Job) -> Vec<WorkerSnapshot> {
        (0..n)
            .map(|i| {
                let cpu = [500, 1000, 2000, 4000][rng.below(4) as usize];
                let mem = [512, 1024, 2048][rng.below(3) as usize];
                let mut w = worker(&format!("w{i:03}"), cpu, mem, mem * rng.below(5) / 4);
                w.allocated.cpu = crate::units::Cpu::from_millis(cpu * rng.below(5) / 4);
                if rng.below(4) == 0 {
                    w.ports_in_use.insert((8080, crate::spec::Protocol::Tcp));
                }
                if rng.below(2) == 0 {
                    w.labels.insert("zone".into(), "a".into());
                }
                let siblings = [0, 0, 1, 2, 3, 99, 300][rng.below(7) as usize];
                if siblings > 0 {
                    w.jobs.insert(job.name.clone(), siblings);
                }
                if rng.below(3) == 0 {
                    w.jobs.insert(crate::ids::JobId::new("another"), 1);
                }
                w
            })
            .collect()
    }

    #[test]
    fn built_in_fast_paths_decide_exactly_as_the_plain_definition() {
        let jobs = [
            job_with("cpu: 300m, memory: 200Mi", ""),
            job_with("cpu: 1, memory: 700Mi", ""),
            job_with("cpu: 100m", "ports: [{container: 80, host: 8080}]"),
            job_constrained("zone", "a"),
        ];
        let std_filters: [&dyn Filter; 3] = [&ResourceFit, &HostPorts, &Constraints];
        let parts: [&dyn Score; 4] = [&BinPack, &Spread, &JobSpread, &Epvm::default()];
        let [binpack, spread, job_spread, epvm] = [0, 1, 2, 3];
        let score_sets: [&[(usize, u32)]; 8] = [
            &[(binpack, 1)],
            &[(spread, 3)],
            // The registry's `spread`, `binpack` and `epvm`.
            &[(spread, 1), (job_spread, 10)],
            &[(binpack, 1), (job_spread, 10)],
            &[(epvm, 1), (job_spread, 10)],
            &[(job_spread, 10), (binpack, 1)],
            &[(job_spread, 1), (spread, 2)],
            &[(binpack, 2), (spread, 1), (epvm, 1)],
        ];
        let build = |set: &[(usize, u32)], opaque: bool| {
            let mut p = if opaque {
                Pipeline::new("opaque")
                    .with_filter(Opaque(ResourceFit))
                    .with_filter(Opaque(HostPorts))
                    .with_filter(Opaque(Constraints))
            } else {
                Pipeline::standard("built-in")
            };
            for &(part, k) in set {
                p = match (opaque, part) {
                    (false, 0) => p.with_score(BinPack, k),
                    (false, 1) => p.with_score(Spread, k),
                    (false, 2) => p.with_score(JobSpread, k),
                    (false, _) => p.with_score(Epvm::default(), k),
                    (true, 0) => p.with_score(Opaque(BinPack), k),
                    (true, 1) => p.with_score(Opaque(Spread), k),
                    (true, 2) => p.with_score(Opaque(JobSpread), k),
                    (true, _) => p.with_score(Opaque(Epvm::default()), k),
                };
            }
            p
        };
        let mut rng = Rng(0x5EED);
        let mut decided = 0;
        for round in 0..300 {
            let job = &jobs[round % jobs.len()];
            let req = Request::new(job, 0);
            let n = 1 + rng.below(40) as usize;
            let ws = random_cluster(&mut rng, n, job);
            let reqs = [req.clone()];
            let mut index = JobIndex::new(&reqs, &ws, DENSE_BUDGET);
            let siblings = index.siblings(0).to_vec();
            for set in score_sets {
                let fast = build(set, false);
                let general = build(set, true);
                assert!(fast.builtin_scores.is_some() && general.builtin_scores.is_none());
                let scores: Vec<(&dyn Score, u32)> =
                    set.iter().map(|&(part, k)| (parts[part], k)).collect();
                // A full scan, and sampled scans from random starts.
                for (start, limit) in [(0, usize::MAX), (0, 1)].into_iter().chain(
                    (0..4).map(|_| (rng.below(n as u64) as usize, 1 + rng.below(4) as usize)),
                ) {
                    let want = reference(&std_filters, &scores, &req, &ws, (start, limit));
                    let at = (start, limit);
                    assert_eq!(
                        fast.choose(&req, &ws, at, None),
                        want,
                        "built-ins, round {round}, {at:?}, {fast:?}"
                    );
                    assert_eq!(
                        fast.choose(&req, &ws, at, Some(&siblings)),
                        want,
                        "built-ins with the batch's index, round {round}, {at:?}, {fast:?}"
                    );
                    assert_eq!(
                        general.choose(&req, &ws, at, None),
                        want,
                        "general, round {round}, {at:?}"
                    );
                    decided += usize::from(want.is_some());
                }
            }
        }
        assert!(decided > 1000, "most rounds place something: {decided}");
    }

    /// The registry's schedulers, placing batches: with the batch's index (its dense counts in
    /// turns or not) they decide as one placement at a time without it, and (the stateless ones) as
    /// the plain definition, each placement recorded before the next.
    #[test]
    fn batches_decide_as_one_placement_at_a_time() {
        // The registry's schedulers, and `spread` sampled.
        let names = ["spread", "binpack", "round-robin", "epvm", "spread-sampled"];
        let built = |name: &str| match name {
            "spread-sampled" => Pipeline::standard(name)
                .with_score(Spread, 1)
                .with_score(JobSpread, 10)
                .with_sample(Some(3))
                .with_seed(11),
            _ => super::super::registry::builtin_pipeline(name).unwrap(),
        };
        let mut jobs = [
            job_with("cpu: 300m, memory: 200Mi", ""),
            job_with("cpu: 100m, memory: 64Mi", ""),
            job_with("cpu: 1, memory: 700Mi", ""),
            job_with("cpu: 100m", "ports: [{container: 80, host: 8080}]"),
            job_constrained("zone", "a"),
        ];
        for (k, j) in jobs.iter_mut().enumerate() {
            j.name = crate::ids::JobId::new(format!("job{k}"));
        }
        let std_filters: [&dyn Filter; 3] = [&ResourceFit, &HostPorts, &Constraints];
        type Scores<'a> = &'a [(&'a dyn Score, u32)];
        let plain: [(&str, Scores<'_>); 3] = [
            ("spread", &[(&Spread, 1), (&JobSpread, 10)]),
            ("binpack", &[(&BinPack, 1), (&JobSpread, 10)]),
            ("epvm", &[(&Epvm::default(), 1), (&JobSpread, 10)]),
        ];
        let mut rng = Rng(0xBA7C);
        let mut placed = 0;
        for round in 0..60 {
            let n = 1 + rng.below(30) as usize;
            let mut ws = random_cluster(&mut rng, n, &jobs[round % jobs.len()]);
            for w in &mut ws {
                if rng.below(2) == 0 {
                    let other = &jobs[rng.below(jobs.len() as u64) as usize];
                    w.jobs.insert(other.name.clone(), 1 + rng.below(3) as u32);
                }
            }
            // Interleaved, or in runs of one job.
            let mut k = 0;
            let reqs: Vec<Request<'_>> = (0..1 + rng.below(60))
                .map(|_| {
                    if rng.below(3) > 0 {
                        k = rng.below(jobs.len() as u64) as usize;
                    }
                    Request::new(&jobs[k], 0)
                })
                .collect();
            for name in names {
                let one_at_a_time = {
                    let p = built(name);
                    let mut ws = ws.clone();
                    let out: Vec<Placement> = reqs
                        .iter()
                        .map(|req| {
                            let placement = p.place(req, &ws);
                            if let Placement::Worker(id) = &placement {
                                let i = ws.iter().position(|w| w.id == *id).unwrap();
                                commit_to_snapshot(&mut ws[i], req);
                            }
                            placement
                        })
                        .collect();
                    (out, ws)
                };
                // The shipped budget (one array per job), one array, two.
                for budget in [DENSE_BUDGET, 1, 2 * n] {
                    let p = built(name);
                    assert_eq!(p.indexes_siblings(), name != "round-robin");
                    let mut batch_ws = ws.clone();
                    let out = p.place_batch_within(&reqs, &mut batch_ws, budget);
                    assert_eq!(
                        (&out, &batch_ws),
                        (&one_at_a_time.0, &one_at_a_time.1),
                        "{name}, round {round}, budget {budget}"
                    );
                }
                if let Some((_, scores)) = plain.iter().find(|(n, _)| *n == name) {
                    let mut ws = ws.clone();
                    for (r, req) in reqs.iter().enumerate() {
                        let want = reference(&std_filters, scores, req, &ws, (0, usize::MAX));
                        let got = match &one_at_a_time.0[r] {
                            Placement::Worker(id) => ws.iter().position(|w| w.id == *id),
                            Placement::Unschedulable(_) => None,
                        };
                        assert_eq!(got, want, "{name}, round {round}, request {r}");
                        if let Some(i) = want {
                            commit_to_snapshot(&mut ws[i], req);
                            placed += 1;
                        }
                    }
                }
            }
        }
        assert!(placed > 1000, "most requests are placed: {placed}");
    }

    /// A worker whose score can only equal the best so far is still scored: from a start past
    /// it, a tie with the best goes to it, the earlier worker. Identical workers where the job
    /// scores 100 (bin-pack on workers it fills exactly; spread on workers so large that it rounds
    /// to nothing), so every worker ties at the bound.
    #[test]
    fn a_tie_at_the_bound_still_goes_to_the_earlier_worker() {
        let j = job_with("cpu: 100m, memory: 64Mi", "");
        let req = Request::new(&j, 0);
        for (name, size) in [("binpack", (100, 64)), ("spread", (64_000, 262_144))] {
            let p = super::super::registry::builtin_pipeline(name).unwrap();
            let ws: Vec<_> = (0..5)
                .map(|i| worker(&format!("w{i}"), size.0, size.1, 0))
                .collect();
            let reqs = [req.clone()];
            let siblings = JobIndex::new(&reqs, &ws, DENSE_BUDGET).siblings(0).to_vec();
            for start in 0..ws.len() {
                for siblings in [None, Some(&siblings[..])] {
                    let at = (start, ws.len());
                    let got = p.choose(&req, &ws, at, siblings);
                    assert_eq!(
                        got,
                        Some(0),
                        "{name}, {at:?}, indexed: {}",
                        siblings.is_some()
                    );
                }
            }
        }
    }
}
