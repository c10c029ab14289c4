//! The manager's HTTP API as a real `orkestrator server` process serves it, spoken to with a
//! hand-written HTTP/1.1 client: bad input gets a 4xx with a JSON error that says what is wrong,
//! never a 500 or a dead server. No Docker engine is needed.

mod common;

use common::{Cluster, http};
use serde_json::Value;

/// Asserts the response is a JSON error with `status` and `code`, and returns it.
fn error(r: &common::HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "not JSON: {:?}",
        r.headers
    );
    let v = r.json();
    assert_eq!(v["status"], status, "{v:#}");
    assert_eq!(v["code"], code, "{v:#}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {v:#}"
    );
    v
}

#[test]
fn bad_requests_get_clear_errors_and_the_manager_keeps_serving() {
    let c = Cluster::start("api");
    let port = c.port;
    let send = |method: &str, path: &str, ctype: Option<&str>, body: &[u8]| {
        http(port, method, path, ctype, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", c.logs()))
    };
    let json = Some("application/json");

    // Malformed JSON as a job spec: the parser's message, with the position.
    let r = send("POST", "/v1/jobs", json, br#"{"name": "x", tasks: ["#);
    let v = error(&r, 400, "malformed_spec");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains("JSON") && msg.contains("line 1"), "{v:#}");

    // Malformed JSON to a typed endpoint.
    let r = send("POST", "/v1/workers", json, b"{not json");
    let v = error(&r, 400, "malformed_json");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed JSON"),
        "{v:#}"
    );

    // A body of 2 MiB: refused as too large, whatever it holds.
    let big = vec![b' '; 2 << 20];
    let r = send("POST", "/v1/jobs", json, &big);
    error(&r, 413, "body_too_large");
    let r = send("POST", "/v1/workers", json, &big);
    error(&r, 413, "body_too_large");

    // An invalid spec: every problem with its field path.
    let spec = br#"{"name": "Bad_Name", "tasks": [{"name": "main"},
        {"name": "two", "image": "busybox:latest", "resources": {"memory": "lots"}}]}"#;
    let r = send("POST", "/v1/jobs", json, spec);
    let v = error(&r, 400, "invalid_spec");
    let paths: Vec<&str> = v["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems list: {v:#}"))
        .iter()
        .map(|p| {
            assert!(p["message"].as_str().is_some_and(|m| !m.is_empty()), "{p}");
            p["path"].as_str().unwrap_or_default()
        })
        .collect();
    for expected in ["name", "tasks[0].image", "tasks[1].resources.memory"] {
        assert!(
            paths.contains(&expected),
            "no {expected} in {paths:?}: {v:#}"
        );
    }

    // The same as YAML, by content type.
    let yaml = b"name: ok\ntasks:\n  - name: main\n";
    let r = send("POST", "/v1/jobs", Some("application/yaml"), yaml);
    let v = error(&r, 400, "invalid_spec");
    assert_eq!(v["problems"][0]["path"], "tasks[0].image", "{v:#}");

    // Unknown job: 404 for reading and for stopping.
    let r = send("GET", "/v1/jobs/no-such-job", None, b"");
    let v = error(&r, 404, "not_found");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-job"),
        "{v:#}"
    );
    let r = send("POST", "/v1/jobs/no-such-job/stop", None, b"");
    error(&r, 404, "not_found");

    // `/` is the dashboard (HTML); unknown routes get a JSON 404 that points at /v1.
    let r = send("GET", "/", None, b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        r.headers
    );
    for path in ["/jobs", "/v1/nothing-here", "/v2/jobs", "/ui/nothing"] {
        let r = send("GET", path, None, b"");
        let v = error(&r, 404, "no_route");
        assert!(
            v["message"].as_str().unwrap_or_default().contains("/v1"),
            "{path}: {v:#}"
        );
    }

    // A path segment that is not UTF-8 once decoded (found by the api_request fuzz target):
    // a JSON 400, not axum's plain text.
    for (method, path) in [
        ("GET", "/v1/jobs/%FF"),
        ("HEAD", "/v1/workers/%AF/metrics"),
        ("POST", "/v1/schedulers/%C3%28/heartbeat"),
    ] {
        let r = send(method, path, None, b"");
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}: {:?}",
            r.headers
        );
        if method != "HEAD" {
            error(&r, 400, "invalid_path");
        }
    }

    // A method the route does not take.
    let r = send("PUT", "/v1/health", None, b"");
    error(&r, 405, "method_not_allowed");

    // After all that the manager still serves, and nothing was created.
    let r = send("GET", "/v1/health", None, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let health = r.json();
    assert_eq!(health["manager"]["status"], "Ready", "{health:#}");
    let r = send("GET", "/v1/jobs", None, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"items": []}),
        "no job was created"
    );
}

#[test]
fn lists_come_in_pages_and_bad_tokens_are_refused() {
    let c = Cluster::start_server("apipages", &["--gc-after", "1ms"]);
    for i in 0..5 {
        let spec = format!(
            r#"{{"name": "page-{i}", "tasks": [{{"name": "t", "image": "busybox:latest"}}]}}"#
        );
        let r = http(
            c.port,
            "POST",
            "/v1/jobs",
            Some("application/json"),
            spec.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut names = Vec::new();
    let mut path = "/v1/jobs?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let r = http(c.port, "GET", &path, None, b"").expect("list");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        pages += 1;
        for j in v["items"].as_array().expect("items") {
            names.push(j["name"].as_str().unwrap().to_owned());
        }
        match v["continue"].as_str() {
            Some(t) => path = format!("/v1/jobs?limit=2&continue={t}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    let r = http(c.port, "GET", "/v1/jobs?continue=garbage", None, b"").expect("bad token");
    let v = error(&r, 400, "invalid_continue");
    assert!(
        v["message"].as_str().unwrap().contains("malformed"),
        "{v:#}"
    );
    let r = http(c.port, "GET", "/v1/workers?limit=0", None, b"").expect("bad limit");
    error(&r, 400, "invalid_limit");
    let r = http(c.port, "GET", "/v1/jobs?size=3", None, b"").expect("unknown param");
    error(&r, 400, "invalid_query");
    // The CLI pages through them too.
    let out = c.ork(&["status", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(
        out.json().as_array().map(Vec::len),
        Some(5),
        "{}",
        out.describe()
    );
    // Stopped jobs leave with `orkestrator gc` once past --gc-after (0s here: at once).
    let out = c.ork(&["stop", "page-0"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    // (The background collection may have been first.)
    let r = http(c.port, "POST", "/v1/gc", None, b"").expect("gc");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["jobs"].is_u64(), "{}", r.text());
    let r = http(c.port, "GET", "/v1/jobs/page-0", None, b"").expect("get");
    error(&r, 404, "not_found");
}

#[test]
fn a_valid_job_is_accepted_over_http() {
    let c = Cluster::start("apiok");
    let spec = br#"{"name": "api-ok", "tasks": [{"name": "main", "image": "busybox:latest"}]}"#;
    let r = http(c.port, "POST", "/v1/jobs", Some("application/json"), spec)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["job"], "api-ok", "{v:#}");
    assert_eq!(v["outcome"], "created", "{v:#}");
    // The same spec again changes nothing.
    let r = http(c.port, "POST", "/v1/jobs", Some("application/json"), spec).expect("resubmit");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "unchanged");
    // No worker: it waits for one.
    let r = http(c.port, "GET", "/v1/jobs/api-ok", None, b"").expect("get job");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["phase"], "Pending");
    // Stopping it works without any worker.
    let r = http(c.port, "POST", "/v1/jobs/api-ok/stop", None, b"").expect("stop");
    assert_eq!(r.status, 200, "{}", r.text());
}
