//! The Compose fields on the whole agent and the fake runtime: an image's own `HEALTHCHECK` read
//! from the engine (starting, healthy, unhealthy, none), the container's aliases, labels, shm
//! size, extra hosts and engine health check, unlimited restarts, and the `engine.id` label.

use super::*;
use crate::runtime::{ContainerNetwork, EngineHealthCheck, health};

const IMAGE_CHECKED: &str = "name: j
tasks:
  - name: t
    image: img:1
    aliases: [web]
    shm_size: 32Mi
    labels: { com.example.team: a }
    extra_hosts: { gw: host-gateway }
    ports: [{ container: 80, host: 8080, host_ip: 127.0.0.1 }]
    health_check: { image: true, interval: 1s, timeout: 500ms, failures: 2 }
    restart: { policy: on-failure, max_attempts: unlimited, backoff: { initial: 100ms } }
";

fn checked_assignment() -> Assignment {
    Assignment {
        job: std::sync::Arc::new(parse_job(IMAGE_CHECKED, Format::Yaml).unwrap()),
        ..assignment("i1", Desired::Run)
    }
}

/// The reports of task `t` so far.
fn reports(transport: &Scripted) -> Vec<TaskUpdate> {
    transport.reports.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn an_image_check_follows_the_engines_health_status() {
    let rt = FakeRuntime::new();
    let (transport, run) = start_agent(&rt, "w1");
    transport.push(answer(1, true, vec![checked_assignment()], &[]));
    wait_until("the container", || running(&rt).len() == 1).await;
    let first = running(&rt)["i1"].clone();

    // The container as created: the engine runs the image's check with the task's timing.
    let spec = rt.spec(&first).unwrap();
    assert_eq!(
        spec.engine_health_check,
        Some(EngineHealthCheck {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            retries: 2,
            start_period: Duration::ZERO,
        })
    );
    let ContainerNetwork::Named { aliases, .. } = &spec.network else {
        panic!("{:?}", spec.network)
    };
    assert_eq!(aliases, &["t", "web"]);
    assert_eq!(spec.labels["com.example.team"], "a");
    assert_eq!(spec.labels[labels::TASK], "t", "ours are kept");
    assert_eq!(spec.shm_size, Some(crate::units::ByteSize::mib(32)));
    assert_eq!(spec.extra_hosts["gw"], "host-gateway");
    assert_eq!(spec.ports[0].host_ip, Some("127.0.0.1".parse().unwrap()));

    // Starting: checks come and go, with neither a verdict nor a failure.
    assert!(rt.set_health(&first, Some(health::STARTING)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(running(&rt)["i1"], first, "not stopped while starting");
    assert!(
        reports(&transport).iter().all(|u| u.healthy.is_none()),
        "{:?}",
        reports(&transport)
    );

    // Healthy: the task is.
    rt.set_health(&first, Some(health::HEALTHY));
    wait_until("healthy reported", || {
        reports(&transport).iter().any(|u| u.healthy == Some(true))
    })
    .await;

    // Unhealthy, twice in a row: stopped and restarted, without end and after 100 ms or so.
    rt.set_health(&first, Some(health::UNHEALTHY));
    wait_until("a restart for the unhealthy check", || {
        reports(&transport).iter().any(|u| {
            u.state == TaskState::Restarting
                && u.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("reports the image's HEALTHCHECK unhealthy"))
        })
    })
    .await;
    let restarting = reports(&transport)
        .into_iter()
        .find(|u| u.state == TaskState::Restarting)
        .unwrap();
    let reason = restarting.reason.unwrap();
    assert!(
        reason.contains("restart 1 in ") && !reason.contains(" of "),
        "unlimited attempts are not counted down: {reason}"
    );

    // The next container reports no health at all: its image has no HEALTHCHECK.
    wait_until("a second container", || {
        running(&rt).get("i1").is_some_and(|c| *c != first)
    })
    .await;
    wait_until("the missing HEALTHCHECK reported", || {
        reports(&transport).iter().any(|u| {
            u.reason
                .as_deref()
                .is_some_and(|r| r.contains("the image has no HEALTHCHECK"))
        })
    })
    .await;
    run.abort();
}

#[test]
fn the_engines_status_reads_as_pass_fail_or_nothing_yet() {
    use crate::worker::checks::image_verdict;
    let with = |h: Option<&str>| {
        Ok(ContainerInfo {
            id: "c".into(),
            name: "n".into(),
            labels: BTreeMap::new(),
            state: ContainerState::Running,
            health: h.map(str::to_owned),
        })
    };
    assert_eq!(image_verdict(with(Some("healthy"))), Some(Ok(())));
    assert_eq!(image_verdict(with(Some("starting"))), None);
    assert!(matches!(
        image_verdict(with(Some("unhealthy"))),
        Some(Err(_))
    ));
    assert_eq!(
        image_verdict(with(None)),
        Some(Err("the image has no HEALTHCHECK".to_owned()))
    );
    let gone = Err(crate::error::Error::runtime(
        crate::error::RuntimeErrorKind::NotFound,
        "no container c",
    ));
    assert!(matches!(image_verdict(gone), Some(Err(m)) if m.contains("no container c")));
}

/// Registers with the engine's ID as the `engine.id` label, over an operator's label of that
/// key.
#[tokio::test(start_paused = true)]
async fn the_worker_registers_with_the_engine_id_label() {
    let rt = FakeRuntime::new();
    rt.set_engine_id(Some("ABCD:EFGH:IJKL"));
    let transport = Arc::new(Scripted::default());
    let mut config = WorkerConfig::new("w1");
    config.labels = [
        ("zone".to_owned(), "a".to_owned()),
        (ENGINE_ID_LABEL.to_owned(), "mine".to_owned()),
    ]
    .into();
    let agent = WorkerAgent::new(
        config,
        transport.clone(),
        Arc::new(rt.clone()),
        Arc::new(StaticProbe(Resources::ZERO)),
    );
    let run = tokio::spawn(agent.run(std::future::pending()));
    wait_until("registered", || {
        transport.registered_labels.lock().unwrap().is_some()
    })
    .await;
    let labels = transport.registered_labels.lock().unwrap().clone().unwrap();
    assert_eq!(labels["engine.id"], "ABCD:EFGH:IJKL");
    assert_eq!(labels["zone"], "a");
    // A constraint on it, as a job file writes it, matches.
    let job = parse_job(
        "name: j\nconstraints: [{ label: engine.id, equals: ABCD:EFGH:IJKL }]\ntasks: [{name: t, image: img:1}]",
        Format::Yaml,
    )
    .unwrap();
    assert!(job.constraints[0].matches(&labels));
    run.abort();
}
