//! Where each job of a batch runs, indexed once per batch, so that job-spread is an array read per
//! worker instead of a map lookup.

use std::collections::HashMap;

use super::request::Request;
use crate::api::WorkerSnapshot;
use crate::ids::JobId;

/// How many bytes of dense counts one batch may hold: one byte per worker for each job held. At
/// 10,000 workers that is 419 jobs at a time; a batch of more jobs takes turns (see [`JobIndex`]).
pub(super) const DENSE_BUDGET: usize = 4 << 20;

/// How many instances of each job of a batch run on each worker, by worker position, counting the
/// batch's own placements as they are made.
///
/// A job's counts are held dense (a byte per worker, capped at 255, which changes no job-spread
/// score) while it is being placed; the dense arrays are few (as many as [`DENSE_BUDGET`] allows,
/// at least one), and when every one is in use the oldest is put away to make room: its non-zero
/// counts go back to a list of (position, count), the array is zeroed there and loaded with the
/// next job's list. Putting away and loading cost as much as the workers the two jobs run on, and
/// happen only when a batch interleaves more jobs than there are arrays.
pub(super) struct JobIndex {
    /// The job slot of each request.
    slot_of_request: Vec<u32>,
    /// Per job slot: the positions of the workers running its instances, with their counts as of
    /// the last time its dense array was put away (stale while it is held).
    lists: Vec<Vec<(u32, u8)>>,
    /// The dense arrays in use.
    dense: Vec<Dense>,
    /// Per job slot: the dense array holding its counts, if one does.
    held_in: Vec<Option<u32>>,
    /// How many dense arrays there may be.
    capacity: usize,
    /// The dense array to put away next, once all of them are in use (first in, first out).
    next: usize,
    /// The number of workers (the length of each dense array).
    workers: usize,
}

/// One job's counts, indexed by worker position.
struct Dense {
    slot: u32,
    counts: Box<[u8]>,
}

/// A count capped at what a byte holds.
fn capped(n: u32) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

impl JobIndex {
    /// Indexes where the jobs of `reqs` run on `workers`, holding at most `budget` bytes of dense
    /// counts (but always at least one array).
    pub(super) fn new(reqs: &[Request<'_>], workers: &[WorkerSnapshot], budget: usize) -> Self {
        let mut slots: HashMap<&JobId, u32> = HashMap::new();
        let slot_of_request: Vec<u32> = reqs
            .iter()
            .map(|r| {
                let next = slots.len() as u32;
                *slots.entry(&r.job.name).or_insert(next)
            })
            .collect();
        let mut lists = vec![Vec::new(); slots.len()];
        for (p, w) in workers.iter().enumerate() {
            let mut record = |slot: u32, n: u32| {
                if n > 0 {
                    lists[slot as usize].push((p as u32, capped(n)));
                }
            };
            // Whichever is shorter: the batch's jobs, or the jobs on this worker.
            if slots.len() < w.jobs.len() {
                for (job, &slot) in &slots {
                    if let Some(&n) = w.jobs.get(*job) {
                        record(slot, n);
                    }
                }
            } else {
                for (job, &n) in &w.jobs {
                    if let Some(&slot) = slots.get(job) {
                        record(slot, n);
                    }
                }
            }
        }
        JobIndex {
            slot_of_request,
            held_in: vec![None; lists.len()],
            capacity: (budget / workers.len().max(1)).clamp(1, lists.len().max(1)),
            lists,
            dense: Vec::new(),
            next: 0,
            workers: workers.len(),
        }
    }

    /// The counts of request `r`'s job on every worker, by position.
    pub(super) fn siblings(&mut self, r: usize) -> &[u8] {
        let d = self.hold(self.slot_of_request[r]);
        &self.dense[d].counts
    }

    /// Records one more instance of request `r`'s job on the worker at `position`.
    pub(super) fn placed(&mut self, r: usize, position: usize) {
        let slot = self.slot_of_request[r];
        let d = self.hold(slot);
        let count = &mut self.dense[d].counts[position];
        if *count == 0 {
            self.lists[slot as usize].push((position as u32, 0));
        }
        *count = count.saturating_add(1);
    }

    /// The dense array holding `slot`'s counts, loading them (and putting another job's away) if
    /// none does.
    fn hold(&mut self, slot: u32) -> usize {
        if let Some(d) = self.held_in[slot as usize] {
            return d as usize;
        }
        let d = if self.dense.len() < self.capacity {
            self.dense.push(Dense {
                slot,
                counts: vec![0; self.workers].into_boxed_slice(),
            });
            self.dense.len() - 1
        } else {
            let d = self.next;
            self.next = (d + 1) % self.capacity;
            let dense = &mut self.dense[d];
            let old = dense.slot as usize;
            for (p, count) in &mut self.lists[old] {
                let held = &mut dense.counts[*p as usize];
                *count = *held;
                *held = 0;
            }
            self.held_in[old] = None;
            dense.slot = slot;
            d
        };
        let dense = &mut self.dense[d];
        for &(p, count) in &self.lists[slot as usize] {
            dense.counts[p as usize] = count;
        }
        self.held_in[slot as usize] = Some(d as u32);
        d
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::tests_support::*;
    use super::*;
    use crate::spec::Job;

    fn named(name: &str) -> Job {
        let mut j = job_with("cpu: 10m", "");
        j.name = JobId::new(name);
        j
    }

    #[test]
    fn counts_follow_the_snapshot_and_the_placements_through_turns() {
        let jobs: Vec<Job> = ["a", "b", "c", "d", "e"].into_iter().map(named).collect();
        let mut state: u64 = 0x1234_5678;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let n = 23;
        let workers: Vec<WorkerSnapshot> = (0..n)
            .map(|i| {
                let mut w = worker(&format!("w{i:02}"), 1000, 1024, 0);
                for j in &jobs {
                    let c = [0, 0, 1, 2, 7, 254, 300][below(7) as usize];
                    if c > 0 || below(2) == 0 {
                        // Some entries say 0: they must read as no instance.
                        w.jobs.insert(j.name.clone(), c);
                    }
                }
                // A job not in the batch counts for nothing.
                w.jobs.insert(JobId::new("other"), 5);
                w
            })
            .collect();
        // Requests interleave the jobs (and one job of the snapshot is not in the batch).
        let reqs: Vec<Request<'_>> = (0..200)
            .map(|_| Request::new(&jobs[below(4) as usize], 0))
            .collect();
        // One array (every change of job is a turn), two, and one per job.
        for budget in [1, 2 * n, 1 << 20] {
            let mut index = JobIndex::new(&reqs, &workers, budget);
            assert_eq!(index.capacity, (budget / n).clamp(1, 4));
            let mut want: Vec<BTreeMap<JobId, u32>> =
                workers.iter().map(|w| w.jobs.clone()).collect();
            for (r, req) in reqs.iter().enumerate() {
                let expected: Vec<u8> = want
                    .iter()
                    .map(|m| capped(m.get(&req.job.name).copied().unwrap_or(0)))
                    .collect();
                assert_eq!(index.siblings(r), expected, "budget {budget}, request {r}");
                let at = below(n as u64) as usize;
                index.placed(r, at);
                *want[at].entry(req.job.name.clone()).or_insert(0) += 1;
            }
            assert!(index.dense.len() <= index.capacity);
        }
    }
}
