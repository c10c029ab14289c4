//! Every key a Compose file may hold, and what becomes of it: the table the converter walks
//! and the README prints, so that no key is ever dropped silently.

use serde_json::Value;

use super::yaml::join;

/// What becomes of one key of a Compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Carried over into the job; its sub-keys are looked up in the table in turn.
    Mapped,
    /// Carried over into the job; what is below it is the user's data (names, values), not
    /// keys.
    Data,
    /// Not carried over: the conversion warns, saying why (`--strict` makes it an error).
    Warned(&'static str),
    /// Not carried over, and the file is refused, with the reason: it would break the security
    /// model or the application. A value that asks for nothing (`false`, an empty list) is let
    /// through.
    Refused(&'static str),
}

use Disposition::{Data, Mapped, Refused, Warned};

const RESOURCES_ONLY: &str =
    "ignored: a task's CPU and memory come from `deploy.resources`, `cpus` and `mem_limit`";
const NO_TERMINAL: &str = "ignored: tasks run without a terminal or standard input";
const DNS_BY_WORKER: &str = "ignored: tasks resolve each other by name on the instance's network, and the host's resolvers otherwise";
const BUILD_CLASSIC: &str = "ignored: images are built by the engine's classic builder from context, dockerfile, target and args";
const SECURITY: &str = "it would break the security model: tasks never get extra privileges, devices or host namespaces";
const SWARM_ONLY: &str = "ignored: a swarm setting with no equivalent here";

/// Every key pattern, with what becomes of it. A pattern's `*` stands for any one key (a
/// service's name, a volume's name); list items take the pattern of their list
/// (`services.*.volumes.bind` is a key of an item of `services.NAME.volumes`).
pub const KEYS: &[(&str, Disposition)] = &[
    (
        "version",
        Warned("ignored: the Compose Specification has no file versions"),
    ),
    ("name", Mapped),
    (
        "include",
        Refused("`include` is not supported: pass each file with `-f`"),
    ),
    ("services", Mapped),
    ("services.*", Mapped),
    // Image and process.
    ("services.*.image", Mapped),
    ("services.*.build", Mapped),
    ("services.*.build.context", Mapped),
    ("services.*.build.dockerfile", Mapped),
    ("services.*.build.target", Mapped),
    ("services.*.build.args", Data),
    (
        "services.*.build.dockerfile_inline",
        Refused("write the Dockerfile into the build context and name it with `dockerfile`"),
    ),
    ("services.*.build.cache_from", Warned(BUILD_CLASSIC)),
    ("services.*.build.cache_to", Warned(BUILD_CLASSIC)),
    ("services.*.build.labels", Warned(BUILD_CLASSIC)),
    ("services.*.build.network", Warned(BUILD_CLASSIC)),
    ("services.*.build.shm_size", Warned(BUILD_CLASSIC)),
    ("services.*.build.extra_hosts", Warned(BUILD_CLASSIC)),
    ("services.*.build.isolation", Warned(BUILD_CLASSIC)),
    ("services.*.build.platforms", Warned(BUILD_CLASSIC)),
    ("services.*.build.tags", Warned(BUILD_CLASSIC)),
    ("services.*.build.pull", Warned(BUILD_CLASSIC)),
    ("services.*.build.no_cache", Warned(BUILD_CLASSIC)),
    (
        "services.*.build.ssh",
        Refused("build-time SSH agents need BuildKit, which engine 20.10's classic builder lacks"),
    ),
    (
        "services.*.build.secrets",
        Refused("build secrets need BuildKit, which engine 20.10's classic builder lacks"),
    ),
    ("services.*.build.privileged", Refused(SECURITY)),
    ("services.*.build.entitlements", Refused(SECURITY)),
    (
        "services.*.build.additional_contexts",
        Refused(
            "additional build contexts need BuildKit, which engine 20.10's classic builder lacks",
        ),
    ),
    ("services.*.command", Mapped),
    ("services.*.entrypoint", Mapped),
    ("services.*.environment", Data),
    ("services.*.env_file", Data),
    ("services.*.working_dir", Mapped),
    ("services.*.user", Mapped),
    ("services.*.init", Mapped),
    ("services.*.read_only", Mapped),
    ("services.*.stop_signal", Mapped),
    ("services.*.stop_grace_period", Mapped),
    ("services.*.labels", Data),
    ("services.*.shm_size", Mapped),
    ("services.*.extra_hosts", Data),
    ("services.*.profiles", Mapped),
    ("services.*.extends", Mapped),
    ("services.*.extends.service", Mapped),
    ("services.*.extends.file", Mapped),
    (
        "services.*.pull_policy",
        Warned("ignored: a worker pulls an image it does not have, and never pulls one it has"),
    ),
    (
        "services.*.platform",
        Warned("ignored: a worker runs its engine's own platform"),
    ),
    (
        "services.*.develop",
        Warned(
            "ignored: file watching is for `docker compose watch`; run `compose up` again after a change",
        ),
    ),
    (
        "services.*.post_start",
        Warned(
            "ignored: lifecycle hooks do not run; put the step in the command or an init service",
        ),
    ),
    (
        "services.*.pre_stop",
        Warned(
            "ignored: lifecycle hooks do not run; a task gets its stop signal, then `stop_grace_period`",
        ),
    ),
    (
        "services.*.label_file",
        Warned("ignored: write the labels under `labels`"),
    ),
    ("services.*.scale", Mapped),
    (
        "services.*.provider",
        Refused("provider services run outside any container and cannot be carried over"),
    ),
    // Names.
    ("services.*.container_name", Mapped),
    ("services.*.hostname", Mapped),
    (
        "services.*.domainname",
        Warned("ignored: tasks are named on their instance's network only"),
    ),
    ("services.*.links", Data),
    (
        "services.*.external_links",
        Warned("ignored: tasks reach only the tasks of their own job by name"),
    ),
    ("services.*.networks", Mapped),
    ("services.*.networks.*", Mapped),
    ("services.*.networks.*.aliases", Mapped),
    (
        "services.*.networks.*.ipv4_address",
        Warned("ignored: the engine chooses addresses on the instance's network"),
    ),
    (
        "services.*.networks.*.ipv6_address",
        Warned("ignored: the engine chooses addresses on the instance's network"),
    ),
    (
        "services.*.networks.*.link_local_ips",
        Warned("ignored: the engine chooses addresses on the instance's network"),
    ),
    (
        "services.*.networks.*.mac_address",
        Warned("ignored: the engine chooses MAC addresses"),
    ),
    (
        "services.*.networks.*.priority",
        Warned("ignored: a task joins one network"),
    ),
    (
        "services.*.networks.*.driver_opts",
        Warned("ignored: a task joins one network"),
    ),
    ("services.*.network_mode", Mapped),
    ("services.*.dns", Warned(DNS_BY_WORKER)),
    ("services.*.dns_search", Warned(DNS_BY_WORKER)),
    ("services.*.dns_opt", Warned(DNS_BY_WORKER)),
    (
        "services.*.mac_address",
        Warned("ignored: the engine chooses MAC addresses"),
    ),
    // Ports.
    ("services.*.ports", Mapped),
    ("services.*.ports.target", Mapped),
    ("services.*.ports.published", Mapped),
    ("services.*.ports.host_ip", Mapped),
    ("services.*.ports.protocol", Mapped),
    ("services.*.ports.mode", Mapped),
    (
        "services.*.ports.name",
        Warned("ignored: ports are named by their number"),
    ),
    (
        "services.*.ports.app_protocol",
        Warned("ignored: ports are named by their number"),
    ),
    ("services.*.expose", Mapped),
    // Restart, health and order.
    ("services.*.restart", Mapped),
    ("services.*.healthcheck", Mapped),
    ("services.*.healthcheck.test", Mapped),
    ("services.*.healthcheck.interval", Mapped),
    ("services.*.healthcheck.timeout", Mapped),
    ("services.*.healthcheck.retries", Mapped),
    ("services.*.healthcheck.start_period", Mapped),
    ("services.*.healthcheck.disable", Mapped),
    (
        "services.*.healthcheck.start_interval",
        Warned(
            "ignored: engine 20.10 has no start_interval; checks run every `interval` from the start",
        ),
    ),
    ("services.*.depends_on", Mapped),
    ("services.*.depends_on.*", Mapped),
    ("services.*.depends_on.*.condition", Mapped),
    ("services.*.depends_on.*.required", Mapped),
    (
        "services.*.depends_on.*.restart",
        Warned("ignored: a task is not restarted when a task it depends on restarts"),
    ),
    // Resources and deploy.
    ("services.*.cpus", Mapped),
    ("services.*.mem_limit", Mapped),
    ("services.*.mem_reservation", Mapped),
    ("services.*.pids_limit", Mapped),
    ("services.*.cpu_count", Warned(RESOURCES_ONLY)),
    ("services.*.cpu_percent", Warned(RESOURCES_ONLY)),
    ("services.*.cpu_shares", Warned(RESOURCES_ONLY)),
    ("services.*.cpu_period", Warned(RESOURCES_ONLY)),
    ("services.*.cpu_quota", Warned(RESOURCES_ONLY)),
    ("services.*.cpu_rt_runtime", Warned(RESOURCES_ONLY)),
    ("services.*.cpu_rt_period", Warned(RESOURCES_ONLY)),
    ("services.*.cpuset", Warned(RESOURCES_ONLY)),
    ("services.*.memswap_limit", Warned(RESOURCES_ONLY)),
    ("services.*.mem_swappiness", Warned(RESOURCES_ONLY)),
    ("services.*.blkio_config", Warned(RESOURCES_ONLY)),
    ("services.*.oom_score_adj", Warned(RESOURCES_ONLY)),
    ("services.*.oom_kill_disable", Warned(RESOURCES_ONLY)),
    ("services.*.storage_opt", Warned(RESOURCES_ONLY)),
    (
        "services.*.ulimits",
        Warned("ignored: tasks run with the engine's default limits, and `pids_limit`"),
    ),
    ("services.*.deploy", Mapped),
    ("services.*.deploy.replicas", Mapped),
    ("services.*.deploy.mode", Mapped),
    ("services.*.deploy.resources", Mapped),
    ("services.*.deploy.resources.limits", Mapped),
    ("services.*.deploy.resources.limits.cpus", Mapped),
    ("services.*.deploy.resources.limits.memory", Mapped),
    ("services.*.deploy.resources.limits.pids", Mapped),
    ("services.*.deploy.resources.reservations", Mapped),
    ("services.*.deploy.resources.reservations.cpus", Mapped),
    ("services.*.deploy.resources.reservations.memory", Mapped),
    (
        "services.*.deploy.resources.reservations.devices",
        Refused(SECURITY),
    ),
    (
        "services.*.deploy.resources.reservations.generic_resources",
        Refused("generic resources are a swarm setting with no equivalent here"),
    ),
    ("services.*.deploy.restart_policy", Mapped),
    ("services.*.deploy.restart_policy.condition", Mapped),
    ("services.*.deploy.restart_policy.delay", Mapped),
    ("services.*.deploy.restart_policy.max_attempts", Mapped),
    ("services.*.deploy.restart_policy.window", Mapped),
    ("services.*.deploy.placement", Mapped),
    ("services.*.deploy.placement.constraints", Mapped),
    (
        "services.*.deploy.placement.preferences",
        Warned("ignored: instances spread across workers by the scheduler"),
    ),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Warned(SWARM_ONLY),
    ),
    ("services.*.deploy.labels", Warned(SWARM_ONLY)),
    ("services.*.deploy.endpoint_mode", Warned(SWARM_ONLY)),
    (
        "services.*.deploy.update_config",
        Warned("ignored: a new version rolls out one instance at a time"),
    ),
    (
        "services.*.deploy.rollback_config",
        Warned("ignored: a new version rolls out one instance at a time"),
    ),
    // Storage.
    ("services.*.volumes", Mapped),
    ("services.*.volumes.type", Mapped),
    ("services.*.volumes.source", Mapped),
    ("services.*.volumes.target", Mapped),
    ("services.*.volumes.read_only", Mapped),
    ("services.*.volumes.bind", Mapped),
    (
        "services.*.volumes.bind.propagation",
        Warned("ignored: mounts never propagate"),
    ),
    (
        "services.*.volumes.bind.create_host_path",
        Warned("ignored: a bind mount is carried as a file, or refused"),
    ),
    (
        "services.*.volumes.bind.selinux",
        Warned("ignored: no SELinux relabelling"),
    ),
    ("services.*.volumes.volume", Mapped),
    (
        "services.*.volumes.volume.nocopy",
        Warned("ignored: a new volume starts empty"),
    ),
    (
        "services.*.volumes.volume.subpath",
        Refused("engine 20.10 cannot mount a volume's subpath"),
    ),
    ("services.*.volumes.tmpfs", Mapped),
    ("services.*.volumes.tmpfs.size", Mapped),
    (
        "services.*.volumes.tmpfs.mode",
        Warned("ignored: a tmpfs is writable by its task"),
    ),
    (
        "services.*.volumes.consistency",
        Warned("ignored: it matters on Docker Desktop only"),
    ),
    ("services.*.tmpfs", Mapped),
    ("services.*.secrets", Mapped),
    ("services.*.secrets.source", Mapped),
    ("services.*.secrets.target", Mapped),
    ("services.*.secrets.mode", Mapped),
    (
        "services.*.secrets.uid",
        Warned("ignored: a secret's file belongs to the task's user"),
    ),
    (
        "services.*.secrets.gid",
        Warned("ignored: a secret's file belongs to the task's user"),
    ),
    ("services.*.configs", Mapped),
    ("services.*.configs.source", Mapped),
    ("services.*.configs.target", Mapped),
    ("services.*.configs.mode", Mapped),
    (
        "services.*.configs.uid",
        Warned("ignored: a config file belongs to root and is readable by all"),
    ),
    (
        "services.*.configs.gid",
        Warned("ignored: a config file belongs to root and is readable by all"),
    ),
    (
        "services.*.volumes_from",
        Refused("tasks share data through a named volume: declare one and mount it in both"),
    ),
    // Everything else of the container.
    (
        "services.*.logging",
        Warned(
            "ignored: logs go to the engine's default driver; read them with `orkestrator logs`",
        ),
    ),
    ("services.*.stdin_open", Warned(NO_TERMINAL)),
    ("services.*.tty", Warned(NO_TERMINAL)),
    (
        "services.*.attach",
        Warned("ignored: follow logs with `orkestrator logs`"),
    ),
    ("services.*.annotations", Warned("ignored: use `labels`")),
    (
        "services.*.cap_drop",
        Warned("ignored: tasks run with the engine's default capabilities and no-new-privileges"),
    ),
    (
        "services.*.group_add",
        Warned("ignored: a task runs as its `user` only"),
    ),
    (
        "services.*.isolation",
        Warned("ignored: it matters on Windows only"),
    ),
    ("services.*.pid", Mapped),
    ("services.*.ipc", Mapped),
    ("services.*.uts", Mapped),
    ("services.*.privileged", Refused(SECURITY)),
    ("services.*.cap_add", Refused(SECURITY)),
    ("services.*.devices", Refused(SECURITY)),
    ("services.*.device_cgroup_rules", Refused(SECURITY)),
    ("services.*.gpus", Refused(SECURITY)),
    ("services.*.sysctls", Refused(SECURITY)),
    ("services.*.security_opt", Refused(SECURITY)),
    ("services.*.userns_mode", Refused(SECURITY)),
    ("services.*.cgroup", Refused(SECURITY)),
    ("services.*.cgroup_parent", Refused(SECURITY)),
    ("services.*.runtime", Refused(SECURITY)),
    ("services.*.credential_spec", Refused(SECURITY)),
    ("services.*.use_api_socket", Refused(SECURITY)),
    // Top-level sections.
    ("volumes", Mapped),
    ("volumes.*", Mapped),
    ("volumes.*.driver", Mapped),
    ("volumes.*.external", Mapped),
    (
        "volumes.*.driver_opts",
        Refused(
            "driver options name host paths or devices; a named volume lives where its worker chooses",
        ),
    ),
    (
        "volumes.*.labels",
        Warned("ignored: the worker labels its volumes itself"),
    ),
    (
        "volumes.*.name",
        Warned("ignored: the worker names volumes ork-WORKER-JOB-INDEX-VOLUME"),
    ),
    ("networks", Mapped),
    (
        "networks.*",
        Warned(
            "every network becomes the instance's one network, so isolation between networks is not kept",
        ),
    ),
    ("secrets", Mapped),
    ("secrets.*", Mapped),
    ("secrets.*.file", Mapped),
    ("secrets.*.environment", Mapped),
    ("secrets.*.external", Mapped),
    ("secrets.*.name", Mapped),
    (
        "secrets.*.labels",
        Warned("ignored: secrets carry no labels"),
    ),
    (
        "secrets.*.driver",
        Refused(
            "secret drivers are swarm's: give the secret a `file`, or create it with `orkestrator secret create`",
        ),
    ),
    (
        "secrets.*.driver_opts",
        Refused(
            "secret drivers are swarm's: give the secret a `file`, or create it with `orkestrator secret create`",
        ),
    ),
    ("secrets.*.template_driver", Warned(SWARM_ONLY)),
    ("configs", Mapped),
    ("configs.*", Mapped),
    ("configs.*.file", Mapped),
    ("configs.*.content", Mapped),
    ("configs.*.environment", Mapped),
    ("configs.*.external", Mapped),
    (
        "configs.*.name",
        Warned("ignored: a config is carried in the job as its content"),
    ),
    (
        "configs.*.labels",
        Warned("ignored: configs carry no labels"),
    ),
    ("configs.*.template_driver", Warned(SWARM_ONLY)),
    ("x-orkestrator", Mapped),
    ("x-orkestrator.count", Mapped),
    ("x-orkestrator.constraints", Data),
    ("x-orkestrator.resources", Mapped),
    ("x-orkestrator.resources.cpu", Mapped),
    ("x-orkestrator.resources.memory", Mapped),
    ("x-orkestrator.backoff", Mapped),
    ("x-orkestrator.backoff.initial", Mapped),
    ("x-orkestrator.backoff.max", Mapped),
    ("x-orkestrator.backoff.reset_after", Mapped),
];

/// What becomes of the key at `path` (`services.web.volumes[1].bind.propagation`): the entry of
/// its own pattern, or of the nearest enclosing key whose children are data, warned or refused.
/// `None` for a key the Compose Specification does not have. Extension keys (`x-...`, at any
/// level but `x-orkestrator`'s own) are the user's data.
pub fn disposition(path: &str) -> Option<Disposition> {
    let segments = segments(path);
    for end in 1..=segments.len() {
        let here = &segments[..end];
        let last = here[end - 1];
        let found = if last.starts_with("x-") && !(end == 1 && last == "x-orkestrator") {
            Some(Data)
        } else {
            KEYS.iter()
                .find(|(pattern, _)| matches(pattern, here))
                .map(|(_, d)| *d)
        };
        match found {
            None => return None,
            Some(d) if end == segments.len() => return Some(d),
            Some(Mapped) => {}
            Some(other) => return Some(other),
        }
    }
    None
}

/// A path's keys, without list indexes: `services.web.volumes[1].bind` is
/// `[services, web, volumes, bind]`. A key holding a `.` (a service named `a.b` cannot be, but
/// a label can) is only ever below a `Data` key, which ends the walk first.
fn segments(path: &str) -> Vec<&str> {
    path.split('.')
        .map(|s| s.find('[').map_or(s, |i| &s[..i]))
        .filter(|s| !s.is_empty())
        .collect()
}

fn matches(pattern: &str, segments: &[&str]) -> bool {
    let mut parts = pattern.split('.');
    for s in segments {
        match parts.next() {
            Some("*") => {}
            Some(p) if p == *s => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// Whether a value asks for anything: `false`, null, `""`, `[]` and `{}` do not (so that
/// `privileged: false` is let through).
pub(crate) fn asks_for_something(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

/// One key's fate, found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Warned, with the reason.
    Warned(String, &'static str),
    /// Refused, with the reason.
    Refused(String, &'static str),
    /// Not a Compose key.
    Unknown(String),
}

/// Walks every key of `doc` (a loaded project) against the table: the warnings and refusals
/// its keys earn, and the keys that are not Compose keys.
pub(crate) fn walk(doc: &Value) -> Vec<Verdict> {
    let mut out = Vec::new();
    walk_at(doc, "", &mut out);
    out
}

fn walk_at(v: &Value, path: &str, out: &mut Vec<Verdict>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = join(path, k);
                match disposition(&here) {
                    None => out.push(Verdict::Unknown(here)),
                    Some(Mapped) => walk_at(child, &here, out),
                    Some(Data) => {}
                    Some(Warned(why)) => out.push(Verdict::Warned(here, why)),
                    Some(Refused(why)) => {
                        if asks_for_something(child) {
                            out.push(Verdict::Refused(here, why));
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_at(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_follow_the_nearest_pattern() {
        assert_eq!(disposition("services.web.image"), Some(Mapped));
        assert_eq!(disposition("services.web.environment.FOO"), Some(Data));
        assert!(matches!(
            disposition("services.web.cap_add"),
            Some(Refused(_))
        ));
        assert!(matches!(
            disposition("services.web.volumes[1].bind.propagation"),
            Some(Warned(_))
        ));
        assert!(matches!(
            disposition("networks.front.driver"),
            Some(Warned(_))
        ));
        assert_eq!(disposition("services.web.imgae"), None);
        assert_eq!(disposition("x-common.anything"), Some(Data));
        assert_eq!(disposition("services.web.x-note"), Some(Data));
        assert_eq!(disposition("x-orkestrator.count"), Some(Mapped));
        assert_eq!(disposition("x-orkestrator.nope"), None);
    }

    #[test]
    fn every_pattern_has_its_parent_mapped() {
        for (pattern, _) in KEYS {
            if let Some((parent, _)) = pattern.rsplit_once('.') {
                let parent_d = KEYS.iter().find(|(p, _)| p == &parent).map(|(_, d)| *d);
                assert_eq!(parent_d, Some(Mapped), "{pattern}: its parent {parent}");
            }
        }
    }

    #[test]
    fn a_refused_key_that_asks_for_nothing_passes() {
        let doc: Value = serde_json::json!({
            "services": {"web": {"image": "a:1", "privileged": false, "cap_add": ["NET_ADMIN"], "tty": true, "imgae": 1}}
        });
        let v = walk(&doc);
        assert!(v.contains(&Verdict::Refused("services.web.cap_add".into(), SECURITY)));
        assert!(
            !v.iter()
                .any(|x| matches!(x, Verdict::Refused(p, _) if p.ends_with("privileged")))
        );
        assert!(v.contains(&Verdict::Warned("services.web.tty".into(), NO_TERMINAL)));
        assert!(v.contains(&Verdict::Unknown("services.web.imgae".into())));
    }
}
