//! The health checks, run by their own loop outside the reconcile pass: which are due (from the
//! assignments and the [`Tracks`]), and running them concurrently against the runtime. The
//! verdict they add up to is kept by each task's tracker (`health`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::tracks::{TaskKey, Track, Tracks};
use crate::api::{Assignment, Desired};
use crate::ids::InstanceId;
use crate::runtime::{ContainerInfo, Runtime, health};
use crate::spec::{HealthCheck, Probe};

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
    /// result count. (A report that did not reach the manager is forgotten, and the container
    /// with it, until the next pass: that alone does not void the result.)
    pub(crate) fn still_current(&self, tr: &Track) -> bool {
        tr.restart.running_since().is_some()
            && !tr.restart.is_done()
            && tr.container().is_none_or(|c| c == self.container)
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

/// Runs `due` concurrently; `each` gets every result as it comes in: `None` where there is none
/// yet (the engine still runs the image's first checks, see [`image_verdict`]).
pub(crate) async fn run_checks<R: Runtime>(
    runtime: &Arc<R>,
    due: Vec<DueCheck>,
    mut each: impl FnMut(DueCheck, Option<Result<(), String>>),
) {
    let mut probes = tokio::task::JoinSet::new();
    for d in due {
        let rt = runtime.clone();
        probes.spawn(async move {
            let r = match &d.check.probe {
                // The engine runs the image's own check: read its verdict.
                Probe::Image => image_verdict(rt.inspect(&d.container).await),
                probe => Some(rt.probe(&d.container, probe, d.check.timeout).await),
            };
            (d, r)
        });
    }
    while let Some(joined) = probes.join_next().await {
        if let Ok((d, r)) = joined {
            each(d, r);
        }
    }
}

/// The result of an image's own `HEALTHCHECK` from the engine's inspect answer: `healthy`
/// passes, `unhealthy` fails, `starting` is no result yet (`None`: neither passes nor fails),
/// and a container without a health status fails, as its image has no `HEALTHCHECK`.
pub(crate) fn image_verdict(
    inspected: crate::error::Result<ContainerInfo>,
) -> Option<Result<(), String>> {
    let c = match inspected {
        Ok(c) => c,
        Err(e) => return Some(Err(format!("cannot read the engine's health status: {e}"))),
    };
    match c.health.as_deref() {
        Some(health::HEALTHY) => Some(Ok(())),
        Some(health::STARTING) => None,
        Some(health::UNHEALTHY) => Some(Err(
            "the engine reports the image's HEALTHCHECK unhealthy".to_owned(),
        )),
        None | Some("" | "none") => Some(Err("the image has no HEALTHCHECK".to_owned())),
        Some(other) => Some(Err(format!("the engine reports health {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::TaskUpdate;
    use crate::ids::TaskName;
    use crate::spec::RestartPolicy;
    use crate::state::TaskState;

    fn running_in(container: &str) -> TaskUpdate {
        TaskUpdate {
            instance: InstanceId::new("i1"),
            task: TaskName::new("t"),
            state: TaskState::Running,
            exit_code: None,
            reason: None,
            container_id: Some(container.to_owned()),
            restarts: 0,
            next_start_at: None,
            healthy: None,
        }
    }

    #[test]
    fn a_result_counts_only_for_the_container_that_still_runs() {
        let t0 = Instant::now();
        let key = (InstanceId::new("i1"), TaskName::new("t"));
        let d = DueCheck {
            key: key.clone(),
            container: "c1".into(),
            check: HealthCheck {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(1),
                failures: 1,
                probe: Probe::Tcp { port: 80 },
                start_period: Duration::ZERO,
            },
        };
        let mut tracks = Tracks::new(7);
        let tr = tracks.entry(&key.0, &key.1);
        tr.restart.started(t0);
        tr.report(running_in("c1"));
        assert!(d.still_current(tr));
        tr.report(running_in("c2"));
        assert!(!d.still_current(tr), "another container runs now");
        tr.report(running_in("c1"));
        tr.restart.exited(&RestartPolicy::never(), true, t0);
        assert!(!d.still_current(tr), "the container exited");
    }
}
