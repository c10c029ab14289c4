//! The job's `volumes`, and each task's `mounts` and `secrets`, with the paths a task's files,
//! mounts and secrets take in its container.

use std::collections::BTreeMap;

use super::files::{normal_path, parse_mode};
use super::limits::{
    MAX_DISK, MAX_MOUNTS_PER_TASK, MAX_PATH_BYTES, MAX_SECRET_NAME_BYTES, MAX_SECRETS_PER_TASK,
    MAX_TMPFS, MAX_VOLUMES, Rules, over_limit,
};
use super::names::check_dns_label;
use super::scalars::scalar_size;
use super::task::flag;
use crate::spec::problems::{Problems, join};
use crate::spec::raw::{RawMount, RawSecret, RawVolume, closest};
use crate::spec::storage::{Mount, OnWorkerLoss, SecretRef, Volume, VolumeKind};
use crate::spec::together::ConfigFile;
use crate::units::{ByteSize, Scalar};

/// The kinds of volume, as files name them.
const KINDS: &[&str] = &["volume", "tmpfs", "host"];

/// How a worker's operator offers a host directory, for messages.
const OFFER: &str = "its operator offers one with `worker --host-volume NAME=/path`";

/// The volumes a job declares, by name, each with its kind where that is known (a volume of an
/// unknown type, or of the wrong shape, is still declared: its mounts are not "unknown").
pub(super) type Declared = BTreeMap<String, Option<&'static str>>;

/// Validates the job's `volumes`: the valid ones, and every name declared.
pub(super) fn validate_volumes(
    p: &mut Problems,
    raw: Option<Vec<(String, Option<RawVolume>)>>,
    rules: Rules,
) -> (BTreeMap<String, Volume>, Declared) {
    let raw = raw.unwrap_or_default();
    over_limit(p, rules, "volumes", raw.len(), MAX_VOLUMES, "volumes");
    let mut volumes = BTreeMap::new();
    let mut declared = Declared::new();
    for (name, rv) in raw {
        let here = if name.is_empty() || name.contains('\0') {
            "volumes".to_owned()
        } else {
            join("volumes", &name)
        };
        let name_ok = check_dns_label(p, &here, &name);
        let kind = rv
            .as_ref()
            .and_then(|rv| {
                KINDS
                    .iter()
                    .find(|k| **k == rv.kind.as_deref().unwrap_or("volume"))
            })
            .copied();
        declared.insert(name.clone(), kind);
        let Some(rv) = rv else { continue };
        if let Some(v) = validate_volume(p, &here, rv)
            && name_ok
        {
            volumes.insert(name, v);
        }
    }
    (volumes, declared)
}

/// Validates one volume at `here`.
fn validate_volume(p: &mut Problems, here: &str, rv: RawVolume) -> Option<Volume> {
    let before = p.len();
    let read_only = flag(
        p,
        &format!("{here}.read_only"),
        rv.read_only,
        "read_only: true to make every mount of the volume read-only",
    );
    let kind_text = rv.kind.unwrap_or_else(|| "volume".to_owned());
    let kind = match kind_text.as_str() {
        "volume" => {
            let size = rv.size.and_then(|s| {
                volume_size(
                    p,
                    &format!("{here}.size"),
                    s,
                    MAX_DISK,
                    "e.g. 1Gi, or leave size out to reserve nothing",
                )
            });
            let retain = flag(
                p,
                &format!("{here}.retain"),
                rv.retain,
                "retain: true to keep the volume when the job's garbage is collected",
            );
            let on_worker_loss = match rv.on_worker_loss.as_deref() {
                None | Some("wait") => OnWorkerLoss::Wait,
                Some("recreate") => OnWorkerLoss::Recreate,
                Some(other) => {
                    p.push(
                        format!("{here}.on_worker_loss"),
                        format!(
                            "{other:?} is not what to do when the volume's worker is down (use wait, the default, to wait for it, or recreate to start elsewhere with an empty volume)"
                        ),
                    );
                    OnWorkerLoss::Wait
                }
            };
            if let Some(source) = rv.source {
                not_for(
                    p,
                    here,
                    "source",
                    "volume",
                    &format!(
                        "only a type: host volume names a source, the name of a directory the worker offers: remove source, or write type: host with source: {}",
                        host_name_hint(&source)
                    ),
                );
            }
            Some(VolumeKind::Volume {
                size,
                retain,
                on_worker_loss,
            })
        }
        "tmpfs" => {
            let size = match rv.size {
                None => Some(Volume::DEFAULT_TMPFS_SIZE),
                Some(s) => volume_size(
                    p,
                    &format!("{here}.size"),
                    s,
                    MAX_TMPFS,
                    "e.g. 64Mi, the default",
                ),
            };
            if rv.source.is_some() {
                not_for(
                    p,
                    here,
                    "source",
                    "tmpfs",
                    "a tmpfs is made in memory for each container: remove source",
                );
            }
            if rv.retain.is_some() {
                not_for(
                    p,
                    here,
                    "retain",
                    "tmpfs",
                    "a tmpfs is gone with its container: remove retain, or use type: volume for data that stays",
                );
            }
            if rv.on_worker_loss.is_some() {
                not_for(
                    p,
                    here,
                    "on_worker_loss",
                    "tmpfs",
                    "only type: volume stays on one worker: remove on_worker_loss",
                );
            }
            size.map(|size| VolumeKind::Tmpfs { size })
        }
        "host" => {
            let fp = format!("{here}.source");
            let source = match rv.source {
                None => {
                    p.push(
                        &fp,
                        format!(
                            "is required for a host volume: the name of a host volume the worker offers ({OFFER})"
                        ),
                    );
                    None
                }
                Some(s) if looks_like_path(&s) => {
                    p.push(
                        &fp,
                        format!(
                            "{s:?} is a path, and a job file never names a host path: write the name of a host volume the worker offers, e.g. {} ({OFFER})",
                            host_name_hint(&s)
                        ),
                    );
                    None
                }
                Some(s) => check_dns_label(p, &fp, &s).then_some(s),
            };
            if rv.size.is_some() {
                not_for(
                    p,
                    here,
                    "size",
                    "host",
                    "a host volume is the directory the worker offers, whatever its size: remove size",
                );
            }
            if rv.retain.is_some() {
                not_for(
                    p,
                    here,
                    "retain",
                    "host",
                    "a host volume belongs to the worker's operator and is never removed: remove retain",
                );
            }
            if rv.on_worker_loss.is_some() {
                not_for(
                    p,
                    here,
                    "on_worker_loss",
                    "host",
                    "only type: volume stays on one worker: remove on_worker_loss",
                );
            }
            source.map(|source| VolumeKind::Host { source })
        }
        "bind" => {
            p.push(
                format!("{here}.type"),
                format!(
                    "bind is not a volume type: a job file never names a host path. Ask for a directory the worker offers by name instead, with type: host and source: NAME ({OFFER}); or use type: volume for data of the job's own"
                ),
            );
            None
        }
        other => {
            let guess = closest(other, KINDS)
                .map(|g| format!("did you mean {g}? "))
                .unwrap_or_default();
            p.push(
                format!("{here}.type"),
                format!(
                    "{other:?} is not a volume type ({guess}use volume for a named volume on the worker, tmpfs for one in memory, or host for a directory the worker offers by name)"
                ),
            );
            None
        }
    };
    if p.len() != before {
        return None;
    }
    Some(Volume {
        kind: kind?,
        read_only,
    })
}

/// Reports that `key` of the volume at `here` does not apply to its `kind`, and `why`.
fn not_for(p: &mut Problems, here: &str, key: &str, kind: &str, why: &str) {
    p.push(
        format!("{here}.{key}"),
        format!("does not apply to type: {kind} ({why})"),
    );
}

/// Whether a host volume's `source` is written as a path rather than a name.
fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains('\\') || s.starts_with('.') || s.starts_with('~')
}

/// A name to suggest for a host volume written as `text` (a path's last part, as a name).
fn host_name_hint(text: &str) -> String {
    let last = text
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let hint = super::names::suggest_dns_label(last);
    if hint.is_empty() {
        "data".to_owned()
    } else {
        hint
    }
}

/// A volume's `size`: more than zero and at most `max`.
fn volume_size(
    p: &mut Problems,
    fp: &str,
    s: Scalar,
    max: ByteSize,
    example: &str,
) -> Option<ByteSize> {
    match scalar_size(s) {
        Err(m) => p.push(fp, m),
        Ok(size) if size == ByteSize::ZERO => {
            p.push(fp, format!("must be more than zero ({example})"))
        }
        Ok(size) if size > max => p.push(
            fp,
            format!("{size} is more than the {max} allowed (ask for at most {max})"),
        ),
        Ok(size) => return Some(size),
    }
    None
}

/// A path a task's file, mount or secret takes in its container, and where it is written.
pub(super) struct Taken {
    /// The path, normalised.
    pub path: String,
    /// The field path of the entry (`tasks[0].mounts[1]`).
    pub at: String,
    /// Whether a file is there (a file or a secret), rather than a directory (a mount).
    pub file: bool,
}

/// Validates a task's `mounts` against the job's declared volumes; each valid mount's path is
/// added to `taken`.
pub(super) fn validate_mounts(
    p: &mut Problems,
    path: &str,
    raw: Option<Vec<Option<RawMount>>>,
    rules: Rules,
    declared: &Declared,
    taken: &mut Vec<Taken>,
) -> Vec<Mount> {
    let raw = raw.unwrap_or_default();
    let mounts_path = format!("{path}.mounts");
    over_limit(
        p,
        rules,
        &mounts_path,
        raw.len(),
        MAX_MOUNTS_PER_TASK,
        "mounts",
    );
    let mut mounts = Vec::new();
    for (i, rm) in raw.into_iter().enumerate() {
        let Some(rm) = rm else { continue };
        let here = format!("{mounts_path}[{i}]");
        let before = p.len();
        let kind = match &rm.volume {
            None => {
                p.push(
                    format!("{here}.volume"),
                    "is required (the name of one of the job's volumes, e.g. data)",
                );
                None
            }
            Some(v) => match declared.get(v) {
                Some(kind) => *kind,
                None => {
                    unknown_volume(p, &format!("{here}.volume"), v, declared);
                    None
                }
            },
        };
        let mount_path = match rm.path {
            None => {
                p.push(
                    format!("{here}.path"),
                    "is required (where the volume appears in the container, e.g. /data)",
                );
                None
            }
            Some(text) => match normal_path(&text, false) {
                Err(m) => {
                    p.push(format!("{here}.path"), m);
                    None
                }
                Ok(root) if root == "/" => {
                    p.push(
                        format!("{here}.path"),
                        "is the container's root directory (mount the volume at a directory below it, e.g. /data)",
                    );
                    None
                }
                Ok(normal) => Some(normal),
            },
        };
        let read_only = flag(
            p,
            &format!("{here}.read_only"),
            rm.read_only,
            "read_only: true for a read-only mount",
        );
        let subpath = rm.subpath.and_then(|text| {
            let fp = format!("{here}.subpath");
            if kind == Some("tmpfs") {
                p.push(
                    fp,
                    "does not apply to a tmpfs volume (a tmpfs starts empty: mount it whole, without subpath)",
                );
                return None;
            }
            normal_subpath(&text)
                .map_err(|m| p.push(fp, m))
                .ok()
        });
        if p.len() != before {
            continue;
        }
        if let (Some(volume), Some(mount_path)) = (rm.volume, mount_path) {
            taken.push(Taken {
                path: mount_path.clone(),
                at: here,
                file: false,
            });
            mounts.push(Mount {
                volume,
                path: mount_path,
                read_only,
                subpath,
            });
        }
    }
    mounts
}

/// Reports a mount of `name`, which the job does not declare.
fn unknown_volume(p: &mut Problems, fp: &str, name: &str, declared: &Declared) {
    let names: Vec<&str> = declared.keys().map(String::as_str).collect();
    let message = if names.is_empty() {
        format!(
            "the job declares no volume named {name:?} (declare it under the job's volumes, e.g. volumes: {{ {name}: {{ type: volume }} }})"
        )
    } else {
        let guess = closest(name, &names)
            .map(|g| format!("did you mean {g}? "))
            .unwrap_or_default();
        format!(
            "the job declares no volume named {name:?} ({guess}the job's volumes: {}; or declare it under volumes)",
            names.join(", ")
        )
    };
    p.push(fp, message);
}

/// A mount's `subpath`: relative, without `..`, naming a directory below the volume's root;
/// normalised (no `.`, no empty part).
fn normal_subpath(text: &str) -> Result<String, String> {
    if text.len() > MAX_PATH_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_PATH_BYTES} are allowed",
            text.len()
        ));
    }
    if text.contains('\0') {
        return Err(format!(
            "{text:?} holds a NUL character, which no path can hold (remove it)"
        ));
    }
    if text.starts_with('/') {
        return Err(format!(
            "{text:?} is absolute: a subpath is a directory below the volume's root, written relative to it (e.g. {})",
            text.trim_start_matches('/')
        ));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "{text:?} holds `..`: a subpath stays inside its volume (name a directory below its root, e.g. db)"
                ));
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "{text:?} names the volume's root itself (leave subpath out to mount the whole volume)"
        ));
    }
    Ok(parts.join("/"))
}

/// Validates a task's `secrets`; each valid secret's path is added to `taken`.
pub(super) fn validate_secrets(
    p: &mut Problems,
    path: &str,
    raw: Option<Vec<Option<RawSecret>>>,
    rules: Rules,
    taken: &mut Vec<Taken>,
) -> Vec<SecretRef> {
    let raw = raw.unwrap_or_default();
    let secrets_path = format!("{path}.secrets");
    over_limit(
        p,
        rules,
        &secrets_path,
        raw.len(),
        MAX_SECRETS_PER_TASK,
        "secrets",
    );
    let mut secrets: Vec<SecretRef> = Vec::new();
    // Each name read so far, with where.
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, rs) in raw.into_iter().enumerate() {
        let Some(rs) = rs else { continue };
        let here = format!("{secrets_path}[{i}]");
        let before = p.len();
        let name = match rs.name {
            None => {
                p.push(
                    format!("{here}.name"),
                    "is required (the name of a secret, as `orkestrator secret create NAME` made it, e.g. db-password)",
                );
                None
            }
            Some(n) => match check_secret_name(&n) {
                Err(m) => {
                    p.push(format!("{here}.name"), m);
                    None
                }
                Ok(()) => {
                    if let Some((_, first)) = names.iter().find(|(other, _)| *other == n) {
                        p.push(
                            format!("{here}.name"),
                            format!("{n} is already listed at {first} (list each secret once)"),
                        );
                    } else {
                        names.push((n.clone(), here.clone()));
                    }
                    Some(n)
                }
            },
        };
        let file_path = match (rs.path, &name) {
            (Some(text), _) => normal_path(&text, true)
                .map_err(|m| p.push(format!("{here}.path"), m))
                .ok(),
            (None, Some(n)) => Some(SecretRef::default_path(n)),
            (None, None) => None,
        };
        let mode = match rs.mode {
            None => SecretRef::DEFAULT_MODE,
            Some(text) => parse_mode(&text).unwrap_or_else(|m| {
                p.push(format!("{here}.mode"), m);
                SecretRef::DEFAULT_MODE
            }),
        };
        let version = match rs.version {
            None => None,
            Some(Scalar::Int(n)) if n >= 1 && n <= i128::from(u64::MAX) => Some(n as u64),
            Some(other) => {
                p.push(
                    format!("{here}.version"),
                    format!(
                        "{} is not a secret version (a whole number from 1; the manager sets it at submission, so leave it out)",
                        super::scalars::show(&other)
                    ),
                );
                None
            }
        };
        if p.len() != before {
            continue;
        }
        if let (Some(name), Some(file_path)) = (name, file_path) {
            taken.push(Taken {
                path: file_path.clone(),
                at: here,
                file: true,
            });
            secrets.push(SecretRef {
                name,
                path: file_path,
                mode,
                version,
            });
        }
    }
    secrets
}

/// Checks a secret's name: lowercase letters, digits, `-`, `_` and `.`, at most
/// [`MAX_SECRET_NAME_BYTES`] bytes, and not `.` or `..` (its file's default name). Returns
/// the message for the problem, if any.
pub(crate) fn check_secret_name(name: &str) -> Result<(), String> {
    const RULE: &str =
        "a secret name holds lowercase letters, digits, '-', '_' and '.', e.g. db-password";
    if name.is_empty() {
        return Err(format!("is empty ({RULE})"));
    }
    if name.len() > MAX_SECRET_NAME_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_SECRET_NAME_BYTES} are allowed",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        let lower: String = name
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '-' | '_' | '.') => c,
                _ => '-',
            })
            .collect();
        return Err(format!(
            "{name:?} is not a secret name ({RULE}; such as {lower:?})"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a secret name ({RULE})"));
    }
    Ok(())
}

/// Reports every path of a task's container taken twice: by two mounts, a mount and a file or
/// secret, or two secrets or a secret and a file; or a path below a file's. (Files among
/// themselves are checked with the files.)
pub(super) fn check_taken(
    p: &mut Problems,
    files_path: &str,
    files: &[ConfigFile],
    taken: &[Taken],
) {
    let files: Vec<Taken> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Taken {
            path: f.path.clone(),
            at: format!("{files_path}[{i}]"),
            file: true,
        })
        .collect();
    let inside = |inner: &str, outer: &str| {
        outer == "/"
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    for (n, t) in taken.iter().enumerate() {
        let earlier = files.iter().chain(&taken[..n]);
        for o in earlier {
            let what = if o.file { "a file" } else { "a mount" };
            let message = if t.path == o.path {
                format!(
                    "{} is also the path of {} (each path in a container holds one file or mount: change one of them)",
                    t.path, o.at
                )
            } else if o.file && inside(&t.path, &o.path) {
                format!(
                    "{} is inside {}, the path of {}, which is {what} and cannot hold anything (change one of the paths)",
                    t.path, o.path, o.at
                )
            } else if t.file && inside(&o.path, &t.path) {
                format!(
                    "{} holds {}, the path of {}, but is a file itself and cannot hold anything (change one of the paths)",
                    t.path, o.path, o.at
                )
            } else {
                continue;
            };
            p.push(format!("{}.path", t.at), message);
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_secret_name, normal_subpath};

    #[test]
    fn subpaths_are_relative_and_stay_inside() {
        assert_eq!(normal_subpath("db").unwrap(), "db");
        assert_eq!(normal_subpath("./a//b/").unwrap(), "a/b");
        for bad in ["/db", "../x", "a/../../b", "", ".", "a\0b"] {
            assert!(normal_subpath(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secret_names() {
        for good in ["db-password", "a", "tls.key", "x_1", &"a".repeat(253)] {
            assert!(check_secret_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", "DB", "a/b", ".", "..", "a b", &"a".repeat(254)] {
            assert!(check_secret_name(bad).is_err(), "{bad:?}");
        }
    }
}
