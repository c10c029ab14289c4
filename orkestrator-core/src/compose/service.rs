//! One service becomes one task, key by key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::load::Project;
use super::merge;
use super::parts::{ConvertOptions, DEFAULT_CPU, DEFAULT_MEMORY, Gathered, dur, duration};
use super::ports::{self, Port};
use super::text::units::{format_bytes, parse_bytes, parse_cpus};
use super::text::words::split_shell_words;
use super::yaml::{index, join, kind, scalar_text};

/// Docker's defaults for a health check's timings.
const DOCKER_INTERVAL: Duration = Duration::from_secs(30);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(30);
const DOCKER_RETRIES: u64 = 3;

/// Docker's own restart delays: 100 ms, doubling, at most a minute; reset after 10 s running.
const RESTART_INITIAL: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(60);
const RESTART_RESET: Duration = Duration::from_secs(10);

/// Maps services to tasks, gathering the job-wide parts on the way.
pub(crate) struct ServiceMapper<'a> {
    pub project: &'a Project,
    pub opts: &'a ConvertOptions,
    /// Each service's task name.
    pub names: &'a BTreeMap<String, String>,
    /// `x-orkestrator`.
    pub x: &'a Value,
    pub g: &'a mut Gathered,
}

impl ServiceMapper<'_> {
    /// The resources of a service that sets none: `x-orkestrator.resources`, or the defaults.
    pub(crate) fn default_resources(&self) -> (String, String) {
        let r = self.x.get("resources");
        let get = |k: &str, d: &str| {
            r.and_then(|r| r.get(k))
                .and_then(scalar_text)
                .unwrap_or_else(|| d.to_owned())
        };
        (get("cpu", DEFAULT_CPU), get("memory", DEFAULT_MEMORY))
    }

    /// Service `name` (the `i`th) as a task: the task, whether its resources were defaulted,
    /// and its `deploy.replicas`.
    pub(crate) fn service(
        &mut self,
        i: usize,
        name: &str,
        s: &Map<String, Value>,
    ) -> (Value, bool, Option<u64>) {
        let path = join("services", name);
        let at = |k: &str| join(&path, k);
        let tpath = format!("tasks[{i}]");
        self.g.origins.add(tpath.clone(), path.clone());
        let task_name = self.names[name].clone();
        let mut t = Map::new();
        t.insert("name".into(), Value::String(task_name.clone()));

        // Image.
        let image = self.image(name, s, &path);
        if let Some(img) = &image {
            t.insert("image".into(), Value::String(img.clone()));
        }
        self.g.origins.add(format!("{tpath}.image"), at("image"));

        // Process.
        if let Some(v) = s.get("command")
            && let Some(words) = self.words(&at("command"), v)
        {
            self.g
                .origins
                .add(format!("{tpath}.command"), at("command"));
            if !words.is_empty() {
                t.insert("command".into(), json!(words));
            }
        }
        if let Some(v) = s.get("entrypoint")
            && let Some(words) = self.words(&at("entrypoint"), v)
        {
            self.g
                .origins
                .add(format!("{tpath}.entrypoint"), at("entrypoint"));
            t.insert("entrypoint".into(), json!(words));
        }
        let env = self.environment(s);
        if !env.is_empty() {
            self.g
                .origins
                .add(format!("{tpath}.env"), at("environment"));
            t.insert("env".into(), Value::Object(env));
        }
        for (k, to) in [
            ("working_dir", "working_dir"),
            ("user", "user"),
            ("stop_signal", "stop_signal"),
        ] {
            if let Some(v) = s.get(k).and_then(scalar_text).filter(|v| !v.is_empty()) {
                self.g.origins.add(format!("{tpath}.{to}"), at(k));
                t.insert(to.into(), Value::String(v));
            }
        }
        for k in ["init", "read_only"] {
            if let Some(v) = s.get(k) {
                self.g.origins.add(format!("{tpath}.{k}"), at(k));
                match v {
                    Value::Bool(b) => {
                        t.insert(k.into(), Value::Bool(*b));
                    }
                    Value::Null => {}
                    other => self.g.refuse(
                        at(k),
                        format!("must be true or false, found {}", kind(other)),
                    ),
                }
            }
        }
        if let Some(v) = s.get("stop_grace_period")
            && let Some(d) = duration(self.g, &at("stop_grace_period"), v)
        {
            self.g
                .origins
                .add(format!("{tpath}.stop_grace"), at("stop_grace_period"));
            t.insert("stop_grace".into(), dur(d));
        }
        if let Some(v) = s.get("shm_size") {
            match parse_bytes(&scalar_text(v).unwrap_or_default()) {
                Ok(b) => {
                    self.g
                        .origins
                        .add(format!("{tpath}.shm_size"), at("shm_size"));
                    t.insert("shm_size".into(), Value::String(format_bytes(b)));
                }
                Err(e) => self.g.refuse(at("shm_size"), e),
            }
        }
        if let Some(v) = s.get("labels") {
            let labels = strings(&merge::as_mapping(v));
            if !labels.is_empty() {
                self.g.origins.add(format!("{tpath}.labels"), at("labels"));
                t.insert("labels".into(), Value::Object(labels));
            }
        }
        if let Some(v) = s.get("extra_hosts") {
            let hosts = self.extra_hosts(&at("extra_hosts"), v);
            if !hosts.is_empty() {
                self.g
                    .origins
                    .add(format!("{tpath}.extra_hosts"), at("extra_hosts"));
                t.insert("extra_hosts".into(), Value::Object(hosts));
            }
        }
        self.namespaces(s, &path);

        // Ports.
        let mut port_list = Vec::new();
        if let Some(v) = s.get("ports") {
            for (j, p) in merge::as_list(v).iter().enumerate() {
                let here = index(&at("ports"), j);
                match ports::parse(p) {
                    Ok(mapped) => {
                        for m in mapped {
                            match m {
                                Port::Published(v) => {
                                    self.g.origins.add(
                                        format!("{tpath}.ports[{}]", port_list.len()),
                                        here.clone(),
                                    );
                                    port_list.push(v);
                                }
                                Port::Unpublished(c) => self.g.warn(
                                    here.clone(),
                                    format!(
                                        "container port {c} is published nowhere (no host port given): other services reach it as {task_name}:{c}"
                                    ),
                                ),
                            }
                        }
                    }
                    Err(e) => self.g.refuse(here, e),
                }
            }
        }
        if !port_list.is_empty() {
            t.insert("ports".into(), Value::Array(port_list));
        }

        // Resources.
        let (resources, defaulted) = self.resources(s, &path);
        self.g
            .origins
            .add(format!("{tpath}.resources"), path.clone());
        t.insert("resources".into(), Value::Object(resources));

        // Restart.
        if let Some(r) = self.restart(s, &path) {
            self.g.origins.add(format!("{tpath}.restart"), path.clone());
            t.insert("restart".into(), r);
        }

        // Health.
        if let Some(h) = self.health(s, &path, image.as_deref()) {
            self.g
                .origins
                .add(format!("{tpath}.health_check"), at("healthcheck"));
            t.insert("health_check".into(), h);
        }

        // Order.
        if let Some(v) = s.get("depends_on") {
            let deps = self.depends_on(&at("depends_on"), v);
            if !deps.is_empty() {
                self.g
                    .origins
                    .add(format!("{tpath}.depends_on"), at("depends_on"));
                t.insert("depends_on".into(), Value::Object(deps));
            }
        }

        // Names.
        let aliases = self.aliases(name, s, &path);
        if !aliases.is_empty() {
            self.g.origins.add(format!("{tpath}.aliases"), path.clone());
            t.insert("aliases".into(), json!(aliases));
        }

        // Storage.
        self.storage(&tpath, name, s, &mut t);

        // Placement.
        let replicas = self.deploy(s, &path);
        (Value::Object(t), defaulted, replicas)
    }

    fn image(&mut self, name: &str, s: &Map<String, Value>, path: &str) -> Option<String> {
        if s.contains_key("build") {
            return Some(match self.opts.images.get(name) {
                Some(img) => img.clone(),
                None => {
                    let repo = format!("{}-{}", self.project.name, self.names[name]);
                    self.g.warn(
                        join(path, "build"),
                        format!("not built yet: the job names {repo}:unbuilt until `compose up` builds it"),
                    );
                    format!("{repo}:unbuilt")
                }
            });
        }
        let Some(image) = s
            .get("image")
            .and_then(scalar_text)
            .filter(|i| !i.is_empty())
        else {
            self.g
                .refuse(path, "a service needs an `image` or a `build`");
            return None;
        };
        let last = image.rsplit('/').next().unwrap_or(&image);
        if image.contains('@') || last.contains(':') {
            Some(image)
        } else {
            self.g.warn(
                join(path, "image"),
                format!("{image} has no tag: it means {image}:latest, which changes under you (name a tag)"),
            );
            Some(format!("{image}:latest"))
        }
    }

    /// `command` or `entrypoint`: a string split as a shell would (without expansion), or a
    /// list; `None` for null or a refusal.
    fn words(&mut self, path: &str, v: &Value) -> Option<Vec<String>> {
        match v {
            Value::Null => None,
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match scalar_text(item) {
                        Some(w) => out.push(w),
                        None => {
                            self.g.refuse(
                                index(path, i),
                                format!("must be a string, found {}", kind(item)),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Value::String(s) => match split_shell_words(s) {
                Ok(w) => Some(w),
                Err(e) => {
                    self.g.refuse(path, e);
                    None
                }
            },
            other => {
                self.g.refuse(
                    path,
                    format!("must be a string or a list, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// `environment`, `env_file` already read in: a variable without a value takes the
    /// project's (the environment's or `.env`'s), or is left out.
    fn environment(&mut self, s: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(env) = s.get("environment") else {
            return out;
        };
        for (k, v) in merge::as_mapping(env) {
            let value = match &v {
                Value::Null => self.project.variables.get(&k).cloned(),
                other => scalar_text(other),
            };
            if let Some(value) = value {
                out.insert(k, Value::String(value));
            }
        }
        out
    }

    fn extra_hosts(&mut self, path: &str, v: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        match v {
            Value::Object(m) => {
                for (host, ip) in m {
                    let ip = match ip {
                        Value::Array(a) => a.first().and_then(scalar_text),
                        other => scalar_text(other),
                    };
                    if let Some(ip) = ip {
                        out.insert(host.clone(), Value::String(ip));
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let text = scalar_text(item).unwrap_or_default();
                    let pair = text.split_once('=').or_else(|| text.split_once(':'));
                    match pair {
                        Some((h, ip)) => {
                            out.insert(h.trim().to_owned(), Value::String(ip.trim().to_owned()));
                        }
                        None => self
                            .g
                            .refuse(index(path, i), format!("{text:?} is not HOST:IP")),
                    }
                }
            }
            other => self.g.refuse(
                path,
                format!("must be a list or a mapping, found {}", kind(other)),
            ),
        }
        out
    }

    /// `network_mode`, `pid`, `ipc` and `uts`: only what keeps the task in its own namespaces.
    fn namespaces(&mut self, s: &Map<String, Value>, path: &str) {
        if let Some(mode) = s.get("network_mode").and_then(scalar_text) {
            let here = join(path, "network_mode");
            match mode.as_str() {
                "" | "bridge" | "default" => {}
                "host" => self.g.refuse(here, "a task never shares the host's network: publish its ports instead"),
                "none" => self.g.refuse(
                    here,
                    "network_mode none for one service: the services of a file share one network (set `network: {mode: none}` in a job file for a job without one)",
                ),
                m if m.starts_with("service:") || m.starts_with("container:") => self.g.refuse(
                    here,
                    format!("{m}: tasks do not share one network namespace; they reach each other by name on the instance's network, so drop network_mode and use the service's name instead of localhost"),
                ),
                m => self.g.refuse(here, format!("{m:?}: every task joins its instance's own network; drop network_mode")),
            }
        }
        for (k, what) in [("pid", "process"), ("ipc", "IPC"), ("uts", "UTS")] {
            if let Some(mode) = s.get(k).and_then(scalar_text) {
                let fine =
                    mode.is_empty() || (k == "ipc" && (mode == "private" || mode == "shareable"));
                if !fine {
                    self.g.refuse(
                        join(path, k),
                        format!(
                            "{mode:?}: a task never shares another's or the host's {what} namespace"
                        ),
                    );
                }
            }
        }
    }

    /// The task's resources, and whether they were defaulted (the service set none).
    fn resources(&mut self, s: &Map<String, Value>, path: &str) -> (Map<String, Value>, bool) {
        let r = s.get("deploy").and_then(|d| d.get("resources"));
        let limits = r.and_then(|r| r.get("limits"));
        let reservations = r.and_then(|r| r.get("reservations"));
        let res_path = join(&join(path, "deploy"), "resources");
        let pick = |k: &str, top: &[&str]| -> Option<(String, Value)> {
            if let Some(v) = limits.and_then(|l| l.get(k)) {
                return Some((join(&join(&res_path, "limits"), k), v.clone()));
            }
            if let Some(v) = reservations.and_then(|l| l.get(k)) {
                return Some((join(&join(&res_path, "reservations"), k), v.clone()));
            }
            top.iter()
                .find_map(|t| s.get(*t).map(|v| (join(path, t), v.clone())))
        };
        let (dcpu, dmem) = self.default_resources();
        let mut out = Map::new();
        let cpu = pick("cpus", &["cpus"]);
        let memory = pick("memory", &["mem_limit", "mem_reservation"]);
        let defaulted = cpu.is_none() && memory.is_none();
        match cpu {
            Some((p, v)) => match parse_cpus(&scalar_text(&v).unwrap_or_default()) {
                Ok(m) => {
                    out.insert("cpu".into(), Value::String(format!("{m}m")));
                }
                Err(e) => self.g.refuse(p, e),
            },
            None => {
                out.insert("cpu".into(), Value::String(dcpu));
            }
        }
        match memory {
            Some((p, v)) => match parse_bytes(&scalar_text(&v).unwrap_or_default()) {
                Ok(b) => {
                    out.insert("memory".into(), Value::String(format_bytes(b)));
                }
                Err(e) => self.g.refuse(p, e),
            },
            None => {
                out.insert("memory".into(), Value::String(dmem));
            }
        }
        let pids = limits
            .and_then(|l| l.get("pids"))
            .map(|v| (join(&join(&res_path, "limits"), "pids"), v))
            .or_else(|| s.get("pids_limit").map(|v| (join(path, "pids_limit"), v)));
        if let Some((p, v)) = pids {
            match v.as_i64() {
                Some(n) if n > 0 => {
                    out.insert("pids".into(), json!(n));
                }
                // -1 and 0 mean "no limit" to Docker: keep Orkestrator's default limit.
                Some(_) => self.g.warn(
                    p,
                    "no limit asked: the task keeps the default limit of 4096 processes",
                ),
                None => self.g.refuse(p, "must be a whole number"),
            }
        }
        (out, defaulted)
    }

    /// `deploy.restart_policy`, else `restart`: Compose's default is `no`.
    fn restart(&mut self, s: &Map<String, Value>, path: &str) -> Option<Value> {
        let backoff = self.backoff();
        let policy = s.get("deploy").and_then(|d| d.get("restart_policy"));
        let (mode, attempts, initial, reset) = if let Some(p) = policy {
            let here = join(&join(path, "deploy"), "restart_policy");
            let cond = p
                .get("condition")
                .and_then(scalar_text)
                .unwrap_or_else(|| "any".into());
            let mode = match cond.as_str() {
                "none" => "never",
                "on-failure" => "on-failure",
                "any" => "always",
                other => {
                    self.g.refuse(
                        join(&here, "condition"),
                        format!("{other:?}: use none, on-failure or any"),
                    );
                    return None;
                }
            };
            let attempts = match p.get("max_attempts") {
                None | Some(Value::Null) => Value::String("unlimited".into()),
                Some(v) => match v.as_u64() {
                    Some(0) => Value::String("unlimited".into()),
                    Some(n) => json!(n),
                    None => {
                        self.g
                            .refuse(join(&here, "max_attempts"), "must be a whole number");
                        return None;
                    }
                },
            };
            let initial = match p.get("delay") {
                Some(v) => duration(self.g, &join(&here, "delay"), v),
                None => None,
            };
            let reset = match p.get("window") {
                Some(v) => duration(self.g, &join(&here, "window"), v),
                None => None,
            };
            (mode, attempts, initial, reset)
        } else {
            let r = s
                .get("restart")
                .and_then(scalar_text)
                .unwrap_or_else(|| "no".into());
            match r.as_str() {
                "no" | "" => ("never", Value::String("unlimited".into()), None, None),
                "always" | "unless-stopped" => {
                    ("always", Value::String("unlimited".into()), None, None)
                }
                "on-failure" => ("on-failure", Value::String("unlimited".into()), None, None),
                other => match other.strip_prefix("on-failure:").map(|n| n.parse::<u64>()) {
                    Some(Ok(n)) => ("on-failure", json!(n), None, None),
                    _ => {
                        self.g.refuse(
                            join(path, "restart"),
                            format!("{other:?}: use no, always, unless-stopped, on-failure or on-failure:N"),
                        );
                        return None;
                    }
                },
            }
        };
        let initial = initial.unwrap_or(backoff.0);
        let max = backoff.1.max(initial);
        let reset = reset.unwrap_or(backoff.2);
        let mut r = json!({
            "policy": mode,
            "backoff": {"initial": dur(initial), "max": dur(max), "reset_after": dur(reset)},
        });
        if mode != "never" {
            r["max_attempts"] = attempts;
        }
        Some(r)
    }

    /// Restart delays: `x-orkestrator.backoff`, else Docker's own.
    fn backoff(&mut self) -> (Duration, Duration, Duration) {
        let b = self.x.get("backoff").cloned();
        let mut get = |k: &str, d: Duration| -> Duration {
            match b.as_ref().and_then(|b| b.get(k)) {
                Some(v) => duration(self.g, &format!("x-orkestrator.backoff.{k}"), v).unwrap_or(d),
                None => d,
            }
        };
        (
            get("initial", RESTART_INITIAL),
            get("max", RESTART_MAX),
            get("reset_after", RESTART_RESET),
        )
    }

    /// The health check: the service's, or its image's when it has none.
    fn health(&mut self, s: &Map<String, Value>, path: &str, image: Option<&str>) -> Option<Value> {
        let here = join(path, "healthcheck");
        let h = s.get("healthcheck").and_then(Value::as_object);
        if h.and_then(|h| h.get("disable")) == Some(&Value::Bool(true)) {
            return None;
        }
        let image_health = image
            .and_then(|i| self.opts.image_healthchecks.get(i))
            .copied();
        let probe = match h.and_then(|h| h.get("test")) {
            None | Some(Value::Null) => match image_health {
                Some(_) => json!(true),
                None => {
                    if h.is_some_and(|h| !h.is_empty()) {
                        self.g.warn(
                            here,
                            "no test, and the image has no HEALTHCHECK known here: the service has no health check",
                        );
                    }
                    return None;
                }
            },
            Some(Value::String(cmd)) => json!(["sh", "-c", cmd]),
            Some(Value::Array(items)) => {
                let words: Vec<String> = items.iter().filter_map(scalar_text).collect();
                match words.split_first() {
                    Some((first, _)) if first == "NONE" => return None,
                    Some((first, rest)) if first == "CMD" && !rest.is_empty() => json!(rest),
                    Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => {
                        json!(["sh", "-c", rest.join(" ")])
                    }
                    _ => {
                        self.g.refuse(
                            join(&here, "test"),
                            "a test list starts with CMD, CMD-SHELL or NONE, then the command",
                        );
                        return None;
                    }
                }
            }
            Some(other) => {
                self.g.refuse(
                    join(&here, "test"),
                    format!("must be a string or a list, found {}", kind(other)),
                );
                return None;
            }
        };
        let is_image = probe == json!(true);
        let ih = image_health.unwrap_or_default();
        let mut time = |k: &str, from_image: Option<Duration>, default: Duration| -> Duration {
            match h.and_then(|h| h.get(k)) {
                Some(v) => duration(self.g, &join(&here, k), v).unwrap_or(default),
                None if is_image => from_image.unwrap_or(default),
                None => default,
            }
        };
        let interval = time("interval", ih.interval, DOCKER_INTERVAL);
        let mut timeout = time("timeout", ih.timeout, DOCKER_TIMEOUT);
        let start_period = time("start_period", ih.start_period, Duration::ZERO);
        if timeout > interval {
            // Said at the key written, or at the service when the timings are the image's
            // or Docker's defaults.
            let at = match h {
                Some(h) if h.contains_key("timeout") => join(&here, "timeout"),
                Some(h) if h.contains_key("interval") => join(&here, "interval"),
                _ => path.to_owned(),
            };
            self.g.warn(
                at,
                format!(
                    "the health check's timeout ({}) is longer than its interval ({}): clamped to it",
                    super::text::units::format_duration(timeout),
                    super::text::units::format_duration(interval)
                ),
            );
            timeout = interval;
        }
        let retries = match h.and_then(|h| h.get("retries")) {
            Some(v) => v.as_u64().unwrap_or_else(|| {
                self.g
                    .refuse(join(&here, "retries"), "must be a whole number");
                DOCKER_RETRIES
            }),
            None if is_image => ih.retries.map_or(DOCKER_RETRIES, u64::from),
            None => DOCKER_RETRIES,
        };
        let mut out = json!({
            "interval": dur(interval),
            "timeout": dur(timeout),
            "failures": retries.max(1),
        });
        if !start_period.is_zero() {
            out["start_period"] = dur(start_period);
        }
        if is_image {
            out["image"] = Value::Bool(true);
        } else {
            out["exec"] = probe;
        }
        Some(out)
    }

    fn depends_on(&mut self, path: &str, v: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        let deps = match v {
            Value::Array(_) => merge::as_mapping(v)
                .into_iter()
                .map(|(k, _)| (k, json!({"condition": "service_started"})))
                .collect(),
            Value::Object(m) => m.clone(),
            other => {
                self.g.refuse(
                    path,
                    format!("must be a list or a mapping, found {}", kind(other)),
                );
                return out;
            }
        };
        for (dep, spec) in deps {
            let here = join(path, &dep);
            let required = spec.get("required") != Some(&Value::Bool(false));
            let Some(task) = self.names.get(&dep) else {
                if required {
                    self.g.refuse(
                        here,
                        format!(
                            "no service {dep} runs in this project (is it in an inactive profile?)"
                        ),
                    );
                } else {
                    self.g.warn(
                        here,
                        format!("{dep} is not in the project, and not required: not waited for"),
                    );
                }
                continue;
            };
            let cond = spec
                .get("condition")
                .and_then(scalar_text)
                .unwrap_or_else(|| "service_started".into());
            let mapped = match cond.as_str() {
                "service_started" => "started",
                "service_healthy" => "healthy",
                "service_completed_successfully" => "completed_successfully",
                other => {
                    self.g.refuse(
                        join(&here, "condition"),
                        format!("{other:?}: use service_started, service_healthy or service_completed_successfully"),
                    );
                    continue;
                }
            };
            out.insert(task.clone(), json!({"condition": mapped}));
        }
        out
    }

    /// The names the task answers to besides its task name: the service's own name when it is
    /// not a valid task name, `container_name`, `hostname` and `networks.*.aliases`.
    fn aliases(&mut self, name: &str, s: &Map<String, Value>, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        out.push(name.to_owned());
        for k in ["container_name", "hostname"] {
            if let Some(v) = s.get(k).and_then(scalar_text) {
                out.push(v);
            }
        }
        if let Some(Value::Object(nets)) = s.get("networks") {
            for (net, spec) in nets {
                if let Some(a) = spec.get("aliases") {
                    let here = join(&join(&join(path, "networks"), net), "aliases");
                    match a {
                        Value::Array(items) => out.extend(items.iter().filter_map(scalar_text)),
                        other => self
                            .g
                            .refuse(here, format!("must be a list, found {}", kind(other))),
                    }
                }
            }
        }
        self.clean_aliases(out)
    }

    /// Aliases without duplicates and without task names (which every task has already).
    fn clean_aliases(&self, all: Vec<String>) -> Vec<String> {
        let tasks: Vec<&String> = self.names.values().collect();
        let mut out: Vec<String> = Vec::new();
        for a in all {
            if !a.is_empty() && !tasks.contains(&&a) && !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// `links: [db:database]` gives the linked task (`db`) the alias `database`.
    pub(crate) fn link_aliases(&mut self, tasks: &mut [Value]) {
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, s) in super::parts::services(self.project) {
            let Some(links) = s.get("links") else {
                continue;
            };
            for (i, l) in merge::as_list(links).iter().enumerate() {
                let text = scalar_text(l).unwrap_or_default();
                let (svc, alias) = text.split_once(':').unwrap_or((&text, &text));
                match self.names.get(svc) {
                    Some(task) => extra
                        .entry(task.clone())
                        .or_default()
                        .push(alias.to_owned()),
                    None => self.g.refuse(
                        index(&join(&join("services", name), "links"), i),
                        format!("no service {svc} in this project to link to"),
                    ),
                }
            }
        }
        for t in tasks.iter_mut() {
            let Some(name) = t.get("name").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let Some(more) = extra.remove(&name) else {
                continue;
            };
            let mut all: Vec<String> = t
                .get("aliases")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(scalar_text)
                .collect();
            all.extend(more);
            let all = self.clean_aliases(all);
            if !all.is_empty() {
                t["aliases"] = json!(all);
            }
        }
    }

    /// `deploy`: the replicas, and the placement constraints gathered for the job.
    fn deploy(&mut self, s: &Map<String, Value>, path: &str) -> Option<u64> {
        // `scale` is the older spelling of `deploy.replicas`, which wins.
        let scale = match s.get("scale") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.g.refuse(join(path, "scale"), "must be a whole number");
                    None
                }
            },
        };
        let Some(d) = s.get("deploy") else {
            return scale;
        };
        let here = join(path, "deploy");
        if let Some(mode) = d.get("mode").and_then(scalar_text)
            && mode != "replicated"
        {
            self.g.refuse(
                join(&here, "mode"),
                format!("{mode:?}: one instance per worker is not supported; set deploy.replicas"),
            );
        }
        if let Some(Value::Array(cs)) = d.get("placement").and_then(|p| p.get("constraints")) {
            let cpath = join(&join(&here, "placement"), "constraints");
            for (i, c) in cs.iter().enumerate() {
                let text = scalar_text(c).unwrap_or_default();
                let (key, op, value) = if let Some((k, v)) = text.split_once("==") {
                    (k.trim(), "equals", v.trim())
                } else if let Some((k, v)) = text.split_once("!=") {
                    (k.trim(), "not_equals", v.trim())
                } else {
                    self.g.refuse(
                        index(&cpath, i),
                        format!("{text:?} is not KEY==VALUE or KEY!=VALUE"),
                    );
                    continue;
                };
                let Some(label) = key.strip_prefix("node.labels.") else {
                    self.g.refuse(
                        index(&cpath, i),
                        format!("{key}: only node.labels.KEY constraints carry over (workers have labels: worker --label KEY=VALUE)"),
                    );
                    continue;
                };
                let c = json!({"label": label, op: value});
                if !self.g.constraints.contains(&c) {
                    self.g.origins.add(
                        format!("constraints[{}]", self.g.constraints.len()),
                        index(&cpath, i),
                    );
                    self.g.constraints.push(c);
                }
            }
        }
        match d.get("replicas") {
            None | Some(Value::Null) => scale,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.g
                        .refuse(join(&here, "replicas"), "must be a whole number");
                    None
                }
            },
        }
    }
}

fn strings(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), Value::String(scalar_text(v).unwrap_or_default())))
        .collect()
}
