//! A scheduler composed of named filters and weighted scores.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::{DENSE_BUDGET, JobIndex};
use super::filters::{Constraints, HostPorts, HostVolumes, ResourceFit};
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
    HostVolumes,
}

impl BuiltinFilter {
    fn of(f: &dyn Any) -> Option<Self> {
        if f.is::<ResourceFit>() {
            Some(Self::ResourceFit)
        } else if f.is::<HostPorts>() {
            Some(Self::HostPorts)
        } else if f.is::<Constraints>() {
            Some(Self::Constraints)
        } else if f.is::<HostVolumes>() {
            Some(Self::HostVolumes)
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
            Self::HostVolumes => call(&HostVolumes, req, w),
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

    /// A pipeline with the standard filters: resource fit, host ports, constraints, host
    /// volumes.
    pub fn standard(name: impl Into<String>) -> Self {
        Self::new(name)
            .with_filter(ResourceFit)
            .with_filter(HostPorts)
            .with_filter(Constraints)
            .with_filter(HostVolumes)
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

    /// Why no worker fits: every check each worker fails, workers grouped by the set of them.
    fn explain(&self, req: &Request<'_>, workers: &[WorkerSnapshot]) -> String {
        if !workers.is_empty()
            && let Some(reason) = HostVolumes::none_offers(req, workers)
        {
            return reason;
        }
        let filters: Vec<&dyn Filter> = self.relevant(req).map(|f| f.filter.as_ref()).collect();
        let mut explanation = Explanation::default();
        let mut failed = Vec::new();
        for w in workers {
            failed.clear();
            for f in &filters {
                f.check_all(req, w, &mut failed);
            }
            explanation.add_all(&failed);
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
mod tests;
