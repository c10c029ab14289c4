//! Secrets over the manager's HTTP API: operators create, update, list and remove them; a read
//! token gets 403; no answer carries a value; a value over plain HTTP from off the manager's
//! host is refused; a manager without a key answers 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::secrets::SecretKey;
use orkestrator_core::store::MemoryStore;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// "plain-needle-value" in base64.
const VALUE_B64: &str = "cGxhaW4tbmVlZGxlLXZhbHVl";
const PLAIN: &str = "plain-needle-value";
/// Base64 of `second-needle-value`: an update's new value.
const SECOND_B64: &str = "c2Vjb25kLW5lZWRsZS12YWx1ZQ==";

async fn manager(key: bool) -> Manager {
    let config = ManagerConfig {
        secret_key: key.then(|| SecretKey::from_bytes(&[4; 32]).unwrap()),
        ..ManagerConfig::default()
    };
    Manager::new(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap()
}

async fn token(m: &Manager, role: Role) -> String {
    m.tokens()
        .create(CreateToken { role, name: None })
        .await
        .unwrap()
        .token
}

/// One request; the status and the body as text.
async fn call(
    app: &axum::Router,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    peer: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    if let Some(p) = peer {
        let addr: SocketAddr = p.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn operators_manage_secrets_and_read_tokens_get_403() {
    let m = manager(true).await;
    let op = token(&m, Role::Operator).await;
    let read = token(&m, Role::Read).await;
    let app = orkestrator_runtime::http::server::router(m.clone());
    let body = json!({ "name": "db-password", "value_base64": VALUE_B64 });

    let (s, text) = call(
        &app,
        &op,
        Method::POST,
        "/v1/secrets",
        Some(body.clone()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let info: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(info["version"], 1);
    assert_eq!(info["size"], PLAIN.len());

    let upd = json!({ "value_base64": SECOND_B64 });
    let (s, text) = call(
        &app,
        &op,
        Method::PUT,
        "/v1/secrets/db-password",
        Some(upd.clone()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["version"], 2);
    // The same value again makes no version.
    let (s, text) = call(
        &app,
        &op,
        Method::PUT,
        "/v1/secrets/db-password",
        Some(upd.clone()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["version"], 2);

    let (s, list) = call(&app, &op, Method::GET, "/v1/secrets", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(list.contains("db-password"));
    let (s, one) = call(
        &app,
        &op,
        Method::GET,
        "/v1/secrets/db-password",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for answer in [&text, &list, &one] {
        assert!(
            !answer.contains(PLAIN) && !answer.contains(VALUE_B64) && !answer.contains(SECOND_B64),
            "{answer}"
        );
    }

    for (method, path, body) in [
        (Method::GET, "/v1/secrets", None),
        (Method::GET, "/v1/secrets/db-password", None),
        (Method::POST, "/v1/secrets", Some(body.clone())),
        (Method::PUT, "/v1/secrets/db-password", Some(upd.clone())),
        (Method::DELETE, "/v1/secrets/db-password", None),
    ] {
        let (s, text) = call(&app, &read, method.clone(), path, body, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {text}");
    }

    let bad = json!({ "name": "Bad/Name", "value_base64": VALUE_B64 });
    let (s, text) = call(&app, &op, Method::POST, "/v1/secrets", Some(bad), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text.contains("name:"), "{text}");
    let bad = json!({ "name": "x", "value_base64": "not base64!" });
    let (s, text) = call(&app, &op, Method::POST, "/v1/secrets", Some(bad), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text.contains("value_base64"), "{text}");

    let (s, _) = call(
        &app,
        &op,
        Method::DELETE,
        "/v1/secrets/db-password",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &app,
        &op,
        Method::GET,
        "/v1/secrets/db-password",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn values_are_refused_over_plain_http_off_loopback() {
    let m = manager(true).await;
    let op = token(&m, Role::Operator).await;
    let app = orkestrator_runtime::http::server::router(m.clone());
    let body = json!({ "name": "k", "value_base64": VALUE_B64 });
    let (s, text) = call(
        &app,
        &op,
        Method::POST,
        "/v1/secrets",
        Some(body.clone()),
        Some("192.0.2.7:5000"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{text}");
    assert!(
        text.contains("plain_http") && text.contains("TLS"),
        "{text}"
    );
    assert!(m.secrets().list().await.unwrap().is_empty());
    // From the manager's own host, plain HTTP is fine.
    let (s, text) = call(
        &app,
        &op,
        Method::POST,
        "/v1/secrets",
        Some(body),
        Some("127.0.0.1:5000"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let upd = json!({ "value_base64": VALUE_B64 });
    let (s, _) = call(
        &app,
        &op,
        Method::PUT,
        "/v1/secrets/k",
        Some(upd),
        Some("[2001:db8::1]:5000"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Listing carries no value: allowed from anywhere.
    let (s, _) = call(
        &app,
        &op,
        Method::GET,
        "/v1/secrets",
        None,
        Some("192.0.2.7:5000"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn without_a_key_the_api_answers_503_naming_the_flag() {
    let m = manager(false).await;
    let op = token(&m, Role::Operator).await;
    let app = orkestrator_runtime::http::server::router(m);
    let (s, text) = call(&app, &op, Method::GET, "/v1/secrets", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("--secret-key-file"), "{text}");
    // A job naming a secret, too.
    let job = json!({
        "name": "web",
        "tasks": [{ "name": "app", "image": "x:1", "secrets": [{ "name": "db-password" }] }]
    });
    let (s, text) = call(&app, &op, Method::POST, "/v1/jobs", Some(job), None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "secrets_need_key", "{v:#}");
    assert!(
        text.contains("job web names secrets") && text.contains("--secret-key-file"),
        "{text}"
    );
}

#[tokio::test]
async fn instance_secrets_go_to_no_operator_and_not_over_plain_http_off_host() {
    let m = manager(true).await;
    let op = token(&m, Role::Operator).await;
    let app = orkestrator_runtime::http::server::router(m.clone());
    let path = "/v1/workers/w1/instances/web-0-1/secrets";
    // Off the manager's host over plain HTTP: refused before anything is looked up.
    let (s, text) = call(&app, &op, Method::GET, path, None, Some("10.1.2.3:40000")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "plain_http", "{v:#}");
    // From loopback, an operator token is still not the worker's credential.
    let (s, text) = call(&app, &op, Method::GET, path, None, Some("127.0.0.1:40000")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "not_your_instance", "{v:#}");
}
