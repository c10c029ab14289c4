use super::super::scores::{BinPack, RoundRobin, Spread};
use super::super::tests_support::*;
use super::*;
use crate::api::WorkerSnapshot;
use crate::ids::WorkerId;
use crate::spec::{Format, parse_job};

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

/// Issue 18, item 7: every check each worker fails, grouped by the set of failed checks, with the
/// group's best figure.
#[test]
fn explanations_name_every_failed_check_grouped_by_the_set_of_them() {
    let j = parse_job(
        "name: j\nconstraints: [{ label: zone, equals: c }]\ntasks:\n  - name: t\n    image: a:1\n    resources: { cpu: 100m, memory: 1Gi }\n",
        Format::Yaml,
    )
    .unwrap();
    let r = Request::new(&j, 0);
    let zone = |mut w: WorkerSnapshot, z: &str| {
        w.labels.insert("zone".into(), z.into());
        w
    };
    let ws = vec![
        // Too little memory and the wrong zone: two of them, 416Mi free at best.
        zone(worker("a", 1000, 512, 96), "a"),
        zone(worker("b", 1000, 512, 200), "b"),
        // The wrong zone only.
        zone(worker("c", 1000, 4096, 0), "a"),
        // Too little CPU and memory, the right zone.
        zone(worker("d", 50, 256, 0), "c"),
    ];
    let p = Pipeline::standard("s").with_score(Spread, 1);
    assert_eq!(
        p.place(&r, &ws),
        Placement::Unschedulable(
            "2 workers: insufficient memory (need 1Gi, max free 416Mi), constraint zone=c; \
             1 worker: constraint zone=c; \
             1 worker: insufficient memory (need 1Gi, free 256Mi), insufficient cpu (need 100m, free 50m)"
                .into()
        )
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
    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), super::super::Rejection> {
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
            for (start, limit) in [(0, usize::MAX), (0, 1)]
                .into_iter()
                .chain((0..4).map(|_| (rng.below(n as u64) as usize, 1 + rng.below(4) as usize)))
            {
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
