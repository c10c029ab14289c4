//! The HTTP client with several manager addresses, against real local listeners that play
//! managers: it moves past an address nothing listens on, follows the leader a follower names
//! in `orkestrator-leader`, and goes round the list while the managers have no leader; an
//! ordinary error answer is returned as it is, never resent elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use orkestrator_core::Error;
use orkestrator_core::api::{ApiError, ErrorKind};
use orkestrator_core::ids::SchedulerId;
use orkestrator_core::transport::SchedulerApi;
use orkestrator_runtime::http::client::{HttpTransport, LEADER_HEADER};

/// How long any one step of a test may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(20);

/// A listener that answers every request with `reply(n)` for its `n`th request (from 0).
struct Fake {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl Fake {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn fake(reply: impl Fn(usize) -> Response + Send + Sync + 'static) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let reply = Arc::new(reply);
    let app = Router::new().fallback(move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        let reply = reply.clone();
        async move { reply(n) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { base, hits }
}

/// An address with nothing listening on it (a port that was just free).
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// What a heartbeat is answered with: `null`.
fn ok() -> Response {
    Json(serde_json::Value::Null).into_response()
}

fn no_leader() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ApiError::unavailable(
            "no_leader",
            "the managers are electing a leader",
        )),
    )
        .into_response()
}

fn led_by(leader: &str) -> Response {
    ([(LEADER_HEADER, leader.to_owned())], ok()).into_response()
}

async fn heartbeat(t: &HttpTransport) -> orkestrator_core::Result<()> {
    tokio::time::timeout(DEADLINE, t.scheduler_heartbeat(&SchedulerId::from("s1")))
        .await
        .expect("the request did not end in time")
}

#[tokio::test]
async fn a_dead_first_address_fails_over_to_the_next_and_stays_there() {
    let live = fake(|_| ok()).await;
    let dead = dead_address();
    let t = HttpTransport::new(&format!("{dead},{}", live.base)).unwrap();
    assert_eq!(t.base(), dead);
    heartbeat(&t).await.unwrap();
    assert_eq!(live.hits(), 1);
    assert_eq!(
        t.base(),
        live.base,
        "the client stays on the address that answered"
    );
    heartbeat(&t).await.unwrap();
    assert_eq!(live.hits(), 2);
}

#[tokio::test]
async fn every_address_dead_is_unreachable() {
    let (a, b) = (dead_address(), dead_address());
    let t = HttpTransport::new(&format!("{a},{b}")).unwrap();
    match heartbeat(&t).await {
        Err(Error::Unreachable { message, .. }) => {
            assert!(message.contains("no other manager answered"), "{message}");
            assert!(message.contains(&a) && message.contains(&b), "{message}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    // One address: as before, the error of that address alone.
    let one = HttpTransport::new(&a).unwrap();
    match heartbeat(&one).await {
        Err(Error::Unreachable { addr, message }) => {
            assert_eq!(addr, a);
            assert!(!message.contains("no other manager"), "{message}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_leader_header_moves_the_client_to_the_leader() {
    let leader = fake(|_| ok()).await;
    let leader_base = leader.base.clone();
    let follower = fake(move |_| led_by(&leader_base)).await;
    let t = HttpTransport::new(&format!("{},{}", follower.base, leader.base)).unwrap();
    heartbeat(&t).await.unwrap();
    assert_eq!((follower.hits(), leader.hits()), (1, 0));
    assert_eq!(t.base(), leader.base);
    heartbeat(&t).await.unwrap();
    heartbeat(&t).await.unwrap();
    assert_eq!(
        (follower.hits(), leader.hits()),
        (1, 2),
        "the next requests go to the leader directly"
    );
}

#[tokio::test]
async fn a_leader_the_client_does_not_know_is_not_followed() {
    let elsewhere = dead_address();
    let follower = fake(move |_| led_by(&elsewhere)).await;
    let other = fake(|_| ok()).await;
    let t = HttpTransport::new(&format!("{},{}", follower.base, other.base)).unwrap();
    heartbeat(&t).await.unwrap();
    heartbeat(&t).await.unwrap();
    assert_eq!(t.base(), follower.base);
    assert_eq!((follower.hits(), other.hits()), (2, 0));
}

#[tokio::test]
async fn no_leader_is_retried_on_the_next_address() {
    let electing = fake(|_| no_leader()).await;
    let leader = fake(|_| ok()).await;
    let t = HttpTransport::new(&format!("{},{}", electing.base, leader.base)).unwrap();
    heartbeat(&t).await.unwrap();
    assert_eq!((electing.hits(), leader.hits()), (1, 1));
    assert_eq!(t.base(), leader.base);
}

#[tokio::test]
async fn no_leader_at_one_address_is_retried_until_there_is_one() {
    let m = fake(|n| if n < 3 { no_leader() } else { ok() }).await;
    let t = HttpTransport::new(&m.base).unwrap();
    heartbeat(&t).await.unwrap();
    assert_eq!(m.hits(), 4);
}

#[tokio::test]
async fn no_leader_gives_up_after_the_election_wait() {
    let (a, b) = (fake(|_| no_leader()).await, fake(|_| no_leader()).await);
    let t = HttpTransport::new(&format!("{},{}", a.base, b.base))
        .unwrap()
        .with_election_wait(Duration::from_millis(400));
    let started = Instant::now();
    match heartbeat(&t).await {
        Err(Error::Api(e)) => assert_eq!(e.code, "no_leader", "{e}"),
        other => panic!("expected no_leader, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(a.hits() >= 1 && b.hits() >= 1, "{} {}", a.hits(), b.hits());
    assert!(a.hits() + b.hits() >= 3, "{} {}", a.hits(), b.hits());
}

#[tokio::test]
async fn an_error_answer_is_not_sent_elsewhere() {
    let missing = fake(|_| {
        (
            StatusCode::NOT_FOUND,
            Json(ApiError::not_found("scheduler", "s1")),
        )
            .into_response()
    })
    .await;
    let failing = fake(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ApiError::unavailable("store", "the commit failed")),
        )
            .into_response()
    })
    .await;
    let other = fake(|_| ok()).await;
    for first in [&missing, &failing] {
        let t = HttpTransport::new(&format!("{},{}", first.base, other.base)).unwrap();
        match heartbeat(&t).await {
            Err(Error::Api(e)) => assert!(
                matches!(e.kind, ErrorKind::NotFound | ErrorKind::Unavailable),
                "{e}"
            ),
            other => panic!("expected the error answer, got {other:?}"),
        }
        assert_eq!(t.base(), first.base);
    }
    assert_eq!((missing.hits(), failing.hits(), other.hits()), (1, 1, 0));
}

#[tokio::test]
async fn a_stream_opens_on_the_next_address() {
    let live = fake(|_| "hello from the leader".into_response()).await;
    let t = HttpTransport::new(&format!("{},{}", dead_address(), live.base)).unwrap();
    let body = tokio::time::timeout(DEADLINE, async {
        let mut s = t.stream_get("/v1/anything", "text/plain", &[]).await?;
        let mut got = Vec::new();
        while let Some(chunk) = s.next().await {
            got.extend_from_slice(&chunk?);
        }
        Ok::<_, Error>(got)
    })
    .await
    .expect("the stream did not end in time")
    .unwrap();
    assert_eq!(body, b"hello from the leader");
    assert_eq!(t.base(), live.base);
}
