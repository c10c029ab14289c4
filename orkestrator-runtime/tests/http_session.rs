//! Dashboard sessions over HTTP: the cookie's flags, and a browser holding a session that ended
//! (revoked, expired, a restarted manager) can still load the public pages and sign in again.

use std::sync::Arc;

use orkestrator_core::auth::Role;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::store::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

async fn serve() -> (Manager, u16) {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = m.clone();
    tokio::spawn(async move {
        orkestrator_runtime::http::server::serve(listener, served, std::future::pending())
            .await
            .unwrap();
    });
    (m, port)
}

async fn send(port: u16, method: &str, path: &str, cookie: Option<&str>, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: ork_session={c}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{cookie}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn session_of(answer: &str) -> String {
    let line = answer
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: ork_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {answer}"));
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert!(
        !line.contains("Secure"),
        "plain HTTP: no Secure flag: {line}"
    );
    let value = line.split_once('=').unwrap().1;
    value.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_does_not_lock_the_browser_out() {
    let (m, port) = serve().await;
    let token = support::token(&m, Role::Read).await;
    let signed = send(
        port,
        "POST",
        "/v1/session",
        None,
        &format!(r#"{{"token":"{token}"}}"#),
    )
    .await;
    assert!(signed.starts_with("HTTP/1.1 200"), "{signed}");
    let session = session_of(&signed);
    let jobs = send(port, "GET", "/v1/jobs", Some(&session), "").await;
    assert!(jobs.starts_with("HTTP/1.1 200"), "{jobs}");

    // The token is revoked: the session ends with it...
    let id = m.tokens().list().await.unwrap().last().unwrap().id.clone();
    m.tokens().revoke(&id).await.unwrap();
    let jobs = send(port, "GET", "/v1/jobs", Some(&session), "").await;
    assert!(jobs.starts_with("HTTP/1.1 401"), "{jobs}");
    // ...but the browser still holding its cookie loads the page and signs in with another.
    for path in ["/", "/ui/app.js", "/v1/health"] {
        let page = send(port, "GET", path, Some(&session), "").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{path}: {page}");
    }
    let out = send(port, "DELETE", "/v1/session", Some(&session), "").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("Max-Age=0"),
        "signing out clears the cookie: {out}"
    );
    let fresh = support::token(&m, Role::Operator).await;
    let again = send(
        port,
        "POST",
        "/v1/session",
        Some(&session),
        &format!(r#"{{"token":"{fresh}"}}"#),
    )
    .await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    let new_session = session_of(&again);
    assert_ne!(new_session, session);
    // A session cookie that is nonsense is no one on a public page, and refused elsewhere.
    let health = send(port, "GET", "/v1/health", Some("garbage"), "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let jobs = send(port, "GET", "/v1/jobs", Some("garbage"), "").await;
    assert!(jobs.starts_with("HTTP/1.1 401"), "{jobs}");
}
