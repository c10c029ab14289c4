//! Host volumes: directories of the worker's host that its operator offers to jobs by name
//! (`worker --host-volume NAME=/path[:ro]`). A job asks for one by name, never by path; a mount
//! may take a `subpath` below it, which the worker joins and checks so that it never leaves the
//! offered directory (not by `..`, not through a symbolic link).

use std::path::{Component, Path, PathBuf};

use crate::api::HostVolumeOffer;
use crate::error::{Error, Result, RuntimeErrorKind};

/// The longest host volume name, in bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// One offered directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    /// The directory (absolute, resolved when offered).
    pub path: PathBuf,
    /// Whether it is offered read-only.
    pub read_only: bool,
}

impl HostVolume {
    /// What the manager and the schedulers are told of it: not its path.
    pub fn offer(&self) -> HostVolumeOffer {
        HostVolumeOffer {
            read_only: self.read_only,
        }
    }
}

/// Whether `name` may name a host volume: lowercase letters, digits, `-`, `_` and `.`, starting
/// with a letter or digit, at most [`MAX_NAME_BYTES`].
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_BYTES
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

/// Reads an offer as the command line writes it: `NAME=/path` or `NAME=/path:ro`. The directory
/// must exist; it is resolved (symbolic links followed) once, here.
pub fn parse_offer(text: &str) -> std::result::Result<(String, HostVolume), String> {
    let Some((name, rest)) = text.split_once('=') else {
        return Err(format!(
            "{text:?} is not NAME=/path or NAME=/path:ro (e.g. applogs=/var/log/apps:ro)"
        ));
    };
    if !valid_name(name) {
        return Err(format!(
            "{name:?} is not a host volume name: lowercase letters, digits, '-', '_' and '.', starting with a letter or digit, at most {MAX_NAME_BYTES} bytes"
        ));
    }
    let (path, read_only) = match rest.strip_suffix(":ro") {
        Some(p) => (p, true),
        None => (rest.strip_suffix(":rw").unwrap_or(rest), false),
    };
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(format!(
            "host volume {name}: {} is not an absolute path",
            path.display()
        ));
    }
    let resolved = path
        .canonicalize()
        .map_err(|e| format!("host volume {name}: {}: {e}", path.display()))?;
    if !resolved.is_dir() {
        return Err(format!(
            "host volume {name}: {} is not a directory",
            resolved.display()
        ));
    }
    if resolved == Path::new("/") {
        return Err(format!(
            "host volume {name}: the host's root directory cannot be offered"
        ));
    }
    Ok((
        name.to_owned(),
        HostVolume {
            path: resolved,
            read_only,
        },
    ))
}

/// The directory a mount of `volume` with `subpath` (relative, possibly empty) binds: made if
/// missing (unless the volume is read-only), and refused if it would leave the offered
/// directory, by `..`, an absolute path, or a symbolic link pointing out.
pub fn resolve(volume: &HostVolume, name: &str, subpath: Option<&str>) -> Result<PathBuf> {
    let refuse = |why: String| {
        Error::runtime(
            RuntimeErrorKind::Rejected,
            format!("host volume {name}: {why}"),
        )
    };
    let Some(sub) = subpath.filter(|s| !s.is_empty()) else {
        return Ok(volume.path.clone());
    };
    let rel = Path::new(sub);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(refuse(format!(
            "subpath {sub:?} must stay below the offered directory (a relative path without ..)"
        )));
    }
    let joined = volume.path.join(rel);
    if !joined.exists() && !volume.read_only {
        std::fs::create_dir_all(&joined)
            .map_err(|e| refuse(format!("cannot make subpath {sub:?}: {e}")))?;
    }
    let resolved = joined
        .canonicalize()
        .map_err(|e| refuse(format!("subpath {sub:?}: {e}")))?;
    if !resolved.starts_with(&volume.path) {
        return Err(refuse(format!(
            "subpath {sub:?} leads out of the offered directory"
        )));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_read_from_the_command_line_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let (name, v) = parse_offer(&format!("applogs={}:ro", base.display())).unwrap();
        assert_eq!((name.as_str(), v.read_only), ("applogs", true));
        assert_eq!(v.path, base);
        let (_, v) = parse_offer(&format!("data={}", base.display())).unwrap();
        assert!(!v.read_only);
        for bad in [
            "applogs".to_owned(),
            format!("Bad={}", base.display()),
            "x=relative/dir".to_owned(),
            "x=/no/such/dir".to_owned(),
            "x=/".to_owned(),
            format!("x={}", base.join("file").display()),
        ] {
            std::fs::write(base.join("file"), "").unwrap();
            assert!(parse_offer(&bad).is_err(), "{bad}");
        }
        assert!(!valid_name(&"a".repeat(MAX_NAME_BYTES + 1)));
        assert!(valid_name("app-logs_1.2"));
    }

    #[test]
    fn a_subpath_stays_below_the_offered_directory() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("offered");
        std::fs::create_dir(&base).unwrap();
        let v = HostVolume {
            path: base.canonicalize().unwrap(),
            read_only: false,
        };
        assert_eq!(resolve(&v, "logs", None).unwrap(), v.path);
        let db = resolve(&v, "logs", Some("db/2")).unwrap();
        assert_eq!(db, v.path.join("db/2"));
        assert!(db.is_dir(), "made");
        for bad in ["../x", "/etc", "db/../../x"] {
            let e = resolve(&v, "logs", Some(bad)).unwrap_err();
            assert!(
                e.to_string().contains("below the offered directory"),
                "{bad}: {e}"
            );
        }
        // A symbolic link that points out is followed, and refused.
        std::os::unix::fs::symlink(dir.path(), v.path.join("out")).unwrap();
        let e = resolve(&v, "logs", Some("out")).unwrap_err();
        assert!(e.to_string().contains("leads out"), "{e}");
        // A read-only offer makes nothing.
        let ro = HostVolume {
            read_only: true,
            ..v.clone()
        };
        assert!(resolve(&ro, "logs", Some("missing")).is_err());
        assert!(!v.path.join("missing").exists());
    }
}
