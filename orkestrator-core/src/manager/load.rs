//! Building the state from a store snapshot: at start, and after a failed commit (when the soft
//! state — liveness, schedulers, what watchers wait on — carries over).

use std::sync::Arc;

use tokio::time::Instant;

use crate::api::Desired;
use crate::store::Snapshot;

use super::commit::Txn;
use super::config::ManagerConfig;
use super::deadlines::pace;
use super::state::{Instance, JobEntry, State, WorkerEntry, parse_id};

impl State {
    /// The state a snapshot describes. Reloaded workers count as seen `now`: they get one grace
    /// period, at the pace for their number, to heartbeat again.
    pub fn from_snapshot(snap: Snapshot, now: Instant, cfg: &ManagerConfig) -> State {
        let Snapshot {
            index,
            next_instance,
            jobs,
            specs,
            instances,
            workers,
            // Tokens live beside the state (`Manager::with_clock` and `rebuild` load them).
            tokens: _,
            secrets,
            // Checked once, when the manager starts (`Manager::with_clock`).
            secret_key_check: _,
            volumes,
        } = snap;
        let mut st = State {
            head: index,
            next_instance,
            ..State::default()
        };
        let grace = pace(workers.len(), cfg).grace;
        st.live_workers = workers.len();
        for (id, reg) in workers {
            let mut w = WorkerEntry::new(reg, index, now, grace);
            w.log_floor = index;
            st.workers.insert(id, w);
        }
        for rec in volumes.into_values() {
            st.volumes.insert(rec);
        }
        for ((name, version), rec) in secrets {
            st.secrets.entry(name).or_default().insert(version, rec);
        }
        for (name, rec) in jobs {
            st.jobs.insert(name, JobEntry::new(rec));
        }
        for ((job, version), spec) in specs {
            if let Some(e) = st.jobs.get_mut(&job) {
                e.specs.insert(version, spec);
            }
        }
        let mut scratch = Txn::default();
        for (id, rec) in instances {
            let Some((job, number)) = parse_id(&id) else {
                tracing::warn!(instance = %id, "stored instance id has an unknown shape; skipped");
                continue;
            };
            let known = st
                .jobs
                .get(&job)
                .is_some_and(|e| e.specs.contains_key(&rec.version));
            if !known {
                tracing::warn!(instance = %id, "stored instance has no job or spec; skipped");
                continue;
            }
            st.next_instance = st.next_instance.max(number + 1);
            st.insert_loaded((job, number), Instance::from_record(rec), &mut scratch);
        }
        for (name, e) in &st.jobs {
            let version = e.rec.version;
            let count = e.spec().count;
            let current = e
                .instances
                .values()
                .filter(|i| i.version == version && i.desired == Desired::Run)
                .count();
            let stale = |n: u64| e.rec.restart_below.is_some_and(|b| n < b);
            let old = e
                .instances
                .iter()
                .any(|(n, i)| (i.version != version || stale(*n)) && i.desired == Desired::Run);
            if !e.rec.stopped && (old || (current as u32) < count && !e.instances.is_empty()) {
                st.rolling.insert(name.clone());
            }
        }
        for w in st.workers.values_mut() {
            w.log.clear();
            w.assign_index = index;
            w.log_floor = index;
        }
        st.count_phases();
        st
    }

    /// Counts every job once, in the phase its instances give. The phases the instances passed
    /// through while they were inserted one by one were never counted consistently (a job
    /// starts uncounted), so the counts are built anew from the tallies.
    fn count_phases(&mut self) {
        self.counts.phases.clear();
        self.counts.failing.clear();
        let names: Vec<_> = self.jobs.keys().cloned().collect();
        for n in names {
            let Some(e) = self.jobs.get_mut(&n) else {
                continue;
            };
            let phase = e.tally.phase(e.rec.stopped);
            e.phase = phase;
            self.set_phase(&n, None, Some(phase));
        }
    }

    /// Takes the durable part of `fresh` (just loaded) and keeps this state's soft part: worker
    /// liveness and resources, schedulers, and what watchers wait on.
    pub fn replace_durable(&mut self, mut fresh: State) {
        let ids: Vec<_> = fresh.workers.keys().cloned().collect();
        for id in &ids {
            let Some(w) = fresh.workers.get_mut(id) else {
                continue;
            };
            if let Some(old) = self.workers.get(id) {
                w.resources = old.resources;
                w.healthy = old.healthy;
                w.message = old.message.clone();
                w.last_seen = old.last_seen;
                w.deadline = old.deadline;
                w.suspected = old.suspected;
                w.down_since = old.down_since;
                w.notify = Arc::clone(&old.notify);
            }
            let liveness = self.workers.get(id).map(|o| o.liveness);
            if let Some(l) = liveness {
                fresh.set_liveness(id, l);
            }
        }
        // Every watcher gets a full answer next: its index may be one that never became durable.
        for w in self.workers.values() {
            w.notify.notify_waiters();
        }
        fresh.schedulers = std::mem::take(&mut self.schedulers);
        fresh.judge_workers_after = self.judge_workers_after;
        fresh.live_workers = self.live_workers;
        fresh.mass_silence = self.mass_silence;
        fresh.work = Arc::clone(&self.work);
        fresh.work.notify_waiters();
        *self = fresh;
    }
}
