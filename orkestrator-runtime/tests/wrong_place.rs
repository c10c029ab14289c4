//! A client pointed at the wrong place says so (issue 18, item 6): nothing listening, a worker's
//! own endpoint, some other web server. Real listeners on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;

use orkestrator_core::api::{ErrorKind, RegisterWorker, WorkerResources};
use orkestrator_core::fake::FakeRuntime;
use orkestrator_core::ids::WorkerId;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::spec::Resources;
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::{ClientApi, WorkerApi};
use orkestrator_runtime::HttpTransport;
use orkestrator_runtime::http::server::{ServeOptions, serve_app, worker_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn registration() -> RegisterWorker {
    RegisterWorker {
        id: WorkerId::new("w9"),
        address: None,
        labels: BTreeMap::new(),
        host_volumes: Default::default(),
        resources: WorkerResources {
            total: Resources::ZERO,
            allocated: Resources::ZERO,
            available: Resources::ZERO,
        },
        version: String::new(),
    }
}

/// A port on loopback that nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nothing_listening_says_nothing_answers_there() {
    let addr = format!("http://127.0.0.1:{}", closed_port().await);
    let client = HttpTransport::new(&addr).unwrap();
    let e = client.health().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "nothing answers at {addr}: is the manager running there?"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_workers_port_says_it_is_a_worker_not_the_manager() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let app = worker_router(
        WorkerId::new("w1"),
        Arc::new(FakeRuntime::new()),
        Arc::new(m),
    );
    tokio::spawn(async move {
        let _ = serve_app(
            listener,
            app,
            std::future::pending(),
            ServeOptions::default(),
        )
        .await;
    });
    let addr = format!("http://127.0.0.1:{port}");
    let expected = format!("{addr} is an Orkestrator worker, not the manager");
    // A worker joining there, with a join token the worker's endpoint does not take.
    let joining = HttpTransport::new(&addr)
        .unwrap()
        .with_join_token("ork.nosuch.secret".into(), None);
    let e = joining.register_worker(&registration()).await.unwrap_err();
    assert!(e.to_string().contains(&expected), "{e}");
    // The CLI there, with no token at all.
    let e = HttpTransport::new(&addr)
        .unwrap()
        .health()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&expected), "{e}");
}

/// Serves every connection on `listener` a 404 HTML page.
async fn html_server(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = "<html><body><h1>Not Found</h1><p>nginx says no</p></body></html>";
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        });
    }
}

#[tokio::test]
async fn another_web_server_is_named_by_status_and_type_never_its_html() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(html_server(listener));
    let addr = format!("http://127.0.0.1:{port}");
    let expected = format!("{addr} does not answer as an Orkestrator manager (404, text/html)");
    let client = HttpTransport::new(&addr).unwrap();
    let e = client.health().await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&expected), "{text}");
    assert!(!text.contains("<html") && !text.contains("nginx"), "{text}");
    let e = client
        .with_join_token("ork.nosuch.secret".into(), None)
        .register_worker(&registration())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&expected), "{text}");
    assert!(
        matches!(&e, orkestrator_core::Error::Api(a) if a.kind == ErrorKind::NotFound),
        "a refusal for good, not retried: {e:?}"
    );
}
