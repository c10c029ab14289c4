//! The networks of instances, driven through the whole agent on the fake runtime: one per
//! instance from the worker's pool, adopted after a restart, removed with the last container,
//! and never another worker's.

use super::*;
use crate::runtime::{ContainerNetwork, NetworkInfo};
use crate::worker::container::network_name;

fn of_worker(rt: &FakeRuntime, worker: &str) -> Vec<NetworkInfo> {
    rt.networks()
        .into_iter()
        .filter(|n| n.label(labels::WORKER) == Some(worker))
        .collect()
}

fn network_of(rt: &FakeRuntime, instance: &str) -> NetworkInfo {
    let found: Vec<NetworkInfo> = rt
        .networks()
        .into_iter()
        .filter(|n| n.label(labels::INSTANCE) == Some(instance))
        .collect();
    assert_eq!(found.len(), 1, "one network for {instance}: {found:?}");
    found.into_iter().next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_instance_has_its_own_network_adopted_after_a_restart_and_removed_at_the_end() {
    let rt = FakeRuntime::new();
    let (transport, run) = start_agent(&rt, "w1");
    let both = ["i1", "i2"].map(|i| assignment(i, Desired::Run));
    transport.push(answer(1, true, both.into(), &[]));
    wait_until("two containers", || running(&rt).len() == 2).await;

    let (n1, n2) = (network_of(&rt, "i1"), network_of(&rt, "i2"));
    assert_ne!(n1.subnets, n2.subnets);
    let pool: crate::worker::subnets::Ipv4Net =
        crate::worker::subnets::DEFAULT_POOL.parse().unwrap();
    for n in [&n1, &n2] {
        let subnet: crate::worker::subnets::Ipv4Net = n.subnets[0].parse().unwrap();
        assert!(pool.contains(&subnet), "{subnet} from the pool");
        assert_eq!(n.label(labels::WORKER), Some("w1"));
    }
    let c1 = running(&rt)["i1"].clone();
    let spec = rt.spec(&c1).unwrap();
    assert_eq!(
        spec.network,
        ContainerNetwork::Named {
            name: network_name(&WorkerId::new("w1"), &InstanceId::new("i1")),
            aliases: vec!["t".into()],
        }
    );
    assert_eq!(
        n1.name,
        network_name(&WorkerId::new("w1"), &InstanceId::new("i1"))
    );
    for (k, v) in [
        ("ORK_JOB", "j"),
        ("ORK_TASK", "t"),
        ("ORK_INDEX", "0"),
        ("ORK_INSTANCE", "i1"),
        ("ORK_VERSION", "1"),
        ("ORK_WORKER", "w1"),
    ] {
        assert_eq!(spec.env.get(k).map(String::as_str), Some(v), "{k}");
    }

    // The worker dies (kill -9: nothing is cleaned up) and comes back; i2 is no longer its.
    run.abort();
    let _ = run.await;
    let (transport, run) = start_agent(&rt, "w1");
    transport.push(answer(2, true, vec![assignment("i1", Desired::Run)], &[]));
    wait_until("i2's network gone", || of_worker(&rt, "w1").len() == 1).await;
    assert_eq!(network_of(&rt, "i1").id, n1.id, "adopted, not made again");
    assert_eq!(running(&rt)["i1"], c1, "the container too");
    assert!(!running(&rt).contains_key("i2"));

    transport.push(answer(3, false, vec![assignment("i1", Desired::Stop)], &[]));
    wait_until("no network left", || rt.networks().is_empty()).await;
    assert!(running(&rt).is_empty());
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_worker_skips_and_keeps_other_workers_networks_and_removes_its_orphans() {
    let rt = FakeRuntime::new();
    // Another worker on the same engine holds the pool's first subnets; someone else's network
    // without labels holds the next; an orphan of this worker's (its instance is gone) the next.
    rt.add_foreign_network(
        "theirs",
        "10.213.0.0/28",
        &[(labels::WORKER, "w2"), (labels::INSTANCE, "x")],
    )
    .unwrap();
    rt.add_foreign_network("by-hand", "10.213.0.16/29", &[])
        .unwrap();
    rt.add_foreign_network(
        "ork-w1-gone",
        "10.213.0.24/29",
        &[(labels::WORKER, "w1"), (labels::INSTANCE, "gone")],
    )
    .unwrap();
    let (transport, run) = start_agent(&rt, "w1");
    transport.push(answer(1, true, vec![assignment("i1", Desired::Run)], &[]));
    wait_until("i1 runs", || running(&rt).len() == 1).await;
    wait_until("the orphan removed", || {
        rt.networks().iter().all(|n| n.name != "ork-w1-gone")
    })
    .await;
    let mine = network_of(&rt, "i1");
    let taken = ["10.213.0.0/28", "10.213.0.16/29"];
    let subnet: crate::worker::subnets::Ipv4Net = mine.subnets[0].parse().unwrap();
    for t in taken {
        assert!(
            !subnet.overlaps(&t.parse().unwrap()),
            "{subnet} overlaps {t}"
        );
    }
    transport.push(answer(2, false, vec![assignment("i1", Desired::Stop)], &[]));
    wait_until("i1's network gone", || of_worker(&rt, "w1").is_empty()).await;
    let left: Vec<String> = rt.networks().into_iter().map(|n| n.name).collect();
    assert_eq!(left, ["theirs", "by-hand"], "other networks untouched");
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_container_on_the_default_bridge_is_adopted_not_replaced() {
    // Made by a worker from before networks per instance: same name and labels, default bridge.
    let rt = FakeRuntime::new();
    let a = assignment("i1", Desired::Run);
    let mut old = container_spec(&WorkerId::new("w1"), &a, &a.job, &a.job.tasks[0], 0);
    old.network = ContainerNetwork::Default;
    let id = rt.create(&old).await.unwrap();
    rt.start(&id).await.unwrap();

    let (transport, run) = start_agent(&rt, "w1");
    transport.push(answer(1, true, vec![a], &[]));
    wait_until("i1 reported running", || {
        transport
            .reports
            .lock()
            .unwrap()
            .iter()
            .any(|u| u.instance.as_str() == "i1" && u.state == TaskState::Running)
    })
    .await;
    assert_eq!(running(&rt)["i1"], id, "the old container runs on");
    assert_eq!(rt.starts(), 1, "nothing was started again");
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn the_engine_is_asked_about_an_instances_network_once_not_at_every_start() {
    let rt = FakeRuntime::new();
    let (transport, run) = start_agent(&rt, "w1");
    let job = parse_job(
        "name: j\ntasks:\n  - { name: a, image: img:1 }\n  - { name: b, image: img:1 }\n  - { name: c, image: img:1, command: [sleep-exit, '1', '1'], restart: { policy: always, backoff: { initial: 1s } } }",
        Format::Yaml,
    )
    .unwrap();
    let a = Assignment {
        job: Arc::new(job),
        ..assignment("i1", Desired::Run)
    };
    transport.push(answer(1, true, vec![a], &[]));
    wait_until("c restarted twice", || rt.starts() >= 5).await;
    assert_eq!(rt.networks().len(), 1);
    assert_eq!(
        rt.network_lists_by(labels::INSTANCE),
        1,
        "three tasks and their restarts: one look-up"
    );
    run.abort();
}
