//! A web page of another origin cannot change the manager's state through the operator's
//! browser (a plain-text POST needs no CORS preflight); the same origin, and clients that are not
//! browsers, can.

use std::sync::Arc;

use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::store::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

async fn serve() -> u16 {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    support::remember_operator(&m, port).await;
    tokio::spawn(async move {
        orkestrator_runtime::http::server::serve(listener, m, std::future::pending())
            .await
            .unwrap();
    });
    port
}

/// Sends one request with `headers` and returns the status line and body.
async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{}Content-Length: {}\r\n",
        support::auth_line(port),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

const JOB: &str = r#"{"name": "web", "tasks": [{"name": "t", "image": "x:1"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_changes_are_refused_and_reads_and_same_origin_are_not() {
    let port = serve().await;
    let text = ("Content-Type", "text/plain".to_owned());
    // What a page on another site sends with fetch(..., {mode: "no-cors"}).
    let evil = send(
        port,
        "POST",
        "/v1/jobs",
        &[
            text.clone(),
            ("Origin", "http://evil.example".into()),
            ("Sec-Fetch-Site", "cross-site".into()),
        ],
        JOB,
    )
    .await;
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    assert!(
        evil.contains("cross_origin") && evil.contains("another origin"),
        "{evil}"
    );
    // Another port on localhost is the same site but not the same origin.
    let other_port = send(
        port,
        "POST",
        "/v1/gc",
        &[("Origin", "http://127.0.0.1:1".into())],
        "",
    )
    .await;
    assert!(other_port.starts_with("HTTP/1.1 403"), "{other_port}");
    let stop = send(
        port,
        "POST",
        "/v1/jobs/web/stop",
        &[("Sec-Fetch-Site", "same-site".into())],
        "",
    )
    .await;
    assert!(stop.starts_with("HTTP/1.1 403"), "{stop}");
    // Nothing was created.
    let get = send(port, "GET", "/v1/jobs/web", &[], "").await;
    assert!(get.starts_with("HTTP/1.1 404"), "{get}");
    // Reads from anywhere are answered (the dashboard, curl).
    let read = send(
        port,
        "GET",
        "/v1/health",
        &[("Sec-Fetch-Site", "cross-site".into())],
        "",
    )
    .await;
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    // The same origin, and a client that is not a browser, may change state.
    let same = send(
        port,
        "POST",
        "/v1/jobs",
        &[
            ("Content-Type", "application/json".into()),
            ("Origin", format!("http://127.0.0.1:{port}")),
            ("Sec-Fetch-Site", "same-origin".into()),
        ],
        JOB,
    )
    .await;
    assert!(same.starts_with("HTTP/1.1 201"), "{same}");
    let cli = send(port, "POST", "/v1/jobs/web/stop", &[], "").await;
    assert!(cli.starts_with("HTTP/1.1 200"), "{cli}");
}
