//! Issue 18, item 5: `run` of an unchanged spec for a job that ended (`Stopped`, `Failed`,
//! `Completed`) starts it again, with no new version, and says so (`restarted`). Simulated:
//! manager, embedded scheduler and a fake worker under tokio's paused clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{Desired, JobPhase, JobView, SubmitOutcome};
use orkestrator_core::clock::TokioClock;
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::{JobId, SchedulerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::scheduler::{Registry, SchedulerAgent};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};

async fn cluster() -> Arc<LocalTransport> {
    let manager = Manager::with_clock(
        ManagerConfig::default(),
        Arc::new(orkestrator_core::store::MemoryStore::new()),
        Arc::new(TokioClock::starting_now()),
    )
    .await
    .unwrap();
    // Rolling updates move on in the liveness pass (once a replacement has settled).
    tokio::spawn(manager.cluster().run_liveness_checks());
    let transport = Arc::new(LocalTransport::new(manager));
    let sched = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        transport.clone(),
        Registry::builtin().get("spread").unwrap(),
    );
    tokio::spawn(sched.run(std::future::pending()));
    let size = Resources {
        cpu: Cpu::from_cores(2),
        memory: ByteSize::gib(1),
        disk: ByteSize::gib(10),
    };
    let agent = WorkerAgent::new(
        WorkerConfig::new("w0"),
        transport.clone(),
        Arc::new(FakeRuntime::new()),
        Arc::new(StaticProbe(size)),
    );
    tokio::spawn(agent.run(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    transport
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap()
}

/// The ids of the instances told to run.
fn running_ids(v: &JobView) -> Vec<String> {
    v.instances
        .iter()
        .filter(|i| i.desired == Desired::Run)
        .map(|i| i.id.to_string())
        .collect()
}

/// Submits `spec` once the job is in `ended`, expects `restarted` with the same version, and
/// that every instance was replaced by a new one at once.
async fn restarts_from(t: &LocalTransport, spec: &Job, ended: JobPhase) {
    let name = spec.name.as_str();
    let before = common::wait_for(t, name, &format!("{ended:?}"), |v| v.phase == ended).await;
    let r = t.submit_job(spec).await.unwrap();
    assert_eq!(r.outcome, SubmitOutcome::Restarted, "{r:?}");
    assert_eq!(r.version, before.version, "no new version: {r:?}");
    let after = t.get_job(&spec.name).await.unwrap();
    assert_eq!(after.version, before.version);
    let (old, new) = (running_ids(&before), running_ids(&after));
    assert_eq!(
        new.len(),
        spec.count as usize,
        "every instance at once: {after:#?}"
    );
    assert!(
        new.iter().all(|i| !old.contains(i)),
        "new instances: {old:?} -> {new:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_of_an_unchanged_spec_restarts_a_stopped_job_without_a_new_version() {
    let t = cluster().await;
    let spec = job("name: svc\ncount: 2\ntasks:\n  - name: t\n    image: img:1\n");
    t.submit_job(&spec).await.unwrap();
    common::wait_for(&t, "svc", "Running", |v| v.phase == JobPhase::Running).await;
    t.stop_job(&spec.name).await.unwrap();
    restarts_from(&t, &spec, JobPhase::Stopped).await;
    common::wait_for(&t, "svc", "Running again", |v| v.phase == JobPhase::Running).await;
    // Running now: the same spec again changes nothing.
    let r = t.submit_job(&spec).await.unwrap();
    assert_eq!(r.outcome, SubmitOutcome::Unchanged, "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn run_of_an_unchanged_spec_restarts_a_completed_or_failed_job() {
    let t = cluster().await;
    for (name, code, phase) in [("ok", 0, JobPhase::Completed), ("bad", 3, JobPhase::Failed)] {
        let spec = job(&format!(
            "name: {name}\ntasks:\n  - name: t\n    image: img:1\n    command: [exit, '{code}']\n    restart: {{ policy: never }}\n"
        ));
        t.submit_job(&spec).await.unwrap();
        restarts_from(&t, &spec, phase).await;
        // It runs to the same end again.
        common::wait_for(&t, name, "ended again", |v| {
            v.phase == phase && v.instances.iter().any(|i| i.desired == Desired::Run)
        })
        .await;
    }
}

/// `restart` of a running job replaces its instances one at a time, as a new version rolls out,
/// under the same version; of an ended job, it starts every instance at once.
#[tokio::test(start_paused = true)]
async fn restart_replaces_a_running_job_one_instance_at_a_time_without_a_new_version() {
    let t = cluster().await;
    let spec = job("name: web\ncount: 3\ntasks:\n  - name: t\n    image: img:1\n");
    t.submit_job(&spec).await.unwrap();
    let before = common::wait_for(&t, "web", "Running", |v| v.phase == JobPhase::Running).await;
    let old = running_ids(&before);
    let r = t.restart_job(&spec.name).await.unwrap();
    assert_eq!(r.outcome, SubmitOutcome::Restarted, "{r:?}");
    assert_eq!(r.version, before.version, "no new version: {r:?}");
    let first = t.get_job(&spec.name).await.unwrap();
    let told_to_stop = first
        .instances
        .iter()
        .filter(|i| i.desired == Desired::Stop && old.contains(&i.id.to_string()))
        .count();
    assert_eq!(told_to_stop, 1, "one at a time: {first:#?}");
    // Until every instance is new, at least count - 1 of the old ones are told to run.
    let id = spec.name.clone();
    let mut done = false;
    for _ in 0..1200 {
        let v = t.get_job(&id).await.unwrap();
        assert_eq!(v.version, before.version);
        let now = running_ids(&v);
        let kept = now.iter().filter(|i| old.contains(i)).count();
        let fresh = now.len() - kept;
        assert!(
            kept + fresh >= 2,
            "never fewer than count - 1 told to run: {v:#?}"
        );
        if kept == 0 && v.phase == JobPhase::Running && now.len() == 3 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        done,
        "every instance replaced: {:#?}",
        t.get_job(&id).await.unwrap()
    );
    // Ended: every instance at once.
    t.stop_job(&id).await.unwrap();
    common::wait_for(&t, "web", "Stopped", |v| v.phase == JobPhase::Stopped).await;
    let r = t.restart_job(&id).await.unwrap();
    assert_eq!(r.outcome, SubmitOutcome::Restarted, "{r:?}");
    assert_eq!(running_ids(&t.get_job(&id).await.unwrap()).len(), 3);
    // An unknown job is not found.
    assert!(t.restart_job(&JobId::new("nosuch")).await.is_err());
}
