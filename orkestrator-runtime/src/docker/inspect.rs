//! What the engine reports about a container: its state (an inspect answer) and its figures (a
//! stats sample).

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, ContainerStatsResponse};
use orkestrator_core::runtime::{ContainerInfo, ContainerState, ContainerStats};

/// The [`ContainerInfo`] of an inspect answer.
pub(super) fn container_info(r: ContainerInspectResponse, fallback_id: &str) -> ContainerInfo {
    let health = r
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let state = match r.state {
        Some(s) => {
            let status = s.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
            match status {
                ContainerStateStatusEnum::CREATED => ContainerState::Created,
                ContainerStateStatusEnum::RUNNING => ContainerState::Running,
                ContainerStateStatusEnum::EXITED => {
                    let reason = if s.oom_killed == Some(true) {
                        Some("OOMKilled".to_string())
                    } else {
                        s.error.filter(|e| !e.trim().is_empty())
                    };
                    ContainerState::Exited {
                        code: s.exit_code.unwrap_or(-1),
                        reason,
                    }
                }
                other => ContainerState::Other(other.to_string()),
            }
        }
        None => ContainerState::Other("unknown".to_string()),
    };
    ContainerInfo {
        id: r.id.unwrap_or_else(|| fallback_id.to_string()),
        name: r
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        labels: r
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        state,
        health,
    }
}

/// Every figure of one stats sample. CPU in cores is computed as the Docker CLI does, from the
/// sample's pre-sample; a one-shot sample has none, so its `cpu_cores` is 0 (the worker computes
/// it from `cpu_seconds_total` deltas instead). Memory is the working set: usage minus inactive
/// file cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2). Network sums every
/// interface; block I/O sums the `Read` and `Write` entries of `io_service_bytes_recursive` (v1
/// spells them capitalised and adds `Total`, `Sync`, ... entries; v2 writes `read`, `write`).
pub(super) fn container_stats(s: &ContainerStatsResponse) -> ContainerStats {
    let total = |c: &Option<bollard::models::ContainerCpuStats>| {
        c.as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let system = |c: &Option<bollard::models::ContainerCpuStats>| {
        c.as_ref().and_then(|c| c.system_cpu_usage).unwrap_or(0)
    };
    let cpu_delta = total(&s.cpu_stats).saturating_sub(total(&s.precpu_stats));
    let system_delta = system(&s.cpu_stats).saturating_sub(system(&s.precpu_stats));
    let online = s
        .cpu_stats
        .as_ref()
        .and_then(|c| {
            c.online_cpus.map(u64::from).filter(|n| *n > 0).or_else(|| {
                c.cpu_usage
                    .as_ref()
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|p| p.len() as u64)
            })
        })
        .filter(|n| *n > 0)
        .unwrap_or(1);
    // A one-shot sample's pre-sample is empty: no figure rather than an average since boot.
    let presampled = system(&s.precpu_stats) > 0;
    let cpu_cores = if presampled && cpu_delta > 0 && system_delta > 0 {
        cpu_delta as f64 / system_delta as f64 * online as f64
    } else {
        0.0
    };

    let (memory_bytes, memory_limit_bytes) = match &s.memory_stats {
        Some(m) => {
            let usage = m.usage.unwrap_or(0);
            // Page cache that can be reclaimed is not "in use" (cgroup v1 key first, then v2).
            let cache = m.stats.as_ref().and_then(|st| {
                st.get("total_inactive_file")
                    .or_else(|| st.get("inactive_file"))
                    .copied()
            });
            let used = match cache {
                Some(c) if c < usage => usage - c,
                _ => usage,
            };
            (used, m.limit.unwrap_or(0))
        }
        None => (0, 0),
    };
    let (network_rx_bytes, network_tx_bytes) =
        s.networks
            .iter()
            .flat_map(|n| n.values())
            .fold((0u64, 0u64), |(rx, tx), n| {
                (
                    rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                    tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                )
            });
    let (mut block_read_bytes, mut block_write_bytes) = (0u64, 0u64);
    let entries = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref());
    for e in entries.into_iter().flatten() {
        let v = e.value.unwrap_or(0);
        match e.op.as_deref() {
            Some(op) if op.eq_ignore_ascii_case("read") => {
                block_read_bytes = block_read_bytes.saturating_add(v);
            }
            Some(op) if op.eq_ignore_ascii_case("write") => {
                block_write_bytes = block_write_bytes.saturating_add(v);
            }
            _ => {}
        }
    }
    ContainerStats {
        cpu_cores,
        memory_bytes,
        memory_limit_bytes,
        cpu_seconds_total: total(&s.cpu_stats) as f64 / 1e9,
        network_rx_bytes,
        network_tx_bytes,
        block_read_bytes,
        block_write_bytes,
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerConfig, ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats,
        ContainerState as DockerState, Health, HealthStatusEnum,
    };

    use std::collections::HashMap;

    use super::*;

    fn inspected(state: DockerState) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/web-1".into()),
            state: Some(state),
            config: Some(ContainerConfig {
                labels: Some(HashMap::from([("k".to_string(), "v".to_string())])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn inspect_reads_the_engines_health_status() {
        let with = |status: Option<HealthStatusEnum>| {
            container_info(
                inspected(DockerState {
                    status: Some(ContainerStateStatusEnum::RUNNING),
                    health: status.map(|s| Health {
                        status: Some(s),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                "x",
            )
            .health
        };
        assert_eq!(with(None), None, "no check");
        assert_eq!(with(Some(HealthStatusEnum::NONE)), None);
        assert_eq!(with(Some(HealthStatusEnum::EMPTY)), None);
        assert_eq!(
            with(Some(HealthStatusEnum::STARTING)).as_deref(),
            Some("starting")
        );
        assert_eq!(
            with(Some(HealthStatusEnum::HEALTHY)).as_deref(),
            Some("healthy")
        );
        assert_eq!(
            with(Some(HealthStatusEnum::UNHEALTHY)).as_deref(),
            Some("unhealthy")
        );
    }

    #[test]
    fn inspect_maps_states() {
        let running = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::RUNNING),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(running.state, ContainerState::Running);
        assert_eq!(running.name, "web-1");
        assert_eq!(running.label("k"), Some("v"));

        let exited = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(3),
                error: Some(String::new()),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(
            exited.state,
            ContainerState::Exited {
                code: 3,
                reason: None
            }
        );

        let oom = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(137),
                oom_killed: Some(true),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(
            oom.state,
            ContainerState::Exited {
                code: 137,
                reason: Some("OOMKilled".into())
            }
        );

        let failed = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(127),
                error: Some("exec: \"nope\": executable file not found".into()),
                ..Default::default()
            }),
            "x",
        );
        assert!(matches!(
            failed.state,
            ContainerState::Exited { code: 127, reason: Some(ref r) } if r.contains("nope")
        ));

        let paused = container_info(
            inspected(DockerState {
                status: Some(ContainerStateStatusEnum::PAUSED),
                ..Default::default()
            }),
            "x",
        );
        assert_eq!(paused.state, ContainerState::Other("paused".into()));
    }

    #[test]
    fn stats_compute_cores_and_memory_without_cache() {
        let cpu = |total, system| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(4),
            ..Default::default()
        };
        let sample = ContainerStatsResponse {
            precpu_stats: Some(cpu(1_000, 10_000)),
            cpu_stats: Some(cpu(1_500, 12_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10_000),
                limit: Some(64_000),
                stats: Some(HashMap::from([("inactive_file".to_string(), 4_000)])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = container_stats(&sample);
        assert!((s.cpu_cores - 1.0).abs() < 1e-9, "{}", s.cpu_cores);
        assert_eq!(s.memory_bytes, 6_000);
        assert_eq!(s.memory_limit_bytes, 64_000);

        assert_eq!(
            container_stats(&ContainerStatsResponse::default()),
            ContainerStats::default()
        );
    }

    /// A one-shot sample as cgroup v1 (`v2 = false`) or v2 engines send it: no pre-sample, two
    /// interfaces, block I/O entries in that version's spelling.
    fn one_shot(v2: bool) -> ContainerStatsResponse {
        use bollard::models::{
            ContainerBlkioStatEntry, ContainerBlkioStats, ContainerNetworkStats,
        };
        let entry = |op: &str, value| ContainerBlkioStatEntry {
            major: Some(8),
            minor: Some(0),
            op: Some(op.into()),
            value: Some(value),
        };
        let io = if v2 {
            vec![entry("read", 4096), entry("write", 8192), entry("read", 1)]
        } else {
            vec![
                entry("Read", 4096),
                entry("Write", 8192),
                entry("Sync", 12288),
                entry("Async", 0),
                entry("Discard", 0),
                entry("Total", 12288),
                entry("Read", 1),
            ]
        };
        let net = |rx, tx| ContainerNetworkStats {
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
            ..Default::default()
        };
        let (cache_key, other_key) = if v2 {
            ("inactive_file", "active_file")
        } else {
            ("total_inactive_file", "inactive_file")
        };
        ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(2_500_000_000),
                    ..Default::default()
                }),
                system_cpu_usage: Some(9_000_000_000),
                online_cpus: Some(2),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(100 << 20),
                limit: Some(256 << 20),
                stats: Some(HashMap::from([
                    (cache_key.to_string(), 30 << 20),
                    (other_key.to_string(), 5 << 20),
                ])),
                ..Default::default()
            }),
            networks: Some(HashMap::from([
                ("eth0".to_string(), net(1000, 200)),
                ("eth1".to_string(), net(24, 3)),
            ])),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(io),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_shot_stats_fill_every_figure_on_cgroup_v1_and_v2() {
        for v2 in [false, true] {
            let s = container_stats(&one_shot(v2));
            assert_eq!(s.cpu_cores, 0.0, "no pre-sample, no CPU figure (v2: {v2})");
            assert!((s.cpu_seconds_total - 2.5).abs() < 1e-9, "{s:?}");
            assert_eq!(
                s.memory_bytes,
                70 << 20,
                "usage minus inactive file (v2: {v2})"
            );
            assert_eq!(s.memory_limit_bytes, 256 << 20);
            assert_eq!((s.network_rx_bytes, s.network_tx_bytes), (1024, 203));
            assert_eq!(
                (s.block_read_bytes, s.block_write_bytes),
                (4097, 8192),
                "v2: {v2}"
            );
        }
    }
}
