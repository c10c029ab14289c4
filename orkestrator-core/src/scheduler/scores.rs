//! Built-in scores. Each returns 0..=100, larger is better.
//!
//! | score | prefers | pick it when |
//! |---|---|---|
//! | [`BinPack`] | the most allocated worker that fits | you want few, full workers (cost; room left for big jobs) |
//! | [`Spread`] | the least allocated worker | you want even load and small blast radius (the default) |
//! | [`RoundRobin`] | the next worker after the last one chosen | workers are alike and you want a simple rotation |
//! | [`Epvm`] | the lowest marginal cost `Σ β^u_after − β^u_before` | mixed jobs: balances CPU and memory together, penalising hot spots more than linearly |
//! | [`JobSpread`] | workers with fewer instances of the same job | replicas should not share a worker |

use std::sync::Mutex;

use super::parts::Score;
use super::request::Request;
use crate::api::WorkerSnapshot;
use crate::ids::WorkerId;

/// Mean of the CPU and memory fractions allocated on `w` after placing `req`, in percent (0..=100),
/// rounded. On the hot path of every scan, so: each fraction is capped at 1 in integers, then one
/// division over a common denominator, and conversions through `i64` (a single instruction; the
/// quantities are far below 2^63).
#[inline]
fn used_percent_after(req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
    used_percent_after_by::<false>(req, w)
}

/// [`used_percent_after`], the same to the bit, with the conversions done on the bits of the
/// numbers (where they are below 2^52, as a worker's millicores and bytes are) rather than with
/// `cvtsi2sd`. That instruction writes only the low half of its register, so in a loop that does
/// more than this (the registry's scans add job-spread) it can wait on the previous worker's
/// division, a false dependency the compiler does not always break; a move of the bits and a
/// subtraction depend on nothing before. Alone in a loop, the instruction is the faster (measured
/// in `benches/placement.rs`).
#[inline]
fn used_percent_after_unchained(req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
    used_percent_after_by::<true>(req, w)
}

/// 2^52: below it, an integer is exactly the `f64` whose bits are those of 2^52 or'ed with it,
/// less 2^52.
const TWO_52: u64 = 1 << 52;

/// `x as f64` for `x` below 2^52, from its bits.
#[inline(always)]
fn below_2_52_as_f64(x: u64) -> f64 {
    f64::from_bits((TWO_52 as f64).to_bits() | x) - TWO_52 as f64
}

#[inline(always)]
fn used_percent_after_by<const BITS: bool>(req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
    let (tc, tm) = (w.total.cpu.millis(), w.total.memory.bytes());
    if tc == 0 || tm == 0 {
        return 100;
    }
    let uc = w
        .allocated
        .cpu
        .millis()
        .saturating_add(req.need.cpu.millis())
        .min(tc);
    let um = w
        .allocated
        .memory
        .bytes()
        .saturating_add(req.need.memory.bytes())
        .min(tm);
    // 50 * (uc/tc + um/tm) over a common denominator.
    #[inline(always)]
    fn percent(f: impl Fn(u64) -> f64, (uc, um, tc, tm): (u64, u64, u64, u64)) -> u32 {
        (50.0 * (f(uc) * f(tm) + f(um) * f(tc)) / (f(tc) * f(tm)) + 0.5) as u32
    }
    // uc <= tc and um <= tm: the totals below 2^52 bound all four.
    if BITS && tc < TWO_52 && tm < TWO_52 {
        percent(below_2_52_as_f64, (uc, um, tc, tm))
    } else {
        percent(|x| x as i64 as f64, (uc, um, tc, tm))
    }
}

/// [`BinPack`]'s score, for a scan that does more per worker (see
/// [`used_percent_after_unchained`]).
#[inline]
pub(super) fn binpack_unchained(req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
    used_percent_after_unchained(req, w)
}

/// [`Spread`]'s score, for a scan that does more per worker (see
/// [`used_percent_after_unchained`]).
#[inline]
pub(super) fn spread_unchained(req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
    100 - used_percent_after_unchained(req, w)
}

/// Fractions (0..=1) of CPU and memory allocated on `w` after placing `req`.
#[inline]
fn utilization_after(req: &Request<'_>, w: &WorkerSnapshot) -> (f64, f64) {
    let frac = |used: u64, need: u64, total: u64| {
        if total == 0 {
            1.0
        } else {
            ((used.saturating_add(need)) as f64 / total as f64).min(1.0)
        }
    };
    (
        frac(
            w.allocated.cpu.millis(),
            req.need.cpu.millis(),
            w.total.cpu.millis(),
        ),
        frac(
            w.allocated.memory.bytes(),
            req.need.memory.bytes(),
            w.total.memory.bytes(),
        ),
    )
}

/// Bin-packing: the fuller the worker after placement (mean of CPU and memory), the better.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinPack;

impl Score for BinPack {
    fn name(&self) -> &str {
        "binpack"
    }

    #[inline]
    fn score(&self, req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        used_percent_after(req, w)
    }
}

/// Spread: the emptier the worker after placement, the better.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Score for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    #[inline]
    fn score(&self, req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        100 - used_percent_after(req, w)
    }
}

/// Round-robin: the first worker (by id) after the last one chosen scores 100, the rest 50; ties go
/// to the smaller id, so the choice rotates through the feasible workers.
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: Mutex<Option<WorkerId>>,
}

impl Score for RoundRobin {
    fn name(&self) -> &str {
        "round-robin"
    }

    #[inline]
    fn score(&self, _req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        match &*self.last.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(last) if w.id <= *last => 50,
            _ => 100,
        }
    }

    fn placed(&self, worker: &WorkerId) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(worker.clone());
    }
}

/// E-PVM (Amir et al., "An opportunity cost approach for job assignment in a scalable computing
/// cluster"; the scorer of the cube orchestrator in "Build an Orchestrator in Go"): the marginal cost
/// of a placement is `Σ_r β^u_r,after − β^u_r,before` over CPU and memory, with `β = 1.53`. The
/// lower the cost the higher the score: convexity makes a busy resource expensive, so load is
/// balanced across both dimensions together.
#[derive(Debug, Clone, Copy)]
pub struct Epvm {
    /// The base of the cost function.
    pub base: f64,
}

impl Default for Epvm {
    fn default() -> Self {
        Epvm { base: 1.53 }
    }
}

impl Score for Epvm {
    fn name(&self) -> &str {
        "epvm"
    }

    #[inline]
    fn score(&self, req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        let before = |used: u64, total: u64| {
            if total == 0 {
                1.0
            } else {
                (used as f64 / total as f64).min(1.0)
            }
        };
        let (ca, ma) = utilization_after(req, w);
        let cb = before(w.allocated.cpu.millis(), w.total.cpu.millis());
        let mb = before(w.allocated.memory.bytes(), w.total.memory.bytes());
        let cost =
            (self.base.powf(ca) - self.base.powf(cb)) + (self.base.powf(ma) - self.base.powf(mb));
        let max = 2.0 * (self.base - 1.0);
        (100.0 * (1.0 - (cost / max).clamp(0.0, 1.0))).round() as u32
    }
}

/// Anti-affinity between instances of one job: 100 on a worker with none of them, less with each.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobSpread;

impl Score for JobSpread {
    fn name(&self) -> &str {
        "job-spread"
    }

    #[inline]
    fn score(&self, req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        job_spread(w.jobs.get(&req.job.name).copied().unwrap_or(0))
    }
}

/// Job-spread's score on a worker running `n` instances of the job.
#[inline]
fn job_spread(n: u32) -> u32 {
    match n {
        0 => 100,
        n => 100 / n.saturating_add(1),
    }
}

/// Job-spread's score for a count of siblings capped at 255 (the scores are 0 from 99 siblings
/// on, so the cap changes none): a table, so that a scan reads it instead of dividing.
pub(super) static JOB_SPREAD_CAPPED: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut n = 0;
    while n < 256 {
        t[n] = if n == 0 { 100 } else { (100 / (n + 1)) as u8 };
        n += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn the_fast_percentage_matches_the_plain_formula() {
        let jobs = [
            job_with("cpu: 100m, memory: 128Mi", ""),
            job_with("cpu: 3, memory: 3Gi", ""),
            job_with("cpu: 10m, memory: 6Mi", ""),
        ];
        for (cpu, mem, used) in [
            (1000, 1024, 0),
            (1000, 1024, 768),
            (64000, 262144, 1000),
            (250, 8192, 8000),
            (1000, 1024, 1024),
            // 8 PiB: past 2^52 bytes, where the conversion from the bits gives way.
            (1000, 1 << 33, 1 << 20),
        ] {
            let w = worker("w", cpu, mem, used);
            for j in &jobs {
                let r = Request::new(j, 0);
                let (c, m) = utilization_after(&r, &w);
                let plain = ((c + m) * 50.0 + 0.5) as u32;
                assert_eq!(used_percent_after(&r, &w), plain, "{cpu} {mem} {used}");
                assert_eq!(binpack_unchained(&r, &w), plain, "{cpu} {mem} {used}");
                assert_eq!(spread_unchained(&r, &w), 100 - plain, "{cpu} {mem} {used}");
            }
        }
    }

    #[test]
    fn the_conversion_from_the_bits_is_exact() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random = (0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> (x % 64)) % TWO_52
        });
        for v in [0, 1, 2, 3, 1 << 20, TWO_52 - 1].into_iter().chain(random) {
            assert_eq!(below_2_52_as_f64(v).to_bits(), (v as f64).to_bits(), "{v}");
        }
    }

    #[test]
    fn binpack_prefers_full_spread_prefers_empty() {
        let j = job_with("cpu: 100m, memory: 128Mi", "");
        let r = Request::new(&j, 0);
        let empty = worker("e", 1000, 1024, 0);
        let full = worker("f", 1000, 1024, 768);
        assert!(BinPack.score(&r, &full) > BinPack.score(&r, &empty));
        assert!(Spread.score(&r, &empty) > Spread.score(&r, &full));
        assert_eq!(BinPack.score(&r, &full) + Spread.score(&r, &full), 100);
    }

    #[test]
    fn epvm_is_cheaper_on_the_emptier_worker_and_in_range() {
        let j = job_with("cpu: 500m, memory: 512Mi", "");
        let r = Request::new(&j, 0);
        let empty = worker("e", 1000, 1024, 0);
        let busy = worker("b", 1000, 1024, 512);
        let (se, sb) = (
            Epvm::default().score(&r, &empty),
            Epvm::default().score(&r, &busy),
        );
        assert!(se > sb, "{se} vs {sb}");
        assert!(se <= 100);
    }

    #[test]
    fn round_robin_rotates() {
        let j = job_with("cpu: 100m", "");
        let r = Request::new(&j, 0);
        let rr = RoundRobin::default();
        let (a, b) = (worker("a", 1000, 1024, 0), worker("b", 1000, 1024, 0));
        assert_eq!((rr.score(&r, &a), rr.score(&r, &b)), (100, 100));
        rr.placed(&a.id);
        assert_eq!((rr.score(&r, &a), rr.score(&r, &b)), (50, 100));
        rr.placed(&b.id);
        assert_eq!((rr.score(&r, &a), rr.score(&r, &b)), (50, 50));
    }

    #[test]
    fn the_capped_job_spread_table_matches_the_score() {
        for n in (0..=300).chain([1000, u32::MAX]) {
            let capped = usize::from(u8::try_from(n).unwrap_or(u8::MAX));
            assert_eq!(u32::from(JOB_SPREAD_CAPPED[capped]), job_spread(n), "{n}");
        }
    }

    #[test]
    fn job_spread_penalises_siblings() {
        let j = job_with("cpu: 100m", "");
        let r = Request::new(&j, 0);
        let mut w = worker("a", 1000, 1024, 0);
        assert_eq!(JobSpread.score(&r, &w), 100);
        w.jobs.insert(j.name.clone(), 1);
        assert_eq!(JobSpread.score(&r, &w), 50);
    }
}
