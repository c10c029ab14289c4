//! A container spec as the engine's create request: limits, ports, labels, and the security
//! options every container gets; and the image reference to pull.

use std::collections::HashMap;

use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountTmpfsOptions,
    MountType, NetworkingConfig, PortBinding, PortMap,
};
use orkestrator_core::runtime::{ContainerNetwork, ContainerSpec, EngineHealthCheck, MountSource};
use orkestrator_core::spec::{MIN_CPU, PortMapping};
use orkestrator_core::units::Cpu;

/// The image reference to pull: a reference without tag or digest means `:latest` (the engine
/// would otherwise pull every tag).
pub(super) fn pull_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The security option every container is created with.
const NO_NEW_PRIVILEGES: &str = "no-new-privileges:true";

/// The engine's request body for `spec`.
pub(super) fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let memory = spec.resources.memory.bytes();
    let host_config = HostConfig {
        nano_cpus: nano_cpus(spec.resources.cpu),
        memory: (memory > 0).then(|| to_i64(memory)),
        // Memory + swap = memory: no swap at all.
        memory_swap: (memory > 0).then(|| to_i64(memory)),
        port_bindings: Some(port_bindings(&spec.ports)).filter(|p| !p.is_empty()),
        // Safe by default: never privileged, and no process may gain privileges it was not
        // started with (setuid binaries, file capabilities).
        privileged: Some(false),
        security_opt: Some(vec![NO_NEW_PRIVILEGES.to_owned()]),
        pids_limit: (spec.pids_limit > 0).then(|| i64::from(spec.pids_limit)),
        readonly_rootfs: Some(spec.read_only),
        init: Some(spec.init),
        network_mode: network_mode(&spec.network),
        mounts: Some(mounts(spec)).filter(|m| !m.is_empty()),
        shm_size: spec.shm_size.map(|s| to_i64(s.bytes())),
        extra_hosts: Some(extra_hosts(spec)).filter(|h| !h.is_empty()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        exposed_ports: (!spec.ports.is_empty()).then(|| exposed_ports(&spec.ports)),
        user: spec.user.clone(),
        entrypoint: spec.entrypoint.clone(),
        working_dir: spec.working_dir.clone(),
        stop_signal: spec.stop_signal.clone(),
        host_config: Some(host_config),
        networking_config: networking_config(&spec.network),
        healthcheck: spec.engine_health_check.as_ref().map(healthcheck),
        ..Default::default()
    }
}

/// `/etc/hosts` entries as the engine takes them: `name:address` (split at the first colon, so
/// an IPv6 address needs no brackets); `host-gateway` is the engine's own word.
fn extra_hosts(spec: &ContainerSpec) -> Vec<String> {
    spec.extra_hosts
        .iter()
        .map(|(name, addr)| format!("{name}:{addr}"))
        .collect()
}

/// The image's own health check with the task's timing: an empty test inherits the image's, and
/// the engine takes each other field from the image where it is zero.
fn healthcheck(h: &EngineHealthCheck) -> HealthConfig {
    let nanos = |d: Duration| to_i64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    HealthConfig {
        test: Some(Vec::new()),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(nanos(h.start_period)),
        // API 1.44; an API 1.41 engine would not know it.
        start_interval: None,
    }
}

/// The engine's network mode: the instance's network by name, `none`, or the engine's default.
fn network_mode(network: &ContainerNetwork) -> Option<String> {
    match network {
        ContainerNetwork::Default => None,
        ContainerNetwork::None => Some("none".to_owned()),
        ContainerNetwork::Named { name, .. } => Some(name.clone()),
    }
}

/// The container's endpoint on a named network, with the names it answers to there.
fn networking_config(network: &ContainerNetwork) -> Option<NetworkingConfig> {
    let ContainerNetwork::Named { name, aliases } = network else {
        return None;
    };
    let endpoint = EndpointSettings {
        aliases: Some(aliases.clone()).filter(|a| !a.is_empty()),
        ..Default::default()
    };
    Some(NetworkingConfig {
        endpoints_config: Some(HashMap::from([(name.clone(), endpoint)])),
    })
}

/// The engine's mounts: the worker's own files and directories (never a path from a job file),
/// named volumes, and tmpfs.
fn mounts(spec: &ContainerSpec) -> Vec<Mount> {
    spec.mounts
        .iter()
        .map(|m| {
            let mut mount = Mount {
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                ..Default::default()
            };
            match &m.source {
                MountSource::Bind(path) => {
                    mount.typ = Some(MountType::BIND);
                    mount.source = Some(path.to_string_lossy().into_owned());
                }
                MountSource::Volume(name) => {
                    mount.typ = Some(MountType::VOLUME);
                    mount.source = Some(name.clone());
                }
                MountSource::Tmpfs { size_bytes, mode } => {
                    mount.typ = Some(MountType::TMPFS);
                    mount.tmpfs_options = Some(MountTmpfsOptions {
                        size_bytes: Some(to_i64(*size_bytes)),
                        mode: mode.map(i64::from),
                        ..Default::default()
                    });
                }
            }
            mount
        })
        .collect()
}

/// The engine's CPU limit for `cpu`: none for zero, and never under [`MIN_CPU`], which the kernel
/// refuses (its smallest CFS quota is 1 ms per 100 ms period, and the container would never start).
/// New submissions cannot ask for less; a spec stored before that rule existed can.
fn nano_cpus(cpu: Cpu) -> Option<i64> {
    let millis = cpu.millis();
    (millis > 0).then(|| to_i64(millis.max(MIN_CPU.millis()).saturating_mul(1_000_000)))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn port_key(p: &PortMapping) -> String {
    format!("{}/{}", p.container, p.protocol.as_str())
}

fn exposed_ports(ports: &[PortMapping]) -> Vec<String> {
    let mut keys: Vec<String> = ports.iter().map(port_key).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Published ports: `container/proto` → host ports on the port's `host_ip`, or every IPv4
/// address.
fn port_bindings(ports: &[PortMapping]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        let Some(host) = p.host else { continue };
        let bindings = map.entry(port_key(p)).or_insert_with(|| Some(Vec::new()));
        bindings.get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: Some(
                p.host_ip
                    .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
            ),
            host_port: Some(host.to_string()),
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orkestrator_core::spec::{Protocol, Resources};
    use orkestrator_core::units::ByteSize;

    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web-1".into(),
            image: "busybox:1.36".into(),
            command: vec!["sleep".into(), "10".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            ports: vec![
                PortMapping {
                    container: 80,
                    host: Some(8080),
                    protocol: Protocol::Tcp,
                    host_ip: None,
                },
                PortMapping {
                    container: 80,
                    host: Some(8081),
                    protocol: Protocol::Tcp,
                    host_ip: None,
                },
                PortMapping {
                    container: 53,
                    host: Some(5353),
                    protocol: Protocol::Udp,
                    host_ip: Some("::1".parse().unwrap()),
                },
                PortMapping {
                    container: 9000,
                    host: None,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                },
            ],
            resources: Resources {
                cpu: Cpu::from_millis(250),
                memory: ByteSize::mib(64),
                disk: ByteSize::mib(10),
            },
            labels: BTreeMap::from([("orkestrator.job".into(), "web".into())]),
            pids_limit: 4096,
            user: None,
            read_only: false,
            ..Default::default()
        }
    }

    #[test]
    fn create_body_is_unprivileged_with_a_pid_limit() {
        let body = create_body(&spec());
        assert!(body.user.is_none());
        let hc = body.host_config.unwrap();
        assert_eq!(hc.privileged, Some(false));
        assert_eq!(hc.security_opt.unwrap(), ["no-new-privileges:true"]);
        assert_eq!(hc.pids_limit, Some(4096));
        assert_eq!(hc.readonly_rootfs, Some(false));

        let mut s = spec();
        s.pids_limit = 50;
        s.user = Some("1000:1000".into());
        s.read_only = true;
        let body = create_body(&s);
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.pids_limit, Some(50));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.security_opt.unwrap(), ["no-new-privileges:true"]);
    }

    #[test]
    fn create_body_applies_limits_ports_env_labels() {
        let body = create_body(&spec());
        let hc = body.host_config.unwrap();
        assert_eq!(hc.nano_cpus, Some(250_000_000));
        assert_eq!(hc.memory, Some(64 * 1024 * 1024));
        assert_eq!(hc.memory_swap, hc.memory);
        let pb = hc.port_bindings.unwrap();
        let tcp80 = pb["80/tcp"].as_ref().unwrap();
        assert_eq!(tcp80.len(), 2);
        assert_eq!(tcp80[0].host_ip.as_deref(), Some("0.0.0.0"));
        assert_eq!(tcp80[1].host_port.as_deref(), Some("8081"));
        assert_eq!(
            pb["53/udp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("5353")
        );
        assert_eq!(
            pb["53/udp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("::1"),
            "a port's host_ip is where it is published"
        );
        assert!(
            !pb.contains_key("9000/tcp"),
            "unpublished ports are not bound"
        );
        assert_eq!(
            body.exposed_ports.unwrap(),
            vec!["53/udp", "80/tcp", "9000/tcp"]
        );
        assert_eq!(body.env.unwrap(), vec!["A=1"]);
        assert_eq!(body.labels.unwrap()["orkestrator.job"], "web");
        assert_eq!(body.cmd.unwrap(), vec!["sleep", "10"]);
    }

    #[test]
    fn create_body_carries_entrypoint_signal_init_network_and_mounts() {
        let mut s = spec();
        let body = create_body(&s);
        assert!(body.entrypoint.is_none() && body.working_dir.is_none());
        assert!(body.stop_signal.is_none() && body.networking_config.is_none());
        let hc = body.host_config.unwrap();
        assert_eq!(hc.init, Some(false));
        assert!(hc.network_mode.is_none() && hc.mounts.is_none());

        s.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
        s.working_dir = Some("/srv".into());
        s.stop_signal = Some("SIGINT".into());
        s.init = true;
        s.network = ContainerNetwork::Named {
            name: "ork-w1-i1".into(),
            aliases: vec!["db".into()],
        };
        s.mounts = vec![
            orkestrator_core::runtime::Mount::bind(
                "/var/lib/ork/files/i1/db/0",
                "/etc/app.conf",
                true,
            ),
            orkestrator_core::runtime::Mount {
                source: MountSource::Volume("ork-w1-db-0-data".into()),
                target: "/var/lib/db".into(),
                read_only: false,
            },
            orkestrator_core::runtime::Mount {
                source: MountSource::Tmpfs {
                    size_bytes: 64 << 20,
                    mode: Some(0o1777),
                },
                target: "/cache".into(),
                read_only: false,
            },
        ];
        let body = create_body(&s);
        assert_eq!(body.entrypoint.unwrap(), ["/bin/sh", "-c"]);
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["ork-w1-i1"].aliases.as_deref(),
            Some(&["db".to_owned()][..])
        );
        let hc = body.host_config.unwrap();
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.network_mode.as_deref(), Some("ork-w1-i1"));
        let mounts = hc.mounts.unwrap();
        let m = &mounts[0];
        assert_eq!(m.typ, Some(MountType::BIND));
        assert_eq!(m.read_only, Some(true));
        assert_eq!(m.target.as_deref(), Some("/etc/app.conf"));
        assert_eq!(mounts[1].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[1].source.as_deref(), Some("ork-w1-db-0-data"));
        assert_eq!(mounts[1].read_only, Some(false));
        assert_eq!(mounts[2].typ, Some(MountType::TMPFS));
        let tmpfs = mounts[2].tmpfs_options.as_ref().unwrap();
        assert_eq!(
            (tmpfs.size_bytes, tmpfs.mode),
            (Some(64 << 20), Some(0o1777))
        );
        // Nothing an API 1.41 engine would not know.
        let json = serde_json::to_value(&mounts[2]).unwrap();
        assert!(json["TmpfsOptions"].get("Options").is_none(), "{json}");
        assert_eq!(hc.privileged, Some(false), "still never privileged");

        s.network = ContainerNetwork::None;
        let body = create_body(&s);
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("none")
        );
        assert!(body.networking_config.is_none());
    }

    #[test]
    fn create_body_carries_shm_extra_hosts_and_the_images_health_check() {
        let body = create_body(&spec());
        assert!(
            body.healthcheck.is_none(),
            "no check of the engine's unless asked"
        );
        let hc = body.host_config.unwrap();
        assert!(hc.shm_size.is_none() && hc.extra_hosts.is_none());

        let mut s = spec();
        s.shm_size = Some(ByteSize::mib(64));
        s.extra_hosts = BTreeMap::from([
            ("db.local".into(), "10.0.0.5".into()),
            ("gw".into(), "host-gateway".into()),
            ("v6".into(), "fd00::5".into()),
        ]);
        s.engine_health_check = Some(EngineHealthCheck {
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            retries: 3,
            start_period: Duration::ZERO,
        });
        let body = create_body(&s);
        let h = body.healthcheck.unwrap();
        assert_eq!(h.test, Some(vec![]), "an empty test inherits the image's");
        assert_eq!(h.interval, Some(2_000_000_000));
        assert_eq!(h.timeout, Some(500_000_000));
        assert_eq!(h.retries, Some(3));
        assert_eq!(h.start_period, Some(0));
        let json = serde_json::to_value(&h).unwrap();
        assert!(json.get("StartInterval").is_none(), "API 1.41: {json}");
        assert_eq!(json["Test"], serde_json::json!([]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.shm_size, Some(64 << 20));
        assert_eq!(
            hc.extra_hosts.unwrap(),
            ["db.local:10.0.0.5", "gw:host-gateway", "v6:fd00::5"]
        );
    }

    #[test]
    fn cpu_limits_are_never_below_what_the_kernel_accepts() {
        // Regression: a stored spec with cpu 1m became NanoCpus 1_000_000, and runc refused it
        // (`cpu.cfs_quota_us: invalid argument`): the smallest limit is 0.01 CPU.
        assert_eq!(nano_cpus(Cpu::ZERO), None, "zero is no limit");
        for millis in [1, 5, 9] {
            assert_eq!(
                nano_cpus(Cpu::from_millis(millis)),
                Some(10_000_000),
                "{millis}m"
            );
        }
        assert_eq!(nano_cpus(Cpu::from_millis(10)), Some(10_000_000));
        assert_eq!(nano_cpus(Cpu::from_millis(11)), Some(11_000_000));
        assert_eq!(nano_cpus(Cpu::from_cores(2)), Some(2_000_000_000));
        assert_eq!(nano_cpus(Cpu::from_millis(u64::MAX)), Some(i64::MAX));
        let mut s = spec();
        s.resources.cpu = Cpu::from_millis(1);
        assert_eq!(
            create_body(&s).host_config.unwrap().nano_cpus,
            Some(10_000_000)
        );
    }

    #[test]
    fn create_body_without_limits_or_command() {
        let mut s = spec();
        s.command.clear();
        s.ports.clear();
        s.resources = Resources::ZERO;
        let body = create_body(&s);
        assert!(body.cmd.is_none());
        assert!(body.exposed_ports.is_none());
        let hc = body.host_config.unwrap();
        assert!(hc.nano_cpus.is_none() && hc.memory.is_none() && hc.memory_swap.is_none());
        assert!(hc.port_bindings.is_none());
    }

    #[test]
    fn pull_reference_defaults_to_latest() {
        assert_eq!(pull_reference("busybox"), "busybox:latest");
        assert_eq!(pull_reference("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            pull_reference("registry:5000/app"),
            "registry:5000/app:latest"
        );
        assert_eq!(
            pull_reference("registry:5000/app:v1"),
            "registry:5000/app:v1"
        );
        assert_eq!(pull_reference("app@sha256:abc"), "app@sha256:abc");
    }
}
