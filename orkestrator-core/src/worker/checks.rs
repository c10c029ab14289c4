//! The health checks, run by their own loop outside the reconcile pass: which are due (from the
//! assignments and the [`Tracks`]), and running them concurrently against the runtime. The
//! verdict they add up to is kept by each task's tracker (`health`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::tracks::{TaskKey, Track, Tracks};
use crate::api::{Assignment, Desired};
use crate::ids::InstanceId;
use crate::runtime::Runtime;
use crate::spec::HealthCheck;

/// One check to run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DueCheck {
    /// The task.
    pub(crate) key: TaskKey,
    /// Its running container.
    pub(crate) container: String,
    /// The check.
    pub(crate) check: HealthCheck,
}

impl DueCheck {
    /// Whether the task still runs the container this check was made on: the reconcile pass
    /// may have seen it exit, or started another, while the check ran. Only then does the
    /// result count.
    pub(crate) fn still_current(&self, tr: &Track) -> bool {
        tr.restart.running_since().is_some()
            && !tr.restart.is_done()
            && tr.container() == Some(self.container.as_str())
    }
}

/// The tasks whose checks may fall due: of instances that should run, with a check, running a
/// container (their tracker says when the next check is due, and none while the container is
/// being stopped as unhealthy).
fn checked<'a>(
    held: &'a BTreeMap<InstanceId, Assignment>,
    tracks: &'a Tracks,
) -> impl Iterator<Item = (TaskKey, &'a str, &'a HealthCheck, &'a Track)> + 'a {
    held.values()
        .filter(|a| a.desired == Desired::Run)
        .flat_map(move |a| {
            a.job.tasks.iter().filter_map(move |task| {
                let hc = task.health_check.as_ref()?;
                let key = (a.instance.clone(), task.name.clone());
                let tr = tracks.get(&key)?;
                if tr.restart.running_since().is_none() || tr.restart.is_done() {
                    return None;
                }
                let container = tr.container()?;
                Some((key, container, hc, tr))
            })
        })
}

/// The checks due at `now`: of tasks that should run, have a check, and run a container that is
/// not already being stopped as unhealthy.
pub(crate) fn due_checks(
    held: &BTreeMap<InstanceId, Assignment>,
    tracks: &Tracks,
    now: Instant,
) -> Vec<DueCheck> {
    checked(held, tracks)
        .filter(|(.., tr)| tr.health.due(now))
        .map(|(key, container, hc, _)| DueCheck {
            key,
            container: container.to_owned(),
            check: hc.clone(),
        })
        .collect()
}

/// When the next of those checks falls due, if any does.
pub(crate) fn next_due(
    held: &BTreeMap<InstanceId, Assignment>,
    tracks: &Tracks,
) -> Option<Instant> {
    checked(held, tracks)
        .filter_map(|(.., tr)| tr.health.wake_at())
        .min()
}

/// Runs `due` concurrently; `each` gets every result as it comes in.
pub(crate) async fn run_checks<R: Runtime>(
    runtime: &Arc<R>,
    due: Vec<DueCheck>,
    mut each: impl FnMut(DueCheck, Result<(), String>),
) {
    let mut probes = tokio::task::JoinSet::new();
    for d in due {
        let rt = runtime.clone();
        probes.spawn(async move {
            let r = rt
                .probe(&d.container, &d.check.probe, d.check.timeout)
                .await;
            (d, r)
        });
    }
    while let Some(joined) = probes.join_next().await {
        if let Ok((d, r)) = joined {
            each(d, r);
        }
    }
}
