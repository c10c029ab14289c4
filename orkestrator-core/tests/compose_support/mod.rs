//! What the Compose fixture tests share: the fixtures, their options, and loading them.
//!
//! Each fixture is a directory of `tests/compose/` holding `compose.yaml` (and whatever it
//! reads), `expected.json` and, where the defaults do not do, `options.json`:
//! `{"environment": {..}, "env_file": "..", "profiles": [..], "project_name": "..",
//! "image_healthchecks": {"IMAGE": {"interval": "10s", "retries": 2}}, "strict": true,
//! "dev_host_volume": "NAME",
//! "docker_compose": false, "why": ".."}`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orkestrator_core::compose::{
    ComposeError, ConvertOptions, ImageHealth, LoadOptions, Project, load,
};
use serde_json::Value;

/// One fixture directory.
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub options: Value,
}

/// The fixtures, by name.
pub fn fixtures() -> Vec<Fixture> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose");
    let mut out: Vec<Fixture> = std::fs::read_dir(&root)
        .expect("tests/compose holds the fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("compose.yaml").is_file())
        .map(|dir| {
            let options = match std::fs::read_to_string(dir.join("options.json")) {
                Ok(t) => serde_json::from_str(&t).expect("options.json is JSON"),
                Err(_) => Value::Object(Default::default()),
            };
            Fixture {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                dir,
                options,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 10,
        "the fixtures are missing: {}",
        root.display()
    );
    out
}

impl Fixture {
    /// The fixture's environment: only what `options.json` gives, never the test's own.
    pub fn environment(&self) -> BTreeMap<String, String> {
        self.options
            .get("environment")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// `--env-file`, relative to the fixture.
    pub fn env_file(&self) -> Option<PathBuf> {
        self.options
            .get("env_file")
            .and_then(Value::as_str)
            .map(|f| self.dir.join(f))
    }

    /// `--profile`s.
    pub fn profiles(&self) -> Vec<String> {
        self.options
            .get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// `-p`.
    pub fn project_name(&self) -> Option<String> {
        self.options
            .get("project_name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Whether docker-compose 1.29 reads the fixture (and so is compared with it).
    pub fn docker_compose_reads_it(&self) -> bool {
        self.options.get("docker_compose") != Some(&Value::Bool(false))
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            files: Vec::new(),
            dir: self.dir.clone(),
            project_name: self.project_name(),
            env_file: self.env_file(),
            profiles: self.profiles(),
            environment: self.environment(),
        }
    }

    pub fn load(&self) -> Result<Project, ComposeError> {
        load(&self.load_options())
    }

    pub fn convert_options(&self) -> ConvertOptions {
        let mut opts = ConvertOptions {
            strict: self.options.get("strict") == Some(&Value::Bool(true)),
            dev_host_volume: self
                .options
                .get("dev_host_volume")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ..ConvertOptions::default()
        };
        if let Some(Value::Object(m)) = self.options.get("image_healthchecks") {
            for (image, h) in m {
                let secs = |k: &str| {
                    h.get(k)
                        .and_then(Value::as_str)
                        .and_then(|s| s.strip_suffix('s'))
                        .and_then(|s| s.parse::<u64>().ok())
                        .map(Duration::from_secs)
                };
                opts.image_healthchecks.insert(
                    image.clone(),
                    ImageHealth {
                        interval: secs("interval"),
                        timeout: secs("timeout"),
                        retries: h.get("retries").and_then(Value::as_u64).map(|r| r as u32),
                        start_period: secs("start_period"),
                    },
                );
            }
        }
        opts
    }

    /// The Compose files of the fixture (`compose.yaml`, its `compose.override.yaml` and
    /// those services extend, at any depth), relative to the fixture.
    pub fn compose_files(&self) -> Vec<String> {
        let mut out = vec!["compose.yaml".to_owned()];
        if self.dir.join("compose.override.yaml").is_file() {
            out.push("compose.override.yaml".to_owned());
        }
        for (file, _) in self.extended().keys() {
            if !out.contains(file) {
                out.push(file.clone());
            }
        }
        out
    }

    /// The services of other files that services of the project extend, at any depth: by
    /// (file relative to the fixture, service), the project's services they end up in.
    pub fn extended(&self) -> BTreeMap<(String, String), Vec<String>> {
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        // (file, service, the project's service it lands in), still to follow.
        let mut todo: Vec<(String, String, String)> = Vec::new();
        for file in ["compose.yaml", "compose.override.yaml"] {
            if self.dir.join(file).is_file() {
                for name in services(&raw_yaml(&self.dir.join(file))).keys() {
                    todo.push((file.to_owned(), name.clone(), name.clone()));
                }
            }
        }
        while let Some((file, name, lands)) = todo.pop() {
            let raw = raw_yaml(&self.dir.join(&file));
            let all = services(&raw);
            let Some(ext) = all.get(&name).and_then(|s| s.get("extends")) else {
                continue;
            };
            let (base, other) = match ext {
                Value::String(b) => (b.clone(), None),
                m => (
                    m["service"].as_str().unwrap_or_default().to_owned(),
                    m.get("file").and_then(Value::as_str),
                ),
            };
            let base_file = match other {
                None => file.clone(),
                Some(o) => {
                    let here = Path::new(&file).parent().unwrap_or(Path::new(""));
                    here.join(o).to_string_lossy().into_owned()
                }
            };
            if base_file != "compose.yaml" && base_file != "compose.override.yaml" {
                let lands_in = out.entry((base_file.clone(), base.clone())).or_default();
                if lands_in.contains(&lands) {
                    continue;
                }
                lands_in.push(lands.clone());
            }
            todo.push((base_file, base, lands));
        }
        out
    }
}

fn services(raw: &Value) -> serde_json::Map<String, Value> {
    raw.get("services")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A YAML file as it is written (anchors and merge keys resolved by the parser, nothing else).
pub fn raw_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
