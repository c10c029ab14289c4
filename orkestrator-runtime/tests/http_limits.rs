//! The manager's read timeouts and size limits over raw TCP: a client that sends half a request's
//! headers is cut off, a body that stalls gets a 408, requests over a size limit get a 4xx naming
//! the limit, long answers (long-polls, event streams) are not cut, and the manager keeps serving
//! other connections through all of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orkestrator_core::manager::{MAX_WORKER_LABELS, Manager, ManagerConfig};
use orkestrator_core::spec::MAX_TASKS;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::units::format_duration;
use orkestrator_runtime::http::server::{BODY_TIMEOUT, ServeOptions, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

/// The timeouts of these tests: short, so that they run fast, and long enough for a loaded
/// machine to send a whole request in time.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// The longest any step may take before the test fails (a bound, not a wait).
const BOUND: Duration = Duration::from_secs(20);

async fn serve() -> u16 {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    support::remember_operator(&m, port).await;
    let options = ServeOptions {
        header_read_timeout: TIMEOUT,
        body_read_timeout: TIMEOUT,
        ..ServeOptions::default()
    };
    tokio::spawn(async move {
        serve_with(listener, m, std::future::pending(), options)
            .await
            .unwrap();
    });
    port
}

/// Sends one whole request and returns the answer (status line, headers and body).
async fn send(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        support::auth_line(port),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    read_all(&mut s).await
}

/// Everything the server sends until it closes the connection (within [`BOUND`]).
async fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

async fn assert_serving(port: u16) {
    let health = send(port, "GET", "/v1/health", "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_is_cut_off_after_the_header_read_timeout() {
    let port = serve().await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        .await
        .unwrap();
    // Meanwhile another connection is answered.
    assert_serving(port).await;
    let got = read_all(&mut s).await;
    let took = started.elapsed();
    assert!(
        !got.starts_with("HTTP/1.1 200"),
        "half a request was answered: {got}"
    );
    assert!(
        took >= TIMEOUT,
        "cut off after {took:?}, before the timeout"
    );
    assert_serving(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_408_naming_the_timeout_while_others_are_served() {
    let port = serve().await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    s.write_all(
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\": ",
    )
    .await
    .unwrap();
    assert_serving(port).await;
    let got = read_all(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        got.contains(BODY_TIMEOUT)
            && got.contains(&format!(
                "body read timeout of {}",
                format_duration(TIMEOUT)
            )),
        "{got}"
    );
    assert!(started.elapsed() >= TIMEOUT);
    // The job was not submitted; the manager still takes a whole one.
    let jobs = send(port, "GET", "/v1/jobs", "").await;
    assert!(!jobs.contains("\"name\""), "{jobs}");
    let job = r#"{"name": "web", "tasks": [{"name": "t", "image": "x:1"}]}"#;
    let submitted = send(port, "POST", "/v1/jobs", job).await;
    assert!(submitted.starts_with("HTTP/1.1 2"), "{submitted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_answers_outlast_the_read_timeouts() {
    let port = serve().await;
    // A long-poll for a scheduler's work, held for twice the timeouts, answers in full.
    let registered = send(
        port,
        "POST",
        "/v1/schedulers",
        r#"{"id": "s", "algorithm": "x"}"#,
    )
    .await;
    assert!(registered.starts_with("HTTP/1.1 200"), "{registered}");
    let started = Instant::now();
    let wait = TIMEOUT * 2;
    let work = send(
        port,
        "GET",
        &format!("/v1/schedulers/s/work?wait={}ms", wait.as_millis()),
        "",
    )
    .await;
    assert!(work.starts_with("HTTP/1.1 200"), "{work}");
    assert!(started.elapsed() >= wait, "{work}");

    // An event stream stays open past the timeouts and still carries what happens later.
    let mut events = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    events
        .write_all(
            format!(
                "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{}\r\n",
                support::auth_line(port)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(BOUND, events.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    // Deliberately past both timeouts: the stream must still be open then.
    tokio::time::sleep(TIMEOUT * 2).await;
    let job = r#"{"name": "late", "tasks": [{"name": "t", "image": "x:1"}]}"#;
    let submitted = send(port, "POST", "/v1/jobs", job).await;
    assert!(submitted.starts_with("HTTP/1.1 2"), "{submitted}");
    let mut seen = String::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        while !seen.contains("late") {
            let n = events.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream was closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("the job's event comes on the open stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_size_limit_get_a_4xx_naming_it_and_the_manager_keeps_serving() {
    let port = serve().await;
    // Too many tasks in a job.
    let tasks: Vec<String> = (0..=MAX_TASKS)
        .map(|i| format!(r#"{{"name": "t{i}", "image": "x:1"}}"#))
        .collect();
    let job = format!(r#"{{"name": "big", "tasks": [{}]}}"#, tasks.join(", "));
    let got = send(port, "POST", "/v1/jobs", &job).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(
        got.contains(&format!(
            "{} tasks; at most {MAX_TASKS} are allowed",
            MAX_TASKS + 1
        )),
        "{got}"
    );
    assert_serving(port).await;

    // Too many labels on a worker.
    let labels: Vec<String> = (0..=MAX_WORKER_LABELS)
        .map(|i| format!(r#""l{i}": "v""#))
        .collect();
    let resources = r#"{"cpu": 1000, "memory": 1073741824, "disk": 1073741824}"#;
    let reg = format!(
        r#"{{"id": "w", "labels": {{{}}}, "resources": {{"total": {resources}, "allocated": {resources}, "available": {resources}}}}}"#,
        labels.join(", ")
    );
    let got = send(port, "POST", "/v1/workers", &reg).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(
        got.contains("limit_exceeded")
            && got.contains(&format!(
                "labels: {} labels; at most {MAX_WORKER_LABELS} are allowed",
                MAX_WORKER_LABELS + 1
            )),
        "{got}"
    );
    assert_serving(port).await;

    // A body over the size limit.
    let huge = format!(r#"{{"name": "{}"}}"#, "a".repeat(2 << 20));
    let got = send(port, "POST", "/v1/jobs", &huge).await;
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(got.contains("body_too_large"), "{got}");
    assert_serving(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_endpoint_cuts_off_half_a_header_too() {
    use orkestrator_core::fake::FakeRuntime;
    use orkestrator_core::ids::WorkerId;
    use orkestrator_runtime::http::server::{serve_app, worker_router};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    support::remember_operator(&m, port).await;
    let app = worker_router(
        WorkerId::new("w1"),
        Arc::new(FakeRuntime::new()),
        Arc::new(m),
    );
    let options = ServeOptions {
        header_read_timeout: TIMEOUT,
        body_read_timeout: TIMEOUT,
        ..ServeOptions::default()
    };
    tokio::spawn(async move {
        serve_app(listener, app, std::future::pending(), options)
            .await
            .unwrap();
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        .await
        .unwrap();
    let _ = read_all(&mut s).await;
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT / 2,
        "cut off after {took:?}, before the timeout"
    );
    // And it keeps answering.
    let ok = send(port, "GET", "/health", "").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_logs_read_holds_its_last_16_mib_and_says_so() {
    use orkestrator_core::fake::FakeRuntime;
    use orkestrator_core::ids::WorkerId;
    use orkestrator_core::runtime::{ContainerSpec, Runtime, labels};
    use orkestrator_runtime::http::server::{serve_app, worker_router};
    let rt = Arc::new(FakeRuntime::new());
    let spec = ContainerSpec {
        name: "big".into(),
        image: "x:1".into(),
        command: Vec::new(),
        env: Default::default(),
        ports: Vec::new(),
        resources: orkestrator_core::spec::Resources::ZERO,
        labels: [(labels::WORKER.to_owned(), "w1".to_owned())].into(),
        pids_limit: 4096,
        user: None,
        read_only: false,
        ..Default::default()
    };
    let id = rt.create(&spec).await.unwrap();
    rt.start(&id).await.unwrap();
    // 20 MiB in the last 10,000 lines (the most a read asks for); the last line is what a
    // reader most wants.
    let line = "x".repeat(2047);
    for _ in 0..9_999 {
        assert!(rt.write_output(&id, &format!("{line}\n")));
    }
    assert!(rt.write_output(&id, "the last line\n"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    support::remember_operator(&m, port).await;
    let app = worker_router(WorkerId::new("w1"), rt.clone(), Arc::new(m));
    tokio::spawn(async move {
        serve_app(
            listener,
            app,
            std::future::pending(),
            ServeOptions::default(),
        )
        .await
        .unwrap();
    });
    let answer = send(
        port,
        "GET",
        &format!("/v1/containers/{id}/logs?tail=10000"),
        "",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..200.min(answer.len())]
    );
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with("[earlier output left out"),
        "{}",
        &text[..100]
    );
    assert!(text.ends_with("the last line\n"));
    assert!(text.len() <= (16 << 20) + 200, "{} bytes", text.len());
    assert!(text.len() >= 16 << 20, "{} bytes", text.len());
}
