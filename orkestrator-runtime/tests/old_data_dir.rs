//! A data directory written by release 0.1.0 (store format 1, `tests/fixtures/data-v1`) loads
//! in this release: every job, spec version, instance and worker, migrated to format 2.

use std::sync::Arc;

use orkestrator_core::api::{Desired, JobPhase, ListQuery, SubmitOutcome};
use orkestrator_core::ids::{JobId, WorkerId};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, Task, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::Store;
use orkestrator_core::units::ByteSize;
use orkestrator_runtime::RedbStore;

fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data-v1/orkestrator.redb");
    std::fs::copy(src, dir.path().join("orkestrator.redb")).unwrap();
    dir
}

#[tokio::test]
async fn old_data_dir_loads() {
    let dir = copy_fixture();
    let store = Arc::new(RedbStore::open_dir(dir.path()).unwrap());
    let snap = store.load().await.unwrap();
    let old_index = snap.index;
    assert!(old_index >= 10, "the fixture's index: {old_index}");
    assert_eq!(snap.jobs.len(), 3);
    // One spec per (job, version) that something refers to: web 1 and 2, big 1, batch 1.
    assert_eq!(
        snap.specs.len(),
        4,
        "{:?}",
        snap.specs.keys().collect::<Vec<_>>()
    );
    assert_eq!(snap.instances.len(), 5);

    let m = Manager::new(ManagerConfig::default(), store.clone())
        .await
        .unwrap();
    let jobs = m.jobs().list(&ListQuery::default()).await.unwrap().items;
    let names: Vec<_> = jobs.iter().map(|j| j.name.to_string()).collect();
    assert_eq!(names, ["batch", "big", "web"]);

    let web = m.jobs().get(&JobId::new("web")).await.unwrap();
    assert_eq!(web.version, 2);
    assert_eq!(web.spec.count, 2);
    assert_eq!(web.spec.tasks[0].resources.memory, ByteSize::mib(96));
    assert_eq!(web.spec.tasks[0].ports[0].host, Some(8080));
    let w00 = web
        .instances
        .iter()
        .find(|i| i.id.as_str() == "web-0-0")
        .expect("web-0-0");
    assert_eq!(w00.desired, Desired::Stop);
    assert_eq!(w00.worker, Some(WorkerId::new("w1")));
    assert_eq!(w00.tasks["server"].state, TaskState::Running);
    assert_eq!(w00.tasks["server"].container_id.as_deref(), Some("abc123"));

    let big = m.jobs().get(&JobId::new("big")).await.unwrap();
    assert_eq!(big.phase, JobPhase::Stopped);
    assert_eq!(big.instances[0].tasks["t"].state, TaskState::Stopped);

    let batch = m.jobs().get(&JobId::new("batch")).await.unwrap();
    assert_eq!(batch.phase, JobPhase::Pending);
    assert_eq!(batch.spec.tasks.len(), 2);
    let lost = batch
        .instances
        .iter()
        .find(|i| i.id.as_str() == "batch-0-0")
        .unwrap();
    assert_eq!(lost.tasks["a"].state, TaskState::Completed);
    assert_eq!(lost.tasks["a"].exit_code, Some(0));
    assert_eq!(lost.tasks["b"].state, TaskState::Lost);
    let pending = batch
        .instances
        .iter()
        .find(|i| i.id.as_str() == "batch-0-1")
        .unwrap();
    assert_eq!(pending.desired, Desired::Run);
    assert_eq!(pending.tasks["b"].state, TaskState::Pending);

    let workers = m.workers().list(&ListQuery::default()).await.unwrap().items;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].labels["zone"], "a");

    // The index goes on from the old one, and new instances never take an old id.
    let h = m.cluster().health().await.unwrap();
    assert!(h.manager.index > old_index);
    let j = parse_job(
        "name: batch\ncount: 3\ntasks: [{name: a, image: busybox:1.36}]",
        Format::Yaml,
    )
    .unwrap();
    m.jobs().submit(j).await.unwrap();
    let batch = m.jobs().get(&JobId::new("batch")).await.unwrap();
    let ids: std::collections::BTreeSet<_> = batch.instances.iter().map(|i| &i.id).collect();
    assert_eq!(ids.len(), batch.instances.len(), "ids are unique: {ids:?}");
    drop(m);

    // Reopened, the file is format 2 and holds the same.
    drop(store);
    let again = RedbStore::open_dir(dir.path()).unwrap();
    let snap2 = again.load().await.unwrap();
    assert_eq!(snap2.jobs.len(), 3);
    assert!(snap2.index > old_index);
}

/// Specs stored before tasks had `resources.pids`, `user` and `read_only` read back with the
/// defaults, and the same file submitted again today changes nothing: upgrading rolls nothing out.
#[tokio::test]
async fn old_specs_take_the_safety_defaults_and_resubmitting_them_is_unchanged() {
    let dir = copy_fixture();
    let store = Arc::new(RedbStore::open_dir(dir.path()).unwrap());
    let m = Manager::new(ManagerConfig::default(), store.clone())
        .await
        .unwrap();
    for name in ["web", "batch"] {
        let job = m.jobs().get(&JobId::new(name)).await.unwrap();
        for t in &job.spec.tasks {
            assert_eq!(t.pids, Task::DEFAULT_PIDS, "{name}/{}", t.name);
            assert_eq!(t.user, None, "{name}/{}", t.name);
            assert!(!t.read_only, "{name}/{}", t.name);
        }
        // The file as it was written before this change: the spec without the new fields.
        let mut file: serde_json::Value = serde_json::to_value(&job.spec).unwrap();
        for t in file["tasks"].as_array_mut().unwrap() {
            let t = t.as_object_mut().unwrap();
            assert!(t.remove("read_only").is_some());
            assert!(t.remove("user").is_none());
            let r = t["resources"].as_object_mut().unwrap();
            assert!(r.remove("pids").is_some());
        }
        let today = parse_job(&file.to_string(), Format::Json).unwrap();
        assert_eq!(today, job.spec, "{name}");
        let r = m.jobs().submit(today).await.unwrap();
        assert_eq!(r.outcome, SubmitOutcome::Unchanged, "{name}");
        assert_eq!(r.version, job.version, "{name}");
    }
}
