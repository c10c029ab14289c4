//! Garbage collection: what ended long enough ago leaves memory and the store — jobs that are
//! stopped, completed or failed (with their instances and specs), replaced instances of live
//! jobs, spec versions no instance runs any more, and workers down for long. Instance numbers
//! come from one counter that GC never resets, so an id is never reused, even for a job submitted
//! again under a collected name.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::api::{Desired, JobPhase};
use crate::clock::Millis;
use crate::events::EventKind;
use crate::gc_report::GcReport;
use crate::ids::JobId;
use crate::store::StoreOp;

use super::commit::Txn;
use super::state::{Instance, State};

/// The latest state change of an instance's tasks.
fn last_change(i: &Instance) -> Millis {
    i.tasks.iter().map(|t| t.since).max().unwrap_or(0)
}

/// What one collection removed, by name (for the metrics window, which is not state).
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub jobs: Vec<JobId>,
    pub workers: Vec<crate::ids::WorkerId>,
}

/// One collection of everything that ended more than `older_than` before `now`; with `only`,
/// of that job alone (and no workers).
pub(crate) fn collect(
    st: &mut State,
    txn: &mut Txn,
    older_than: Duration,
    only: Option<&JobId>,
    removed: &mut Removed,
    now: Millis,
) -> GcReport {
    let cutoff = now.saturating_sub(older_than.as_millis() as u64);
    let mut report = GcReport::default();
    let mut whole: Vec<JobId> = Vec::new();
    let mut partial: Vec<JobId> = Vec::new();
    for (name, e) in &st.jobs {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let ended = matches!(
            e.phase,
            JobPhase::Stopped | JobPhase::Completed | JobPhase::Failed
        ) && e.tally.unfinished == 0;
        if ended {
            let last = e
                .instances
                .values()
                .map(last_change)
                .max()
                .unwrap_or(0)
                .max(e.rec.ended_at.unwrap_or(0));
            if last <= cutoff && !e.instances.values().any(|i| i.assigned()) {
                whole.push(name.clone());
                continue;
            }
        }
        if e.tally.retired > 0 || e.specs.len() > 1 {
            partial.push(name.clone());
        }
    }
    for name in whole {
        let Some(e) = st.jobs.get(&name) else {
            continue;
        };
        let numbers: Vec<u64> = e.instances.keys().copied().collect();
        let versions: Vec<u64> = e.specs.keys().copied().collect();
        for n in numbers {
            st.remove_instance(&(name.clone(), n), txn);
            report.instances += 1;
        }
        for version in versions {
            txn.ops.push(StoreOp::DeleteSpec {
                job: name.clone(),
                version,
            });
            report.specs += 1;
        }
        let phase = st.jobs.get(&name).map(|e| e.phase);
        st.set_phase(&name, phase, None);
        st.jobs.remove(&name);
        st.rolling.remove(&name);
        txn.events
            .push(EventKind::JobCollected { job: name.clone() });
        removed.jobs.push(name.clone());
        txn.ops.push(StoreOp::DeleteJob(name));
        report.jobs += 1;
    }
    for name in partial {
        let Some(e) = st.jobs.get(&name) else {
            continue;
        };
        let old: Vec<u64> = e
            .instances
            .iter()
            .filter(|(_, i)| {
                i.desired == Desired::Stop
                    && i.all_terminal()
                    && !i.assigned()
                    && last_change(i) <= cutoff
            })
            .map(|(n, _)| *n)
            .collect();
        for n in old {
            st.remove_instance(&(name.clone(), n), txn);
            report.instances += 1;
        }
        let Some(e) = st.jobs.get_mut(&name) else {
            continue;
        };
        let used: BTreeSet<u64> = e
            .instances
            .values()
            .map(|i| i.version)
            .chain([e.rec.version])
            .collect();
        let unused: Vec<u64> = e
            .specs
            .keys()
            .copied()
            .filter(|v| !used.contains(v))
            .collect();
        for version in unused {
            e.specs.remove(&version);
            txn.ops.push(StoreOp::DeleteSpec {
                job: name.clone(),
                version,
            });
            report.specs += 1;
        }
    }
    if report.specs > 0 {
        // Secret versions only dropped job versions pinned go with them.
        super::rooms::prune_secrets(st, txn, None);
    }
    let gone: Vec<_> = st
        .workers
        .iter()
        .filter(|_| only.is_none())
        .filter(|(_, w)| w.down_since.is_some_and(|t| t <= cutoff) && w.assigned.is_empty())
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        st.workers.remove(&id);
        st.counts.unready.remove(&id);
        txn.ops.push(StoreOp::DeleteWorker(id.clone()));
        removed.workers.push(id);
        report.workers += 1;
    }
    // Volumes last: those of the jobs and instances just collected go with them.
    report.volumes = super::volumes::collect(st, txn) as u64;
    if report != GcReport::default() {
        txn.events.push(EventKind::Collected {
            jobs: report.jobs,
            instances: report.instances,
            workers: report.workers,
        });
    }
    report
}
