use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::runtime::{ContainerNetwork, NetworkSpec, labels};

fn net(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnet: subnet.into(),
        labels: BTreeMap::from([(labels::WORKER.into(), "w1".into())]),
    }
}

fn on(network: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: format!("c-{network}-{}", command.join("-")),
        image: "img".into(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        network: ContainerNetwork::Named {
            name: network.into(),
            aliases: vec!["app".into()],
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn overlapping_subnets_and_taken_names_are_refused() {
    let rt = FakeRuntime::new();
    rt.create_network(&net("a", "10.1.0.0/29")).await.unwrap();
    let e = rt
        .create_network(&net("b", "10.1.0.0/28"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Runtime {
                kind: RuntimeErrorKind::SubnetTaken,
                ..
            }
        ),
        "{e}"
    );
    let e = rt
        .create_network(&net("a", "10.2.0.0/29"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    rt.create_network(&net("b", "10.1.0.8/29")).await.unwrap();
    assert_eq!(
        rt.list_networks(&[(labels::WORKER, "w1")])
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        rt.list_networks(&[(labels::WORKER, "w2")])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_network_in_use_stays_and_a_missing_one_cannot_be_joined() {
    let rt = FakeRuntime::new();
    let e = rt.create(&on("nope", &["run"])).await.unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    let id = rt.create_network(&net("n", "10.1.0.0/29")).await.unwrap();
    let c = rt.create(&on("n", &["run"])).await.unwrap();
    rt.start(&c).await.unwrap();
    assert!(rt.remove_network(&id).await.is_err());
    rt.stop(&c, Duration::from_secs(1)).await.unwrap();
    rt.remove_network("n").await.unwrap();
    assert!(rt.networks().is_empty());
    rt.remove_network(&id).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stops_are_logged_with_their_signal_and_init_passes_sigterm_on() {
    let rt = FakeRuntime::new();
    let mut plain = on("x", &["ignore-term"]);
    plain.network = ContainerNetwork::Default;
    plain.name = "plain".into();
    let mut with_init = plain.clone();
    with_init.name = "init".into();
    with_init.init = true;
    with_init.stop_signal = Some("SIGINT".into());
    let a = rt.create(&plain).await.unwrap();
    let b = rt.create(&with_init).await.unwrap();
    rt.start(&a).await.unwrap();
    rt.start(&b).await.unwrap();

    let t0 = Instant::now();
    rt.stop(&b, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        Instant::now() - t0,
        Duration::ZERO,
        "init passes the signal on"
    );
    rt.stop(&a, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        Instant::now() - t0,
        Duration::from_secs(10),
        "killed after the grace"
    );
    // A stopped container's second stop is not logged.
    rt.stop(&a, Duration::from_secs(10)).await.unwrap();

    let stops: Vec<(String, String)> = rt
        .stops()
        .into_iter()
        .map(|s| (s.container, s.signal))
        .collect();
    assert_eq!(
        stops,
        [
            ("init".to_owned(), "SIGINT".to_owned()),
            ("plain".to_owned(), "SIGTERM".to_owned())
        ]
    );
}

#[tokio::test]
async fn volumes_are_kept_until_removed_and_never_removed_while_mounted() {
    use crate::runtime::{Mount, MountSource, VolumeSpec};
    let rt = FakeRuntime::new();
    let spec = VolumeSpec {
        name: "data".into(),
        labels: BTreeMap::from([(labels::WORKER.into(), "w1".into())]),
    };
    let v = rt.create_volume(&spec).await.unwrap();
    assert_eq!(v.label(labels::WORKER), Some("w1"));
    // Again: the same volume, not a second one.
    rt.create_volume(&spec).await.unwrap();
    assert_eq!(rt.volumes().len(), 1);
    let mut c = on("x", &["run"]);
    c.network = ContainerNetwork::Default;
    c.mounts = vec![Mount {
        source: MountSource::Volume("data".into()),
        target: "/data".into(),
        read_only: false,
    }];
    let id = rt.create(&c).await.unwrap();
    assert!(
        rt.remove_volume("data").await.is_err(),
        "mounted by a container"
    );
    rt.remove(&id).await.unwrap();
    rt.remove_volume("data").await.unwrap();
    rt.remove_volume("data")
        .await
        .expect("a missing volume is fine");
    assert!(
        rt.list_volumes(&[(labels::WORKER, "w1")])
            .await
            .unwrap()
            .is_empty()
    );
}
