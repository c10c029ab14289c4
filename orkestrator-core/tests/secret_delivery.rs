//! Issue 20, fast: tasks name secrets. A job naming an unknown secret is refused at the field,
//! and gets a 503 from a manager without a key; job versions pin secret versions (an identical
//! re-submission stays `unchanged`, `secret update` makes a new version of every live job that
//! uses the secret, going back to an earlier job version brings its values back, versions are
//! kept while a kept job version pins them); the values go to the worker running the instance
//! and to no other (403); the worker writes them on a tmpfs, with their mode, and bind-mounts
//! them read-only. Manager, embedded scheduler and a worker on the fake runtime, under tokio's
//! paused clock.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::{ErrorKind, SubmitOutcome};
use orkestrator_core::clock::TokioClock;
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::{JobId, SchedulerId, WorkerId};
use orkestrator_core::local::LocalTransport;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::runtime::MountSource;
use orkestrator_core::scheduler::{Registry, SchedulerAgent};
use orkestrator_core::secrets::{SecretKey, SecretValue};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_core::worker::{StaticProbe, WorkerAgent, WorkerConfig};

const JOB: &str = "name: app
tasks:
  - { name: side, image: img:1 }
  - name: main
    image: img:1
    user: '1000:1000'
    secrets: [{ name: db-password }, { name: tls.key, path: /etc/tls/key, mode: '0440' }]
";

fn config(key: bool) -> ManagerConfig {
    ManagerConfig {
        secret_key: key.then(|| SecretKey::from_bytes(&[7; 32]).unwrap()),
        gc_after: Duration::ZERO,
        ..ManagerConfig::default()
    }
}

async fn manager(key: bool) -> Manager {
    Manager::with_clock(
        config(key),
        Arc::new(MemoryStore::new()),
        Arc::new(TokioClock::starting_now()),
    )
    .await
    .unwrap()
}

fn job(yaml: &str) -> Job {
    parse_job(yaml, Format::Yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
}

fn value(v: &str) -> SecretValue {
    SecretValue::new(v.as_bytes().to_vec())
}

/// The versions `job`'s task `main` pins, in its order.
fn pins(j: &Job) -> Vec<Option<u64>> {
    j.task("main")
        .unwrap()
        .secrets
        .iter()
        .map(|r| r.version)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_job_naming_an_unknown_secret_is_refused_at_the_field_and_without_a_key_gets_503() {
    let m = manager(true).await;
    m.secrets()
        .create("db-password", value("pw"))
        .await
        .unwrap();
    let e = m.jobs().submit(job(JOB)).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Invalid, "invalid_spec")
    );
    let problems = e.problems.expect("problems").0;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "tasks[1].secrets[1].name");
    assert!(
        problems[0].message.contains("no secret named tls.key"),
        "{}",
        problems[0].message
    );
    assert!(
        m.jobs().get(&JobId::new("app")).await.is_err(),
        "nothing kept"
    );

    let keyless = manager(false).await;
    let e = keyless.jobs().submit(job(JOB)).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Unavailable, "secrets_need_key")
    );
    assert!(e.message.contains("--secret-key-file"), "{}", e.message);
    // A job without secrets is taken by either.
    keyless
        .jobs()
        .submit(job("name: plain\ntasks: [{ name: t, image: img:1 }]"))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn job_versions_pin_secret_versions_and_an_update_rolls_a_new_job_version() {
    let m = manager(true).await;
    m.secrets()
        .create("db-password", value("one"))
        .await
        .unwrap();
    m.secrets().create("tls.key", value("key")).await.unwrap();
    let name = JobId::new("app");
    let r = m.jobs().submit(job(JOB)).await.unwrap();
    assert_eq!((r.version, r.outcome), (1, SubmitOutcome::Created));
    let v1 = m.jobs().get(&name).await.unwrap().spec;
    assert_eq!(pins(&v1), [Some(1), Some(1)]);
    // The same file again changes nothing.
    let r = m.jobs().submit(job(JOB)).await.unwrap();
    assert_eq!((r.version, r.outcome), (1, SubmitOutcome::Unchanged));
    // A stopped job using it is left as it is.
    let other =
        "name: other\ntasks: [{ name: main, image: img:1, secrets: [{ name: db-password }] }]";
    m.jobs().submit(job(other)).await.unwrap();
    m.jobs().stop(&JobId::new("other")).await.unwrap();

    let info = m
        .secrets()
        .update("db-password", value("two"))
        .await
        .unwrap();
    assert_eq!(info.version, 2);
    let view = m.jobs().get(&name).await.unwrap();
    assert_eq!(view.version, 2, "secret update makes a new job version");
    assert_eq!(pins(&view.spec), [Some(2), Some(1)]);
    assert_eq!(
        m.jobs().get(&JobId::new("other")).await.unwrap().version,
        1,
        "a stopped job gets no new version"
    );
    // Version 1 is kept: job versions pin it.
    let kept: Vec<u64> = info.versions.iter().map(|v| v.version).collect();
    assert_eq!(kept, [1, 2]);
    // The job file again (no versions in it) pins the latest: unchanged.
    let r = m.jobs().submit(job(JOB)).await.unwrap();
    assert_eq!((r.version, r.outcome), (2, SubmitOutcome::Unchanged));
    // Going back to version 1, as the manager showed it, brings back its secret version.
    let r = m.jobs().submit(v1.clone()).await.unwrap();
    assert_eq!((r.version, r.outcome), (3, SubmitOutcome::Updated));
    assert_eq!(
        pins(&m.jobs().get(&name).await.unwrap().spec),
        [Some(1), Some(1)]
    );
    // A version written by hand that no kept job version has is replaced by the latest.
    let mut forged = job(JOB);
    forged.count = 2;
    for r in &mut forged.tasks[1].secrets {
        r.version = Some(1);
    }
    m.jobs().submit(forged).await.unwrap();
    assert_eq!(
        pins(&m.jobs().get(&name).await.unwrap().spec),
        [Some(2), Some(1)]
    );

    // rm is refused while jobs use it, naming them.
    let e = m.secrets().remove("db-password").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("app") && e.message.contains("other"),
        "{}",
        e.message
    );

    // Once the jobs and their versions are collected, unpinned versions go.
    m.jobs().stop(&name).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    m.cluster().gc(Duration::ZERO).await.unwrap();
    assert!(m.jobs().get(&name).await.is_err(), "collected");
    let info = m.secrets().get("db-password").await.unwrap();
    let kept: Vec<u64> = info.versions.iter().map(|v| v.version).collect();
    assert_eq!(kept, [2], "only the latest is left");
    m.secrets().remove("db-password").await.unwrap();
}

/// A worker's secrets directory on the host's tmpfs; `None` where `/dev/shm` is none.
fn shm_dir(name: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .any(|l| {
            l.split_whitespace().nth(1) == Some("/dev/shm")
                && l.split_whitespace().nth(2) == Some("tmpfs")
        })
        .then(|| Path::new("/dev/shm").join(format!("ork-sim-{name}-{}", std::process::id())))
}

#[tokio::test(start_paused = true)]
async fn the_worker_running_an_instance_gets_its_values_on_a_tmpfs_and_no_other_worker_does() {
    let Some(dir) = shm_dir("deliver") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no tmpfs at /dev/shm: secrets cannot be delivered"
        );
        return;
    };
    let m = manager(true).await;
    let link = LocalTransport::new(m.clone());
    let sched = SchedulerAgent::new(
        SchedulerId::new("embedded"),
        Arc::new(link.clone()),
        Registry::builtin().get("spread").unwrap(),
    );
    tokio::spawn(async move {
        let _ = sched.run(std::future::pending()).await;
    });
    tokio::spawn(m.clone().cluster().run_liveness_checks());
    let fake = FakeRuntime::new();
    let mut cfg = WorkerConfig::new("w0");
    cfg.stop_grace = Duration::from_secs(1);
    cfg.secrets_dir = Some(dir.clone());
    let size = Resources {
        cpu: Cpu::from_cores(4),
        memory: ByteSize::gib(4),
        disk: ByteSize::gib(10),
    };
    let agent = WorkerAgent::new(
        cfg,
        Arc::new(link.clone()),
        Arc::new(fake.clone()),
        Arc::new(StaticProbe(size)),
    );
    tokio::spawn(async move {
        let _ = agent.run(std::future::pending()).await;
    });
    m.secrets()
        .create("db-password", value("first-value"))
        .await
        .unwrap();
    m.secrets()
        .create("tls.key", value("key-value"))
        .await
        .unwrap();
    link.submit_job(&job(JOB)).await.unwrap();
    let running = |v: &orkestrator_core::api::JobView, version: u64| {
        v.instances.iter().any(|i| {
            i.version == version && i.tasks.values().all(|t| t.state == TaskState::Running)
        })
    };
    let v = common::wait_for(&link, "app", "running", |v| running(v, 1)).await;
    let inst = v.instances[0].id.clone();
    let container = v.instances[0].tasks["main"].container_id.clone().unwrap();
    let spec = fake.spec(&container).unwrap();
    let mut files = Vec::new();
    for (target, want, mode) in [
        ("/run/secrets/db-password", "first-value", 0o400),
        ("/etc/tls/key", "key-value", 0o440),
    ] {
        let m = spec
            .mounts
            .iter()
            .find(|m| m.target == target)
            .unwrap_or_else(|| panic!("no mount at {target}: {:?}", spec.mounts));
        assert!(m.read_only, "{target} is mounted read-only");
        let MountSource::Bind(src) = &m.source else {
            panic!("{target}: not a bind mount: {m:?}");
        };
        assert!(src.starts_with(&dir), "{}", src.display());
        assert_eq!(std::fs::read_to_string(src).unwrap(), want);
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(src).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{target}");
        if nix_root() {
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{target}");
        }
        files.push(src.clone());
    }
    // The other task names none and mounts none.
    let side = v.instances[0].tasks["side"].container_id.clone().unwrap();
    assert!(fake.spec(&side).unwrap().mounts.is_empty());

    // Only the worker running it is given the values.
    let e = m
        .secrets()
        .for_instance(&WorkerId::new("w1"), inst.as_str())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Forbidden, "not_your_instance")
    );
    assert!(!e.message.contains("first-value"));
    let e = m
        .secrets()
        .for_instance(&WorkerId::new("w0"), "app-0-999")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Forbidden);
    let given = m
        .secrets()
        .for_instance(&WorkerId::new("w0"), inst.as_str())
        .await
        .unwrap();
    assert_eq!(given.tasks["main"].len(), 2);
    assert!(
        !format!("{given:?}").contains("Zmlyc3QtdmFsdWU"),
        "Debug hides values"
    );
    // Nothing of the value in the job view or the events.
    let text = serde_json::to_string(&link.get_job(&JobId::new("app")).await.unwrap()).unwrap();
    assert!(!text.contains("first-value"));

    // An update reaches the running job by a rollout.
    m.secrets()
        .update("db-password", value("second-value"))
        .await
        .unwrap();
    let v = common::wait_for(&link, "app", "version 2 running alone", |v| {
        v.version == 2
            && running(v, 2)
            && v.instances
                .iter()
                .filter(|i| i.version == 1)
                .all(|i| i.tasks.values().all(|t| t.state.is_terminal()))
    })
    .await;
    let new = v.instances.iter().find(|i| i.version == 2).unwrap();
    let container = new.tasks["main"].container_id.clone().unwrap();
    let spec = fake.spec(&container).unwrap();
    let m2 = spec
        .mounts
        .iter()
        .find(|m| m.target == "/run/secrets/db-password")
        .unwrap();
    let MountSource::Bind(src) = &m2.source else {
        panic!("not a bind mount");
    };
    assert_eq!(std::fs::read_to_string(src).unwrap(), "second-value");
    // The old instance's files are wiped once its containers are gone.
    for _ in 0..600 {
        if files.iter().all(|f| !f.exists()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        files.iter().all(|f| !f.exists()),
        "old secrets wiped: {files:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the test runs as root (only root can hand files to another user).
fn nix_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
