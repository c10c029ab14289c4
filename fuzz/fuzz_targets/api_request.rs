//! Feeds arbitrary requests to the manager's real HTTP router (the same `router()` the server
//! serves, over an in-memory store): a method, one of the API's paths with fuzzed segments and
//! query, a content type, and a fuzzed body.
//!
//! Checks that decoding never panics and never answers 500: bad input gets a 4xx with a JSON
//! error. Long-polls and streams are cut off after a few milliseconds (their answer's head is all
//! that is checked).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::store::MemoryStore;
use tower::ServiceExt;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::PUT,
    Method::HEAD,
];

/// The API's paths; `{}` takes a fuzzed segment, a trailing `?` a fuzzed query.
const PATHS: [&str; 20] = [
    "/v1/jobs",
    "/v1/jobs?",
    "/v1/jobs/{}",
    "/v1/jobs/{}/stop",
    "/v1/jobs/{}/logs?",
    "/v1/jobs/{}/metrics?",
    "/v1/workers",
    "/v1/workers?",
    "/v1/workers/{}/heartbeat",
    "/v1/workers/{}/assignments?",
    "/v1/workers/{}/status",
    "/v1/workers/{}/metrics",
    "/v1/schedulers",
    "/v1/schedulers/{}/heartbeat",
    "/v1/schedulers/{}/work?",
    "/v1/schedulers/{}/decisions",
    "/v1/events?",
    "/v1/gc",
    "/v1/health",
    "/metrics",
];

const TYPES: [&str; 5] = [
    "application/json",
    "application/yaml",
    "application/toml",
    "text/plain",
    "",
];

struct World {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let router = rt.block_on(async {
            let m = Manager::new(ManagerConfig::default(), std::sync::Arc::new(MemoryStore::new()))
                .await
                .expect("manager");
            orkestrator_runtime::http::server::router(m)
        });
        World { rt, router }
    })
}

/// Percent-encodes what a URI may not hold, keeping `/`, `?`, `&`, `=` (so paths and queries
/// take shapes of their own).
fn uri_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/?&=,:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let method = METHODS[data[0] as usize % METHODS.len()].clone();
    let template = PATHS[data[1] as usize % PATHS.len()];
    let ctype = TYPES[data[2] as usize % TYPES.len()];
    let rest = &data[3..];
    // The part before the first NUL shapes the path; the rest is the body.
    let (part, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let part = uri_text(&part[..part.len().min(256)]);
    let path = if template.ends_with('?') {
        format!("{template}{part}")
    } else {
        template.replace("{}", &part)
    };
    let mut req = Request::builder().method(method).uri(path);
    if !ctype.is_empty() {
        req = req.header(header::CONTENT_TYPE, ctype);
    }
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    let w = world();
    let answered = w.rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(20), w.router.clone().oneshot(req)).await
    });
    let Ok(Ok(resp)) = answered else {
        // A long-poll or a stream still waiting: fine.
        return;
    };
    let status = resp.status();
    assert_ne!(
        status.as_u16(),
        500,
        "a request got 500 (bad input must get a 4xx naming the problem)"
    );
    if status.is_client_error() {
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "a {status} error without a JSON body: {ct:?}"
        );
    }
});
