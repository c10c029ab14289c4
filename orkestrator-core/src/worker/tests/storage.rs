//! A task's mounts through the whole agent on the fake runtime: a named volume per job, index
//! and name (made once, kept when the container goes), a tmpfs counted in the memory limit, and
//! the host volumes this worker offers (and the ones it does not, or only read-only).

use super::*;
use crate::runtime::{Mount, MountSource};
use crate::worker::host_volumes::HostVolume;

const JOB: &str = "name: db
volumes:
  data: { type: volume, size: 1Gi }
  cache: { type: tmpfs, size: 64Mi }
  logs: { type: host, source: applogs, read_only: true }
tasks:
  - name: db
    image: img:1
    user: '1000:1000'
    resources: { memory: 128Mi }
    mounts:
      - { volume: data, path: /var/lib/db }
      - { volume: cache, path: /cache }
      - { volume: logs, path: /logs, subpath: db }
";

fn storage_assignment(text: &str, index: u32) -> Assignment {
    let job = parse_job(text, Format::Yaml).unwrap();
    Assignment {
        instance: InstanceId::new(format!("db-{index}-0")),
        index,
        desired: Desired::Run,
        job: Arc::new(job),
        ended: vec![],
        version: 1,
    }
}

fn start_with(
    rt: &FakeRuntime,
    offers: &[(&str, &std::path::Path, bool)],
) -> (Arc<Scripted>, tokio::task::JoinHandle<Result<()>>) {
    let transport = Arc::new(Scripted::default());
    let mut config = WorkerConfig::new("w1");
    config.stop_grace = Duration::from_secs(1);
    config.host_volumes = offers
        .iter()
        .map(|(name, path, read_only)| {
            (
                (*name).to_owned(),
                HostVolume {
                    path: path.to_path_buf(),
                    read_only: *read_only,
                },
            )
        })
        .collect();
    let agent = WorkerAgent::new(
        config,
        transport.clone(),
        Arc::new(rt.clone()),
        Arc::new(StaticProbe(Resources::ZERO)),
    );
    (transport, tokio::spawn(agent.run(std::future::pending())))
}

#[tokio::test(start_paused = true)]
async fn a_task_gets_its_volume_tmpfs_and_host_volume_and_the_volume_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let offered = dir.path().canonicalize().unwrap();
    // A read-only offer makes nothing: db's directory is there already.
    std::fs::create_dir(offered.join("db")).unwrap();
    let rt = FakeRuntime::new();
    let (transport, run) = start_with(&rt, &[("applogs", &offered, true)]);
    transport.push(answer(1, true, vec![storage_assignment(JOB, 2)], &[]));
    wait_until("db runs", || running(&rt).len() == 1).await;
    let id = running(&rt).into_values().next().unwrap();
    let spec = rt.spec(&id).unwrap();
    assert_eq!(
        spec.mounts,
        [
            Mount {
                source: MountSource::Volume("ork-w1-db-2-data".into()),
                target: "/var/lib/db".into(),
                read_only: false,
            },
            Mount {
                source: MountSource::Tmpfs {
                    size_bytes: 64 << 20,
                    mode: Some(0o1777),
                },
                target: "/cache".into(),
                read_only: false,
            },
            Mount::bind(offered.join("db"), "/logs", true),
        ]
    );
    assert_eq!(
        spec.resources.memory.bytes(),
        (128 + 64) << 20,
        "the tmpfs counts in the memory limit"
    );
    let volumes = rt.volumes();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].label(labels::WORKER), Some("w1"));
    assert_eq!(volumes[0].label(labels::JOB), Some("db"));

    // The instance stops and its container goes; its volume stays.
    transport.push(answer(
        2,
        false,
        vec![Assignment {
            desired: Desired::Stop,
            ..storage_assignment(JOB, 2)
        }],
        &[],
    ));
    wait_until("the container removed", || rt.containers().is_empty()).await;
    assert_eq!(
        rt.volumes().len(),
        1,
        "a worker never removes a volume on its own"
    );
    run.abort();
}

/// The reason of the newest report about `task`, if any.
fn reason_of(transport: &Scripted, task: &str) -> Option<String> {
    transport
        .reports
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|u| u.task.as_str() == task && u.reason.is_some())
        .and_then(|u| u.reason.clone())
}

#[tokio::test(start_paused = true)]
async fn a_host_volume_not_offered_or_offered_read_only_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let offered = dir.path().canonicalize().unwrap();
    let job = "name: db
volumes:
  logs: { type: host, source: applogs }
tasks:
  - name: db
    image: img:1
    restart: { policy: never }
    mounts: [{ volume: logs, path: /logs }]
";
    for (offers, says) in [
        (vec![], "host volume applogs is not offered by this worker"),
        (
            vec![("applogs", offered.as_path(), true)],
            "host volume applogs is offered read-only here",
        ),
    ] {
        let rt = FakeRuntime::new();
        let (transport, run) = start_with(&rt, &offers);
        transport.push(answer(1, true, vec![storage_assignment(job, 0)], &[]));
        wait_until("the refusal reported", || {
            reason_of(&transport, "db").is_some_and(|r| r.contains(says))
        })
        .await;
        assert_eq!(rt.starts(), 0);
        run.abort();
    }
}
