//! Authentication in the manager itself (no HTTP): tokens created, listed and revoked, only
//! digests in the store, credentials issued at registration and the NodeRestriction rules (a
//! worker acts only as itself, a name is taken again only with its credential or by an
//! operator, a worker registered before credentials existed claims its name once), a worker
//! reporting only its own instances, a scheduler deciding only its leases, tokens across a
//! restart, dashboard sessions and the credentials of garbage-collected workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orkestrator_core::api::*;
use orkestrator_core::auth::{self, CreateToken, Principal, Role, Subject, TokenInfo, TokenParts};
use orkestrator_core::ids::{InstanceId, JobId, SchedulerId, WorkerId};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, Job, Resources, parse_job};
use orkestrator_core::state::TaskState;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::units::{ByteSize, Cpu};

async fn manager_on(store: &Arc<MemoryStore>) -> Manager {
    Manager::new(ManagerConfig::default(), store.clone())
        .await
        .unwrap()
}

fn job(name: &str) -> Job {
    parse_job(
        &format!("name: {name}\ntasks: [{{name: t, image: x:1, resources: {{memory: 64Mi}}}}]"),
        Format::Yaml,
    )
    .unwrap()
}

fn reg(id: &str) -> RegisterWorker {
    let total = Resources {
        cpu: Cpu::from_cores(8),
        memory: ByteSize::mib(4096),
        disk: ByteSize::gib(50),
    };
    RegisterWorker {
        id: WorkerId::new(id),
        address: Some(format!("http://{id}.invalid:5556")),
        labels: BTreeMap::new(),
        host_volumes: Default::default(),
        resources: WorkerResources {
            total,
            allocated: Resources::ZERO,
            available: total,
        },
        version: String::new(),
    }
}

async fn issue(m: &Manager, role: Role, name: &str) -> String {
    m.tokens()
        .create(CreateToken {
            role,
            name: Some(name.into()),
        })
        .await
        .unwrap()
        .token
}

fn who(m: &Manager, token: &str) -> Principal {
    m.tokens()
        .authenticate(token)
        .unwrap_or_else(|e| panic!("{token:.16}... does not authenticate: {e:?}"))
}

fn secret_of(token: &str) -> String {
    TokenParts::parse(token)
        .unwrap_or_else(|| panic!("{token:.16}... is not a token"))
        .secret
        .to_owned()
}

#[track_caller]
fn refused(r: Result<impl std::fmt::Debug, ApiError>, kind: ErrorKind, code: &str) -> ApiError {
    match r {
        Ok(v) => panic!("expected {kind:?} {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e:?}");
            assert!(!e.message.is_empty(), "{e:?}");
            e
        }
    }
}

#[track_caller]
fn unauthenticated(m: &Manager, token: &str) {
    refused(
        m.tokens().authenticate(token),
        ErrorKind::Unauthenticated,
        "unauthenticated",
    );
}

/// The credentials of worker `id` in the manager's list.
async fn credentials_of(m: &Manager, id: &str) -> Vec<TokenInfo> {
    m.tokens()
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.subject.as_deref() == Some(id))
        .collect()
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_and_only_their_digests_are_stored() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let mut issued = Vec::new();
    for (role, name) in [
        (Role::Operator, "ops"),
        (Role::Read, "prometheus"),
        (Role::Join, "workers"),
    ] {
        let t = m
            .tokens()
            .create(CreateToken {
                role: role.clone(),
                name: Some(name.into()),
            })
            .await
            .unwrap();
        assert_eq!((&t.info.role, t.info.name.as_deref()), (&role, Some(name)));
        let p = who(&m, &t.token);
        assert_eq!(
            (p.role, p.token.as_str(), p.subject),
            (role, t.info.id.as_str(), None)
        );
        issued.push(t);
    }
    let ids: Vec<&str> = issued.iter().map(|t| t.info.id.as_str()).collect();
    let secrets: Vec<String> = issued.iter().map(|t| secret_of(&t.token)).collect();
    assert_eq!(secrets.len(), 3);
    assert!(
        secrets.iter().all(|s| s.len() == 64),
        "256-bit secrets in hex"
    );

    // The list names them all and never shows a secret.
    let list = m.tokens().list().await.unwrap();
    for t in &issued {
        assert!(list.contains(&t.info), "{:?} missing from {list:?}", t.info);
    }
    let shown = serde_json::to_string(&list).unwrap();
    for s in &secrets {
        assert!(
            !shown.contains(s.as_str()),
            "the list shows a secret: {shown}"
        );
    }

    // The store holds each token as the SHA-256 of its secret and nothing else of it.
    let snap = store.snapshot();
    for (t, s) in issued.iter().zip(&secrets) {
        let r = snap
            .tokens
            .get(&t.info.id)
            .unwrap_or_else(|| panic!("{} is not in the store", t.info.id));
        assert_eq!(r.digest, auth::digest(s));
        assert_ne!(r.digest, auth::digest(&t.token));
    }
    let stored = format!(
        "{snap:?}{}",
        serde_json::to_string(&snap.tokens.values().collect::<Vec<_>>()).unwrap()
    );
    for s in &secrets {
        assert!(!stored.contains(s.as_str()), "a secret in the store");
    }

    // A wrong secret with a known id, a malformed token and an unknown one are refused.
    let wrong = format!("ork.{}.{}", ids[1], "0".repeat(64));
    unauthenticated(&m, &wrong);
    unauthenticated(&m, "ork.short.secret");
    unauthenticated(&m, &format!("ork.{}.{}", "a".repeat(12), secrets[1]));

    // Revoking the read token: refused at once, gone from the list and from the store.
    let info = m.tokens().revoke(ids[1]).await.unwrap();
    assert_eq!(info, issued[1].info);
    unauthenticated(&m, &issued[1].token);
    assert!(!m.tokens().list().await.unwrap().contains(&issued[1].info));
    assert!(!store.snapshot().tokens.contains_key(ids[1]));
    refused(
        m.tokens().revoke(ids[1]).await,
        ErrorKind::NotFound,
        "not_found",
    );
    // The others still work.
    who(&m, &issued[0].token);
    who(&m, &issued[2].token);

    // Users cannot mint component credentials, nor name a token without bound.
    for role in [Role::Worker, Role::Scheduler, Role::Manager] {
        refused(
            m.tokens().create(CreateToken { role, name: None }).await,
            ErrorKind::Invalid,
            "invalid_role",
        );
    }
    let long = m
        .tokens()
        .create(CreateToken {
            role: Role::Read,
            name: Some("x".repeat(auth::MAX_TOKEN_NAME + 1)),
        })
        .await;
    assert!(long.is_err(), "{long:?}");
}

#[tokio::test]
async fn a_join_token_registers_a_name_once_then_only_its_credential_or_an_operator_takes_it() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let join = who(&m, &issue(&m, Role::Join, "join").await);

    let first = m.workers().register_as(reg("w1"), &join).await.unwrap();
    let c1 = first
        .credential
        .expect("a join registration issues a credential");
    let p1 = who(&m, &c1);
    assert_eq!(p1.role, Role::Worker);
    assert_eq!(p1.subject, Some(Subject::Worker(WorkerId::new("w1"))));
    assert!(
        !format!("{:?}", store.snapshot()).contains(&secret_of(&c1)),
        "a credential's secret in the store"
    );

    // The join token again: the name has a credential of its own.
    let e = refused(
        m.workers().register_as(reg("w1"), &join).await,
        ErrorKind::Forbidden,
        "name_taken",
    );
    assert!(e.message.contains("w1"), "{e:?}");
    who(&m, &c1);

    // Its own credential: re-registered, no new credential.
    let again = m.workers().register_as(reg("w1"), &p1).await.unwrap();
    assert_eq!(again.credential, None);
    who(&m, &c1);
    assert_eq!(credentials_of(&m, "w1").await.len(), 1);

    // An operator takes the name: a new credential, and the old one stops working.
    let taken = m
        .workers()
        .register_as(reg("w1"), &Principal::operator())
        .await
        .unwrap();
    let c2 = taken
        .credential
        .expect("an operator's registration issues a credential");
    assert_ne!(c2, c1);
    unauthenticated(&m, &c1);
    assert!(who(&m, &c2).is_worker(&WorkerId::new("w1")));
    let creds = credentials_of(&m, "w1").await;
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(creds[0].id, who(&m, &c2).token);
    assert_eq!(
        store.snapshot().tokens.len(),
        2,
        "the join token and w1's one credential"
    );

    // A read token registers nothing.
    let read = who(&m, &issue(&m, Role::Read, "r").await);
    refused(
        m.workers().register_as(reg("w2"), &read).await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    refused(
        m.schedulers()
            .register_as(
                RegisterScheduler {
                    id: SchedulerId::new("s"),
                    algorithm: "spread".into(),
                },
                &read,
            )
            .await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    let page = m.workers().list(&ListQuery::default()).await.unwrap();
    assert!(
        page.items.iter().all(|w| w.id.as_str() != "w2"),
        "a refused registration registered"
    );
}

#[tokio::test]
async fn a_worker_credential_cannot_register_as_another_worker() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let join = who(&m, &issue(&m, Role::Join, "join").await);
    let a = m
        .workers()
        .register_as(reg("a"), &join)
        .await
        .unwrap()
        .credential
        .unwrap();
    let b = m
        .workers()
        .register_as(reg("b"), &join)
        .await
        .unwrap()
        .credential
        .unwrap();
    let b_before = who(&m, &b);
    let mut changed = reg("b");
    changed.address = Some("http://attacker.invalid:1".into());
    refused(
        m.workers().register_as(changed, &who(&m, &a)).await,
        ErrorKind::Forbidden,
        "not_yourself",
    );
    // B is as it was: its credential, its address.
    assert_eq!(who(&m, &b), b_before);
    assert_eq!(credentials_of(&m, "b").await.len(), 1);
    assert_eq!(
        store.snapshot().workers[&WorkerId::new("b")]
            .address
            .as_deref(),
        Some("http://b.invalid:5556")
    );
    // The same holds for a name not registered yet: a worker's credential is for itself only.
    refused(
        m.workers().register_as(reg("c"), &who(&m, &a)).await,
        ErrorKind::Forbidden,
        "not_yourself",
    );
    assert!(!store.snapshot().workers.contains_key(&WorkerId::new("c")));
}

#[tokio::test]
async fn a_worker_registered_before_credentials_existed_claims_its_name_once_with_the_join_token() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    // The trusted path (and what a store from before this change holds): no credential.
    assert_eq!(
        m.workers().register(reg("old")).await.unwrap().credential,
        None
    );
    assert!(credentials_of(&m, "old").await.is_empty());
    let join = who(&m, &issue(&m, Role::Join, "join").await);
    let claimed = m
        .workers()
        .register_as(reg("old"), &join)
        .await
        .unwrap()
        .credential
        .expect("claiming the name issues its credential");
    assert!(who(&m, &claimed).is_worker(&WorkerId::new("old")));
    refused(
        m.workers().register_as(reg("old"), &join).await,
        ErrorKind::Forbidden,
        "name_taken",
    );
    who(&m, &claimed);
    assert_eq!(credentials_of(&m, "old").await.len(), 1);
}

/// Places one instance of a new job `name` on `worker` through scheduler `s`.
async fn place(m: &Manager, s: &SchedulerId, name: &str, worker: &str) -> InstanceId {
    m.jobs().submit(job(name)).await.unwrap();
    let work = m.schedulers().work(s, Duration::ZERO).await.unwrap();
    assert_eq!(work.pending.len(), 1, "{work:?}");
    let instance = work.pending[0].instance.clone();
    let r = m
        .schedulers()
        .decide(
            s,
            vec![Decision {
                instance: instance.clone(),
                outcome: DecisionOutcome::Place {
                    worker: WorkerId::new(worker),
                },
            }],
        )
        .await
        .unwrap();
    assert!(r[0].accepted, "{r:?}");
    instance
}

fn update(instance: &InstanceId, state: TaskState) -> TaskUpdate {
    TaskUpdate {
        instance: instance.clone(),
        task: "t".into(),
        state,
        exit_code: None,
        reason: None,
        container_id: Some("c0ffee".into()),
        restarts: 0,
        next_start_at: None,
        healthy: None,
    }
}

async fn task_state(m: &Manager, name: &str) -> TaskState {
    let v = m.jobs().get(&JobId::new(name)).await.unwrap();
    assert_eq!(v.instances.len(), 1, "{v:?}");
    v.instances[0].tasks["t"].state
}

#[tokio::test]
async fn a_worker_reports_status_only_for_its_own_instances() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    m.workers().register(reg("w1")).await.unwrap();
    m.workers().register(reg("w2")).await.unwrap();
    let s = SchedulerId::new("s");
    m.schedulers()
        .register(RegisterScheduler {
            id: s.clone(),
            algorithm: "test".into(),
        })
        .await
        .unwrap();
    let on_w1 = place(&m, &s, "one", "w1").await;
    let on_w2 = place(&m, &s, "two", "w2").await;
    let (before_one, before_two) = (task_state(&m, "one").await, task_state(&m, "two").await);
    let stored = store.snapshot().instances;

    // W2 reporting W1's instance, alone or beside one of its own: refused whole.
    for updates in [
        vec![update(&on_w1, TaskState::Failed)],
        vec![
            update(&on_w2, TaskState::Starting),
            update(&on_w1, TaskState::Failed),
        ],
    ] {
        let e = refused(
            m.workers().report(&WorkerId::new("w2"), updates).await,
            ErrorKind::Forbidden,
            "not_your_instance",
        );
        assert!(e.message.contains("w1"), "{e:?}");
    }
    assert_eq!(task_state(&m, "one").await, before_one);
    assert_eq!(task_state(&m, "two").await, before_two);
    assert_eq!(
        store.snapshot().instances,
        stored,
        "a refused report changed the store"
    );

    // Each worker may report its own.
    m.workers()
        .report(
            &WorkerId::new("w1"),
            vec![update(&on_w1, TaskState::Starting)],
        )
        .await
        .unwrap();
    m.workers()
        .report(
            &WorkerId::new("w2"),
            vec![update(&on_w2, TaskState::Starting)],
        )
        .await
        .unwrap();
    assert_eq!(task_state(&m, "one").await, TaskState::Starting);
    assert_eq!(task_state(&m, "two").await, TaskState::Starting);
}

#[tokio::test]
async fn a_scheduler_decides_only_the_instances_it_leased() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    m.workers().register(reg("w")).await.unwrap();
    let (a, b) = (SchedulerId::new("a"), SchedulerId::new("b"));
    for s in [&a, &b] {
        m.schedulers()
            .register(RegisterScheduler {
                id: s.clone(),
                algorithm: "test".into(),
            })
            .await
            .unwrap();
    }
    m.jobs().submit(job("j")).await.unwrap();
    let work = m.schedulers().work(&a, Duration::ZERO).await.unwrap();
    let instance = work.pending[0].instance.clone();
    let decision = Decision {
        instance: instance.clone(),
        outcome: DecisionOutcome::Place {
            worker: WorkerId::new("w"),
        },
    };
    let e = refused(
        m.schedulers().decide(&b, vec![decision.clone()]).await,
        ErrorKind::Forbidden,
        "not_your_lease",
    );
    assert!(e.message.contains("\"a\""), "{e:?}");
    let v = m.jobs().get(&JobId::new("j")).await.unwrap();
    assert_eq!(v.instances[0].worker, None, "a refused decision placed it");
    assert_eq!(task_state(&m, "j").await, TaskState::Pending);
    let r = m.schedulers().decide(&a, vec![decision]).await.unwrap();
    assert!(r[0].accepted, "{r:?}");
    let v = m.jobs().get(&JobId::new("j")).await.unwrap();
    assert_eq!(v.instances[0].worker, Some(WorkerId::new("w")));
}

#[tokio::test]
async fn a_scheduler_joins_once_while_it_is_live() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let join = who(&m, &issue(&m, Role::Join, "join").await);
    let req = || RegisterScheduler {
        id: SchedulerId::new("remote"),
        algorithm: "spread".into(),
    };
    let c = m
        .schedulers()
        .register_as(req(), &join)
        .await
        .unwrap()
        .credential
        .expect("a credential for the scheduler");
    let p = who(&m, &c);
    assert_eq!(p.role, Role::Scheduler);
    assert!(p.is_scheduler(&SchedulerId::new("remote")));
    refused(
        m.schedulers().register_as(req(), &join).await,
        ErrorKind::Forbidden,
        "name_taken",
    );
    assert_eq!(
        m.schedulers()
            .register_as(req(), &p)
            .await
            .unwrap()
            .credential,
        None
    );
    let other = RegisterScheduler {
        id: SchedulerId::new("other"),
        algorithm: "spread".into(),
    };
    refused(
        m.schedulers().register_as(other, &p).await,
        ErrorKind::Forbidden,
        "not_yourself",
    );
}

#[tokio::test]
async fn tokens_and_credentials_survive_a_restart_on_the_same_store() {
    let store = Arc::new(MemoryStore::new());
    let (op, read, gone, cred) = {
        let m = manager_on(&store).await;
        let op = issue(&m, Role::Operator, "ops").await;
        let read = issue(&m, Role::Read, "r").await;
        let gone = issue(&m, Role::Read, "gone").await;
        m.tokens().revoke(&who(&m, &gone).token).await.unwrap();
        let join = who(&m, &issue(&m, Role::Join, "join").await);
        let cred = m
            .workers()
            .register_as(reg("w"), &join)
            .await
            .unwrap()
            .credential
            .unwrap();
        (op, read, gone, cred)
    };
    let m = manager_on(&store).await;
    assert_eq!(who(&m, &op).role, Role::Operator);
    assert_eq!(who(&m, &read).role, Role::Read);
    unauthenticated(&m, &gone);
    let p = who(&m, &cred);
    assert!(p.is_worker(&WorkerId::new("w")));
    // The worker comes back as itself: no new credential; the name is still taken.
    assert_eq!(
        m.workers()
            .register_as(reg("w"), &p)
            .await
            .unwrap()
            .credential,
        None
    );
    let join = m
        .tokens()
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.role == Role::Join)
        .expect("the join token is listed after the restart");
    assert_eq!(join.name.as_deref(), Some("join"));
    let list = m.tokens().list().await.unwrap();
    assert_eq!(list.len(), 4, "ops, r, join and w's credential: {list:?}");
}

#[tokio::test]
async fn dashboard_sessions_end_when_their_token_is_revoked() {
    let store = Arc::new(MemoryStore::new());
    let m = manager_on(&store).await;
    let read = issue(&m, Role::Read, "browser").await;
    let (session, info) = m.tokens().open_session(&read).unwrap();
    assert_eq!(info.role, Role::Read);
    assert!(!session.contains(&secret_of(&read)));
    let p = m.tokens().authenticate_session(&session).unwrap();
    assert_eq!((p.role, p.token.as_str()), (Role::Read, info.id.as_str()));
    // A session is not a bearer token, and a bearer token is not a session.
    assert!(m.tokens().authenticate(&session).is_err());
    assert!(m.tokens().authenticate_session(&read).is_err());

    m.tokens().revoke(&info.id).await.unwrap();
    refused(
        m.tokens().authenticate_session(&session),
        ErrorKind::Unauthenticated,
        "unauthenticated",
    );
    refused(
        m.tokens().open_session(&read),
        ErrorKind::Unauthenticated,
        "unauthenticated",
    );

    // Signing out ends a session whose token still lives.
    let op = issue(&m, Role::Operator, "admin").await;
    let (s2, _) = m.tokens().open_session(&op).unwrap();
    m.tokens().authenticate_session(&s2).unwrap();
    m.tokens().close_session(&s2);
    refused(
        m.tokens().authenticate_session(&s2),
        ErrorKind::Unauthenticated,
        "unauthenticated",
    );
    who(&m, &op);

    // Join tokens and component credentials cannot sign in.
    let join = issue(&m, Role::Join, "join").await;
    refused(
        m.tokens().open_session(&join),
        ErrorKind::Forbidden,
        "forbidden",
    );
    let cred = m
        .workers()
        .register_as(reg("w"), &who(&m, &join))
        .await
        .unwrap()
        .credential
        .unwrap();
    refused(
        m.tokens().open_session(&cred),
        ErrorKind::Forbidden,
        "forbidden",
    );
}

#[tokio::test(start_paused = true)]
async fn a_garbage_collected_worker_loses_its_credential() {
    let store = Arc::new(MemoryStore::new());
    let config = ManagerConfig {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_grace: Duration::from_millis(300),
        ..ManagerConfig::default()
    };
    let m = Manager::new(config, store.clone()).await.unwrap();
    let join = who(&m, &issue(&m, Role::Join, "join").await);
    let mut creds = BTreeMap::new();
    for id in ["dies", "lives"] {
        let c = m
            .workers()
            .register_as(reg(id), &join)
            .await
            .unwrap()
            .credential
            .unwrap();
        creds.insert(id, c);
    }
    let lives = WorkerId::new("lives");
    let hb = || WorkerHeartbeat {
        resources: reg("lives").resources,
        healthy: true,
        message: None,
    };
    // "lives" keeps heartbeating; "dies" stops and goes Down.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        m.workers().heartbeat(&lives, hb()).await.unwrap();
        m.cluster().check_liveness().await;
        let page = m.workers().list(&ListQuery::default()).await.unwrap();
        let status = |id: &str| {
            page.items
                .iter()
                .find(|w| w.id.as_str() == id)
                .map(|w| w.status)
        };
        if status("dies") == Some(Liveness::Down) {
            assert_eq!(status("lives"), Some(Liveness::Ready));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker dies never went Down: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its credential outlives a GC that keeps it (a long horizon)...
    assert_eq!(
        m.cluster()
            .gc(Duration::from_secs(3600))
            .await
            .unwrap()
            .workers,
        0
    );
    who(&m, &creds["dies"]);
    // ...and goes with it.
    let r = m.cluster().gc(Duration::ZERO).await.unwrap();
    assert_eq!(r.workers, 1, "{r:?}");
    unauthenticated(&m, &creds["dies"]);
    assert!(credentials_of(&m, "dies").await.is_empty());
    let snap = store.snapshot();
    assert!(
        snap.tokens
            .values()
            .all(|t| t.subject != Some(Subject::Worker(WorkerId::new("dies")))),
        "the store keeps a GC'd worker's credential: {:?}",
        snap.tokens
    );
    who(&m, &creds["lives"]);
    // The name is free again for the join token.
    assert!(
        m.workers()
            .register_as(reg("dies"), &join)
            .await
            .unwrap()
            .credential
            .is_some()
    );
}
