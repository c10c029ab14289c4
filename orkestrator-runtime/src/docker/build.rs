//! Building images from a build context, pushing them to a registry, and what an image says
//! about itself (its `HEALTHCHECK`).
//!
//! The context is sent as a deterministic tar ([`context_tar`]): the same files give the same
//! bytes on every run and machine, so the image's tag (`repository:<first 16 hex of the
//! hash>`) names its content, and a build whose tag already exists is skipped.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use orkestrator_runtime::DockerRuntime;
//! use orkestrator_runtime::build::BuildRequest;
//!
//! # async fn demo() -> orkestrator_core::Result<()> {
//! let docker = DockerRuntime::connect()?;
//! let built = docker
//!     .build(&BuildRequest {
//!         context: "./api".into(),
//!         dockerfile: None,
//!         target: None,
//!         args: BTreeMap::new(),
//!         repository: "myproj-api".into(),
//!     })
//!     .await?;
//! println!("{}", built.tag);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::{
    BuildImageOptions, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt as _;
use orkestrator_core::error::{Error, Result};
use sha2::{Digest as _, Sha256};

use super::DockerRuntime;
use super::dockerignore::DockerIgnore;
use super::error::{engine_text, is_status};

/// The largest build context sent to the engine (the tar's size): 512 MiB.
pub const MAX_CONTEXT_BYTES: u64 = 512 * 1024 * 1024;

/// How many lines of the builder's output an error keeps.
const OUTPUT_TAIL_LINES: usize = 30;

/// What to build: a context directory, its Dockerfile, the stage, the build arguments, and the
/// repository the image is tagged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context (`Dockerfile` when `None`). It must lie inside
    /// the context.
    pub dockerfile: Option<String>,
    /// The stage of a multi-stage Dockerfile to build (`--target`); the last stage when `None`.
    pub target: Option<String>,
    /// The build arguments (`--build-arg`).
    pub args: BTreeMap<String, String>,
    /// The repository the image is tagged in (`myproj-api`); the tag is the content hash.
    pub repository: String,
}

/// A built (or already present) image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `repository:<first 16 hex of content_hash>`.
    pub tag: String,
    /// The engine's image ID (`sha256:...`).
    pub image_id: String,
    /// The hex SHA-256 of the context tar, the Dockerfile path, the target and the arguments.
    pub content_hash: String,
}

/// An image's `HEALTHCHECK`, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHealthcheck {
    /// The test: `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Time between checks, when set.
    pub interval: Option<Duration>,
    /// Time a check may take, when set.
    pub timeout: Option<Duration>,
    /// Failures in a row before unhealthy, when set.
    pub retries: Option<u32>,
    /// Grace period after start, when set.
    pub start_period: Option<Duration>,
}

/// The Dockerfile path of a request, checked to lie inside the context: its `/`-separated path
/// relative to the context, and the file on disk.
fn dockerfile_path(req: &BuildRequest, context: &Path) -> Result<(String, PathBuf)> {
    let given = req.dockerfile.as_deref().unwrap_or("Dockerfile");
    let refuse = |why: String| Error::BuildContext {
        path: req.context.clone(),
        message: why,
    };
    if given.trim().is_empty() {
        return Err(refuse(
            "the dockerfile is empty (name a file inside the context, e.g. `Dockerfile`)".into(),
        ));
    }
    if Path::new(given).is_absolute() {
        return Err(refuse(format!(
            "the dockerfile `{given}` is an absolute path; give it relative to the context"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in given.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refuse(format!(
                        "the dockerfile `{given}` lies outside the context; move it into the \
                         context directory or make the context a directory that contains it"
                    )));
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(refuse(format!("the dockerfile `{given}` names no file")));
    }
    let relative = parts.join("/");
    let on_disk = context.join(&relative);
    // A symlink may still lead out of the context: the resolved file must be inside it.
    let resolved = on_disk.canonicalize().map_err(|e| Error::BuildContext {
        path: on_disk.clone(),
        message: format!("cannot read the dockerfile `{given}`: {e}"),
    })?;
    if !resolved.starts_with(context) {
        return Err(refuse(format!(
            "the dockerfile `{given}` resolves to {}, outside the context; move it into the \
             context directory",
            resolved.display()
        )));
    }
    if !resolved.is_file() {
        return Err(refuse(format!("the dockerfile `{given}` is not a file")));
    }
    Ok((relative, on_disk))
}

/// The deterministic build context of `req` and its content hash.
///
/// The tar holds the context's files sorted by path, with zeroed mtimes, uid, gid and owner
/// names, each file's permission bits as on disk, `.dockerignore` applied (the Dockerfile and
/// `.dockerignore` are always included, as Docker does), and symlinks kept as links. Sockets and
/// other special files are left out. The hash is the hex SHA-256 of the tar, the Dockerfile
/// path, the target and the sorted build arguments.
///
/// Fails with [`Error::BuildContext`] when the context is not a directory, the Dockerfile is
/// outside it or missing, `.dockerignore` has a malformed pattern, a file cannot be read, or
/// the tar would exceed [`MAX_CONTEXT_BYTES`].
pub fn context_tar(req: &BuildRequest) -> Result<(Vec<u8>, String)> {
    let context = req
        .context
        .canonicalize()
        .map_err(|e| Error::BuildContext {
            path: req.context.clone(),
            message: format!("cannot open the context directory: {e}"),
        })?;
    if !context.is_dir() {
        return Err(Error::BuildContext {
            path: req.context.clone(),
            message: "the context is not a directory".into(),
        });
    }
    let (dockerfile, _) = dockerfile_path(req, &context)?;

    let ignore_file = context.join(".dockerignore");
    let mut ignore = match fs::read_to_string(&ignore_file) {
        Ok(text) => DockerIgnore::parse(&text).map_err(|(line, why)| Error::BuildContext {
            path: ignore_file.clone(),
            message: format!("line {line}: malformed pattern {why}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(e) => {
            return Err(Error::BuildContext {
                path: ignore_file,
                message: format!("cannot read: {e}"),
            });
        }
    };
    // As the Docker CLI does: the Dockerfile and .dockerignore are always sent.
    for keep in [dockerfile.as_str(), ".dockerignore"] {
        let escaped: String = keep
            .chars()
            .flat_map(|c| {
                let special = matches!(c, '*' | '?' | '[' | ']' | '\\');
                special.then_some('\\').into_iter().chain([c])
            })
            .collect();
        ignore
            .push(&escaped, true)
            .expect("an escaped path is a valid pattern");
    }

    let mut entries = Vec::new();
    walk(&context, "", &ignore, &mut entries)?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let mut tar = TarWriter::default();
    for (name, path) in &entries {
        tar.add(name, path, &req.context)?;
        if tar.buf.len() as u64 > MAX_CONTEXT_BYTES {
            return Err(too_large(req));
        }
    }
    let bytes = tar.finish();
    if bytes.len() as u64 > MAX_CONTEXT_BYTES {
        return Err(too_large(req));
    }

    let mut hash = Sha256::new();
    hash.update(&bytes);
    // Length-prefixed fields: no two different requests give the same byte stream.
    let mut field = |key: &str, value: &str| {
        for part in [key, value] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
    };
    field("dockerfile", &dockerfile);
    match &req.target {
        Some(t) => field("target", t),
        None => field("no-target", ""),
    }
    for (k, v) in &req.args {
        field(&format!("arg:{k}"), v);
    }
    let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hex))
}

fn too_large(req: &BuildRequest) -> Error {
    Error::BuildContext {
        path: req.context.clone(),
        message: format!(
            "the context is larger than {} MiB; exclude what the build does not need in \
             .dockerignore (build outputs, dependencies, data)",
            MAX_CONTEXT_BYTES / (1024 * 1024)
        ),
    }
}

/// Collects the entries under `dir` (`prefix` is its path in the tar) that `ignore` keeps.
fn walk(
    dir: &Path,
    prefix: &str,
    ignore: &DockerIgnore,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    let read_err = |path: &Path, e: std::io::Error| Error::BuildContext {
        path: path.to_path_buf(),
        message: format!("cannot read: {e} (fix its permissions or exclude it in .dockerignore)"),
    };
    let listing = fs::read_dir(dir).map_err(|e| read_err(dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::BuildContext {
                path,
                message: "the file name is not UTF-8; rename it or exclude it in .dockerignore"
                    .into(),
            });
        };
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(|e| read_err(&path, e))?;
        let excluded = ignore.excludes(&rel);
        if kind.is_dir() {
            if !excluded {
                out.push((rel.clone(), path.clone()));
            }
            // An excluded directory may still hold a re-included file.
            if !excluded || ignore.has_reincludes() {
                walk(&path, &rel, ignore, out)?;
            }
        } else if !excluded && (kind.is_file() || kind.is_symlink()) {
            out.push((rel, path));
        }
    }
    Ok(())
}

/// A ustar writer with fixed metadata (PAX records for names too long for ustar).
#[derive(Default)]
struct TarWriter {
    buf: Vec<u8>,
}

impl TarWriter {
    fn add(&mut self, name: &str, path: &Path, context: &Path) -> Result<()> {
        let read_err = |e: std::io::Error| Error::BuildContext {
            path: path.to_path_buf(),
            message: format!(
                "cannot read: {e} (fix its permissions or exclude it in .dockerignore)"
            ),
        };
        let meta = fs::symlink_metadata(path).map_err(read_err)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(path).map_err(read_err)?;
            let Some(target) = target.to_str() else {
                return Err(Error::BuildContext {
                    path: path.to_path_buf(),
                    message: "the symlink's target is not UTF-8".into(),
                });
            };
            self.header(name, b'2', mode, 0, target);
        } else if meta.is_dir() {
            self.header(&format!("{name}/"), b'5', mode, 0, "");
        } else {
            if meta.size() > MAX_CONTEXT_BYTES {
                return Err(Error::BuildContext {
                    path: context.to_path_buf(),
                    message: format!(
                        "{name} alone is larger than {} MiB; exclude it in .dockerignore",
                        MAX_CONTEXT_BYTES / (1024 * 1024)
                    ),
                });
            }
            let data = fs::read(path).map_err(read_err)?;
            self.header(name, b'0', mode, data.len() as u64, "");
            self.buf.extend_from_slice(&data);
            self.pad();
        }
        Ok(())
    }

    /// Writes a header (preceded by a PAX header when the name or link does not fit).
    fn header(&mut self, name: &str, kind: u8, mode: u32, size: u64, link: &str) {
        let split = split_name(name);
        let mut pax = String::new();
        if split.is_none() {
            pax.push_str(&pax_record("path", name));
        }
        if link.len() > 100 {
            pax.push_str(&pax_record("linkpath", link));
        }
        if !pax.is_empty() {
            self.raw_header("PaxHeader", "", b'x', 0o644, pax.len() as u64, "");
            self.buf.extend_from_slice(pax.as_bytes());
            self.pad();
        }
        let (prefix, short) = split.unwrap_or(("", truncate(name, 100)));
        self.raw_header(short, prefix, kind, mode, size, truncate(link, 100));
    }

    fn raw_header(&mut self, name: &str, prefix: &str, kind: u8, mode: u32, size: u64, link: &str) {
        let mut h = [0u8; 512];
        put(&mut h[0..100], name.as_bytes());
        put(&mut h[100..108], format!("{mode:07o}\0").as_bytes());
        put(&mut h[108..116], b"0000000\0");
        put(&mut h[116..124], b"0000000\0");
        put(&mut h[124..136], format!("{size:011o}\0").as_bytes());
        put(&mut h[136..148], b"00000000000\0");
        h[148..156].fill(b' ');
        h[156] = kind;
        put(&mut h[157..257], link.as_bytes());
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        put(&mut h[329..337], b"0000000\0");
        put(&mut h[337..345], b"0000000\0");
        put(&mut h[345..500], prefix.as_bytes());
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        self.buf.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rem = self.buf.len() % 512;
        if rem != 0 {
            self.buf.resize(self.buf.len() + 512 - rem, 0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 1024, 0);
        self.buf
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// The longest prefix of `s` of at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `name` as ustar's (prefix, name) pair, or `None` when it does not fit.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    // The prefix ends at a '/', holds at most 155 bytes, and the rest at most 100.
    name.match_indices('/')
        .map(|(i, _)| i)
        .filter(|&i| i <= 155 && name.len() - i - 1 <= 100 && i > 0)
        .map(|i| (&name[..i], &name[i + 1..]))
        .find(|(_, rest)| !rest.is_empty())
}

/// One PAX record: `"<len> key=value\n"`, its length counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

/// Splits `repo:tag` (the tag after the last `:` that follows the last `/`); `latest` when none.
fn split_reference(reference: &str) -> (&str, &str) {
    let after_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[after_slash..].rfind(':') {
        Some(i) => (
            &reference[..after_slash + i],
            &reference[after_slash + i + 1..],
        ),
        None => (reference, "latest"),
    }
}

/// `line` without ANSI escape sequences (`ESC [ ... final`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.clone().next() == Some('[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Nanoseconds as a duration; `None` for zero or unset (the engine's "use the default").
fn nanos(v: Option<i64>) -> Option<Duration> {
    v.filter(|&n| n > 0)
        .map(|n| Duration::from_nanos(n.unsigned_abs()))
}

impl DockerRuntime {
    /// Builds `req`'s image with the engine's classic builder and tags it
    /// `repository:<first 16 hex of the content hash>`; nothing is built when that tag already
    /// exists on the engine.
    ///
    /// Intermediate containers are removed, also after a failure. A failing step gives
    /// [`Error::Build`] with the step and the tail of its output; a context that cannot be
    /// used gives [`Error::BuildContext`] (see [`context_tar`]).
    pub async fn build(&self, req: &BuildRequest) -> Result<BuiltImage> {
        if req.repository.trim().is_empty() || req.repository.contains(char::is_whitespace) {
            return Err(Error::BuildContext {
                path: req.context.clone(),
                message: format!(
                    "repository `{}` is not a valid image repository name (e.g. `myproj-api`)",
                    req.repository
                ),
            });
        }
        let (tar, content_hash) = context_tar(req)?;
        let tag = format!("{}:{}", req.repository, &content_hash[..16]);
        let docker = self.client().await?;

        match docker.inspect_image(&tag).await {
            Ok(image) => {
                return Ok(BuiltImage {
                    image_id: image.id.unwrap_or_default(),
                    tag,
                    content_hash,
                });
            }
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(self.error(e, &format!("inspect image {tag}"))),
        }

        let context = req
            .context
            .canonicalize()
            .map_err(|e| Error::BuildContext {
                path: req.context.clone(),
                message: format!("cannot open the context directory: {e}"),
            })?;
        let (dockerfile, _) = dockerfile_path(req, &context)?;
        let options = BuildImageOptions {
            dockerfile,
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(
                req.args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ),
            target: req.target.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut stream = docker.build_image(
            options,
            None,
            Some(bollard::body_full(bytes::Bytes::from(tar))),
        );
        let mut step: Option<String> = None;
        let mut tail: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let Some(text) = info.stream else { continue };
                    for line in text.lines() {
                        // The classic builder colours a step's stderr red.
                        let line = strip_ansi(line);
                        let line = line.trim_end();
                        if line.is_empty() {
                            continue;
                        }
                        if line.starts_with("Step ") {
                            step = Some(line.to_string());
                            tail.clear();
                        } else {
                            tail.push(line.to_string());
                            if tail.len() > OUTPUT_TAIL_LINES {
                                tail.remove(0);
                            }
                        }
                    }
                }
                Err(e @ bollard::errors::Error::DockerStreamError { .. }) => {
                    let mut message = engine_text(&e);
                    // The step's own output, without the builder's "---> Running in" chatter.
                    let output: Vec<&str> = tail
                        .iter()
                        .map(String::as_str)
                        .filter(|l| {
                            !l.starts_with(" ---> ") && !l.starts_with("Removing intermediate")
                        })
                        .collect();
                    if !output.is_empty() {
                        message.push_str("\noutput:\n");
                        message.push_str(&output.join("\n"));
                    }
                    return Err(Error::Build {
                        image: tag,
                        step,
                        message,
                    });
                }
                Err(e) => return Err(self.error(e, &format!("build image {tag}"))),
            }
        }
        let image = docker
            .inspect_image(&tag)
            .await
            .map_err(|e| self.error(e, &format!("inspect the built image {tag}")))?;
        Ok(BuiltImage {
            tag,
            image_id: image.id.unwrap_or_default(),
            content_hash,
        })
    }

    /// Tags the local image `local_tag` (`repo:tag`) as `registry/repo:tag` and pushes it;
    /// returns that remote reference.
    ///
    /// Fails with [`Error::Push`] carrying the registry's message.
    pub async fn push(&self, local_tag: &str, registry: &str) -> Result<String> {
        let registry = registry.trim().trim_end_matches('/');
        let (repo, tag) = split_reference(local_tag);
        let remote_repo = format!("{registry}/{repo}");
        let reference = format!("{remote_repo}:{tag}");
        let docker = self.client().await?;
        docker
            .tag_image(
                local_tag,
                Some(TagImageOptions {
                    repo: Some(remote_repo.clone()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(|e| self.error(e, &format!("tag {local_tag} as {reference}")))?;
        let mut stream = docker.push_image(
            &remote_repo,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
        );
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(Error::Push {
                    reference,
                    message: engine_text(&e),
                });
            }
        }
        Ok(reference)
    }

    /// The `HEALTHCHECK` of a local image: `None` when the image is not on the engine, has
    /// none, or disables it (`HEALTHCHECK NONE`).
    pub async fn image_healthcheck(&self, image: &str) -> Result<Option<ImageHealthcheck>> {
        let docker = self.client().await?;
        let inspect = match docker.inspect_image(image).await {
            Ok(i) => i,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(self.error(e, &format!("inspect image {image}"))),
        };
        let Some(hc) = inspect.config.and_then(|c| c.healthcheck) else {
            return Ok(None);
        };
        let test = hc.test.unwrap_or_default();
        if test.is_empty() || test[0] == "NONE" {
            return Ok(None);
        }
        Ok(Some(ImageHealthcheck {
            test,
            interval: nanos(hc.interval),
            timeout: nanos(hc.timeout),
            retries: hc
                .retries
                .filter(|&r| r > 0)
                .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            start_period: nanos(hc.start_period),
        }))
    }

    /// Removes the tag `reference` (the image goes with its last tag, unless a container uses
    /// it); no error when there is no such tag.
    pub async fn remove_image(&self, reference: &str) -> Result<()> {
        let docker = self.client().await?;
        match docker
            .remove_image(reference, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(self.error(e, &format!("remove image {reference}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn request(dir: &Path) -> BuildRequest {
        BuildRequest {
            context: dir.to_path_buf(),
            dockerfile: None,
            target: None,
            args: BTreeMap::new(),
            repository: "t".into(),
        }
    }

    /// The tar's entries: (name, type flag, mode, size, link).
    fn entries(tar: &[u8]) -> Vec<(String, u8, u32, u64, String)> {
        let field = |h: &[u8]| {
            let end = h.iter().position(|&b| b == 0).unwrap_or(h.len());
            String::from_utf8(h[..end].to_vec()).unwrap()
        };
        let octal = |h: &[u8]| u64::from_str_radix(field(h).trim(), 8).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        let mut long_name = None;
        while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
            let h = &tar[at..at + 512];
            let size = octal(&h[124..136]);
            let kind = h[156];
            let data = &tar[at + 512..at + 512 + size as usize];
            if kind == b'x' {
                let text = std::str::from_utf8(data).unwrap();
                long_name = text
                    .split('\n')
                    .find_map(|r| r.split_once(" path=").map(|(_, v)| v.to_string()));
            } else {
                let prefix = field(&h[345..500]);
                let name = long_name.take().unwrap_or_else(|| {
                    if prefix.is_empty() {
                        field(&h[0..100])
                    } else {
                        format!("{prefix}/{}", field(&h[0..100]))
                    }
                });
                assert_eq!(octal(&h[136..148]), 0, "mtime zeroed");
                assert_eq!(octal(&h[108..116]), 0, "uid zeroed");
                let sum: u64 = h[..148]
                    .iter()
                    .chain(&h[156..])
                    .map(|&b| u64::from(b))
                    .sum::<u64>()
                    + 8 * 32;
                assert_eq!(octal(&h[148..155]), sum, "checksum of {name}");
                out.push((
                    name,
                    kind,
                    octal(&h[100..108]) as u32,
                    size,
                    field(&h[157..257]),
                ));
            }
            at += 512 + size.div_ceil(512) as usize * 512;
        }
        out
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_tar_is_sorted_ignores_and_keeps_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "Dockerfile", "FROM scratch\n", 0o644);
        write(d, "b.txt", "b", 0o600);
        write(d, "a/run.sh", "#!/bin/sh\n", 0o755);
        write(d, "a/skip.log", "x", 0o644);
        write(d, "secret/key", "k", 0o644);
        write(d, "secret/keep", "k", 0o644);
        write(
            d,
            ".dockerignore",
            "*.log\n**/*.log\nsecret\n!secret/keep\nDockerfile\n",
            0o644,
        );
        symlink("b.txt", d.join("link")).unwrap();
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        write(d, &long, "long", 0o644);

        let (tar, hash) = context_tar(&request(d)).unwrap();
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "a/",
                "a/run.sh",
                "b.txt",
                &format!("{}/", "d".repeat(120)),
                &long,
                "link",
                "secret/keep",
            ]
        );
        let find = |n: &str| got.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(find("a/run.sh").2, 0o755);
        assert_eq!(find("b.txt").2, 0o600);
        assert_eq!(find("link").1, b'2');
        assert_eq!(find("link").4, "b.txt");
        assert_eq!(find(&long).3, 4);
        assert_eq!(hash.len(), 64);
        assert_eq!(
            context_tar(&request(d)).unwrap().1,
            hash,
            "same context, same hash"
        );
    }

    #[test]
    fn any_change_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "Dockerfile", "FROM scratch\n", 0o644);
        write(d, "Dockerfile.dev", "FROM scratch\n", 0o644);
        write(d, "f", "1", 0o644);
        let base = context_tar(&request(d)).unwrap().1;
        let mut seen = vec![base.clone()];
        let mut differs = |h: String, what: &str| {
            assert!(!seen.contains(&h), "{what} must change the hash");
            seen.push(h);
        };

        let mut r = request(d);
        r.args.insert("A".into(), "1".into());
        differs(context_tar(&r).unwrap().1, "an argument");
        r.args.insert("A".into(), "2".into());
        differs(context_tar(&r).unwrap().1, "an argument's value");
        let mut r = request(d);
        r.target = Some("dev".into());
        differs(context_tar(&r).unwrap().1, "the target");
        let mut r = request(d);
        r.dockerfile = Some("Dockerfile.dev".into());
        differs(context_tar(&r).unwrap().1, "the dockerfile");

        write(d, "f", "2", 0o644);
        differs(context_tar(&request(d)).unwrap().1, "a file's content");
        write(d, "f", "2", 0o755);
        differs(context_tar(&request(d)).unwrap().1, "a file's mode");
        fs::rename(d.join("f"), d.join("g")).unwrap();
        differs(context_tar(&request(d)).unwrap().1, "a file's name");
        // An excluded file changes nothing.
        write(d, ".dockerignore", "ignored\n", 0o644);
        let with_ignore = context_tar(&request(d)).unwrap().1;
        write(d, "ignored", "x", 0o644);
        assert_eq!(context_tar(&request(d)).unwrap().1, with_ignore);
    }

    #[test]
    fn a_dockerfile_outside_the_context_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        write(dir.path(), "Dockerfile", "FROM scratch\n", 0o644);
        write(&ctx, "f", "1", 0o644);
        let mut r = request(&ctx);
        r.dockerfile = Some("../Dockerfile".into());
        let e = context_tar(&r).unwrap_err().to_string();
        assert!(e.contains("outside the context"), "{e}");
        r.dockerfile = Some("/etc/passwd".into());
        let e = context_tar(&r).unwrap_err().to_string();
        assert!(e.contains("absolute"), "{e}");
        symlink("../Dockerfile", ctx.join("Dockerfile")).unwrap();
        r.dockerfile = None;
        let e = context_tar(&r).unwrap_err().to_string();
        assert!(e.contains("outside the context"), "{e}");
        fs::remove_file(ctx.join("Dockerfile")).unwrap();
        let e = context_tar(&r).unwrap_err().to_string();
        assert!(e.contains("cannot read the dockerfile"), "{e}");
    }

    #[test]
    fn a_malformed_dockerignore_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", "FROM scratch\n", 0o644);
        write(dir.path(), ".dockerignore", "ok\n[bad\n", 0o644);
        let e = context_tar(&request(dir.path())).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(split_reference("a:1"), ("a", "1"));
        assert_eq!(split_reference("h:5000/a/b:x"), ("h:5000/a/b", "x"));
        assert_eq!(split_reference("h:5000/a"), ("h:5000/a", "latest"));
    }

    #[test]
    fn ansi_colours_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[91mboom\u{1b}[0m"), "boom");
        assert_eq!(strip_ansi("plain [x]"), "plain [x]");
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record("path", &"x".repeat(95));
        let (len, _) = r.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
    }
}
