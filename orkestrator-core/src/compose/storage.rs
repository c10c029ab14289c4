//! A service's `volumes`, `tmpfs`, `secrets` and `configs`: named and anonymous volumes become
//! the job's retained volumes, a bind-mounted file of the project a config file, a directory
//! a host volume under `orkestrator dev` only, and secrets and configs files in the task.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};

use super::load::dns_label;
use super::merge;
use super::parts::SecretPlan;
use super::service::ServiceMapper;
use super::text::units::{format_bytes, parse_bytes};
use super::yaml::{index, join, kind, scalar_text};
use crate::spec::MAX_FILE_BYTES;

/// Host paths that are the engine's socket: mounting one hands over the host.
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// The most bytes of a secret's `file`.
const MAX_SECRET_FILE: u64 = crate::secrets::MAX_SECRET_BYTES as u64;

/// One mount as read from either syntax.
struct MountSpec {
    kind: String,
    source: Option<String>,
    target: String,
    read_only: bool,
    tmpfs_size: Option<u64>,
}

impl ServiceMapper<'_> {
    /// Maps the service's storage keys into task `t` (at job path `tpath`).
    pub(crate) fn storage(
        &mut self,
        tpath: &str,
        name: &str,
        s: &Map<String, Value>,
        t: &mut Map<String, Value>,
    ) {
        let path = join("services", name);
        let task = self.names[name].clone();
        let mut mounts: Vec<Value> = Vec::new();
        let mut files: Vec<Value> = Vec::new();
        let mut secrets: Vec<Value> = Vec::new();

        if let Some(v) = s.get("volumes") {
            for (i, item) in merge::as_list(v).iter().enumerate() {
                let here = index(&join(&path, "volumes"), i);
                let Some(m) = self.mount_spec(&here, item) else {
                    continue;
                };
                match m.kind.as_str() {
                    "volume" => {
                        let volume = match &m.source {
                            Some(src) => self.named_volume(&here, src),
                            None => {
                                let v = format!("{task}-anon-{i}");
                                self.g
                                    .volumes
                                    .insert(v.clone(), json!({"type": "volume", "retain": true}));
                                Some(v)
                            }
                        };
                        if let Some(volume) = volume {
                            self.g
                                .origins
                                .add(format!("{tpath}.mounts[{}]", mounts.len()), here);
                            mounts.push(mount(&volume, &m.target, m.read_only, None));
                        }
                    }
                    "tmpfs" => {
                        let v = format!("{task}-tmpfs-{i}");
                        let mut spec = json!({"type": "tmpfs"});
                        if let Some(size) = m.tmpfs_size {
                            spec["size"] = Value::String(format_bytes(size));
                        }
                        self.g.volumes.insert(v.clone(), spec);
                        self.g.origins.add(format!("volumes.{v}"), here.clone());
                        self.g
                            .origins
                            .add(format!("{tpath}.mounts[{}]", mounts.len()), here);
                        mounts.push(mount(&v, &m.target, false, None));
                    }
                    "bind" => {
                        let src = m.source.clone().unwrap_or_default();
                        match self.bind(&here, &src, &m) {
                            Some(Bound::File(f)) => {
                                self.g
                                    .origins
                                    .add(format!("{tpath}.files[{}]", files.len()), here);
                                files.push(f);
                            }
                            Some(Bound::Mount(mt)) => {
                                self.g
                                    .origins
                                    .add(format!("{tpath}.mounts[{}]", mounts.len()), here);
                                mounts.push(mt);
                            }
                            None => {}
                        }
                    }
                    other => self.g.refuse(
                        join(&here, "type"),
                        format!("{other:?}: use volume, bind or tmpfs"),
                    ),
                }
            }
        }

        if let Some(v) = s.get("tmpfs") {
            for (i, item) in merge::as_list(v).iter().enumerate() {
                let here = index(&join(&path, "tmpfs"), i);
                let text = scalar_text(item).unwrap_or_default();
                let (target, opts) = text.split_once(':').unwrap_or((&text, ""));
                let mut size = None;
                for o in opts.split(',').filter(|o| !o.is_empty()) {
                    match o.split_once('=') {
                        Some(("size", v)) => match parse_bytes(v) {
                            Ok(b) => size = Some(b),
                            Err(e) => self.g.refuse(here.clone(), e),
                        },
                        _ => self.g.warn(
                            here.clone(),
                            format!("option {o:?} ignored: only size carries over"),
                        ),
                    }
                }
                let name = format!("{task}-tmpfs-t{i}");
                let mut spec = json!({"type": "tmpfs"});
                if let Some(size) = size {
                    spec["size"] = Value::String(format_bytes(size));
                }
                self.g.volumes.insert(name.clone(), spec);
                self.g.origins.add(format!("volumes.{name}"), here.clone());
                self.g
                    .origins
                    .add(format!("{tpath}.mounts[{}]", mounts.len()), here);
                mounts.push(mount(&name, target, false, None));
            }
        }

        if let Some(v) = s.get("secrets") {
            for (i, item) in merge::as_list(v).iter().enumerate() {
                let here = index(&join(&path, "secrets"), i);
                let Some((source, target, mode)) = self.file_ref(&here, item) else {
                    continue;
                };
                let Some(secret) = self.secret(&here, &source) else {
                    continue;
                };
                let target = match target {
                    Some(t) if t.starts_with('/') => t,
                    Some(t) => format!("/run/secrets/{t}"),
                    None => format!("/run/secrets/{source}"),
                };
                let mut r = json!({"name": secret, "path": target});
                if let Some(m) = mode {
                    r["mode"] = Value::String(format!("{m:04o}"));
                }
                self.g
                    .origins
                    .add(format!("{tpath}.secrets[{}]", secrets.len()), here);
                secrets.push(r);
            }
        }

        if let Some(v) = s.get("configs") {
            for (i, item) in merge::as_list(v).iter().enumerate() {
                let here = index(&join(&path, "configs"), i);
                let Some((source, target, mode)) = self.file_ref(&here, item) else {
                    continue;
                };
                let Some(content) = self.config(&here, &source) else {
                    continue;
                };
                let target = match target {
                    Some(t) if t.starts_with('/') => t,
                    Some(t) => format!("/{t}"),
                    None => format!("/{source}"),
                };
                let mut f = file_value(&target, &content);
                if let Some(m) = mode {
                    f["mode"] = Value::String(format!("{m:04o}"));
                }
                self.g
                    .origins
                    .add(format!("{tpath}.files[{}]", files.len()), here);
                files.push(f);
            }
        }

        if !mounts.is_empty() {
            t.insert("mounts".into(), Value::Array(mounts));
        }
        if !files.is_empty() {
            t.insert("files".into(), Value::Array(files));
        }
        if !secrets.is_empty() {
            t.insert("secrets".into(), Value::Array(secrets));
        }
    }

    /// One item of `volumes`, short (`SRC:DST[:MODE]`, `DST`) or long syntax.
    fn mount_spec(&mut self, here: &str, item: &Value) -> Option<MountSpec> {
        match item {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [t] => (None, *t, ""),
                    [s, t] => (Some(*s), *t, ""),
                    [s, t, m] => (Some(*s), *t, *m),
                    _ => {
                        self.g
                            .refuse(here, format!("{s:?} is not SOURCE:TARGET[:MODE]"));
                        return None;
                    }
                };
                let mut read_only = false;
                for m in mode.split(',').filter(|m| !m.is_empty()) {
                    match m {
                        "ro" => read_only = true,
                        "rw" => {}
                        other => self.g.warn(here, format!("mode {other:?} ignored")),
                    }
                }
                let kind = match source {
                    None => "volume",
                    Some(s) if s.starts_with(['/', '.', '~']) => "bind",
                    Some(_) => "volume",
                };
                Some(MountSpec {
                    kind: kind.into(),
                    source: source.map(str::to_owned),
                    target: target.to_owned(),
                    read_only,
                    tmpfs_size: None,
                })
            }
            Value::Object(m) => {
                let kind = m
                    .get("type")
                    .and_then(scalar_text)
                    .unwrap_or_else(|| "volume".into());
                let Some(target) = m.get("target").and_then(scalar_text) else {
                    self.g
                        .refuse(join(here, "target"), "a mount needs its `target` path");
                    return None;
                };
                let tmpfs_size = match m.get("tmpfs").and_then(|t| t.get("size")) {
                    None => None,
                    Some(v) => match parse_bytes(&scalar_text(v).unwrap_or_default()) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            self.g.refuse(join(&join(here, "tmpfs"), "size"), e);
                            return None;
                        }
                    },
                };
                Some(MountSpec {
                    kind,
                    source: m
                        .get("source")
                        .and_then(scalar_text)
                        .filter(|s| !s.is_empty()),
                    target,
                    read_only: m.get("read_only") == Some(&Value::Bool(true)),
                    tmpfs_size,
                })
            }
            other => {
                self.g.refuse(
                    here,
                    format!("must be a string or a mapping, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A named volume of the top-level `volumes`, as the job's retained volume.
    fn named_volume(&mut self, here: &str, name: &str) -> Option<String> {
        let top = self.project.doc.get("volumes").and_then(|v| v.as_object());
        let Some(decl) = top.and_then(|t| t.get(name)) else {
            self.g.refuse(
                here,
                format!("volume {name} is not declared: add it under the top-level volumes"),
            );
            return None;
        };
        let vpath = join("volumes", name);
        if decl.get("external") == Some(&Value::Bool(true)) {
            self.g.refuse(
                join(&vpath, "external"),
                "an external volume lives outside Orkestrator: drop `external` and each instance gets a volume of its own, kept across restarts",
            );
            return None;
        }
        if let Some(d) = decl.get("driver").and_then(scalar_text)
            && d != "local"
        {
            self.g.refuse(
                join(&vpath, "driver"),
                format!("{d:?}: only the local driver carries over"),
            );
            return None;
        }
        let job_name = dns_label(name);
        if job_name.is_empty() {
            self.g
                .refuse(vpath, "a volume's name needs a letter or digit");
            return None;
        }
        self.g.origins.add(format!("volumes.{job_name}"), vpath);
        self.g
            .volumes
            .insert(job_name.clone(), json!({"type": "volume", "retain": true}));
        Some(job_name)
    }

    /// A bind mount: a file of the project becomes a config file; a directory of the project
    /// maps onto the dev worker's host volume; anything else is refused.
    fn bind(&mut self, here: &str, src: &str, m: &MountSpec) -> Option<Bound> {
        if DOCKER_SOCKETS.contains(&src.trim_end_matches('/')) {
            self.g.refuse(
                here,
                "mounting the engine's socket hands the host to the task, which would break the security model",
            );
            return None;
        }
        if src.starts_with('~') {
            self.g.refuse(
                here,
                format!(
                    "{src}: a job never names a host path; put the file in the project directory"
                ),
            );
            return None;
        }
        let dir = &self.project.dir;
        // Links followed: a link in the project that leads out of it is outside too.
        let full = normalize(&dir.join(src));
        let full = std::fs::canonicalize(&full).unwrap_or(full);
        let Ok(rel) = full.strip_prefix(dir) else {
            self.g.refuse(
                here,
                format!("{src} is outside the project directory: a job never names a host path (put it in {})", dir.display()),
            );
            return None;
        };
        let meta = match std::fs::metadata(&full) {
            Ok(meta) => meta,
            Err(e) => {
                self.g.refuse(here, format!("{src}: {e} (Compose would make an empty directory; make it yourself, or drop the mount)"));
                return None;
            }
        };
        if meta.is_file() {
            if meta.len() > MAX_FILE_BYTES as u64 {
                self.g.refuse(
                    here,
                    format!(
                        "{src} is {} bytes: a bind-mounted file is carried as a config file of at most {} KiB (put it in the image with build:, or use a volume)",
                        meta.len(),
                        MAX_FILE_BYTES / 1024
                    ),
                );
                return None;
            }
            let content = match std::fs::read(&full) {
                Ok(c) => c,
                Err(e) => {
                    self.g.refuse(here, format!("{src}: {e}"));
                    return None;
                }
            };
            if !m.read_only {
                self.g.warn(
                    here,
                    "carried as a read-only config file: what the task writes to it is not kept",
                );
            }
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o777
            };
            let mut f = file_value(&m.target, &content);
            f["mode"] = Value::String(format!("{mode:04o}"));
            return Some(Bound::File(f));
        }
        let Some(host) = &self.opts.dev_host_volume else {
            self.g.refuse(
                here,
                format!("{src} is a directory: a cluster's workers cannot see it. Copy it into the image (build:), use a named volume, or run the project under `orkestrator dev`, which offers the project directory"),
            );
            return None;
        };
        let vol = "project".to_owned();
        if !self.g.volumes.contains_key(&vol) {
            // A problem with the host volume is said at the first mount that needs it.
            self.g.origins.add(format!("volumes.{vol}"), here);
        }
        self.g
            .volumes
            .insert(vol.clone(), json!({"type": "host", "source": host}));
        let sub = rel.to_string_lossy().into_owned();
        Some(Bound::Mount(mount(
            &vol,
            &m.target,
            m.read_only,
            Some(sub).filter(|s| !s.is_empty()),
        )))
    }

    /// An item of `secrets` or `configs`: source, target and mode.
    fn file_ref(
        &mut self,
        here: &str,
        item: &Value,
    ) -> Option<(String, Option<String>, Option<u32>)> {
        match item {
            Value::String(s) => Some((s.clone(), None, None)),
            Value::Object(m) => {
                let Some(source) = m.get("source").and_then(scalar_text) else {
                    self.g
                        .refuse(join(here, "source"), "needs the `source` it names");
                    return None;
                };
                let mode = match m.get("mode") {
                    None => None,
                    Some(v) => match mode_of(v) {
                        Some(m) => Some(m),
                        None => {
                            self.g
                                .refuse(join(here, "mode"), "must be permission bits such as 0440");
                            return None;
                        }
                    },
                };
                Some((source, m.get("target").and_then(scalar_text), mode))
            }
            other => {
                self.g.refuse(
                    here,
                    format!("must be a name or a mapping, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// The Orkestrator secret of Compose secret `source`, planned once.
    fn secret(&mut self, here: &str, source: &str) -> Option<String> {
        let decl = self
            .project
            .doc
            .get("secrets")
            .and_then(|v| v.get(source))
            .cloned();
        let Some(decl) = decl else {
            self.g.refuse(
                here,
                format!("secret {source} is not declared under the top-level secrets"),
            );
            return None;
        };
        if let Some(plan) = self.g.secrets.iter().find(|p| p.compose_name == source) {
            return Some(plan.name.clone());
        }
        let spath = join("secrets", source);
        let external = decl.get("external") == Some(&Value::Bool(true));
        let (name, content) = if external {
            let name = decl
                .get("name")
                .and_then(scalar_text)
                .unwrap_or_else(|| source.to_owned());
            (name, None)
        } else if let Some(f) = decl.get("file").and_then(scalar_text) {
            let full = normalize(&self.project.dir.join(&f));
            match read_bounded(&full, MAX_SECRET_FILE) {
                Ok(c) => (secret_name(&self.project.name, source), Some(c)),
                Err(e) => {
                    self.g.refuse(join(&spath, "file"), format!("{f}: {e}"));
                    return None;
                }
            }
        } else if let Some(var) = decl.get("environment").and_then(scalar_text) {
            match self.project.variables.get(&var) {
                Some(v) => (
                    secret_name(&self.project.name, source),
                    Some(v.clone().into_bytes()),
                ),
                None => {
                    self.g.refuse(
                        join(&spath, "environment"),
                        format!("the variable {var} is not set"),
                    );
                    return None;
                }
            }
        } else {
            self.g.refuse(
                spath,
                "a secret needs a `file`, an `environment` variable, or `external: true`",
            );
            return None;
        };
        self.g.secrets.push(SecretPlan {
            name: name.clone(),
            compose_name: source.to_owned(),
            content,
        });
        Some(name)
    }

    /// The content of Compose config `source`.
    fn config(&mut self, here: &str, source: &str) -> Option<Vec<u8>> {
        let decl = self
            .project
            .doc
            .get("configs")
            .and_then(|v| v.get(source))
            .cloned();
        let Some(decl) = decl else {
            self.g.refuse(
                here,
                format!("config {source} is not declared under the top-level configs"),
            );
            return None;
        };
        let cpath = join("configs", source);
        if decl.get("external") == Some(&Value::Bool(true)) {
            self.g.refuse(
                join(&cpath, "external"),
                "an external config cannot be read: give it a `file` or `content`",
            );
            return None;
        }
        if let Some(c) = decl.get("content").and_then(scalar_text) {
            return Some(c.into_bytes());
        }
        if let Some(var) = decl.get("environment").and_then(scalar_text) {
            return match self.project.variables.get(&var) {
                Some(v) => Some(v.clone().into_bytes()),
                None => {
                    self.g.refuse(
                        join(&cpath, "environment"),
                        format!("the variable {var} is not set"),
                    );
                    None
                }
            };
        }
        if let Some(f) = decl.get("file").and_then(scalar_text) {
            let full = normalize(&self.project.dir.join(&f));
            return match read_bounded(&full, MAX_FILE_BYTES as u64) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.g.refuse(join(&cpath, "file"), format!("{f}: {e}"));
                    None
                }
            };
        }
        self.g.refuse(
            cpath,
            "a config needs a `file`, `content` or an `environment` variable",
        );
        None
    }
}

enum Bound {
    File(Value),
    Mount(Value),
}

fn mount(volume: &str, path: &str, read_only: bool, subpath: Option<String>) -> Value {
    let mut m = json!({"volume": volume, "path": path});
    if read_only {
        m["read_only"] = Value::Bool(true);
    }
    if let Some(s) = subpath {
        m["subpath"] = Value::String(s);
    }
    m
}

fn file_value(path: &str, content: &[u8]) -> Value {
    match std::str::from_utf8(content) {
        Ok(text) => json!({"path": path, "content": text}),
        Err(_) => {
            use base64::Engine;
            json!({"path": path, "content_base64": base64::engine::general_purpose::STANDARD.encode(content)})
        }
    }
}

/// The secret `compose up` creates for Compose secret `source` of `project`:
/// `PROJECT_SOURCE`, made a valid secret name.
pub fn secret_name(project: &str, source: &str) -> String {
    let mut name: String = format!("{project}_{source}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(crate::secrets::MAX_SECRET_NAME);
    name
}

/// Permission bits written as `0440` (a string), or as a number YAML read: the digits written
/// are octal when they can be, as Compose files mean them.
fn mode_of(v: &Value) -> Option<u32> {
    let text = scalar_text(v)?;
    let digits = text.trim_start_matches("0o");
    let m = if digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(digits, 8).ok()?
    } else {
        digits.parse::<u32>().ok()?
    };
    (m <= 0o7777).then_some(m)
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    if meta.len() > max {
        return Err(format!("{} bytes; the limit is {max}", meta.len()));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// `p` without `.` and `..` components (lexically: symlinks are not followed).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_octal_where_they_can() {
        assert_eq!(mode_of(&json!("0440")), Some(0o440));
        assert_eq!(mode_of(&json!(440)), Some(0o440));
        assert_eq!(mode_of(&json!(288)), Some(0o440));
        assert_eq!(mode_of(&json!("rw")), None);
    }

    #[test]
    fn secret_names_are_valid() {
        assert_eq!(secret_name("barapp", "apikey"), "barapp_apikey");
        assert_eq!(secret_name("app", "DB Pass"), "app_db-pass");
    }
}
