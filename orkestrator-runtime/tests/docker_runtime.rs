//! Integration tests of [`DockerRuntime`] against the real Docker engine, with the locally built
//! test image (`scripts/build-test-image.sh`; built on first use if missing).
//!
//! Without an engine the tests print a SKIP line and pass, unless `ORKESTRATOR_REQUIRE_DOCKER=1`
//! or `CI=true` is set: then they fail. Every test uses its own container names (process id +
//! test name) and removes its containers when it ends, even when it fails, so they run in
//! parallel safely.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use orkestrator_core::error::{Error, RuntimeErrorKind};
use orkestrator_core::runtime::{ContainerInfo, ContainerSpec, ContainerState, Runtime, labels};
use orkestrator_core::spec::{PortMapping, Probe, Protocol, Resources};
use orkestrator_core::units::{ByteSize, Cpu};
use orkestrator_runtime::DockerRuntime;

mod engine;
use engine::{IMAGE, docker_or_skip};

/// Label carried by every container of this test process, so lists only see ours.
const RUN_LABEL: &str = "orkestrator.test-run";

/// Removes the named containers when dropped (also when the test panics).
struct Cleanup(Vec<String>);

impl Cleanup {
    fn new() -> Self {
        Cleanup(Vec::new())
    }

    /// A unique container name for this process and test; removed at the end.
    fn name(&mut self, test: &str) -> String {
        let name = format!("ork-test-{}-{test}", std::process::id());
        self.0.push(name.clone());
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&self.0)
            .output();
    }
}

fn run_id() -> String {
    std::process::id().to_string()
}

fn spec(name: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: IMAGE.to_string(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        ports: Vec::new(),
        resources: Resources {
            cpu: Cpu::from_millis(100),
            memory: ByteSize::mib(32),
            disk: ByteSize::mib(10),
        },
        labels: BTreeMap::from([
            (RUN_LABEL.to_string(), run_id()),
            (labels::JOB.to_string(), name.to_string()),
        ]),
        pids_limit: 4096,
        user: None,
        read_only: false,
        ..Default::default()
    }
}

async fn run(rt: &DockerRuntime, spec: &ContainerSpec) -> String {
    let id = rt.create(spec).await.expect("create");
    rt.start(&id).await.expect("start");
    id
}

/// Polls `inspect` until `done` holds, or panics after `within`.
async fn wait_for(
    rt: &DockerRuntime,
    id: &str,
    within: Duration,
    done: impl Fn(&ContainerState) -> bool,
) -> ContainerInfo {
    let deadline = Instant::now() + within;
    loop {
        let info = rt.inspect(id).await.expect("inspect");
        if done(&info.state) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still {:?} after {within:?}",
            info.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kind(e: &Error) -> Option<RuntimeErrorKind> {
    match e {
        Error::Runtime { kind, .. } => Some(*kind),
        _ => None,
    }
}

fn free_port(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => std::net::TcpListener::bind("0.0.0.0:0")
            .and_then(|l| l.local_addr())
            .expect("free tcp port")
            .port(),
        Protocol::Udp => std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.local_addr())
            .expect("free udp port")
            .port(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_applies_limits_labels_env_command_and_ports() {
    let Some(rt) = docker_or_skip("create_applies_limits_labels_env_command_and_ports").await
    else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("limits");
    let tcp_port = free_port(Protocol::Tcp);
    let udp_port = free_port(Protocol::Udp);

    let mut s = spec(
        &name,
        &["sh", "-c", "echo hello $GREETING; exec sleep 1000"],
    );
    s.env.insert("GREETING".into(), "world".into());
    s.resources.cpu = Cpu::from_millis(250);
    s.resources.memory = ByteSize::mib(64);
    s.labels.insert(labels::TASK.into(), "server".into());
    s.ports = vec![
        PortMapping {
            container: 8080,
            host: Some(tcp_port),
            protocol: Protocol::Tcp,
            host_ip: None,
        },
        PortMapping {
            container: 5353,
            host: Some(udp_port),
            protocol: Protocol::Udp,
            host_ip: None,
        },
        PortMapping {
            container: 9000,
            host: None,
            protocol: Protocol::Tcp,
            host_ip: None,
        },
    ];
    rt.ensure_image(IMAGE).await.expect("test image present");
    let id = run(&rt, &s).await;

    let info = rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.id, id);
    assert_eq!(info.name, name);
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.label(labels::TASK), Some("server"));
    assert_eq!(info.label(RUN_LABEL), Some(run_id().as_str()));

    // What the engine actually applied, straight from its inspect answer.
    let raw = rt
        .client()
        .await
        .unwrap()
        .inspect_container(&id, None)
        .await
        .expect("raw inspect");
    let hc = raw.host_config.expect("host config");
    assert_eq!(hc.nano_cpus, Some(250_000_000));
    assert_eq!(hc.memory, Some(64 * 1024 * 1024));
    assert_eq!(hc.memory_swap, Some(64 * 1024 * 1024), "no swap");
    let bindings = hc.port_bindings.expect("port bindings");
    let tcp = bindings["8080/tcp"].as_ref().expect("8080/tcp bound");
    assert_eq!(tcp[0].host_ip.as_deref(), Some("0.0.0.0"));
    assert_eq!(tcp[0].host_port, Some(tcp_port.to_string()));
    let udp = bindings["5353/udp"].as_ref().expect("5353/udp bound");
    assert_eq!(udp[0].host_port, Some(udp_port.to_string()));
    assert!(!bindings.contains_key("9000/tcp"));
    let config = raw.config.expect("config");
    assert!(
        config
            .env
            .unwrap_or_default()
            .contains(&"GREETING=world".to_string())
    );
    assert_eq!(
        config.cmd.unwrap_or_default(),
        vec!["sh", "-c", "echo hello $GREETING; exec sleep 1000"]
    );
    let exposed = config.exposed_ports.unwrap_or_default();
    for port in ["8080/tcp", "5353/udp", "9000/tcp"] {
        assert!(
            exposed.iter().any(|p| p == port),
            "{port} not exposed: {exposed:?}"
        );
    }

    // And as the docker CLI reports it.
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{index .Config.Labels \"orkestrator.task\"}}",
            &id,
        ])
        .output()
        .expect("docker inspect");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("250000000 {} server", 64 * 1024 * 1024)
    );

    // Published for real: the engine listens on the host port.
    let out = Command::new("docker")
        .args(["port", &id, "8080/tcp"])
        .output()
        .expect("docker port");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(":{tcp_port}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Logs show the command ran with the environment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = rt.logs(&id, 10).await.expect("logs");
        if logs.contains("hello world") {
            break;
        }
        assert!(Instant::now() < deadline, "no greeting in logs: {logs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    rt.remove(&id).await.expect("remove");
    let gone = rt.inspect(&id).await.unwrap_err();
    assert_eq!(kind(&gone), Some(RuntimeErrorKind::NotFound), "{gone}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_by_every_label() {
    let Some(rt) = docker_or_skip("list_filters_by_every_label").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let a = cleanup.name("list-a");
    let b = cleanup.name("list-b");
    let mut sa = spec(&a, &["sleep", "1000"]);
    sa.labels.insert(labels::WORKER.into(), "w1".into());
    let mut sb = spec(&b, &["true"]);
    sb.labels.insert(labels::WORKER.into(), "w1".into());
    let id_a = run(&rt, &sa).await;
    let id_b = rt.create(&sb).await.expect("create b (not started)");

    let run = run_id();
    let both = rt
        .list(&[(RUN_LABEL, run.as_str()), (labels::WORKER, "w1")])
        .await
        .expect("list");
    let names: Vec<&str> = both.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec![a.as_str(), b.as_str()], "sorted by name");
    assert_eq!(both[0].id, id_a);
    assert_eq!(both[0].state, ContainerState::Running);
    assert_eq!(both[1].id, id_b);
    assert_eq!(both[1].state, ContainerState::Created);

    let only_a = rt
        .list(&[(RUN_LABEL, run.as_str()), (labels::JOB, a.as_str())])
        .await
        .expect("list");
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].id, id_a);
    assert_eq!(only_a[0].label(labels::WORKER), Some("w1"));

    let none = rt
        .list(&[(RUN_LABEL, run.as_str()), (labels::WORKER, "w2")])
        .await
        .expect("list");
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_is_reported() {
    let Some(rt) = docker_or_skip("exit_code_is_reported").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("exit3");
    let id = run(&rt, &spec(&name, &["sh", "-c", "echo bye >&2; exit 3"])).await;
    let info = wait_for(&rt, &id, Duration::from_secs(20), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    assert_eq!(
        info.state,
        ContainerState::Exited {
            code: 3,
            reason: None
        }
    );
    // stderr is in the logs too.
    assert_eq!(rt.logs(&id, 5).await.expect("logs").trim(), "bye");
    // Stopping an exited container is fine.
    rt.stop(&id, Duration::from_secs(1))
        .await
        .expect("stop exited");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_kills_after_the_grace_period() {
    let Some(rt) = docker_or_skip("stop_kills_after_the_grace_period").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("stop-grace");
    // As PID 1 without a handler, busybox sleep ignores SIGTERM: only the SIGKILL after the
    // grace period ends it. A start returns before runc's own init has exec'd the command (and
    // that init dies of SIGTERM): wait until the shell has run, then it is sleep's.
    let id = run(
        &rt,
        &spec(&name, &["sh", "-c", "echo ready; exec sleep 1000"]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.logs(&id, 5).await.expect("logs").trim() != "ready" {
        assert!(
            Instant::now() < deadline,
            "the container never printed ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grace = Duration::from_secs(1);
    let started = Instant::now();
    rt.stop(&id, grace).await.expect("stop");
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_secs(5),
        "stop took {took:?} with a grace of {grace:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "SIGKILL came before the grace period: {took:?}"
    );
    let info = rt.inspect(&id).await.expect("inspect");
    assert_eq!(
        info.state,
        ContainerState::Exited {
            code: 137,
            reason: None
        }
    );
    // Stopping again is fine (the engine answers 304).
    rt.stop(&id, grace).await.expect("second stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_returns_early_when_sigterm_works() {
    let Some(rt) = docker_or_skip("stop_returns_early_when_sigterm_works").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("stop-term");
    let script = "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    let id = run(&rt, &spec(&name, &["sh", "-c", script])).await;
    // Wait until the trap is installed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rt.logs(&id, 10).await.expect("logs").contains("ready") {
        assert!(Instant::now() < deadline, "container never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grace = Duration::from_secs(20);
    let started = Instant::now();
    rt.stop(&id, grace).await.expect("stop");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stop took {took:?}: SIGTERM ignored?"
    );
    let info = rt.inspect(&id).await.expect("inspect");
    assert_eq!(
        info.state,
        ContainerState::Exited {
            code: 0,
            reason: None
        }
    );
    assert!(rt.logs(&id, 10).await.unwrap().contains("got TERM"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_containers() {
    let Some(rt) = docker_or_skip("missing_containers").await else {
        return;
    };
    let missing = format!("ork-test-{}-never-created", std::process::id());
    rt.remove(&missing)
        .await
        .expect("removing a missing container is fine");
    let e = rt.inspect(&missing).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::NotFound), "{e}");
    let e = rt.start(&missing).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::NotFound), "{e}");
    let e = rt.stats(&missing).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::NotFound), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_image_is_explained() {
    let Some(rt) = docker_or_skip("missing_image_is_explained").await else {
        return;
    };
    rt.ensure_image(IMAGE).await.expect("present image");
    let image = "nonexistent/image:nope";
    let e = rt.ensure_image(image).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::ImageNotFound), "{e}");
    let text = e.to_string();
    for needle in [
        image,
        "not present locally",
        "could not be pulled",
        "docker pull nonexistent/image:nope",
        "docker build -t nonexistent/image:nope",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }

    // Creating from it (without ensure_image) says the same kind of thing.
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("no-image");
    let mut s = spec(&name, &[]);
    s.image = image.into();
    let e = rt.create(&s).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::ImageNotFound), "{e}");
    assert!(e.to_string().contains("docker pull"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn name_conflict_is_rejected() {
    let Some(rt) = docker_or_skip("name_conflict_is_rejected").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("conflict");
    let s = spec(&name, &["true"]);
    rt.create(&s).await.expect("first create");
    let e = rt.create(&s).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::Rejected), "{e}");
    assert!(e.to_string().contains("already in use"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_of_a_running_container() {
    let Some(rt) = docker_or_skip("stats_of_a_running_container").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("stats");
    let mut s = spec(&name, &["sh", "-c", "while true; do :; done"]);
    s.resources.cpu = Cpu::from_millis(500);
    s.resources.memory = ByteSize::mib(48);
    let id = run(&rt, &s).await;
    let first = rt.stats(&id).await.expect("stats");
    let since = std::time::Instant::now();
    assert!(first.memory_bytes > 0, "{first:?}");
    assert_eq!(first.memory_limit_bytes, 48 * 1024 * 1024, "{first:?}");
    // One-shot stats carry cumulative CPU time; the rate comes from two samples (as the worker
    // computes it). A busy loop capped at half a core: wait for a second of CPU time to pass.
    let deadline = since + Duration::from_secs(30);
    let (second, wall) = loop {
        let s = rt.stats(&id).await.expect("stats");
        if s.cpu_seconds_total >= first.cpu_seconds_total + 1.0 {
            break (s, since.elapsed().as_secs_f64());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "CPU time did not grow by 1 s within 30 s: {first:?} then {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let cores = (second.cpu_seconds_total - first.cpu_seconds_total) / wall;
    assert!(
        cores > 0.2 && cores < 0.8,
        "{cores} cores: {first:?} then {second:?}"
    );
}

#[tokio::test]
async fn an_unreachable_engine_is_unavailable() {
    // Nothing listens on port 1: no engine needed for this one.
    let rt = DockerRuntime::connect_to("tcp://127.0.0.1:1", Duration::from_secs(5)).unwrap();
    let e = rt.ping().await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::Unavailable), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("cannot reach the Docker engine at tcp://127.0.0.1:1"),
        "{text}"
    );
    assert!(text.contains("is dockerd running?"), "{text}");

    let e = DockerRuntime::connect_to("unix:///nonexistent/docker.sock", Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::Unavailable), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_probes_reach_the_container() {
    let Some(rt) = docker_or_skip("health_probes_reach_the_container").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("probes");
    let id = run(
        &rt,
        &spec(
            &name,
            &[
                "sh",
                "-c",
                "echo ok > /tmp/index.html; touch /tmp/ready; exec httpd -f -p 8080 -h /tmp",
            ],
        ),
    )
    .await;
    let t = Duration::from_secs(2);
    let http = Probe::Http {
        port: 8080,
        path: "/index.html".into(),
    };
    // httpd needs a moment to listen.
    let mut ok = Err(String::new());
    for _ in 0..40 {
        ok = rt.probe(&id, &http, t).await;
        if ok.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ok, Ok(()));
    let missing = rt
        .probe(
            &id,
            &Probe::Http {
                port: 8080,
                path: "/nope".into(),
            },
            t,
        )
        .await
        .unwrap_err();
    assert!(missing.ends_with("/nope answered 404"), "{missing}");
    assert_eq!(rt.probe(&id, &Probe::Tcp { port: 8080 }, t).await, Ok(()));
    let closed = rt.probe(&id, &Probe::Tcp { port: 9 }, t).await.unwrap_err();
    assert!(closed.contains(":9"), "{closed}");
    let exec = |cmd: &str| Probe::Exec(vec!["sh".into(), "-c".into(), cmd.into()]);
    assert_eq!(rt.probe(&id, &exec("test -f /tmp/ready"), t).await, Ok(()));
    let bad = rt.probe(&id, &exec("exit 4"), t).await.unwrap_err();
    assert!(bad.ends_with("exited with code 4"), "{bad}");
    let slow = rt
        .probe(&id, &exec("sleep 5"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(slow.contains("no answer within"), "{slow}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_returns_when_the_container_exits() {
    let Some(rt) = docker_or_skip("wait_returns_when_the_container_exits").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("wait");
    let id = run(&rt, &spec(&name, &["sh", "-c", "sleep 1; exit 7"])).await;
    let t0 = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(20), rt.wait(&id))
        .await
        .expect("wait returned")
        .expect("wait ok");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(500), "waited {took:?}");
    assert_eq!(
        rt.inspect(&id).await.unwrap().state,
        ContainerState::Exited {
            code: 7,
            reason: None
        }
    );
}

/// Removes this process's networks when dropped (also when the test panics).
struct NetworkCleanup;

impl Drop for NetworkCleanup {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["network", "ls", "-q", "--filter"])
            .arg(format!("label={RUN_LABEL}={}", run_id()))
            .output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["network", "rm", id]).output();
            }
        }
    }
}

fn network(name: &str, subnet: &str) -> orkestrator_core::runtime::NetworkSpec {
    orkestrator_core::runtime::NetworkSpec {
        name: format!("ork-test-{}-{name}", run_id()),
        subnet: subnet.to_owned(),
        labels: BTreeMap::from([
            (RUN_LABEL.to_owned(), run_id()),
            (labels::INSTANCE.to_owned(), name.to_owned()),
        ]),
    }
}

/// Makes a network on the first free /29 of 10.232.0.0/16 (the engine may have others).
async fn make_network(rt: &DockerRuntime, name: &str) -> (String, String) {
    for third in 0..=255u32 {
        for fourth in (0..256u32).step_by(8) {
            let subnet = format!("10.232.{third}.{fourth}/29");
            match rt.create_network(&network(name, &subnet)).await {
                Ok(id) => return (id, subnet),
                Err(e) if kind(&e) == Some(RuntimeErrorKind::SubnetTaken) => {}
                Err(e) => panic!("create network {name}: {e}"),
            }
        }
    }
    panic!("no free /29 in 10.232.0.0/16");
}

#[tokio::test(flavor = "multi_thread")]
async fn networks_take_their_subnet_refuse_overlaps_and_duplicates_and_list_by_label() {
    let Some(rt) = docker_or_skip("networks_take_their_subnet").await else {
        return;
    };
    let _cleanup = NetworkCleanup;
    let (id, subnet) = make_network(&rt, "a").await;
    let mine = rt
        .list_networks(&[(RUN_LABEL, &run_id()), (labels::INSTANCE, "a")])
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, id);
    assert_eq!(mine[0].subnets, [subnet.as_str()]);
    assert_eq!(mine[0].label(labels::INSTANCE), Some("a"));

    // The same subnet again: the engine's overlap, as SubnetTaken.
    let e = rt.create_network(&network("b", &subnet)).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::SubnetTaken), "{e}");
    // The same name on another subnet: refused, and no second network of that name is left.
    let e = rt
        .create_network(&network("a", "10.233.255.248/29"))
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::Rejected), "{e}");
    // (Other tests of this process have networks too: count this one's by name.)
    let named_a = |all: &[orkestrator_core::runtime::NetworkInfo]| {
        all.iter()
            .filter(|n| n.name == network("a", "").name)
            .count()
    };
    let all = rt.list_networks(&[(RUN_LABEL, &run_id())]).await.unwrap();
    assert_eq!(named_a(&all), 1, "{all:?}");
    assert!(
        rt.list_networks(&[]).await.unwrap().len() > all.len(),
        "no filter lists the engine's own networks too"
    );

    rt.remove_network(&id).await.unwrap();
    rt.remove_network(&id)
        .await
        .expect("a missing network is fine");
    let all = rt.list_networks(&[(RUN_LABEL, &run_id())]).await.unwrap();
    assert_eq!(named_a(&all), 0, "{all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_on_a_network_reach_each_other_by_alias_and_no_one_else_does() {
    use orkestrator_core::runtime::ContainerNetwork;
    let Some(rt) = docker_or_skip("containers_on_a_network_reach_each_other").await else {
        return;
    };
    let _networks = NetworkCleanup;
    let mut cleanup = Cleanup::new();
    let (_, _) = make_network(&rt, "names").await;
    let net = network("names", "").name;
    let on_net = |name: String, alias: &str, command: &[&str]| {
        let mut s = spec(&name, command);
        s.network = ContainerNetwork::Named {
            name: net.clone(),
            aliases: vec![alias.to_owned()],
        };
        s
    };
    let server = on_net(
        cleanup.name("alias-db"),
        "db",
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
        ],
    );
    run(&rt, &server).await;
    let fetch = "for i in $(seq 50); do timeout 2 wget -q -O - http://db:8080/ && exit 0; sleep 0.2; done; exit 1";
    let client = on_net(cleanup.name("alias-client"), "app", &["sh", "-c", fetch]);
    let id = run(&rt, &client).await;
    let info = wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    assert_eq!(
        info.state,
        ContainerState::Exited {
            code: 0,
            reason: None
        },
        "{}",
        rt.logs(&id, 20).await.unwrap_or_default()
    );
    assert_eq!(rt.logs(&id, 5).await.unwrap().trim(), "hello");

    // On the default bridge, the name means nothing.
    let outsider = spec(
        &cleanup.name("alias-outsider"),
        &["sh", "-c", "timeout 3 wget -q -O - http://db:8080/"],
    );
    let id = run(&rt, &outsider).await;
    let info = wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    assert!(
        matches!(info.state, ContainerState::Exited { code, .. } if code != 0),
        "{:?}",
        info.state
    );
    // Without a network at all, only loopback.
    let mut alone = spec(
        &cleanup.name("alias-none"),
        &["sh", "-c", "ip -o link 2>/dev/null || cat /proc/net/dev"],
    );
    alone.network = ContainerNetwork::None;
    let id = run(&rt, &alone).await;
    wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    let links = rt.logs(&id, 20).await.unwrap();
    assert!(links.contains("lo") && !links.contains("eth0"), "{links}");
}

#[tokio::test(flavor = "multi_thread")]
async fn entrypoint_working_dir_and_a_read_only_mount_reach_the_container() {
    let Some(rt) = docker_or_skip("entrypoint_working_dir_and_a_read_only_mount").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.conf");
    std::fs::write(&file, "answer=42\n").unwrap();
    let mut s = spec(
        &cleanup.name("entry"),
        &["pwd; cat /etc/app/app.conf; echo x > /etc/app/app.conf || echo read-only"],
    );
    s.entrypoint = Some(vec!["sh".into(), "-c".into()]);
    s.working_dir = Some("/tmp".into());
    s.read_only = true;
    s.mounts = vec![orkestrator_core::runtime::Mount::bind(
        file.clone(),
        "/etc/app/app.conf",
        true,
    )];
    let id = run(&rt, &s).await;
    wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    let out = rt.logs(&id, 10).await.unwrap();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.contains("can't create"))
        .collect();
    assert_eq!(lines, ["/tmp", "answer=42", "read-only"], "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "answer=42\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_volume_keeps_data_between_containers_and_a_tmpfs_is_bounded() {
    use orkestrator_core::runtime::{Mount, MountSource, VolumeSpec};
    let Some(rt) = docker_or_skip("a_named_volume_keeps_data").await else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let volume = format!("ork-test-{}-data", run_id());
    struct VolumeCleanup(String);
    impl Drop for VolumeCleanup {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &self.0])
                .output();
        }
    }
    let _volume = VolumeCleanup(volume.clone());
    let volume_spec = VolumeSpec {
        name: volume.clone(),
        labels: BTreeMap::from([(RUN_LABEL.to_owned(), run_id())]),
    };
    let made = rt.create_volume(&volume_spec).await.unwrap();
    assert!(made.mountpoint.is_some());
    rt.create_volume(&volume_spec)
        .await
        .expect("creating it again returns it");
    let listed = rt.list_volumes(&[(RUN_LABEL, &run_id())]).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, volume);

    let mount = Mount {
        source: MountSource::Volume(volume.clone()),
        target: "/data".into(),
        read_only: false,
    };
    let mut writer = spec(
        &cleanup.name("vol-writer"),
        &["sh", "-c", "echo kept > /data/file"],
    );
    writer.mounts = vec![mount.clone()];
    let id = run(&rt, &writer).await;
    wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { code: 0, .. })
    })
    .await;
    let mut reader = spec(&cleanup.name("vol-reader"), &["cat", "/data/file"]);
    reader.mounts = vec![mount];
    let id = run(&rt, &reader).await;
    wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    assert_eq!(rt.logs(&id, 5).await.unwrap().trim(), "kept");

    let e = rt.remove_volume(&volume).await.unwrap_err();
    assert_eq!(kind(&e), Some(RuntimeErrorKind::Rejected), "{e}");
    drop(cleanup);
    rt.remove_volume(&volume).await.unwrap();
    rt.remove_volume(&volume)
        .await
        .expect("a missing volume is fine");
    assert!(
        rt.list_volumes(&[(RUN_LABEL, &run_id())])
            .await
            .unwrap()
            .is_empty()
    );

    // A tmpfs of 4 MiB takes 3 MiB and refuses 5 more.
    let mut cleanup = Cleanup::new();
    let mut tmp = spec(
        &cleanup.name("tmpfs"),
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/cache/a bs=1M count=3 2>/dev/null && echo three; dd if=/dev/zero of=/cache/b bs=1M count=5 2>/dev/null || echo refused",
        ],
    );
    tmp.read_only = true;
    tmp.mounts = vec![Mount {
        source: MountSource::Tmpfs {
            size_bytes: 4 << 20,
            mode: Some(0o1777),
        },
        target: "/cache".into(),
        read_only: false,
    }];
    let id = run(&rt, &tmp).await;
    wait_for(&rt, &id, Duration::from_secs(30), |s| {
        matches!(s, ContainerState::Exited { .. })
    })
    .await;
    let out = rt.logs(&id, 5).await.unwrap();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["three", "refused"],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_id_is_docker_infos_and_a_container_without_check_has_no_health() {
    let Some(rt) =
        docker_or_skip("the_engine_id_is_docker_infos_and_a_container_without_check_has_no_health")
            .await
    else {
        return;
    };
    let out = Command::new("docker")
        .args(["info", "-f", "{{.ID}}"])
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(rt.engine_id().await.unwrap(), Some(want));

    let mut cleanup = Cleanup::new();
    let name = cleanup.name("nohealth");
    let id = rt.create(&spec(&name, &["sleep", "1000"])).await.unwrap();
    rt.start(&id).await.unwrap();
    let info: ContainerInfo = rt.inspect(&id).await.unwrap();
    assert_eq!(info.health, None, "the test image has no HEALTHCHECK");
}
