//! TLS on the manager's API and a worker's endpoint: a client verifies the server with a CA file
//! or with the digest of the cluster CA (what a join token carries); a wrong CA, a host name not
//! in the certificate, plain HTTP to a TLS port and HTTPS to a plain port all fail with an error
//! that says what to do; a client that never completes its handshake is cut off by the header
//! read timeout; graceful shutdown still returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orkestrator_core::api::ErrorKind;
use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::store::MemoryStore;
use orkestrator_core::transport::ClientApi;
use orkestrator_runtime::HttpTransport;
use orkestrator_runtime::http::server::{ServeOptions, serve_app, serve_with, worker_router};
use orkestrator_runtime::http::tls::{self, ClientTls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::AsyncReadExt;

mod support;

/// The longest any step may take before the test fails (a bound, not a wait).
const BOUND: Duration = Duration::from_secs(20);

/// A cluster CA and one server certificate, written as `tls init` lays them out.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a leaf for `sans`, in a new directory: `ca.pem`, `server.pem` (leaf then CA),
    /// `server-key.pem`.
    fn new(sans: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "test cluster CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "server");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("server.pem"),
            format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        )
        .unwrap();
        std::fs::write(dir.path().join("server-key.pem"), leaf_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_config(&self) -> Arc<tls::ServerConfig> {
        tls::server_config(&self.path("server.pem"), &self.path("server-key.pem")).unwrap()
    }
}

/// Serves a manager with `options` on a free loopback port; `shutdown` ends it. Returns the port
/// and the serving task.
async fn serve_manager(
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (u16, tokio::task::JoinHandle<std::io::Result<()>>) {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    support::remember_operator(&m, port).await;
    let task = tokio::spawn(serve_with(listener, m, shutdown, options));
    (port, task)
}

async fn serve_tls(pki: &Pki) -> u16 {
    let options = ServeOptions::default().with_tls(Some(pki.server_config()));
    serve_manager(options, std::future::pending()).await.0
}

/// `health()` from a client at `base` verifying with `tls`, within [`BOUND`], presenting the
/// operator token of the manager on the port of `base`.
async fn health(base: &str, tls: Option<ClientTls>) -> Result<(), String> {
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let mut client = HttpTransport::new(base)
        .map_err(|e| e.to_string())?
        .with_token(Some(support::token_for(port)));
    if let Some(t) = tls {
        client = client.with_tls(t).map_err(|e| e.to_string())?;
    }
    match tokio::time::timeout(BOUND, client.health()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => panic!("no answer from {base} within {BOUND:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_ca_file_is_served() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let port = serve_tls(&pki).await;
    for host in ["127.0.0.1", "localhost"] {
        let base = format!("https://{host}:{port}");
        health(&base, Some(ClientTls::CaFile(pki.path("ca.pem"))))
            .await
            .unwrap_or_else(|e| panic!("{base}: {e}"));
    }
    // The chain file holds the CA too, so it works as a CA file.
    health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaFile(pki.path("server.pem"))),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_digest_of_the_cluster_ca_is_served() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let port = serve_tls(&pki).await;
    let digest = tls::ca_digest(&pki.path("server.pem")).unwrap();
    // The digest is that of the CA file's certificate, as `tls init` prints it.
    let ca = tls::load_certs(&pki.path("ca.pem")).unwrap();
    assert_eq!(tls::cert_digest(&ca[0]), digest);
    assert_eq!(
        tls::parse_digest(&tls::digest_hex(&digest)).unwrap(),
        digest
    );
    health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaDigest(digest)),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_of_another_ca_is_refused_with_a_clear_error() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let other = Pki::new(&["localhost", "127.0.0.1"]);
    let port = serve_tls(&pki).await;
    let wrong = tls::ca_digest(&other.path("server.pem")).unwrap();
    let e = health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaDigest(wrong)),
    )
    .await
    .unwrap_err();
    assert!(e.contains("holds no CA with the digest"), "{e}");
    assert!(e.contains(&tls::digest_hex(&wrong)), "{e}");
    // So is a CA file of another cluster.
    let e = health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaFile(other.path("ca.pem"))),
    )
    .await
    .unwrap_err();
    assert!(e.contains("invalid peer certificate"), "{e}");
    assert!(e.contains("--ca-file"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_still_checks_the_host_name() {
    // A certificate for `localhost` only: the right CA, the wrong name for 127.0.0.1.
    let pki = Pki::new(&["localhost"]);
    let port = serve_tls(&pki).await;
    let digest = ClientTls::CaDigest(tls::ca_digest(&pki.path("server.pem")).unwrap());
    health(&format!("https://localhost:{port}"), Some(digest.clone()))
        .await
        .unwrap();
    let e = health(&format!("https://127.0.0.1:{port}"), Some(digest))
        .await
        .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_the_cluster_certificate_is_refused_and_the_fix_named() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let port = serve_tls(&pki).await;
    let e = health(&format!("https://127.0.0.1:{port}"), None)
        .await
        .unwrap_err();
    assert!(e.contains("invalid peer certificate"), "{e}");
    assert!(e.contains("--ca-file") && e.contains("--ca-digest"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_port_fails_cleanly_and_tls_goes_on() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let port = serve_tls(&pki).await;
    let started = Instant::now();
    let e = health(&format!("http://127.0.0.1:{port}"), None)
        .await
        .unwrap_err();
    assert!(e.contains("cannot reach manager"), "{e}");
    assert!(e.contains("use https://"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {e}",
        started.elapsed()
    );
    health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaFile(pki.path("ca.pem"))),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_port_fails_cleanly() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let (port, _task) = serve_manager(ServeOptions::default(), std::future::pending()).await;
    let e = health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaFile(pki.path("ca.pem"))),
    )
    .await
    .unwrap_err();
    assert!(e.contains("plain HTTP"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_cut_off_by_the_header_read_timeout() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let timeout = Duration::from_millis(800);
    let options = ServeOptions {
        header_read_timeout: timeout,
        ..ServeOptions::default()
    }
    .with_tls(Some(pki.server_config()));
    let (port, _task) = serve_manager(options, std::future::pending()).await;
    // Opens TCP, sends nothing: no handshake ever starts.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Starts a handshake and stops halfway through a record.
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    for s in [&mut silent, &mut half] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(BOUND, s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "still open after {BOUND:?}");
    }
    let took = started.elapsed();
    assert!(
        took >= timeout / 2,
        "cut off after {took:?}, before the timeout"
    );
    // And it keeps serving.
    health(
        &format!("https://127.0.0.1:{port}"),
        Some(ClientTls::CaFile(pki.path("ca.pem"))),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_returns_with_tls_connections_open() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions::default().with_tls(Some(pki.server_config()));
    let (port, task) = serve_manager(options, async {
        let _ = stopped.await;
    })
    .await;
    // An idle kept-alive TLS connection (the client's pool), and one that never handshakes.
    let client = HttpTransport::new(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .with_tls(ClientTls::CaFile(pki.path("ca.pem")))
        .unwrap()
        .with_token(Some(support::token_for(port)));
    client.health().await.unwrap();
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(BOUND, task)
        .await
        .expect("the server did not shut down")
        .unwrap()
        .unwrap();
    // Well before the 10 s header read timeout would have closed the connections.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_verifies_a_workers_endpoint_against_its_own_ca() {
    use orkestrator_core::fake::FakeRuntime;
    use orkestrator_core::ids::WorkerId;
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The worker checks tokens with its manager; the manager presents its own.
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let token = m
        .tokens()
        .create(CreateToken {
            role: Role::Operator,
            name: None,
        })
        .await
        .unwrap()
        .token;
    let app = worker_router(
        WorkerId::new("w1"),
        Arc::new(FakeRuntime::new()),
        Arc::new(m),
    );
    let options = ServeOptions::default().with_tls(Some(pki.server_config()));
    tokio::spawn(serve_app(listener, app, std::future::pending(), options));
    let base = format!("https://127.0.0.1:{port}");
    // The manager trusts the CA of its own chain (here the same CA issued the worker's).
    orkestrator_runtime::http::client::set_worker_tls(&ClientTls::CaCert(
        tls::ca_of_chain(&pki.path("server.pem")).unwrap(),
    ))
    .unwrap();
    let worker = HttpTransport::for_worker(&base)
        .unwrap()
        .with_token(Some(token));
    // An unknown container: the worker answers 404, so TLS went through.
    let e = tokio::time::timeout(BOUND, worker.container_logs("nope", 10, None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, orkestrator_core::Error::Api(a) if a.kind == ErrorKind::NotFound),
        "expected the worker's 404, got: {e}"
    );
}

#[test]
fn bad_files_are_named_with_the_fix() {
    let pki = Pki::new(&["localhost"]);
    let other = Pki::new(&["localhost"]);
    let msg = |r: orkestrator_core::Result<Arc<tls::ServerConfig>>| r.unwrap_err().to_string();
    // Another certificate's key.
    let e = msg(tls::server_config(
        &pki.path("server.pem"),
        &other.path("server-key.pem"),
    ));
    assert!(e.contains("is not the key of the certificate"), "{e}");
    // A key where the certificate belongs, and the other way round.
    let e = msg(tls::server_config(
        &pki.path("server-key.pem"),
        &pki.path("server-key.pem"),
    ));
    assert!(e.contains("server-key.pem: holds no CERTIFICATE"), "{e}");
    let e = msg(tls::server_config(
        &pki.path("server.pem"),
        &pki.path("server.pem"),
    ));
    assert!(e.contains("holds no usable private key"), "{e}");
    // A lone certificate has no CA to take a digest of.
    let e = tls::ca_digest(&pki.path("ca.pem")).unwrap_err().to_string();
    assert!(e.contains("not a chain"), "{e}");
    // A missing CA file.
    let e = ClientTls::CaFile(Path::new("/nonexistent/ca.pem").to_path_buf())
        .client_config()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/ca.pem") && e.contains("orkestrator tls init"),
        "{e}"
    );
}
