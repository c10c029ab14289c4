//! A task's config files (`files: [{ path, content | content_base64 | source, mode }]`), and
//! where a `source` is read from ([`Sources`]).

use std::io::Read;
use std::path::Path;

use base64::Engine;

use super::limits::{MAX_FILE_BYTES, MAX_FILES_PER_TASK, MAX_PATH_BYTES, Rules, over_limit};
use crate::spec::problems::Problems;
use crate::spec::raw::RawFile;
use crate::spec::together::ConfigFile;

/// Where a file's `source` is read from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sources<'a> {
    /// Nowhere: `source` is refused. The API takes content only (a manager cannot read the
    /// files of the person submitting), and specs read back never hold one.
    Refused,
    /// Relative to this directory: the job file's, or the current one for standard input, as
    /// the CLI reads it before submitting.
    ReadFrom(&'a Path),
}

/// The message of a `source` the API was sent.
pub(crate) const SOURCE_REFUSED: &str = "source is read by the CLI only; send content (or content_base64 for binary content) with the file's bytes";

pub(super) fn validate_files(
    p: &mut Problems,
    path: &str,
    raw: Option<Vec<Option<RawFile>>>,
    rules: Rules,
    sources: Sources<'_>,
) -> Vec<ConfigFile> {
    let raw = raw.unwrap_or_default();
    let files_path = format!("{path}.files");
    over_limit(
        p,
        rules,
        &files_path,
        raw.len(),
        MAX_FILES_PER_TASK,
        "files",
    );
    let mut files: Vec<ConfigFile> = Vec::new();
    // The normalised path of each file read so far, and where it is written.
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, rf) in raw.into_iter().enumerate() {
        let Some(rf) = rf else { continue };
        let here = format!("{files_path}[{i}]");
        let before = p.len();
        let file_path = match rf.path {
            None => {
                p.push(
                    format!("{here}.path"),
                    "is required (where the file appears in the container, e.g. /etc/app/app.conf)",
                );
                None
            }
            Some(text) => match normal_path(&text, true) {
                Err(m) => {
                    p.push(format!("{here}.path"), m);
                    None
                }
                Ok(normal) => {
                    match seen
                        .iter()
                        .find_map(|(other, at)| overlap(&normal, other, at))
                    {
                        Some(m) => p.push(format!("{here}.path"), m),
                        None => seen.push((normal.clone(), here.clone())),
                    }
                    Some(normal)
                }
            },
        };
        let content = validate_content(
            p,
            &here,
            rf.content,
            rf.content_base64,
            rf.source,
            rules,
            sources,
        );
        let mode = match rf.mode {
            None => ConfigFile::DEFAULT_MODE,
            Some(text) => match parse_mode(&text) {
                Ok(m) => m,
                Err(m) => {
                    p.push(format!("{here}.mode"), m);
                    ConfigFile::DEFAULT_MODE
                }
            },
        };
        if p.len() != before {
            continue;
        }
        if let (Some(path), Some(content)) = (file_path, content) {
            files.push(ConfigFile {
                path,
                content,
                mode,
            });
        }
    }
    files
}

/// What is wrong with a file at `path` beside one at `other` (written at `at`), if anything:
/// the same path, or one inside the other (a file cannot hold another).
fn overlap(path: &str, other: &str, at: &str) -> Option<String> {
    let inside = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    if path == other {
        Some(format!(
            "{path} is also the path of {at} (each path holds one file: remove one of them, or change its path)"
        ))
    } else if inside(path, other) {
        Some(format!(
            "{path} is inside {other}, the path of {at}, which is a file and cannot hold another (change one of the paths)"
        ))
    } else if inside(other, path) {
        Some(format!(
            "{path} holds {other}, the path of {at}, but is a file itself and cannot hold another (change one of the paths)"
        ))
    } else {
        None
    }
}

/// The bytes of a file: exactly one of `content`, `content_base64` and `source`.
fn validate_content(
    p: &mut Problems,
    here: &str,
    content: Option<String>,
    content_base64: Option<String>,
    source: Option<String>,
    rules: Rules,
    sources: Sources<'_>,
) -> Option<Vec<u8>> {
    let given: Vec<&str> = [
        ("content", content.is_some()),
        ("content_base64", content_base64.is_some()),
        ("source", source.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    if given.len() > 1 {
        p.push(
            here,
            format!(
                "has {}: give the file's bytes once, with one of them",
                given.join(" and ")
            ),
        );
        return None;
    }
    let (field, bytes) = match (content, content_base64, source) {
        (Some(text), None, None) => ("content", text.into_bytes()),
        (None, Some(b64), None) => {
            // Base64 is often wrapped over lines: blanks between its characters are ignored.
            let packed: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(packed) {
                Ok(bytes) => ("content_base64", bytes),
                Err(e) => {
                    p.push(
                        format!("{here}.content_base64"),
                        format!(
                            "is not base64 ({e}): write the file's bytes in standard base64 (A-Z, a-z, 0-9, + and /, padded with =), or its text as content"
                        ),
                    );
                    return None;
                }
            }
        }
        (None, None, Some(source)) => {
            let fp = format!("{here}.source");
            let Sources::ReadFrom(dir) = sources else {
                p.push(fp, SOURCE_REFUSED);
                return None;
            };
            match read_source(dir, &source) {
                Ok(bytes) => ("source", bytes),
                Err(m) => {
                    p.push(fp, m);
                    return None;
                }
            }
        }
        _ => {
            p.push(
                here,
                "needs the file's bytes: content (its text), content_base64 (its bytes in base64) or, in a file given to the CLI, source (a file to read, e.g. ./app.conf)",
            );
            return None;
        }
    };
    if over_limit(
        p,
        rules,
        &format!("{here}.{field}"),
        bytes.len(),
        MAX_FILE_BYTES,
        "bytes",
    ) {
        return None;
    }
    Some(bytes)
}

/// Reads `source` relative to `dir`, at most one byte more than [`MAX_FILE_BYTES`] (so that a
/// file too large, or endless, is refused without being read whole).
fn read_source(dir: &Path, source: &str) -> Result<Vec<u8>, String> {
    if source.is_empty() {
        return Err("is empty (name the file to read, e.g. ./app.conf)".to_owned());
    }
    let full = dir.join(source);
    let shown = full.display();
    let mut bytes = Vec::new();
    std::fs::File::open(&full)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {source} ({shown}): {e}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{source} ({shown}) has more than {MAX_FILE_BYTES} bytes; at most {MAX_FILE_BYTES} are allowed"
        ));
    }
    Ok(bytes)
}

/// `text` as an absolute path with no `.`, no empty part and no trailing `/`; a `..` part is
/// refused, and so is the root itself where a file is meant (`file`).
pub(super) fn normal_path(text: &str, file: bool) -> Result<String, String> {
    let example = if file { "/etc/app/app.conf" } else { "/app" };
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
    if !text.starts_with('/') {
        return Err(format!(
            "{text:?} is not an absolute path (write it from the root, e.g. {example})"
        ));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "{text:?} holds `..` (write the path without it, e.g. {example})"
                ));
            }
            part => parts.push(part),
        }
    }
    if file && parts.is_empty() {
        return Err(format!(
            "{text:?} is the root directory, not a file (name a file, e.g. {example})"
        ));
    }
    if file && text.ends_with('/') {
        return Err(format!(
            "{text:?} ends with `/`, which names a directory (name the file, e.g. {example})"
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A file mode: octal digits in a string (`"0644"`, `"600"`, `"0o640"`), permission bits only,
/// readable by its owner.
pub(super) fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let octal = !digits.is_empty()
        && digits.len() <= 4
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    let Some(mode) = octal.then(|| u32::from_str_radix(digits, 8).ok()).flatten() else {
        return Err(format!(
            "{text:?} is not a file mode (write its octal digits in a string, e.g. \"0644\" or \"0600\")"
        ));
    };
    if mode > 0o777 {
        return Err(format!(
            "{text:?} sets setuid, setgid or sticky bits, which these files may not have (use permission bits only, e.g. \"0644\")"
        ));
    }
    if mode & 0o400 == 0 {
        return Err(format!(
            "{text:?} does not let its owner, the task's user, read the file (give the owner read, e.g. \"0400\" or \"0644\")"
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::{normal_path, parse_mode};

    #[test]
    fn paths_are_normalised_and_checked() {
        assert_eq!(
            normal_path("/etc//app/./a.conf", true).unwrap(),
            "/etc/app/a.conf"
        );
        assert_eq!(normal_path("/srv/app/", false).unwrap(), "/srv/app");
        assert_eq!(normal_path("/", false).unwrap(), "/");
        for bad in ["etc/a", "/", "/etc/../a", "/etc/a/", "", "/a\0b"] {
            assert!(normal_path(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        for bad in ["", "0x1a4", "0648", "rw-r--r--", "00644", "4755", "0200"] {
            assert!(parse_mode(bad).is_err(), "{bad:?}");
        }
    }
}
