//! Placement throughput of the scheduling pipelines, and bin-packing quality.
//!
//! Two parts, both on pure code (no I/O):
//! 1. A scripted run: 100,000 placements (small jobs, so that all of them fit) into clusters of
//!    1,000 and 10,000 workers with varied capacities and loads, for the sampled pipeline, a full
//!    scan, and the registry's `spread` and `binpack` (full scans with job-spread), in batches of
//!    1,000 through `Scheduler::place_batch` (as the scheduler agent places a batch: one placement
//!    after the other, each recorded in the snapshot before the next; the snapshot carries over to
//!    the next batch).
//!    It prints placements per second (median of 3 runs) on one core, and each pipeline's rate as
//!    a ratio of the bare full scan's measured in the same run.
//! 2. Bin-packing quality: jobs of varied sizes into identical empty workers, until they are
//!    all placed; workers used by each algorithm against the lower bound
//!    `max(⌈Σcpu / cpu per worker⌉, ⌈Σmemory / memory per worker⌉)`.
//!
//! Then criterion measures batches of 1,000 placements (`decide`) for the same configurations.
//!
//! `cargo bench -p orkestrator-benches --bench placement` (add `-- --quick` for a short run; a
//! criterion filter such as `-- decide_1000/spread` runs only the criterion benchmarks it selects).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use orkestrator_core::api::{PendingInstance, WorkerSnapshot};
use orkestrator_core::ids::{InstanceId, WorkerId};
use orkestrator_core::scheduler::{
    Pipeline, Placement, Registry, Request, Scheduler, commit_to_snapshot, decide, scores,
};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::units::{ByteSize, Cpu};

/// A small deterministic generator (xorshift64*), so every run sees the same cluster and jobs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// Workers of 4 to 64 cores and 8 to 256 GiB, 0-60% allocated.
fn cluster(n: usize, seed: u64) -> Vec<WorkerSnapshot> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let cores = rng.pick(&[4u64, 8, 16, 32, 64]);
            let gib = cores * rng.pick(&[2u64, 4]);
            let load = rng.pick(&[0u64, 10, 20, 40, 60]);
            let total = Resources {
                cpu: Cpu::from_cores(cores),
                memory: ByteSize::gib(gib),
                disk: ByteSize::gib(500),
            };
            let allocated = Resources {
                cpu: Cpu::from_millis(cores * 1000 * load / 100),
                memory: ByteSize::b(ByteSize::gib(gib).bytes() / 100 * load),
                disk: ByteSize::ZERO,
            };
            WorkerSnapshot {
                id: WorkerId::new(format!("w{i:05}")),
                labels: BTreeMap::new(),
                host_volumes: BTreeMap::new(),
                total,
                allocated,
                ports_in_use: Default::default(),
                instances: 0,
                jobs: BTreeMap::new(),
                measured: None,
            }
        })
        .collect()
}

/// A handful of job shapes, from 100m/128Mi to 2 cores/4Gi (for bin-packing quality).
fn job_shapes() -> Vec<Job> {
    shapes(&[
        ("100m", "128Mi"),
        ("250m", "256Mi"),
        ("500m", "512Mi"),
        ("1", "1Gi"),
        ("2", "2Gi"),
        ("1", "4Gi"),
        ("2", "1Gi"),
    ])
}

/// Small job shapes (10m/16Mi to 100m/128Mi), so that 100,000 placements fit in 1,000 workers.
fn small_shapes() -> Vec<Job> {
    shapes(&[
        ("10m", "16Mi"),
        ("25m", "32Mi"),
        ("50m", "64Mi"),
        ("100m", "128Mi"),
        ("20m", "96Mi"),
    ])
}

fn shapes(sizes: &[(&str, &str)]) -> Vec<Job> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, (cpu, mem))| {
            parse_job(
                &format!("name: job{i}\ntasks:\n  - name: t\n    image: app:1\n    resources: {{ cpu: {cpu}, memory: {mem}, disk: 100Mi }}\n"),
                Format::Yaml,
            )
            .expect("valid job")
        })
        .collect()
}

fn sampled() -> Pipeline {
    // Nomad's limit iterator scores 2 feasible nodes for a service job (power of two choices).
    Pipeline::standard("binpack-sampled")
        .with_score(scores::BinPack, 1)
        .with_sample(Some(2))
        .with_seed(7)
}

fn full_scan() -> Pipeline {
    Pipeline::standard("binpack-full").with_score(scores::BinPack, 1)
}

/// How many instances one batch of the scripted run places.
const BATCH: usize = 1_000;

/// Places `n` instances into `workers` in batches of [`BATCH`], the jobs taking turns; returns
/// (seconds, placed).
fn place_many(
    p: &dyn Scheduler,
    mut workers: Vec<WorkerSnapshot>,
    jobs: &[Job],
    n: usize,
) -> (f64, usize) {
    let mut placed = 0;
    let t0 = Instant::now();
    for first in (0..n).step_by(BATCH) {
        let reqs: Vec<Request<'_>> = (first..n.min(first + BATCH))
            .map(|k| Request::new(&jobs[k % jobs.len()], 0))
            .collect();
        let placements = p.place_batch(&reqs, &mut workers);
        placed += placements
            .iter()
            .filter(|p| matches!(p, Placement::Worker(_)))
            .count();
        black_box(&workers);
    }
    (t0.elapsed().as_secs_f64(), placed)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn throughput_report() {
    println!(
        "\n== placement throughput: 100,000 placements in batches of {BATCH}, one core, median of 3 runs =="
    );
    println!(
        "{:>8}  {:<16} {:>14} {:>14} {:>10}",
        "workers", "pipeline", "placements/s", "vs full scan", "placed"
    );
    let jobs = small_shapes();
    for n in [1_000usize, 10_000] {
        let registry = Registry::builtin();
        // The bare full scan first: every row is also given as a ratio of its rate.
        let pipelines: [(&str, Arc<dyn Scheduler>); 4] = [
            ("full scan", Arc::new(full_scan())),
            ("sampled (2)", Arc::new(sampled())),
            (
                "spread (default)",
                registry.get("spread").expect("built-in"),
            ),
            ("binpack", registry.get("binpack").expect("built-in")),
        ];
        let mut medians = Vec::new();
        for (name, p) in &pipelines {
            let mut rates = Vec::new();
            let mut placed = 0;
            for run in 0..3 {
                let (secs, ok) = place_many(p.as_ref(), cluster(n, 42 + run), &jobs, 100_000);
                rates.push(100_000.0 / secs);
                placed = ok;
            }
            let rate = median(rates);
            let scan = medians.first().map_or(rate, |(_, r)| *r);
            println!(
                "{n:>8}  {name:<16} {rate:>14.0} {:>13.2}x {placed:>10}",
                rate / scan
            );
            medians.push((*name, rate));
        }
        let rate = |want: &str| {
            medians
                .iter()
                .find(|(name, _)| name.starts_with(want))
                .map_or(f64::NAN, |(_, r)| *r)
        };
        println!(
            "{n:>8}  spread / bare scan = {:.2}x, binpack / bare scan = {:.2}x",
            rate("spread") / rate("full scan"),
            rate("binpack") / rate("full scan")
        );
    }
}

fn quality_report() {
    println!("\n== bin-packing quality: identical empty workers (16 cores, 64Gi), 20,000 jobs ==");
    let jobs = job_shapes();
    let mut rng = Rng(99);
    let stream: Vec<&Job> = (0..20_000)
        .map(|_| &jobs[(rng.next() % jobs.len() as u64) as usize])
        .collect();
    let (cpu_total, mem_total) = stream.iter().fold((0u64, 0u64), |(c, m), j| {
        let r = j.resources();
        (c + r.cpu.millis(), m + r.memory.bytes())
    });
    let lower = (cpu_total.div_ceil(16_000)).max(mem_total.div_ceil(ByteSize::gib(64).bytes()));
    println!("lower bound: {lower} workers");
    println!("{:<14} {:>8} {:>10}", "scheduler", "workers", "vs bound");
    let registry = Registry::builtin();
    for name in ["binpack", "epvm", "spread", "round-robin"] {
        let p = registry.get(name).expect("built-in");
        let mut workers: Vec<WorkerSnapshot> = (0..lower as usize * 2)
            .map(|i| WorkerSnapshot {
                id: WorkerId::new(format!("w{i:05}")),
                labels: BTreeMap::new(),
                host_volumes: BTreeMap::new(),
                total: Resources {
                    cpu: Cpu::from_cores(16),
                    memory: ByteSize::gib(64),
                    disk: ByteSize::gib(1000),
                },
                allocated: Resources::ZERO,
                ports_in_use: Default::default(),
                instances: 0,
                jobs: BTreeMap::new(),
                measured: None,
            })
            .collect();
        for (k, job) in stream.iter().enumerate() {
            // Each submission is its own job (distinct names), so job-spread does not apply.
            let req = Request::new(job, k as u32);
            if let Placement::Worker(id) = p.place(&req, &workers) {
                let i = workers
                    .iter()
                    .position(|w| w.id == id)
                    .expect("known worker");
                let mut w = workers[i].clone();
                commit_to_snapshot(&mut w, &req);
                w.jobs.clear();
                workers[i] = w;
            }
        }
        let used = workers
            .iter()
            .filter(|w| w.allocated != Resources::ZERO)
            .count();
        println!("{name:<14} {used:>8} {:>9.2}x", used as f64 / lower as f64);
    }
}

/// A job as `PendingInstance::job` holds it, whether that is a `Job` or an `Arc<Job>`.
fn owned<T: From<Job>>(job: &Job) -> T {
    T::from(job.clone())
}

fn pending(jobs: &[Job], n: usize) -> Vec<PendingInstance> {
    (0..n)
        .map(|k| PendingInstance {
            instance: InstanceId::new(format!("i{k}")),
            index: 0,
            job: owned(&jobs[k % jobs.len()]),
            pinned: None,
        })
        .collect()
}

fn criterion_benches(c: &mut Criterion) {
    let jobs = small_shapes();
    let batch = pending(&jobs, 1_000);
    let mut group = c.benchmark_group("decide_1000");
    group.throughput(Throughput::Elements(1_000));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let registry = Registry::builtin();
    for n in [1_000usize, 10_000] {
        let base = cluster(n, 42);
        let pipelines: [(&str, Arc<dyn Scheduler>); 4] = [
            ("sampled", Arc::new(sampled())),
            ("full", Arc::new(full_scan())),
            ("spread", registry.get("spread").expect("built-in")),
            ("binpack", registry.get("binpack").expect("built-in")),
        ];
        for (name, p) in &pipelines {
            group.bench_function(format!("{name}/{n}"), |b| {
                b.iter_batched(
                    || base.clone(),
                    |ws| black_box(decide(p.as_ref(), &batch, ws)),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        println!("placement: run with `cargo bench` to measure");
        return;
    }
    // A criterion filter (an argument that is not a flag, e.g. `decide_1000/spread`) runs only
    // the criterion benchmarks it selects.
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    if !filtered {
        throughput_report();
        quality_report();
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
