//! The named volumes of instances: one per job, instance index and volume name (so that the
//! instance of that index finds its data again, whichever version runs), labelled as the
//! worker's containers are, and made writable by the task's user when new. A worker never
//! removes one on its own judgement.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::WorkerConfig;
use super::files::numeric_owner;
use super::host_volumes::{self, HostVolume};
use crate::api::{Assignment, Desired, VolumeRef};
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::ids::InstanceId;
use crate::ids::WorkerId;
use crate::runtime::{
    ContainerInfo, ContainerState, Mount, MountSource, Runtime, VolumeInfo, VolumeSpec, labels,
};
use crate::spec::{Task, VolumeKind};

/// The permission bits of a tmpfs's root: any user of the container may write to it (it is the
/// container's own, and gone with it).
const TMPFS_MODE: u32 = 0o1777;

/// What `task`'s `mounts:` put in its container: named volumes (made if new), tmpfs, and the
/// host volumes this worker offers, each read-only if the volume, the mount or the offer says so.
pub(crate) async fn mounts<R: Runtime + ?Sized>(
    rt: &R,
    config: &WorkerConfig,
    a: &Assignment,
    task: &Task,
) -> Result<Vec<Mount>> {
    let refuse = |why: String| Error::runtime(RuntimeErrorKind::Rejected, why);
    let mut out = Vec::with_capacity(task.mounts.len());
    for m in &task.mounts {
        let Some(v) = a.job.volume(&m.volume) else {
            return Err(refuse(format!(
                "task {} mounts volume {}, which the job does not declare",
                task.name, m.volume
            )));
        };
        let read_only = m.read_only || v.read_only;
        let source = match &v.kind {
            VolumeKind::Volume { .. } => {
                let made = ensure(
                    rt,
                    &config.id,
                    a.job.name.as_str(),
                    a.index,
                    &m.volume,
                    numeric_owner(task.user.as_deref()),
                )
                .await?;
                match m.subpath.as_deref() {
                    None => MountSource::Volume(made.name),
                    // The engine (API 1.41) mounts no part of a volume: bind the directory
                    // below its data, which must be on this host.
                    Some(sub) => {
                        let Some(root) = made.mountpoint.filter(|p| p.is_dir()) else {
                            return Err(refuse(format!(
                                "volume {} of task {}: a subpath needs the engine's data on this worker's host",
                                m.volume, task.name
                            )));
                        };
                        let base = HostVolume {
                            path: root,
                            read_only,
                        };
                        MountSource::Bind(host_volumes::resolve(&base, &m.volume, Some(sub))?)
                    }
                }
            }
            VolumeKind::Tmpfs { size } => MountSource::Tmpfs {
                size_bytes: size.bytes(),
                mode: Some(TMPFS_MODE),
            },
            VolumeKind::Host { source } => {
                let Some(offer) = config.host_volumes.get(source) else {
                    return Err(refuse(format!(
                        "host volume {source} is not offered by this worker (start it with --host-volume {source}=/path)"
                    )));
                };
                if offer.read_only && !read_only {
                    return Err(refuse(format!(
                        "host volume {source} is offered read-only here, and task {} mounts it read-write",
                        task.name
                    )));
                }
                MountSource::Bind(host_volumes::resolve(offer, source, m.subpath.as_deref())?)
            }
        };
        out.push(Mount {
            source,
            target: m.path.clone(),
            read_only,
        });
    }
    Ok(out)
}

/// Label of a volume: its name in the job.
pub const VOLUME_LABEL: &str = "orkestrator.volume";
/// Label of a volume: the index of the instance it belongs to.
pub const INDEX_LABEL: &str = "orkestrator.index";

pub use crate::api::volume_name;

/// Makes sure the volume exists, made by `worker` if new. A new one's root is handed to
/// `owner` (a numeric `uid[:gid]`) when the engine's data is on this host, so that a task
/// that does not run as root can write to it; an existing one is left as it is.
pub(crate) async fn ensure<R: Runtime + ?Sized>(
    rt: &R,
    worker: &WorkerId,
    job: &str,
    index: u32,
    volume: &str,
    owner: Option<(u32, Option<u32>)>,
) -> Result<VolumeInfo> {
    let name = volume_name(worker.as_str(), job, index, volume);
    let index_text = index.to_string();
    let found = rt
        .list_volumes(&[
            (labels::WORKER, worker.as_str()),
            (labels::JOB, job),
            (INDEX_LABEL, &index_text),
            (VOLUME_LABEL, volume),
        ])
        .await?;
    if let Some(v) = found.into_iter().find(|v| v.name == name) {
        return Ok(v);
    }
    let spec = VolumeSpec {
        name,
        labels: BTreeMap::from([
            (labels::WORKER.to_owned(), worker.as_str().to_owned()),
            (labels::JOB.to_owned(), job.to_owned()),
            (INDEX_LABEL.to_owned(), index_text),
            (VOLUME_LABEL.to_owned(), volume.to_owned()),
        ]),
    };
    let made = rt.create_volume(&spec).await?;
    // The engine answers a create of a name it has with that volume: never share another's.
    let ours = [labels::WORKER, labels::JOB, INDEX_LABEL, VOLUME_LABEL]
        .iter()
        .all(|k| made.labels.get(*k) == spec.labels.get(*k));
    if !ours {
        return Err(Error::runtime(
            RuntimeErrorKind::Rejected,
            format!(
                "volume {} exists on the engine and is not volume {volume} of instance {index} of job {job}: remove or rename it",
                spec.name
            ),
        ));
    }
    if let (Some((uid, gid)), Some(root)) = (owner, made.mountpoint.as_deref()) {
        hand_over(root, uid, gid);
    }
    Ok(made)
}

/// The instances held to run that wait before their first container: another instance of the
/// same job and index (the one it replaces: a version rolled out, or an instance lost while this
/// worker was cut off) still has a container here that has not exited, and the job has named
/// volumes. Never two instances on one volume: the new one starts once the old one's containers
/// are gone or exited.
pub(crate) fn waiting_for_predecessor(
    held: &BTreeMap<InstanceId, Assignment>,
    listed: &[ContainerInfo],
) -> Vec<InstanceId> {
    // An instance id is `JOB-INDEX-NUMBER`.
    let index_of = |id: &str| id.rsplit('-').nth(1).and_then(|i| i.parse::<u32>().ok());
    held.values()
        .filter(|a| a.desired == Desired::Run && a.job.named_volumes().next().is_some())
        .filter(|a| {
            let mine = |c: &&ContainerInfo| c.label(labels::INSTANCE) == Some(a.instance.as_str());
            if listed.iter().any(|c| mine(&c)) {
                return false;
            }
            listed.iter().any(|c| {
                c.label(labels::JOB) == Some(a.job.name.as_str())
                    && !matches!(c.state, ContainerState::Exited { .. })
                    && c.label(labels::INSTANCE)
                        .is_some_and(|i| i != a.instance.as_str() && index_of(i) == Some(a.index))
            })
        })
        .map(|a| a.instance.clone())
        .collect()
}

/// Removes the volumes the manager told `worker` to remove: each only if it is this worker's
/// (by name and labels); one that is not there counts as removed. Answers those that are gone;
/// one the engine keeps (a container still uses it) is left for the next try.
pub(crate) async fn remove_told<R: Runtime + ?Sized>(
    rt: &R,
    worker: &WorkerId,
    told: &[VolumeRef],
) -> Vec<VolumeRef> {
    let mut done = Vec::with_capacity(told.len());
    for v in told {
        let name = v.docker_name(worker);
        let index = v.index.to_string();
        let found = match rt
            .list_volumes(&[
                (labels::WORKER, worker.as_str()),
                (labels::JOB, v.job.as_str()),
                (INDEX_LABEL, &index),
                (VOLUME_LABEL, &v.volume),
            ])
            .await
        {
            Ok(found) => found.into_iter().any(|f| f.name == name),
            Err(e) => {
                tracing::warn!(%worker, volume = %name, error = %e, "cannot list volumes; removal tried again later");
                continue;
            }
        };
        if !found {
            done.push(v.clone());
            continue;
        }
        match rt.remove_volume(&name).await {
            Ok(()) => {
                tracing::info!(%worker, volume = %name, "volume removed, as the manager told");
                done.push(v.clone());
            }
            Err(e) => {
                tracing::warn!(%worker, volume = %name, error = %e, "cannot remove volume yet; tried again later")
            }
        }
    }
    done
}

/// Hands a new volume's root to `uid:gid`, if it is here and still root's and empty.
fn hand_over(root: &Path, uid: u32, gid: Option<u32>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(root) else {
        tracing::debug!(root = %root.display(), "a new volume's data is not on this host; its owner stays the engine's");
        return;
    };
    let empty = std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none());
    if meta.uid() != 0 || !empty {
        return;
    }
    if let Err(e) = std::os::unix::fs::chown(root, Some(uid), gid) {
        tracing::warn!(root = %root.display(), error = %e, "cannot hand a new volume to its task's user");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRuntime;

    #[test]
    fn names_are_per_worker_job_index_and_volume() {
        assert_eq!(volume_name("w1", "shop", 2, "data"), "ork-w1-shop-2-data");
        assert_ne!(
            volume_name("w1", "shop", 1, "data"),
            volume_name("w1", "shop", 2, "data")
        );
        assert_ne!(
            volume_name("w1", "shop", 1, "data"),
            volume_name("w2", "shop", 1, "data")
        );
    }

    #[tokio::test]
    async fn a_volume_is_made_once_per_worker_and_found_again() {
        let rt = FakeRuntime::new();
        let w1 = WorkerId::new("w1");
        let v = ensure(&rt, &w1, "shop", 0, "data", None).await.unwrap();
        assert_eq!(v.name, "ork-w1-shop-0-data");
        assert_eq!(v.label(labels::WORKER), Some("w1"));
        assert_eq!(v.label(INDEX_LABEL), Some("0"));
        let again = ensure(&rt, &w1, "shop", 0, "data", None).await.unwrap();
        assert_eq!(again, v, "found again, never made twice");
        // Another worker on the same engine has its own copy.
        let other = ensure(&rt, &WorkerId::new("w2"), "shop", 0, "data", None)
            .await
            .unwrap();
        assert_ne!(other.name, v.name);
        ensure(&rt, &w1, "shop", 1, "data", None).await.unwrap();
        assert_eq!(rt.volumes().len(), 3);
        // A volume of that name made by someone else is not taken over.
        rt.create_volume(&VolumeSpec {
            name: volume_name("w1", "other", 0, "data"),
            labels: BTreeMap::new(),
        })
        .await
        .unwrap();
        let e = ensure(&rt, &w1, "other", 0, "data", None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exists on the engine"), "{e}");
    }

    #[test]
    fn a_replacement_waits_while_its_predecessor_runs_on_the_same_volumes() {
        use std::sync::Arc;
        let job = |volumes: &str| {
            Arc::new(
                crate::spec::parse_job(
                    &format!("name: db\n{volumes}tasks: [{{ name: t, image: x:1 }}]\n"),
                    crate::spec::Format::Yaml,
                )
                .unwrap(),
            )
        };
        let named = job("volumes: { data: { type: volume } }\n");
        let assignment = |id: &str, index: u32, job: &Arc<crate::spec::Job>| Assignment {
            instance: InstanceId::new(id),
            index,
            desired: Desired::Run,
            job: job.clone(),
            ended: vec![],
            version: 1,
        };
        let container = |instance: &str, state: ContainerState| ContainerInfo {
            id: format!("c-{instance}"),
            name: instance.to_owned(),
            labels: BTreeMap::from([
                (labels::JOB.to_owned(), "db".to_owned()),
                (labels::INSTANCE.to_owned(), instance.to_owned()),
            ]),
            state,
            health: None,
        };
        let held = |job: &Arc<crate::spec::Job>| {
            BTreeMap::from([
                (InstanceId::new("db-0-7"), assignment("db-0-7", 0, job)),
                (InstanceId::new("db-1-8"), assignment("db-1-8", 1, job)),
            ])
        };
        let old = [container("db-0-3", ContainerState::Running)];
        assert_eq!(
            waiting_for_predecessor(&held(&named), &old),
            [InstanceId::new("db-0-7")],
            "index 0 waits for db-0-3; index 1 has none"
        );
        let exited = [container(
            "db-0-3",
            ContainerState::Exited {
                code: 0,
                reason: None,
            },
        )];
        assert!(waiting_for_predecessor(&held(&named), &exited).is_empty());
        let both = [
            container("db-0-3", ContainerState::Running),
            container("db-0-7", ContainerState::Running),
        ];
        assert!(
            waiting_for_predecessor(&held(&named), &both).is_empty(),
            "already started: not held back"
        );
        assert!(
            waiting_for_predecessor(&held(&job("")), &old).is_empty(),
            "no named volume: nothing shared"
        );
    }

    #[test]
    fn a_new_empty_root_owned_volume_is_handed_to_the_user_and_nothing_else() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("_data");
        std::fs::create_dir(&root).unwrap();
        let is_root = std::fs::metadata(&root).unwrap().uid() == 0;
        hand_over(&root, 1000, Some(1000));
        let meta = std::fs::metadata(&root).unwrap();
        if is_root {
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
        }
        // Not empty, or not root's: left alone.
        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("f"), "x").unwrap();
        let before = std::fs::metadata(&full).unwrap().uid();
        hand_over(&full, 1000, Some(1000));
        assert_eq!(std::fs::metadata(&full).unwrap().uid(), before);
        hand_over(&dir.path().join("missing"), 1000, None);
    }
}
