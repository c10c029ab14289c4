//! Reading a Compose project: its files found and read, variables interpolated, files merged,
//! `extends` and `env_file` resolved and inactive profiles left out. What comes out is one
//! document in Compose's own shape ([`Project::doc`]), which the mapping then reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{ComposeError, Note};
use super::merge;
use super::text::{dotenv::parse_dotenv, interpolate::interpolate};
use super::yaml::{self, index, join};

/// The file names looked for when none is given, in order.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The most bytes a Compose file, an env file or a file it carries may hold.
pub const MAX_COMPOSE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// How to read a project: `compose up`'s flags and environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The files (`-f`), merged in order; none looks for [`DEFAULT_FILES`] in [`Self::dir`].
    pub files: Vec<PathBuf>,
    /// The directory to look in when no file is named (the current directory).
    pub dir: PathBuf,
    /// `-p`: the project's name.
    pub project_name: Option<String>,
    /// `--env-file`: the variables file read instead of the project's `.env`.
    pub env_file: Option<PathBuf>,
    /// `--profile`: the active profiles (`COMPOSE_PROFILES` adds to them).
    pub profiles: Vec<String>,
    /// The process environment: it wins over the `.env` file.
    pub environment: BTreeMap<String, String>,
}

/// A Compose project, read and resolved.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project's name, made a valid job name.
    pub name: String,
    /// The project directory: the first file's.
    pub dir: PathBuf,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The project in Compose's shape, interpolated, merged and resolved: `services` (the
    /// active ones, without `extends` and with `env_file` read into `environment`),
    /// `volumes`, `networks`, `secrets`, `configs` and extension keys.
    pub doc: Value,
    /// The variables interpolation used: the `.env` file's, overridden by the environment.
    pub variables: BTreeMap<String, String>,
    /// Remarks made while reading (services of inactive profiles left out).
    pub notes: Vec<Note>,
}

/// Reads a project.
pub fn load(opts: &LoadOptions) -> Result<Project, ComposeError> {
    let files = find_files(opts)?;
    let first = &files[0];
    let dir = absolute(first.parent().unwrap_or(Path::new(".")));
    let variables = variables(opts, &dir)?;
    let lookup = |name: &str| variables.get(name).cloned();

    let mut doc = Map::new();
    for file in &files {
        let one = read_file(file, &lookup)?;
        merge_files(&mut doc, one);
    }
    let mut services = match doc.remove("services") {
        Some(Value::Object(s)) => s,
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            return Err(refused(
                "services",
                format!(
                    "must be a mapping of service names to services, found {}",
                    yaml::kind(&other)
                ),
            ));
        }
    };
    if services.is_empty() {
        return Err(refused(
            "services",
            "the file has no services: a Compose file needs at least one",
        ));
    }
    for (name, s) in &services {
        if !s.is_object() {
            return Err(refused(
                join("services", name),
                format!("must be a mapping, found {}", yaml::kind(s)),
            ));
        }
    }

    let mut resolved = Map::new();
    for name in services.keys() {
        let s = resolve_extends(&services, name, &dir, &lookup, &mut Vec::new())?;
        resolved.insert(name.clone(), Value::Object(s));
    }
    services = resolved;

    let mut problems = Vec::new();
    for (name, s) in services.iter_mut() {
        if let Value::Object(s) = s {
            read_env_files(s, &join("services", name), &dir, &lookup, &mut problems);
        }
    }
    if !problems.is_empty() {
        return Err(ComposeError::Refused {
            refusals: problems,
            warnings: Vec::new(),
        });
    }

    let mut notes = Vec::new();
    let active = active_profiles(opts, &variables);
    services.retain(|name, s| {
        let profiles: Vec<String> = s
            .get("profiles")
            .map(merge::as_list)
            .unwrap_or_default()
            .iter()
            .filter_map(yaml::scalar_text)
            .collect();
        let on = profiles.is_empty() || profiles.iter().any(|p| active.contains(p));
        if !on {
            notes.push(Note::new(
                join("services", name),
                format!(
                    "left out: its profiles ({}) are not active (activate one with --profile)",
                    profiles.join(", ")
                ),
            ));
        }
        on
    });

    let name = project_name(opts, &variables, &doc, &dir)?;
    doc.insert("name".into(), Value::String(name.clone()));
    doc.insert("services".into(), Value::Object(services));
    Ok(Project {
        name,
        dir,
        files,
        doc: Value::Object(doc),
        variables,
        notes,
    })
}

fn refused(path: impl Into<String>, message: impl Into<String>) -> ComposeError {
    ComposeError::Refused {
        refusals: vec![Note::new(path, message)],
        warnings: Vec::new(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The files to read: those named, or the first default name found in the directory, with
/// its override file (`compose.override.yaml`) when there is one.
fn find_files(opts: &LoadOptions) -> Result<Vec<PathBuf>, ComposeError> {
    if !opts.files.is_empty() {
        return Ok(opts.files.clone());
    }
    let dir = if opts.dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        opts.dir.clone()
    };
    let Some(found) = DEFAULT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    else {
        return Err(ComposeError::NoFile { dir });
    };
    let mut files = vec![found.clone()];
    let stem = found
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("compose");
    let ext = found.extension().and_then(|s| s.to_str()).unwrap_or("yaml");
    let over = dir.join(format!("{stem}.override.{ext}"));
    if over.is_file() {
        files.push(over);
    }
    Ok(files)
}

/// Reads a text file of the project, bounded.
pub(crate) fn read_text(path: &Path) -> Result<String, ComposeError> {
    let read_err = |source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_COMPOSE_FILE_BYTES {
        return Err(ComposeError::Syntax {
            path: path.to_path_buf(),
            line: None,
            message: format!(
                "the file is {} bytes; the limit is {MAX_COMPOSE_FILE_BYTES}",
                meta.len()
            ),
        });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

/// The variables: the env file's (`--env-file`, or the project's `.env` when there is one),
/// the process environment winning.
fn variables(opts: &LoadOptions, dir: &Path) -> Result<BTreeMap<String, String>, ComposeError> {
    let mut vars = BTreeMap::new();
    let file = match &opts.env_file {
        Some(f) => Some(f.clone()),
        None => Some(dir.join(".env")).filter(|p| p.is_file()),
    };
    if let Some(file) = file {
        let text = read_text(&file)?;
        let env = &opts.environment;
        let pairs = parse_dotenv(&text, &|n: &str| env.get(n).cloned()).map_err(|message| {
            ComposeError::Syntax {
                path: file.clone(),
                line: None,
                message,
            }
        })?;
        vars.extend(pairs);
    }
    vars.extend(opts.environment.clone());
    Ok(vars)
}

/// Reads one Compose file, interpolated: every string of every section but the extension
/// keys (the user's own, as Compose leaves them), `x-orkestrator` included.
fn read_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Map<String, Value>, ComposeError> {
    let text = read_text(path)?;
    let v = yaml::read(&text).map_err(|e| ComposeError::Syntax {
        path: path.to_path_buf(),
        line: e.line,
        message: e.message,
    })?;
    let Value::Object(mut map) = v else {
        return Err(ComposeError::Syntax {
            path: path.to_path_buf(),
            line: Some(1),
            message: format!("a Compose file is a mapping, found {}", yaml::kind(&v)),
        });
    };
    let mut problems = Vec::new();
    for (k, v) in map.iter_mut() {
        if k.starts_with("x-") && k != "x-orkestrator" {
            continue;
        }
        interpolate_all(v, k, lookup, &mut problems);
    }
    if !problems.is_empty() {
        return Err(ComposeError::Refused {
            refusals: problems,
            warnings: Vec::new(),
        });
    }
    Ok(map)
}

fn interpolate_all(
    v: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Note>,
) {
    match v {
        Value::String(s) if s.contains('$') => match interpolate(s, lookup) {
            Ok(out) => *s = out,
            Err(e) => problems.push(Note::new(path, e.to_string())),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_all(item, &index(path, i), lookup, problems);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                interpolate_all(item, &join(path, k), lookup, problems);
            }
        }
        _ => {}
    }
}

/// Merges a later file into the document: services key by key by Compose's rules, the other
/// sections entry by entry, anything else replaced.
fn merge_files(doc: &mut Map<String, Value>, later: Map<String, Value>) {
    for (k, v) in later {
        match (k.as_str(), doc.get_mut(&k)) {
            ("services", Some(Value::Object(have))) => {
                if let Value::Object(new) = v {
                    for (name, s) in new {
                        let merged = match (have.get(&name), &s) {
                            (Some(Value::Object(b)), Value::Object(o)) => {
                                Value::Object(merge::service(b, o))
                            }
                            _ => s,
                        };
                        have.insert(name, merged);
                    }
                }
            }
            ("volumes" | "networks" | "secrets" | "configs", Some(Value::Object(have))) => {
                if let Value::Object(new) = v {
                    have.extend(new);
                }
            }
            _ => {
                doc.insert(k, v);
            }
        }
    }
}

/// Service `name` with what it `extends` merged under it, recursively; paths in a service read
/// from another file are made absolute, since they were relative to that file's directory.
fn resolve_extends(
    services: &Map<String, Value>,
    name: &str,
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    chain: &mut Vec<String>,
) -> Result<Map<String, Value>, ComposeError> {
    let path = join("services", name);
    let Some(Value::Object(service)) = services.get(name) else {
        return Err(refused(path, "no such service"));
    };
    let mut service = service.clone();
    let Some(ext) = service.remove("extends") else {
        return Ok(service);
    };
    let here = join(&path, "extends");
    let (base_name, file) = match &ext {
        Value::String(s) => (s.clone(), None),
        Value::Object(m) => {
            for k in m.keys() {
                if k != "service" && k != "file" {
                    return Err(refused(
                        join(&here, k),
                        "not a key of extends: it takes `service` and `file`",
                    ));
                }
            }
            let Some(base) = m.get("service").and_then(yaml::scalar_text) else {
                return Err(refused(
                    join(&here, "service"),
                    "extends needs the name of the service to extend",
                ));
            };
            (base, m.get("file").and_then(yaml::scalar_text))
        }
        other => {
            return Err(refused(
                here,
                format!(
                    "must be a service name or {{service, file}}, found {}",
                    yaml::kind(other)
                ),
            ));
        }
    };
    let key = format!("{}#{base_name}", file.as_deref().unwrap_or(""));
    if chain.contains(&key) {
        return Err(refused(
            here,
            format!("extends goes round in a circle through {base_name}"),
        ));
    }
    chain.push(key);
    let base = match &file {
        None => {
            if !services.contains_key(&base_name) {
                return Err(refused(
                    join(&here, "service"),
                    format!("no service {base_name} to extend in this file"),
                ));
            }
            resolve_extends(services, &base_name, dir, lookup, chain)?
        }
        Some(f) => {
            let file_path = dir.join(f);
            let other = read_file(&file_path, lookup)?;
            let other_services = match other.get("services") {
                Some(Value::Object(s)) => s.clone(),
                _ => Map::new(),
            };
            if !other_services.contains_key(&base_name) {
                return Err(refused(
                    join(&here, "service"),
                    format!("no service {base_name} in {f}"),
                ));
            }
            let other_dir = absolute(file_path.parent().unwrap_or(dir));
            let mut base = resolve_extends(&other_services, &base_name, &other_dir, lookup, chain)?;
            rebase_paths(&mut base, &other_dir);
            base
        }
    };
    chain.pop();
    Ok(merge::service(&base, &service))
}

/// Makes the relative paths of a service read from another directory absolute: its build
/// context, env files and bind-mount sources.
fn rebase_paths(service: &mut Map<String, Value>, from: &Path) {
    let fix = |s: &str| -> String {
        if s.starts_with('.') || (!s.starts_with('/') && !s.starts_with('~') && s.contains('/')) {
            from.join(s).to_string_lossy().into_owned()
        } else {
            s.to_owned()
        }
    };
    if let Some(b) = service.get_mut("build") {
        let mut m = merge::build_map(b);
        if let Some(Value::String(c)) = m.get_mut("context") {
            *c = from.join(&*c).to_string_lossy().into_owned();
        }
        *b = m;
    }
    if let Some(e) = service.get_mut("env_file") {
        let list = merge::as_list(e)
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Value::String(from.join(s).to_string_lossy().into_owned()),
                other => other,
            })
            .collect();
        *e = Value::Array(list);
    }
    if let Some(Value::Array(vols)) = service.get_mut("volumes") {
        for v in vols {
            match v {
                Value::String(s) => {
                    if let Some((src, rest)) = s.split_once(':')
                        && src.starts_with('.')
                    {
                        *s = format!("{}:{rest}", fix(src));
                    }
                }
                Value::Object(m) => {
                    if m.get("type").and_then(Value::as_str) == Some("bind")
                        && let Some(Value::String(src)) = m.get_mut("source")
                    {
                        *src = fix(src);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Reads a service's `env_file`s into its `environment` (which wins), and drops `env_file`.
fn read_env_files(
    service: &mut Map<String, Value>,
    path: &str,
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Note>,
) {
    let Some(files) = service.remove("env_file") else {
        if let Some(e) = service.get("environment") {
            let m = resolve_unset(merge::as_mapping(e), lookup);
            service.insert("environment".into(), Value::Object(m));
        }
        return;
    };
    let mut env = Map::new();
    for (i, f) in merge::as_list(&files).iter().enumerate() {
        let here = index(&join(path, "env_file"), i);
        let (file, required) = match f {
            Value::String(s) => (s.clone(), true),
            Value::Object(m) => match m.get("path").and_then(yaml::scalar_text) {
                Some(p) => (p, m.get("required") != Some(&Value::Bool(false))),
                None => {
                    problems.push(Note::new(here, "an env_file entry needs a `path`"));
                    continue;
                }
            },
            other => {
                problems.push(Note::new(
                    here,
                    format!("must be a file name, found {}", yaml::kind(other)),
                ));
                continue;
            }
        };
        let full = dir.join(&file);
        if !full.is_file() && !required {
            continue;
        }
        let text = match read_text(&full) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Note::new(here, e.to_string()));
                continue;
            }
        };
        match parse_dotenv(&text, lookup) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    env.insert(k, Value::String(v));
                }
            }
            Err(e) => problems.push(Note::new(here, format!("{file}: {e}"))),
        }
    }
    if let Some(e) = service.get("environment") {
        for (k, v) in merge::as_mapping(e) {
            env.insert(k, v);
        }
    }
    service.insert(
        "environment".into(),
        Value::Object(resolve_unset(env, lookup)),
    );
}

/// A variable written without a value (`- DEBUG`) takes the project's (the environment's or
/// `.env`'s), as `docker compose config` shows it; one the project lacks stays without (null).
fn resolve_unset(
    env: Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Map<String, Value> {
    env.into_iter()
        .map(|(k, v)| match v {
            Value::Null => {
                let v = lookup(&k).map_or(Value::Null, Value::String);
                (k, v)
            }
            v => (k, v),
        })
        .collect()
}

fn active_profiles(opts: &LoadOptions, vars: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut active: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if let Some(p) = vars.get("COMPOSE_PROFILES") {
        active.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    active
}

/// The project's name: `-p`, then `COMPOSE_PROJECT_NAME`, then the file's `name:`, then the
/// project directory's name; made a valid job name.
fn project_name(
    opts: &LoadOptions,
    vars: &BTreeMap<String, String>,
    doc: &Map<String, Value>,
    dir: &Path,
) -> Result<String, ComposeError> {
    let (raw, from) = if let Some(p) = &opts.project_name {
        (p.clone(), "-p")
    } else if let Some(p) = vars.get("COMPOSE_PROJECT_NAME").filter(|p| !p.is_empty()) {
        (p.clone(), "COMPOSE_PROJECT_NAME")
    } else if let Some(n) = doc.get("name").and_then(yaml::scalar_text) {
        (n, "name")
    } else {
        (
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            "the project directory",
        )
    };
    let name = dns_label(&raw);
    if name.is_empty() {
        return Err(refused(
            "name",
            format!(
                "the project name {raw:?} (from {from}) holds no letter or digit: name the project with -p"
            ),
        ));
    }
    Ok(name)
}

/// `s` made an RFC 1123 DNS label: lowercase letters and digits, anything else a `-`, no
/// leading, trailing or doubled `-`, at most 63 bytes.
pub fn dns_label(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(
        files: &[(&str, &str)],
        opts: impl FnOnce(&mut LoadOptions),
    ) -> Result<Project, ComposeError> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("My_App");
        std::fs::create_dir_all(&root).unwrap();
        for (name, text) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let mut o = LoadOptions {
            dir: root,
            ..LoadOptions::default()
        };
        opts(&mut o);
        let p = load(&o);
        drop(dir);
        p
    }

    #[test]
    fn the_default_file_its_override_and_the_directory_name() {
        let p = project(
            &[
                ("compose.yaml", "services:\n  web:\n    image: a:1\n"),
                (
                    "compose.override.yaml",
                    "services:\n  web:\n    image: a:2\n",
                ),
            ],
            |_| {},
        )
        .unwrap();
        assert_eq!(p.name, "my-app");
        assert_eq!(p.doc["services"]["web"]["image"], "a:2");
    }

    #[test]
    fn project_name_precedence() {
        let files = [(
            "compose.yaml",
            "name: from-file\nservices:\n  web:\n    image: a:1\n",
        )];
        assert_eq!(project(&files, |_| {}).unwrap().name, "from-file");
        let env = |o: &mut LoadOptions| {
            o.environment
                .insert("COMPOSE_PROJECT_NAME".into(), "From_Env".into());
        };
        assert_eq!(project(&files, env).unwrap().name, "from-env");
        let flag = |o: &mut LoadOptions| {
            env(o);
            o.project_name = Some("flag".into());
        };
        assert_eq!(project(&files, flag).unwrap().name, "flag");
    }

    #[test]
    fn interpolation_uses_dot_env_under_the_environment() {
        let p = project(
            &[
                (".env", "TAG=1.0\nPORT=8080\n"),
                (
                    "compose.yaml",
                    "services:\n  web:\n    image: a:${TAG}\n    ports: [\"${PORT}:80\"]\n    command: echo $$HOME\n",
                ),
            ],
            |o| {
                o.environment.insert("PORT".into(), "9090".into());
            },
        )
        .unwrap();
        let web = &p.doc["services"]["web"];
        assert_eq!(web["image"], "a:1.0");
        assert_eq!(web["ports"], json!(["9090:80"]));
        assert_eq!(web["command"], "echo $HOME");
    }

    #[test]
    fn a_required_variable_names_its_key() {
        let e = project(
            &[(
                "compose.yaml",
                "services:\n  web:\n    image: a:${TAG:?set TAG}\n",
            )],
            |_| {},
        )
        .unwrap_err();
        let ComposeError::Refused { refusals, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(refusals[0].path, "services.web.image");
        assert!(refusals[0].message.contains("set TAG"), "{}", refusals[0]);
    }

    #[test]
    fn extends_in_the_file_and_from_another_file() {
        let p = project(
            &[
                (
                    "compose.yaml",
                    "services:\n  base:\n    image: a:1\n    environment: [A=1]\n  web:\n    extends: base\n    environment: {B: '2'}\n  api:\n    extends: {file: common/svc.yaml, service: svc}\n",
                ),
                (
                    "common/svc.yaml",
                    "services:\n  svc:\n    build: ./api\n    env_file: svc.env\n",
                ),
                ("common/svc.env", "FROM_FILE=yes\n"),
            ],
            |_| {},
        )
        .unwrap();
        let s = &p.doc["services"];
        assert_eq!(s["web"]["environment"], json!({"A": "1", "B": "2"}));
        assert_eq!(s["web"]["image"], "a:1");
        assert!(
            s["api"]["build"]["context"]
                .as_str()
                .unwrap()
                .ends_with("common/./api"),
            "{}",
            s["api"]
        );
        assert_eq!(s["api"]["environment"], json!({"FROM_FILE": "yes"}));
    }

    #[test]
    fn an_extends_circle_is_refused() {
        let e = project(
            &[(
                "compose.yaml",
                "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
            )],
            |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("circle"), "{e}");
    }

    #[test]
    fn env_files_lose_to_environment() {
        let p = project(
            &[
                ("app.env", "A=from-file\nB=from-file\n"),
                (
                    "compose.yaml",
                    "services:\n  web:\n    image: a:1\n    env_file: app.env\n    environment:\n      - B=explicit\n",
                ),
            ],
            |_| {},
        )
        .unwrap();
        assert_eq!(
            p.doc["services"]["web"]["environment"],
            json!({"A": "from-file", "B": "explicit"})
        );
        assert!(p.doc["services"]["web"].get("env_file").is_none());
    }

    #[test]
    fn inactive_profiles_are_left_out_with_a_note() {
        let files = [(
            "compose.yaml",
            "services:\n  web:\n    image: a:1\n  debug:\n    image: a:1\n    profiles: [debug]\n",
        )];
        let p = project(&files, |_| {}).unwrap();
        assert!(p.doc["services"].get("debug").is_none());
        assert!(p.notes[0].message.contains("--profile"), "{:?}", p.notes);
        let p = project(&files, |o| o.profiles = vec!["debug".into()]).unwrap();
        assert!(p.doc["services"].get("debug").is_some());
    }

    #[test]
    fn no_file_says_where_it_looked() {
        let e = project(&[], |_| {}).unwrap_err();
        assert!(e.to_string().contains("docker-compose.yml"), "{e}");
    }
}
