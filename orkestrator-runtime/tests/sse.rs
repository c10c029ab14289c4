//! `GET /v1/events` over real HTTP: Server-Sent Events with `id: INDEX.SEQ`, resumed by
//! `Last-Event-ID` with nothing missed or repeated, a reset event for a start older than the
//! window, keep-alive comments, filters, clear errors for bad queries; and the HTTP client's
//! event stream reading the same.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use orkestrator_core::events::{EventFilter, StreamItem, StreamStart, Topic};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::{Format, parse_job};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_runtime::http::client::HttpTransport;
use orkestrator_runtime::http::sse::{SseDecoder, SseMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

async fn serve(cfg: ManagerConfig) -> (Manager, u16) {
    let m = Manager::new(cfg, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    support::remember_operator(&m, port).await;
    let served = m.clone();
    tokio::spawn(async move {
        orkestrator_runtime::http::server::serve(listener, served, std::future::pending())
            .await
            .unwrap();
    });
    (m, port)
}

async fn submit(m: &Manager, name: &str) -> u64 {
    let job = parse_job(
        &format!("name: {name}\ntasks: [{{name: t, image: x:1}}]"),
        Format::Yaml,
    )
    .unwrap();
    m.jobs().submit(job).await.unwrap().index
}

/// A raw SSE connection: sends the request, then decodes messages as they come.
struct Raw {
    stream: TcpStream,
    decoder: SseDecoder,
    head: String,
    pending: Vec<SseMessage>,
    raw: String,
}

impl Raw {
    async fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // HTTP/1.0: the body comes unchunked, ended by the close, so it is SSE bytes alone.
        let mut req = format!(
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{}",
            support::auth_line(port)
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
                .await
                .expect("no answer head within 10 s")
                .unwrap();
            assert_eq!(n, 1, "connection closed before the head");
            head.push(byte[0]);
        }
        Raw {
            stream,
            decoder: SseDecoder::new(),
            head: String::from_utf8_lossy(&head).into_owned(),
            pending: Vec::new(),
            raw: String::new(),
        }
    }

    /// The next message that is not a bookmark, within 10 s.
    async fn next(&mut self) -> SseMessage {
        loop {
            let m = self.next_any().await;
            if m.event != "bookmark" {
                return m;
            }
        }
    }

    /// The next message, within 10 s.
    async fn next_any(&mut self) -> SseMessage {
        loop {
            if !self.pending.is_empty() {
                return self.pending.remove(0);
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf))
                .await
                .expect("no message within 10 s")
                .unwrap();
            assert!(n > 0, "the stream closed");
            self.raw.push_str(&String::from_utf8_lossy(&buf[..n]));
            self.pending = self.decoder.feed(&buf[..n]).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_as_sse_and_resume_by_last_event_id_without_gap_or_repeat() {
    let (m, port) = serve(ManagerConfig::default()).await;
    let first = submit(&m, "a0").await;
    for i in 1..10 {
        submit(&m, &format!("a{i}")).await;
    }
    let mut s = Raw::open(port, &format!("/v1/events?index={first}&topic=job"), &[]).await;
    assert!(
        s.head.starts_with("HTTP/1.") && s.head.contains(" 200 "),
        "{}",
        s.head
    );
    assert!(
        s.head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        s.head
    );
    let mut ids = Vec::new();
    for _ in 0..4 {
        let msg = s.next().await;
        assert_eq!(msg.event, "message");
        let e: serde_json::Value = serde_json::from_str(&msg.data).unwrap();
        assert_eq!(e["kind"]["type"], "job_submitted");
        assert_eq!(
            msg.id.as_deref(),
            Some(format!("{}.{}", e["index"], e["seq"]).as_str())
        );
        ids.push(msg.id.unwrap());
    }
    drop(s);
    // Reconnect with Last-Event-ID, as a browser does.
    let last = ids.last().unwrap().clone();
    let mut again = Raw::open(
        port,
        "/v1/events?topic=job",
        &[("Last-Event-ID", last.as_str())],
    )
    .await;
    for _ in 4..10 {
        ids.push(again.next().await.id.unwrap());
    }
    let names: Vec<u64> = ids
        .iter()
        .map(|i| i.split('.').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {ids:?}"
    );
    assert_eq!(names.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_old_a_start_gets_a_reset_event_and_keep_alives_flow() {
    let cfg = ManagerConfig {
        event_window: 5,
        ..ManagerConfig::default()
    };
    let (m, port) = serve(cfg).await;
    let first = submit(&m, "b0").await;
    for i in 1..20 {
        submit(&m, &format!("b{i}")).await;
    }
    let mut s = Raw::open(
        port,
        &format!("/v1/events?index={first}&keepalive=200ms"),
        &[],
    )
    .await;
    let reset = s.next().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    let r: serde_json::Value = serde_json::from_str(&reset.data).unwrap();
    assert!(r["message"].as_str().unwrap().contains("re-list"), "{r}");
    assert!(r["oldest_index"].as_u64().unwrap() > first, "{r}");
    // Nothing happens now: keep-alive comments arrive regardless.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !s.raw.contains(":") || !s.raw.lines().any(|l| l.starts_with(':')) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no keep-alive: {:?}",
            s.raw
        );
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.stream.read(&mut buf))
            .await
            .expect("no keep-alive within 5 s")
            .unwrap();
        s.raw.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // And the stream goes on with what follows the reset.
    submit(&m, "after").await;
    let next = s.next().await;
    assert!(next.data.contains("\"after\""), "{next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_event_queries_get_clear_errors() {
    let (_m, port) = serve(ManagerConfig::default()).await;
    for (path, names) in [
        ("/v1/events?topic=jobs", "unknown topic"),
        ("/v1/events?index=abc", "index"),
        ("/v1/events?wat=1", "wat"),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
                support::auth_line(port)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
        assert!(out.contains(names), "{path}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_client_follows_and_filters_the_stream() {
    let (m, port) = serve(ManagerConfig::default()).await;
    let http = HttpTransport::new(&format!("127.0.0.1:{port}"))
        .unwrap()
        .with_token(Some(support::token_for(port)));
    let start = m.durable_index() + 1;
    let mut only_c3 = http
        .events(
            StreamStart::Index(start),
            &EventFilter {
                topics: vec![Topic::Job],
                key: Some("c3".into()),
            },
        )
        .await
        .unwrap();
    for i in 0..6 {
        submit(&m, &format!("c{i}")).await;
    }
    let item = next_item(&mut only_c3).await;
    match item {
        StreamItem::Event(e) => assert_eq!(e.kind.key(), Some("c3")),
        other => panic!("{other:?}"),
    }
    // From a position: the event right after it.
    let mut all = http
        .events(StreamStart::Index(start), &EventFilter::default())
        .await
        .unwrap();
    let first = match next_item(&mut all).await {
        StreamItem::Event(e) => e,
        other => panic!("{other:?}"),
    };
    let mut after = http
        .events(
            StreamStart::After(first.position()),
            &EventFilter::default(),
        )
        .await
        .unwrap();
    let second = match next_item(&mut after).await {
        StreamItem::Event(e) => e,
        other => panic!("{other:?}"),
    };
    assert!(second.position() > first.position());
    let also_second = match next_item(&mut all).await {
        StreamItem::Event(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(second, also_second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_does_not_hold_up_a_graceful_shutdown() {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    support::remember_operator(&m, port).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(orkestrator_runtime::http::server::serve(
        listener,
        m.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut s = Raw::open(port, "/v1/events?keepalive=1h", &[]).await;
    submit(&m, "one").await;
    assert!(s.next().await.data.contains("\"one\""));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server did not shut down within 10 s with a stream open")
        .unwrap()
        .unwrap();
    // The stream ended: the connection reads to its end.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.stream.read_to_end(&mut rest))
        .await
        .expect("the stream did not end")
        .unwrap();
}

/// The next item of a client stream that is not a bookmark, within 10 s.
async fn next_item(s: &mut orkestrator_core::transport::EventStream) -> StreamItem {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("no item within 10 s")
            .expect("the stream ended")
            .expect("the stream broke");
        if !matches!(item, StreamItem::Bookmark(_)) {
            return item;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_give_a_quiet_filtered_stream_a_position_to_resume_from() {
    let cfg = ManagerConfig {
        event_window: 50,
        ..ManagerConfig::default()
    };
    let (m, port) = serve(cfg).await;
    // Opened "now": the first message is a bookmark of where the stream starts.
    let mut s = Raw::open(port, "/v1/events?key=wanted&keepalive=100ms", &[]).await;
    let first = s.next_any().await;
    assert_eq!(first.event, "bookmark", "{first:?}");
    let start: orkestrator_core::events::Position = first.id.clone().unwrap().parse().unwrap();
    assert_eq!(start.index, m.durable_index());
    // 60 events the filter passes over: more than the window holds.
    for i in 0..60 {
        submit(&m, &format!("other{i}")).await;
    }
    let head = m.durable_index();
    // A bookmark moves the stream's id past them, though nothing was sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let moved = loop {
        let b = s.next_any().await;
        assert_eq!(
            b.event, "bookmark",
            "the filter let something through: {b:?}"
        );
        let p: orkestrator_core::events::Position = b.id.unwrap().parse().unwrap();
        if p.index >= head {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no bookmark reached {head}"
        );
    };
    drop(s);
    submit(&m, "wanted").await;
    // Resuming from the bookmark: no reset (though the window moved on), the event that came.
    let id = moved.to_string();
    let mut again = Raw::open(
        port,
        "/v1/events?key=wanted",
        &[("Last-Event-ID", id.as_str())],
    )
    .await;
    let next = again.next().await;
    assert_eq!(next.event, "message", "{next:?}");
    assert!(next.data.contains("\"wanted\""), "{next:?}");
    // Resuming from the first bookmark instead would have been a reset, said so.
    let old = start.to_string();
    let mut stale = Raw::open(
        port,
        "/v1/events?key=wanted",
        &[("Last-Event-ID", old.as_str())],
    )
    .await;
    assert_eq!(stale.next().await.event, "reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_from_another_life_of_the_manager_gets_a_reset_not_a_silent_skip() {
    let (m, port) = serve(ManagerConfig::default()).await;
    submit(&m, "x").await;
    // An id far ahead of this (fresh, in-memory) manager, as after it restarted without state.
    let mut s = Raw::open(port, "/v1/events", &[("Last-Event-ID", "900.0")]).await;
    let r = s.next().await;
    assert_eq!(r.event, "reset", "{r:?}");
    assert!(r.data.contains("newer than this manager"), "{r:?}");
    submit(&m, "y").await;
    let e = s.next().await;
    assert!(e.data.contains("\"y\""), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_when_its_token_is_revoked() {
    let (m, port) = serve(ManagerConfig::default()).await;
    let issued = m
        .tokens()
        .create(orkestrator_core::auth::CreateToken {
            role: orkestrator_core::auth::Role::Read,
            name: None,
        })
        .await
        .unwrap();
    let http = HttpTransport::new(&format!("127.0.0.1:{port}"))
        .unwrap()
        .with_token(Some(issued.token.clone()));
    let mut stream = http
        .events(StreamStart::Now, &EventFilter::default())
        .await
        .unwrap();
    submit(&m, "before").await;
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(Ok(StreamItem::Event(e))) if e.kind.key() == Some("before") => return,
                Some(Ok(_)) => {}
                other => panic!("the stream ended before the revocation: {other:?}"),
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the event before the revocation came");
    m.tokens().revoke(&issued.info.id).await.unwrap();
    // The next event would be sent down the stream: instead it ends.
    submit(&m, "after").await;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(StreamItem::Event(e))) if e.kind.key() == Some("after") => {
                    panic!("a revoked token's stream still carries events")
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends once its token is revoked");
    // And a new one with the token is refused.
    let again = http.events(StreamStart::Now, &EventFilter::default()).await;
    assert!(again.is_err(), "a revoked token opens no stream");
}
