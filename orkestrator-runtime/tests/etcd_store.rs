//! The etcd store against real etcd members on loopback: what is committed loads back, indexes
//! carry on from one store (one manager) to the next, a count-1,000 job commits, a fenced store
//! whose leader key is gone writes nothing, a second writer is refused, etcd's default limits
//! are refused with the flags named, and a stopped etcd refuses commits until it is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orkestrator_core::api::ErrorKind;
use orkestrator_core::error::Error;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, parse_job};
use orkestrator_core::store::{Store, StoreOp};
use orkestrator_runtime::EtcdStore;
use orkestrator_runtime::etcd::{EtcdOptions, ManagerRecord, Member};
use orkestrator_runtime::etcd_testing::EtcdCluster;

fn options(cluster: &EtcdCluster, prefix: &str) -> EtcdOptions {
    EtcdOptions::from_url(&cluster.url())
        .expect("a good url")
        .with_prefix(prefix)
}

fn job(name: &str, count: u32) -> orkestrator_core::spec::Job {
    parse_job(
        &format!(
            "name: {name}\ncount: {count}\ntasks:\n  - name: t\n    image: busybox:1\n    resources: {{cpu: 0.01, memory: 8MiB}}\n"
        ),
        Format::Yaml,
    )
    .expect("a valid job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_on_etcd_reloads_what_it_acknowledged_and_its_index_carries_on() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let store = EtcdStore::connect(options(&cluster, "/t1")).await.unwrap();
    let m = Manager::new(ManagerConfig::default(), Arc::new(store))
        .await
        .unwrap();
    let r = m
        .jobs()
        .submit(job("big", 1000))
        .await
        .expect("count 1,000 commits");
    let index = m.durable_index();
    assert!(index > 0);
    let view = m.jobs().get(&r.job).await.unwrap();
    assert_eq!(view.instances.len(), 1000);
    drop(m);

    // A second manager (a new leader, say) on the same prefix sees all of it, and its index
    // goes on from the first's.
    let store = EtcdStore::connect(options(&cluster, "/t1")).await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.index, index);
    assert_eq!(snap.instances.len(), 1000);
    assert_eq!(snap.jobs.len(), 1);
    assert!(snap.next_instance >= 1000);
    let m2 = Manager::new(ManagerConfig::default(), Arc::new(store))
        .await
        .unwrap();
    assert!(
        m2.durable_index() > index,
        "the boot commit moves the index on"
    );
    assert_eq!(m2.jobs().get(&r.job).await.unwrap().instances.len(), 1000);

    // Another prefix is another cluster.
    let other = EtcdStore::connect(options(&cluster, "/t1-other"))
        .await
        .unwrap();
    assert_eq!(other.load().await.unwrap().jobs.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_store_whose_leader_key_is_gone_writes_nothing() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let store = EtcdStore::connect(options(&cluster, "/t2")).await.unwrap();
    store.load().await.unwrap();
    let member = Member::join(
        store.client(),
        store.prefix(),
        ManagerRecord {
            name: "a".into(),
            addr: "http://127.0.0.1:1".into(),
        },
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let lead = member.campaign().await.unwrap();
    store.fence(lead.key.clone(), lead.create_revision);
    store
        .commit(1, vec![StoreOp::SetNextInstance(7)])
        .await
        .unwrap();
    let mut fenced_out = store.fenced_out();

    // The lease goes (as when the leader was paused past it): its key goes with it.
    member.leave().await;
    let e = store
        .commit(2, vec![StoreOp::SetNextInstance(8)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotLeader(_)), "{e}");
    assert!(
        *fenced_out.borrow_and_update(),
        "the store tells it was fenced out"
    );

    let fresh = EtcdStore::connect(options(&cluster, "/t2")).await.unwrap();
    let snap = fresh.load().await.unwrap();
    assert_eq!(
        (snap.index, snap.next_instance),
        (1, 7),
        "nothing of the fenced commit landed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_same_prefix_is_refused() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let a = EtcdStore::connect(options(&cluster, "/t3")).await.unwrap();
    let b = EtcdStore::connect(options(&cluster, "/t3")).await.unwrap();
    a.load().await.unwrap();
    b.load().await.unwrap();
    a.commit(1, vec![StoreOp::SetNextInstance(1)])
        .await
        .unwrap();
    let e = b
        .commit(1, vec![StoreOp::SetNextInstance(99)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotLeader(_)), "{e}");
    // After reloading, b sees a's write and may go on.
    assert_eq!(b.load().await.unwrap().next_instance, 1);
    b.commit(2, vec![StoreOp::SetNextInstance(2)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_etcd_limits_are_refused_with_the_flags_named() {
    let Some(cluster) = EtcdCluster::start_with_default_limits() else {
        return;
    };
    let e = EtcdStore::connect(options(&cluster, "/t4"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-txn-ops=4096"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_stopped_commits_are_refused_and_work_again_once_it_is_back() {
    let Some(mut cluster) = EtcdCluster::start(1) else {
        return;
    };
    let store = EtcdStore::connect(options(&cluster, "/t5")).await.unwrap();
    let m = Manager::new(ManagerConfig::default(), Arc::new(store))
        .await
        .unwrap();
    m.jobs().submit(job("before", 1)).await.unwrap();
    cluster.kill(0);
    let e = m.jobs().submit(job("during", 1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    cluster.restart(0);
    cluster.wait_healthy(Duration::from_secs(30));
    // The manager reloads by itself and takes writes again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match m.jobs().submit(job("after", 1)).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no write went through within 30 s of etcd's return: {e}"),
        }
    }
    let names: Vec<String> = m
        .jobs()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|j| j.name.to_string())
        .collect();
    assert!(names.contains(&"before".to_string()), "{names:?}");
    assert!(names.contains(&"after".to_string()), "{names:?}");
    assert!(
        !names.contains(&"during".to_string()),
        "a refused write was kept: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_keeps_a_warm_copy_that_a_new_leader_loads() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let leader = EtcdStore::connect(options(&cluster, "/t6")).await.unwrap();
    let m = Manager::new(ManagerConfig::default(), Arc::new(leader))
        .await
        .unwrap();
    m.jobs().submit(job("first", 2)).await.unwrap();
    let follower = Arc::new(EtcdStore::connect(options(&cluster, "/t6")).await.unwrap());
    follower.follow();
    // Changes after the follower started reach its copy by the watch: new, changed, deleted.
    m.jobs().submit(job("second", 3)).await.unwrap();
    m.jobs()
        .stop(&orkestrator_core::ids::JobId::new("first"))
        .await
        .unwrap();
    m.cluster().gc(Duration::ZERO).await.unwrap();
    let index = m.durable_index();
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.warm_index() != Some(index) {
        assert!(
            Instant::now() < deadline,
            "the warm copy is at {:?}, not {index}",
            follower.warm_index()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(m);
    let warm = follower.load().await.unwrap();
    assert_eq!(follower.warm_index(), None, "following stops once loaded");
    assert_eq!(follower.warm_loads(), 1, "the load took the warm copy");
    let fresh = EtcdStore::connect(options(&cluster, "/t6")).await.unwrap();
    let full = fresh.load().await.unwrap();
    assert_eq!(warm, full, "the warm copy is what a full read gives");
    assert!(
        !warm
            .jobs
            .contains_key(&orkestrator_core::ids::JobId::new("first")),
        "{:?}",
        warm.jobs.keys()
    );
    // And the follower, now leading, commits on top of it.
    let m2 = Manager::new(ManagerConfig::default(), follower.clone())
        .await
        .unwrap();
    assert!(m2.durable_index() > index);
    assert_eq!(
        m2.jobs()
            .get(&orkestrator_core::ids::JobId::new("second"))
            .await
            .unwrap()
            .instances
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_credentials_are_used_and_wrong_ones_are_refused_clearly() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    // Turn on etcd's authentication with a root user.
    let opts = options(&cluster, "/t7");
    let mut admin = orkestrator_runtime::etcd::connect(&opts).await.unwrap();
    admin.role_add("root").await.unwrap();
    admin.user_add("root", "s3cret", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut good = options(&cluster, "/t7");
    good.user = Some(("root".into(), "s3cret".into()));
    let store = EtcdStore::connect(good)
        .await
        .expect("the right credentials");
    let m = Manager::new(ManagerConfig::default(), Arc::new(store))
        .await
        .unwrap();
    m.jobs().submit(job("with-auth", 1)).await.unwrap();

    let mut wrong = options(&cluster, "/t7");
    wrong.user = Some(("root".into(), "nope".into()));
    let e = EtcdStore::connect(wrong).await.unwrap_err().to_string();
    eprintln!("wrong password: {e}");
    assert!(
        e.contains("authentication failed") || e.contains("invalid"),
        "{e}"
    );
    let e = EtcdStore::connect(options(&cluster, "/t7"))
        .await
        .unwrap_err()
        .to_string();
    eprintln!("no credentials: {e}");
    assert!(
        e.contains("etcd refused") || e.contains("permission"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_compacts_etcds_history_behind_itself_and_a_follower_keeps_up() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let mut o = options(&cluster, "/t8");
    o.compact_every = 10;
    o.keep_revisions = 5;
    let store = EtcdStore::connect(o).await.unwrap();
    store.load().await.unwrap();
    // A follower whose watch starts now, at an old revision.
    let follower = Arc::new(EtcdStore::connect(options(&cluster, "/t8")).await.unwrap());
    follower.follow();
    for i in 1..=40u64 {
        store
            .commit(i, vec![StoreOp::SetNextInstance(i)])
            .await
            .unwrap();
    }
    // Old revisions are gone: a read at revision 2 is refused as compacted.
    let mut kv = store.client().kv_client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = kv
            .get(
                "/t8/meta/index",
                Some(etcd_client::GetOptions::new().with_revision(2)),
            )
            .await;
        match r {
            Err(e) if e.to_string().contains("compacted") => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("revision 2 is still readable: {other:?}"),
        }
    }
    // The follower keeps up through the compactions.
    while follower.warm_index() != Some(40) {
        assert!(
            Instant::now() < deadline,
            "the warm copy is at {:?}",
            follower.warm_index()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(follower.load().await.unwrap().next_instance, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_writing_one_key_twice_commits_the_last_write() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let store = EtcdStore::connect(options(&cluster, "/t9")).await.unwrap();
    store.load().await.unwrap();
    // Two changes in one group, each moving the next instance number on (as two submissions
    // grouped into one commit do): etcd refuses a key named twice in one transaction.
    store
        .commit(
            1,
            vec![StoreOp::SetNextInstance(3), StoreOp::SetNextInstance(5)],
        )
        .await
        .expect("one write of the key, the last");
    assert_eq!(store.load().await.unwrap().next_instance, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_are_grouped_into_commits_on_etcd() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let store = EtcdStore::connect(options(&cluster, "/t10")).await.unwrap();
    let m = Manager::new(ManagerConfig::default(), Arc::new(store))
        .await
        .unwrap();
    let mut all = Vec::new();
    for i in 0..64 {
        let m = m.clone();
        all.push(tokio::spawn(async move {
            m.jobs().submit(job(&format!("c{i}"), 2)).await
        }));
    }
    for t in all {
        t.await
            .unwrap()
            .expect("every concurrent submission is acknowledged");
    }
    let h = m.cluster().health().await.unwrap();
    assert!(
        h.manager.store.commits < 64 + 2,
        "grouped: {} commits",
        h.manager.store.commits
    );
    assert_eq!(h.manager.store.failures, 0);
    let fresh = EtcdStore::connect(options(&cluster, "/t10")).await.unwrap();
    let snap = fresh.load().await.unwrap();
    assert_eq!(snap.jobs.len(), 64);
    assert_eq!(snap.instances.len(), 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_on_etcd_are_sealed_in_every_value_and_a_warm_copy_follows_them() {
    use orkestrator_core::secrets::{SecretKey, SecretValue};
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let needle = b"etcd-needle-plaintext-3b1f";
    let config = |b: u8| ManagerConfig {
        secret_key: Some(SecretKey::from_bytes(&[b; 32]).unwrap()),
        ..ManagerConfig::default()
    };
    let leader = EtcdStore::connect(options(&cluster, "/t-secrets"))
        .await
        .unwrap();
    let m = Manager::new(config(1), Arc::new(leader)).await.unwrap();
    let follower = Arc::new(
        EtcdStore::connect(options(&cluster, "/t-secrets"))
            .await
            .unwrap(),
    );
    follower.follow();
    m.secrets()
        .create("db-password", SecretValue::new(needle.to_vec()))
        .await
        .unwrap();
    // A job naming it pins version 1; the update makes job version 2, pinning version 2.
    let app = parse_job(
        "name: app\ntasks:\n  - name: t\n    image: busybox:1\n    secrets: [{ name: db-password }]\n",
        Format::Yaml,
    )
    .unwrap();
    m.jobs().submit(app).await.unwrap();
    m.secrets()
        .update("db-password", SecretValue::new(needle.repeat(2)))
        .await
        .unwrap();
    let app = m
        .jobs()
        .get(&orkestrator_core::ids::JobId::new("app"))
        .await
        .unwrap();
    assert_eq!(app.version, 2);
    assert_eq!(app.spec.tasks[0].secrets[0].version, Some(2));
    m.secrets()
        .create("gone", SecretValue::new(needle.to_vec()))
        .await
        .unwrap();
    m.secrets().remove("gone").await.unwrap();
    let index = m.durable_index();
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.warm_index() != Some(index) {
        assert!(Instant::now() < deadline, "the warm copy lags");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(m);

    // Every value under the prefix, raw: no plaintext.
    let mut kv = follower.client().kv_client();
    let all = kv
        .get(
            "/t-secrets",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert!(all.kvs().len() > 3);
    for pair in all.kvs() {
        assert!(
            !pair.value().windows(needle.len()).any(|w| w == needle),
            "plaintext under {}",
            String::from_utf8_lossy(pair.key())
        );
    }
    assert!(follower.secret_key_check().await.unwrap().is_some());

    let warm = follower.load().await.unwrap();
    let fresh = EtcdStore::connect(options(&cluster, "/t-secrets"))
        .await
        .unwrap();
    assert_eq!(warm, fresh.load().await.unwrap());
    let kept: Vec<_> = warm.secrets.keys().cloned().collect();
    // Version 1 is kept: job version 1 pins it.
    assert_eq!(
        kept,
        [("db-password".to_owned(), 1), ("db-password".to_owned(), 2)]
    );

    // Another key: refused at start, naming the flag.
    let e = Manager::new(config(2), Arc::new(fresh))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("--secret-key-file"), "{e}");
    // The same key: the value opens.
    let m = Manager::new(config(1), follower).await.unwrap();
    let v = m.secrets().value("db-password", None).await.unwrap();
    assert_eq!(v.as_bytes(), needle.repeat(2).as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_records_on_etcd_load_back_and_a_warm_copy_follows_them() {
    use orkestrator_core::api::{VolumeRecord, VolumeRef, VolumeState};
    use orkestrator_core::ids::{JobId, WorkerId};
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let rec = |worker: &str, state| VolumeRecord {
        of: VolumeRef {
            job: JobId::new("db"),
            index: 1,
            volume: "data".into(),
        },
        worker: WorkerId::new(worker),
        state,
        retain: false,
        created_at: 3,
    };
    let store = EtcdStore::connect(options(&cluster, "/tvol"))
        .await
        .unwrap();
    let follower = Arc::new(
        EtcdStore::connect(options(&cluster, "/tvol"))
            .await
            .unwrap(),
    );
    follower.follow();
    store
        .commit(
            1,
            vec![
                StoreOp::PutVolume(rec("w1", VolumeState::Orphan)),
                StoreOp::PutVolume(rec("w2", VolumeState::Active)),
            ],
        )
        .await
        .unwrap();
    store
        .commit(
            2,
            vec![
                StoreOp::DeleteVolume {
                    of: rec("w1", VolumeState::Orphan).of,
                    worker: WorkerId::new("w1"),
                },
                StoreOp::PutVolume(rec("w2", VolumeState::Removing)),
            ],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.warm_index() != Some(2) {
        assert!(Instant::now() < deadline, "{:?}", follower.warm_index());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let warm = follower.load().await.unwrap();
    let full = EtcdStore::connect(options(&cluster, "/tvol"))
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    assert_eq!(warm, full, "the warm copy is what a full read gives");
    assert_eq!(
        full.volumes.into_values().collect::<Vec<_>>(),
        [rec("w2", VolumeState::Removing)]
    );
}
