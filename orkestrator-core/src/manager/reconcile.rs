//! The manager's rules as pure functions: from what a job wants and what its instances are doing
//! (and `now`, folded into the facts) to the actions that close the gap. No I/O, no locks; the
//! manager turns the actions into changes. In the style of Nomad's reconciler (`Compute()`
//! filling place/stop sets) and kube-runtime's `Action`, and tested as tables.

/// What the rules need to know about one instance of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceFacts {
    /// Its instance number (unique, rising: later instances have larger numbers).
    pub number: u64,
    /// Which copy of the job.
    pub index: u32,
    /// The spec version it runs.
    pub version: u64,
    /// Whether it should run.
    pub run: bool,
    /// Whether it has a worker.
    pub placed: bool,
    /// Whether every task has ended.
    pub finished: bool,
    /// Whether some task failed for good.
    pub failed: bool,
    /// Whether every task completed successfully.
    pub completed: bool,
    /// Whether it has run healthy for the minimum healthy time.
    pub settled: bool,
    /// Whether it was started before a restart of its job: replaced as if its version were old.
    pub stale: bool,
}

/// What the manager should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tell instance `number` to stop.
    Stop {
        /// The instance.
        number: u64,
    },
    /// Create a new instance with `index` of the current version.
    Create {
        /// Which copy of the job.
        index: u32,
    },
}

/// The rolling update's next step, and whether the update is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// What to do now.
    pub actions: Vec<Action>,
    /// Whether nothing is left to roll (every index runs the current version, nothing extra).
    pub done: bool,
}

/// One step of a rolling update of a job at `version` with `count` instances: instances past
/// the count stop at once; otherwise one index at a time, the old instance stops, and once it
/// is gone its replacement is created; the next index waits until that replacement has settled
/// (or completed). A replacement that fails stops the rollout, leaving the remaining old
/// instances running. One index at a time needs no spare capacity and keeps `count - 1`
/// instances serving.
pub fn rollout(version: u64, count: u32, stopped: bool, instances: &[InstanceFacts]) -> Rollout {
    if stopped {
        return Rollout {
            actions: vec![],
            done: true,
        };
    }
    let old = |i: &InstanceFacts| i.version != version || i.stale;
    let current = |i: &&InstanceFacts| !old(i) && i.run;
    if instances.iter().filter(current).any(|i| i.failed) {
        // The new spec fails: stop rolling (the failure shows in the job's phase).
        return Rollout {
            actions: vec![],
            done: true,
        };
    }
    let mut actions: Vec<Action> = instances
        .iter()
        .filter(|i| i.run && i.index >= count)
        .map(|i| Action::Stop { number: i.number })
        .collect();
    let busy = instances.iter().any(|i| {
        (current(&i) && !(i.completed || i.settled)) || (!i.run && i.placed && !i.finished)
    });
    let missing = (0..count).find(|idx| !instances.iter().any(|i| current(&i) && i.index == *idx));
    let old_left = instances.iter().any(|i| i.run && old(i) && i.index < count);
    let Some(idx) = missing else {
        return Rollout {
            done: !old_left && actions.is_empty() && !busy,
            actions,
        };
    };
    if busy {
        return Rollout {
            actions,
            done: false,
        };
    }
    let replaced = instances.iter().find(|i| i.run && old(i) && i.index == idx);
    match replaced {
        Some(o) => {
            actions.push(Action::Stop { number: o.number });
            // An old instance that never got a worker (or has ended) is gone at once.
            if !o.placed || o.finished {
                actions.push(Action::Create { index: idx });
            }
        }
        None => actions.push(Action::Create { index: idx }),
    }
    Rollout {
        actions,
        done: false,
    }
}

/// Which of the instances on a worker that went down are lost: those meant to run that have a
/// task which has not completed or failed (a finished batch task is not run again).
pub fn lost_on_down_worker(instances: &[(u64, bool, bool)]) -> Vec<u64> {
    instances
        .iter()
        .filter(|(_, run, all_done)| *run && !*all_done)
        .map(|(n, _, _)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Action::*;
    use super::*;

    /// An instance: number, index, version, then flags by letter: r run, p placed, f finished,
    /// x failed, c completed, s settled, o stale (started before a restart).
    fn i(number: u64, index: u32, version: u64, flags: &str) -> InstanceFacts {
        InstanceFacts {
            number,
            index,
            version,
            run: flags.contains('r'),
            placed: flags.contains('p'),
            finished: flags.contains('f'),
            failed: flags.contains('x'),
            completed: flags.contains('c'),
            settled: flags.contains('s'),
            stale: flags.contains('o'),
        }
    }

    /// A row of the rollout table: what, version, count, instances, actions, done.
    type Row = (
        &'static str,
        u64,
        u32,
        Vec<InstanceFacts>,
        Vec<Action>,
        bool,
    );

    #[test]
    fn rollout_table() {
        let rows: Vec<Row> = vec![
            (
                "all current and settled: done",
                2,
                2,
                vec![i(5, 0, 2, "rps"), i(6, 1, 2, "rps")],
                vec![],
                true,
            ),
            (
                "first step: stop the old index 0, wait for it to go",
                2,
                2,
                vec![i(1, 0, 1, "rps"), i(2, 1, 1, "rps")],
                vec![Stop { number: 1 }],
                false,
            ),
            (
                "old instance stopping: wait",
                2,
                2,
                vec![i(1, 0, 1, "p"), i(2, 1, 1, "rps")],
                vec![],
                false,
            ),
            (
                "old instance gone: create its replacement",
                2,
                2,
                vec![i(1, 0, 1, "pf"), i(2, 1, 1, "rps")],
                vec![Create { index: 0 }],
                false,
            ),
            (
                "replacement not settled yet: the next index waits",
                2,
                2,
                vec![i(1, 0, 1, "pf"), i(3, 0, 2, "rp"), i(2, 1, 1, "rps")],
                vec![],
                false,
            ),
            (
                "replacement settled: next index",
                2,
                2,
                vec![i(1, 0, 1, "pf"), i(3, 0, 2, "rps"), i(2, 1, 1, "rps")],
                vec![Stop { number: 2 }],
                false,
            ),
            (
                "completed batch replacement counts as settled",
                2,
                2,
                vec![i(3, 0, 2, "rpfc"), i(2, 1, 1, "rps")],
                vec![Stop { number: 2 }],
                false,
            ),
            (
                "an unplaced old instance is gone at once",
                2,
                1,
                vec![i(1, 0, 1, "r")],
                vec![Stop { number: 1 }, Create { index: 0 }],
                false,
            ),
            (
                "a failing replacement stops the rollout",
                2,
                2,
                vec![i(3, 0, 2, "rpfx"), i(2, 1, 1, "rps")],
                vec![],
                true,
            ),
            (
                "scale down: the surplus stops at once",
                2,
                1,
                vec![i(5, 0, 2, "rps"), i(6, 1, 2, "rps"), i(7, 2, 2, "rps")],
                vec![Stop { number: 6 }, Stop { number: 7 }],
                false,
            ),
            (
                "scale up: the missing index is created",
                1,
                2,
                vec![i(5, 0, 1, "rps")],
                vec![Create { index: 1 }],
                false,
            ),
            (
                "a restart, same version: stop the first instance started before it",
                2,
                2,
                vec![i(1, 0, 2, "rpso"), i(2, 1, 2, "rpso")],
                vec![Stop { number: 1 }],
                false,
            ),
            (
                "a restart: the stale instance gone, its replacement is created",
                2,
                2,
                vec![i(1, 0, 2, "pfo"), i(2, 1, 2, "rpso")],
                vec![Create { index: 0 }],
                false,
            ),
            (
                "a restart: replacement settled, the next stale instance stops",
                2,
                2,
                vec![i(3, 0, 2, "rps"), i(2, 1, 2, "rpso")],
                vec![Stop { number: 2 }],
                false,
            ),
            (
                "a stopped job rolls nothing",
                2,
                2,
                vec![i(1, 0, 1, "rps")],
                vec![],
                true,
            ),
        ];
        for (what, version, count, insts, actions, done) in rows {
            let stopped = what.contains("stopped job");
            let got = rollout(version, count, stopped, &insts);
            assert_eq!(got.actions, actions, "{what}");
            assert_eq!(got.done, done, "{what}");
        }
    }

    #[test]
    fn lost_instances_are_the_live_unfinished_ones() {
        let on_worker = [(1, true, false), (2, true, true), (3, false, false)];
        assert_eq!(lost_on_down_worker(&on_worker), vec![1]);
    }
}
