//! A task's config files (`files:` in the job): written under the worker's own data directory,
//! one directory per instance and task, and bind-mounted read-only into the container. The job
//! file gives the content, never a host path; the worker chooses where it lives.
//!
//! They stay on disk while the instance has containers (a worker killed and restarted adopts
//! containers that still mount them) and go with the instance's network once its last container
//! is gone.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::api::Assignment;
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::runtime::Mount;
use crate::spec::Task;

/// Writes `task`'s files for instance `a` under `dir` and returns the mounts that put them in
/// place. Each file is written anew (to a temporary name, then renamed), with its mode, and
/// owned by the task's user when that is numeric (`1000` or `1000:1000`; a user name means
/// nothing outside the image, so such files stay the worker's, readable by their mode).
pub(crate) fn write(dir: Option<&Path>, a: &Assignment, task: &Task) -> Result<Vec<Mount>> {
    if task.files.is_empty() {
        return Ok(Vec::new());
    }
    let Some(dir) = dir else {
        return Err(refused(format!(
            "task {} has config files, and this worker has no data directory to keep them in",
            task.name
        )));
    };
    let here = dir.join(a.instance.as_str()).join(task.name.as_str());
    std::fs::create_dir_all(&here)
        .map_err(|e| refused(format!("cannot make {}: {e}", here.display())))?;
    let owner = numeric_owner(task.user.as_deref());
    let mut mounts = Vec::with_capacity(task.files.len());
    for (i, f) in task.files.iter().enumerate() {
        let path = here.join(i.to_string());
        write_one(&path, &f.content, f.mode, owner)
            .map_err(|e| refused(format!("cannot write config file {}: {e}", f.path)))?;
        mounts.push(Mount::bind(path, f.path.clone(), true));
    }
    Ok(mounts)
}

/// Writes `content` to `path` whole or not at all (through a file beside it, renamed), with
/// `mode` and `owner`. The new file is the worker's alone (0600) until it holds all of it.
pub(super) fn write_one(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, Option<u32>)>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&tmp, Some(uid), gid)?;
    }
    std::fs::rename(&tmp, path)
}

/// The user and group ids of a numeric `user` (`1000`, `1000:1000`).
pub(crate) fn numeric_owner(user: Option<&str>) -> Option<(u32, Option<u32>)> {
    let user = user?;
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse().ok()?;
    Some((uid, g.and_then(|g| g.parse().ok())))
}

fn refused(message: String) -> Error {
    Error::runtime(RuntimeErrorKind::Rejected, message)
}

/// The instances with files under `dir`.
pub(crate) fn instances(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Removes the files of `instance` under `dir` (its directory, which only the worker writes).
pub(crate) fn remove_instance(dir: &Path, instance: &str) {
    let path: PathBuf = dir.join(instance);
    if let Err(e) = std::fs::remove_dir_all(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %path.display(), error = %e, "cannot remove config files");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Desired;
    use crate::ids::InstanceId;
    use crate::spec::{ConfigFile, Format, parse_job};

    #[test]
    fn files_are_written_with_their_mode_and_mounted_read_only() {
        let dir = std::env::temp_dir().join(format!("ork-files-{}", std::process::id()));
        let mut job = parse_job("name: j\ntasks: [{name: t, image: img:1}]", Format::Yaml).unwrap();
        job.tasks[0].files = vec![
            ConfigFile {
                path: "/etc/app/app.conf".into(),
                content: b"port = 80\n".to_vec(),
                mode: 0o640,
            },
            ConfigFile {
                path: "/bin/blob".into(),
                content: vec![0, 159, 146, 150],
                mode: ConfigFile::DEFAULT_MODE,
            },
        ];
        let a = Assignment {
            instance: InstanceId::new("i1"),
            index: 0,
            desired: Desired::Run,
            job: std::sync::Arc::new(job.clone()),
            ended: vec![],
            version: 1,
        };
        let mounts = write(Some(&dir), &a, &job.tasks[0]).unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].target, "/etc/app/app.conf");
        let sources: Vec<&std::path::Path> = mounts
            .iter()
            .map(|m| match &m.source {
                crate::runtime::MountSource::Bind(path) if m.read_only => path.as_path(),
                other => panic!("not a read-only bind mount: {other:?}"),
            })
            .collect();
        assert!(sources.iter().all(|p| p.starts_with(&dir)));
        assert_eq!(std::fs::read(sources[0]).unwrap(), b"port = 80\n");
        assert_eq!(std::fs::read(sources[1]).unwrap(), [0, 159, 146, 150]);
        let mode = std::fs::metadata(sources[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        // Written again (a restart): the same place, the same bytes.
        assert_eq!(write(Some(&dir), &a, &job.tasks[0]).unwrap(), mounts);
        assert_eq!(instances(&dir), ["i1"]);
        remove_instance(&dir, "i1");
        assert!(instances(&dir).is_empty());
        assert!(
            write(None, &a, &job.tasks[0])
                .unwrap_err()
                .to_string()
                .contains("no data directory")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_numeric_users_own_their_files() {
        assert_eq!(numeric_owner(Some("1000")), Some((1000, None)));
        assert_eq!(numeric_owner(Some("1000:2000")), Some((1000, Some(2000))));
        assert_eq!(numeric_owner(Some("app")), None);
        assert_eq!(numeric_owner(None), None);
    }
}
