//! A task's secrets (`secrets:` in the job): fetched from the manager when an instance that
//! names some starts here, written on a tmpfs of the worker's own (`worker --secrets-dir`,
//! default `/dev/shm/orkestrator/WORKER`), one directory per instance and task, each file with
//! the task's mode and owned by the task's numeric user, and bind-mounted read-only into the
//! container at its path. Values never touch a disk: a secrets directory that is not on a
//! tmpfs is refused.
//!
//! The files stay while the instance has containers (a worker killed and restarted adopts
//! containers that still mount them) and are wiped with the instance's network and config
//! files once its last container is gone.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

use super::files::{numeric_owner, write_one};
use crate::api::Assignment;
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::runtime::Mount;
use crate::secrets::InstanceSecrets;
use crate::spec::Task;

/// The default directory of a worker's secrets: `/dev/shm/orkestrator/WORKER`.
pub fn default_dir(worker: &str) -> PathBuf {
    Path::new("/dev/shm/orkestrator").join(worker)
}

/// Where the files of `task` of instance `a` are.
fn task_dir(dir: &Path, a: &Assignment, task: &Task) -> PathBuf {
    dir.join(a.instance.as_str()).join(task.name.as_str())
}

/// The mounts of `task`'s secrets if their files are already written (a container restarted,
/// or adopted after a worker restart, or a second start): `None` if any is missing.
pub(crate) fn written(dir: Option<&Path>, a: &Assignment, task: &Task) -> Option<Vec<Mount>> {
    let here = task_dir(dir?, a, task);
    let mounts: Vec<Mount> = task
        .secrets
        .iter()
        .enumerate()
        .map(|(j, r)| Mount::bind(here.join(j.to_string()), r.path.clone(), true))
        .collect();
    let all = task.secrets.iter().enumerate().all(|(j, _)| {
        std::fs::symlink_metadata(here.join(j.to_string())).is_ok_and(|m| m.is_file())
    });
    all.then_some(mounts)
}

/// Writes `task`'s secrets from `delivered` (what the manager answered for the instance) under
/// `dir`, and returns the mounts that put them in place. Refused if the worker has no secrets
/// directory, if it is not on a tmpfs, or if the answer lacks one of the task's secrets.
pub(crate) fn write(
    dir: Option<&Path>,
    a: &Assignment,
    task: &Task,
    delivered: &InstanceSecrets,
) -> Result<Vec<Mount>> {
    let Some(dir) = dir else {
        return Err(refused(format!(
            "task {} names secrets, and this worker has no secrets directory (start it with --secrets-dir on a tmpfs)",
            task.name
        )));
    };
    let here = task_dir(dir, a, task);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&here)
        .map_err(|e| refused(format!("cannot make {}: {e}", here.display())))?;
    if let Err(why) = owned_by_me(dir) {
        return Err(refused(format!(
            "the secrets directory {} {why}: secret values go only in a directory of the worker's own",
            dir.display()
        )));
    }
    if !on_tmpfs(dir) {
        return Err(refused(format!(
            "the secrets directory {} is not on a tmpfs: secret values are never written to disk (start the worker with --secrets-dir on a tmpfs, e.g. under /dev/shm)",
            dir.display()
        )));
    }
    let given = delivered
        .tasks
        .get(task.name.as_str())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let owner = numeric_owner(task.user.as_deref());
    let mut mounts = Vec::with_capacity(task.secrets.len());
    for (j, r) in task.secrets.iter().enumerate() {
        let Some(d) = given.iter().find(|d| d.name == r.name) else {
            return Err(refused(format!(
                "the manager gave no value for secret {} of task {}",
                r.name, task.name
            )));
        };
        let value = d.value().map_err(Error::Api)?;
        let path = here.join(j.to_string());
        write_one(&path, value.as_bytes(), r.mode, owner).map_err(|e| {
            refused(format!(
                "cannot write secret {} of task {}: {e}",
                r.name, task.name
            ))
        })?;
        mounts.push(Mount::bind(path, r.path.clone(), true));
    }
    Ok(mounts)
}

/// Whether `dir` is a directory (not a link) of the worker's own user: `/dev/shm` is writable
/// by every user, who could make the directory first.
fn owned_by_me(dir: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_dir() {
        return Err("is not a directory".into());
    }
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot be checked (/proc/self: {e})"))?;
    if meta.uid() != me {
        return Err(format!(
            "belongs to user {}, not to the worker's ({me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Whether `dir` is on a tmpfs (memory, never a disk): the file system of the deepest mount
/// point above it in `/proc/self/mounts` is `tmpfs`.
pub(crate) fn on_tmpfs(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    mount_type(&mounts, &dir) == Some("tmpfs")
}

/// The file system type of the deepest mount point above `dir` in a mounts table.
fn mount_type<'a>(mounts: &'a str, dir: &Path) -> Option<&'a str> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let _device = words.next()?;
            // Spaces and other bytes in mount points are written as octal escapes.
            let point = words.next()?.replace("\\040", " ");
            let kind = words.next()?;
            Path::new(&point)
                .is_absolute()
                .then(|| (PathBuf::from(point), kind))
        })
        .filter(|(point, _)| dir.starts_with(point))
        // The last of the deepest: a later mount on the same point hides an earlier one.
        .fold(None::<(PathBuf, &str)>, |best, (point, kind)| match best {
            Some((ref b, _)) if b.components().count() > point.components().count() => best,
            _ => Some((point, kind)),
        })
        .map(|(_, kind)| kind)
}

fn refused(message: String) -> Error {
    Error::runtime(RuntimeErrorKind::Rejected, message)
}

/// The instances with secrets under `dir`.
pub(crate) fn instances(dir: &Path) -> Vec<String> {
    super::files::instances(dir)
}

/// Wipes the secrets of `instance` under `dir`: each file is overwritten with zeros, then the
/// instance's directory is removed.
pub(crate) fn remove_instance(dir: &Path, instance: &str) {
    let path = dir.join(instance);
    for task in std::fs::read_dir(&path).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(task.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = f.path();
            if let Ok(meta) = std::fs::symlink_metadata(&p)
                && meta.is_file()
                && let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(&p)
            {
                let mut zeros = vec![0u8; meta.len() as usize];
                let _ = file.write_all(&zeros);
                zeros.zeroize();
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %path.display(), error = %e, "cannot remove an instance's secrets");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Desired;
    use crate::ids::InstanceId;
    use crate::secrets::{DeliveredSecret, SecretValue, encode_value};
    use crate::spec::{Format, parse_job};
    use std::os::unix::fs::PermissionsExt;

    fn shm() -> Option<PathBuf> {
        let d = Path::new("/dev/shm");
        on_tmpfs(d).then(|| d.join(format!("ork-secrets-test-{}", std::process::id())))
    }

    #[test]
    fn the_deepest_mount_tells_the_file_system() {
        let table = "/dev/sda1 / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n/dev/sdb /dev/shm/disk xfs rw 0 0\n";
        assert_eq!(
            mount_type(table, Path::new("/dev/shm/orkestrator/w1")),
            Some("tmpfs")
        );
        assert_eq!(mount_type(table, Path::new("/var/lib")), Some("ext4"));
        assert_eq!(mount_type(table, Path::new("/dev/shm/disk/x")), Some("xfs"));
        assert_eq!(mount_type(table, Path::new("/dev/shmx")), Some("ext4"));
    }

    #[test]
    fn secrets_are_written_on_a_tmpfs_with_their_mode_and_wiped() {
        let job = parse_job(
            "name: j\ntasks: [{name: t, image: img:1, secrets: [{name: a}, {name: b, path: /etc/b, mode: \"0440\"}]}]",
            Format::Yaml,
        )
        .unwrap();
        let a = Assignment {
            instance: InstanceId::new("j-0-1"),
            index: 0,
            desired: Desired::Run,
            job: std::sync::Arc::new(job.clone()),
            ended: vec![],
            version: 1,
        };
        let task = &job.tasks[0];
        let given = |name: &str, v: &[u8]| DeliveredSecret {
            name: name.into(),
            version: 1,
            value_base64: encode_value(&SecretValue::new(v.to_vec())),
        };
        let delivered = InstanceSecrets {
            instance: "j-0-1".into(),
            tasks: [(
                "t".to_owned(),
                vec![given("a", b"alpha"), given("b", b"beta")],
            )]
            .into(),
        };
        // Not a tmpfs: refused, nothing written.
        let disk = tempfile::tempdir().unwrap();
        if !on_tmpfs(disk.path()) {
            let e = write(Some(disk.path()), &a, task, &delivered).unwrap_err();
            assert!(e.to_string().contains("not on a tmpfs"), "{e}");
        }
        assert!(write(None, &a, task, &delivered).is_err());
        let Some(dir) = shm() else {
            return;
        };
        assert!(written(Some(&dir), &a, task).is_none());
        let mounts = write(Some(&dir), &a, task, &delivered).unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].target, "/run/secrets/a");
        assert_eq!(mounts[1].target, "/etc/b");
        assert!(mounts.iter().all(|m| m.read_only));
        assert_eq!(written(Some(&dir), &a, task), Some(mounts.clone()));
        let file = dir.join("j-0-1/t/1");
        assert_eq!(std::fs::read(&file).unwrap(), b"beta");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o440);
        // A value missing from the answer is refused.
        let partial = InstanceSecrets {
            instance: "j-0-1".into(),
            tasks: [("t".to_owned(), vec![given("a", b"alpha")])].into(),
        };
        assert!(write(Some(&dir), &a, task, &partial).is_err());
        assert_eq!(instances(&dir), ["j-0-1"]);
        // A directory others may write to is not the worker's own.
        let open = dir.with_extension("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = write(Some(&open), &a, task, &delivered).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        let _ = std::fs::remove_dir_all(&open);
        remove_instance(&dir, "j-0-1");
        assert!(instances(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
