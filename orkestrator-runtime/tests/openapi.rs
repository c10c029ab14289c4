//! The OpenAPI document served at `/v1/openapi.json` against the router: every route the
//! manager serves is documented with exactly its methods and nothing else is; every `$ref`
//! resolves; every operation has an id, responses and its path's parameters. The checks are
//! shown to fail on documents broken on purpose, and the route list is checked against the real
//! router, as an operator (each listed method is routed; an unlisted one is answered 405).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::store::MemoryStore;
use orkestrator_runtime::http::openapi::OPENAPI_JSON;
use serde_json::Value;
use tower::ServiceExt as _;

/// Every route of `server::router` (read from `router` in `src/http/server.rs`) and its
/// methods, in the router's own path syntax (which is OpenAPI's). The dashboard's static files
/// are left out of the document on purpose: see [`STATIC_ROUTES`].
const ROUTES: &[(&str, &[&str])] = &[
    ("/metrics", &["get"]),
    ("/v1/health", &["get"]),
    ("/v1/openapi.json", &["get"]),
    ("/v1/jobs", &["get", "post"]),
    ("/v1/jobs/{job}", &["get", "delete"]),
    ("/v1/jobs/{job}/stop", &["post"]),
    ("/v1/jobs/{job}/restart", &["post"]),
    ("/v1/jobs/{job}/logs", &["get"]),
    ("/v1/jobs/{job}/metrics", &["get"]),
    ("/v1/events", &["get"]),
    ("/v1/workers", &["get", "post"]),
    ("/v1/workers/{id}/heartbeat", &["post"]),
    ("/v1/workers/{id}/metrics", &["get", "post"]),
    ("/v1/gc", &["post"]),
    ("/v1/workers/{id}/assignments", &["get"]),
    ("/v1/workers/{id}/status", &["post"]),
    ("/v1/workers/{id}/volumes/removed", &["post"]),
    ("/v1/volumes", &["get"]),
    ("/v1/volumes/{job}/{index}/{volume}", &["delete"]),
    ("/v1/workers/{id}/instances/{instance}/secrets", &["get"]),
    ("/v1/schedulers", &["post"]),
    ("/v1/schedulers/{id}/heartbeat", &["post"]),
    ("/v1/schedulers/{id}/work", &["get"]),
    ("/v1/schedulers/{id}/decisions", &["post"]),
    // Authentication (issue 11).
    ("/v1/tokens", &["get", "post"]),
    ("/v1/tokens/{id}", &["delete"]),
    ("/v1/auth/whoami", &["get"]),
    ("/v1/session", &["post", "delete"]),
    // Secrets (issue 20).
    ("/v1/secrets", &["get", "post"]),
    ("/v1/secrets/{id}", &["get", "put", "delete"]),
];

/// The dashboard's static files: routed, public, and not part of the document.
const STATIC_ROUTES: &[&str] = &["/", "/ui/app.js", "/ui/style.css", "/ui/icon.svg"];

/// Operations anyone may call, without a credential (`security: []`).
const PUBLIC_OPERATIONS: &[(&str, &str)] = &[
    ("/v1/health", "get"),
    ("/v1/session", "post"),
    ("/v1/session", "delete"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

/// The document's paths and the methods of each.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let methods = item
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .filter(|k| METHODS.contains(&k.as_str()))
            .collect();
        out.insert(path.clone(), methods);
    }
    out
}

/// Differences between `routes` and the document's paths and methods.
fn route_problems(doc: &Value, routes: &[(&str, &[&str])]) -> Vec<String> {
    let mut problems = Vec::new();
    let docs = documented(doc);
    let mut listed = BTreeSet::new();
    for (path, methods) in routes {
        listed.insert(path.to_string());
        let want: BTreeSet<String> = methods.iter().map(|m| m.to_string()).collect();
        match docs.get(*path) {
            None => problems.push(format!("route {path} is not documented")),
            Some(have) if *have != want => problems.push(format!(
                "route {path}: the router takes {want:?}, the document says {have:?}"
            )),
            Some(_) => {}
        }
    }
    for path in docs.keys() {
        if !listed.contains(path) {
            problems.push(format!("documented path {path} is not a route"));
        }
        if STATIC_ROUTES.contains(&path.as_str()) {
            problems.push(format!("static file {path} is documented"));
        }
    }
    problems
}

/// Follows a local JSON pointer (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Every `$ref` that does not resolve (or is not a local reference).
fn ref_problems(doc: &Value) -> Vec<String> {
    fn walk(doc: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                match map.get("$ref").map(Value::as_str) {
                    None => {}
                    Some(Some(r)) if resolve(doc, r).is_some() => {}
                    Some(Some(r)) => out.push(format!("{at}: $ref {r} does not resolve")),
                    Some(None) => out.push(format!("{at}: $ref is not a string")),
                }
                for (k, child) in map {
                    walk(doc, child, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(doc, child, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, "#", &mut out);
    out
}

/// `v`, or what it refers to when it is a `$ref`.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or(&Value::Null),
        None => v,
    }
}

/// Operations without a unique id, responses, a declared parameter for each `{name}` of their
/// path, a schema for each response body, the 401 and 429 any credential may get or the 403 of
/// every authenticated operation; and securities that are not the ones documented.
fn operation_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let schemes = doc["components"]["securitySchemes"].as_object();
    let has_scheme = |name: &str| schemes.is_some_and(|s| s.contains_key(name));
    for name in ["bearerAuth", "sessionCookie"] {
        if !has_scheme(name) {
            problems.push(format!("security scheme {name} is not defined"));
        }
        let global = doc["security"].as_array().into_iter().flatten();
        if !global
            .clone()
            .any(|s| s.as_object().is_some_and(|o| o.contains_key(name)))
        {
            problems.push(format!("security scheme {name} is not applied globally"));
        }
    }
    let cookie = &doc["components"]["securitySchemes"]["sessionCookie"];
    if cookie["in"] != "cookie" || cookie["name"] != "ork_session" {
        problems.push("sessionCookie is not the ork_session cookie".to_owned());
    }
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let shared: Vec<&Value> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let template: BTreeSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        for (method, op) in item.as_object().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let name = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                Some(id) if !id.is_empty() => {
                    if !ids.insert(id.to_owned()) {
                        problems.push(format!("{name}: operationId {id} is used twice"));
                    }
                }
                _ => problems.push(format!("{name}: no operationId")),
            }
            let responses = op["responses"].as_object();
            if responses.is_none_or(|r| r.is_empty()) {
                problems.push(format!("{name}: no responses"));
            }
            let mut in_path = BTreeSet::new();
            for p in shared
                .iter()
                .copied()
                .chain(op["parameters"].as_array().into_iter().flatten())
            {
                let p = deref(doc, p);
                if p["in"] == "path" {
                    if p["required"] != true {
                        problems.push(format!("{name}: path parameter {} is optional", p["name"]));
                    }
                    in_path.insert(p["name"].as_str().unwrap_or_default().to_owned());
                }
            }
            if in_path != template {
                problems.push(format!(
                    "{name}: the path has {template:?}, the parameters {in_path:?}"
                ));
            }
            for (status, response) in responses.into_iter().flatten() {
                let response = deref(doc, response);
                if response["description"].as_str().is_none() {
                    problems.push(format!("{name} {status}: no description"));
                }
                for (media, body) in response["content"].as_object().into_iter().flatten() {
                    if body.get("schema").is_none() {
                        problems.push(format!("{name} {status} {media}: no schema"));
                    }
                }
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    if schema != "#/components/schemas/ApiError" {
                        problems.push(format!("{name} {status}: not an ApiError"));
                    }
                }
            }
            let public = PUBLIC_OPERATIONS.contains(&(path.as_str(), method.as_str()));
            match (&op["security"], public) {
                (Value::Array(s), true) if s.is_empty() => {}
                (_, true) => problems.push(format!("{name}: should be public (security: [])")),
                (Value::Null, false) => {}
                (_, false) => problems.push(format!("{name}: overrides the global security")),
            }
            // A public operation refuses a bad credential too, and counts a good one's requests.
            let statuses: &[&str] = if public {
                &["401", "429"]
            } else {
                &["401", "403", "429"]
            };
            for status in statuses {
                if responses.is_none_or(|r| !r.contains_key(*status)) {
                    problems.push(format!("{name}: does not document {status}"));
                }
            }
        }
    }
    problems
}

fn all_problems(doc: &Value) -> Vec<String> {
    let mut p = route_problems(doc, ROUTES);
    p.extend(ref_problems(doc));
    p.extend(operation_problems(doc));
    p
}

#[test]
fn the_document_is_openapi_3_1_with_every_route_and_only_routes() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let problems = all_problems(&doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The list above is the router's table ([`orkestrator_runtime::http::routes::table`]): a route
/// added there and not here (so not held against the document) is told.
#[test]
fn the_route_list_is_the_routers_table() {
    let table = orkestrator_runtime::http::routes::table()
        .policies()
        .routes();
    let mut problems = Vec::new();
    let listed: BTreeMap<&str, BTreeSet<String>> = ROUTES
        .iter()
        .map(|(p, ms)| (*p, ms.iter().map(|m| m.to_string()).collect()))
        .collect();
    let mut routed = BTreeSet::new();
    for (path, methods) in &table {
        routed.insert(*path);
        if STATIC_ROUTES.contains(path) {
            continue;
        }
        let methods: BTreeSet<String> = methods.iter().map(|m| m.as_str().to_lowercase()).collect();
        match listed.get(path) {
            None => problems.push(format!("route {path} {methods:?} is not in ROUTES")),
            Some(l) if *l != methods => problems.push(format!(
                "route {path}: the table has {methods:?}, ROUTES {l:?}"
            )),
            Some(_) => {}
        }
    }
    for path in listed.keys().chain(STATIC_ROUTES) {
        if !routed.contains(path) {
            problems.push(format!("{path} is listed, and not in the table"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_fail_on_a_broken_document() {
    let good = document();

    let mut missing_path = good.clone();
    missing_path["paths"]
        .as_object_mut()
        .unwrap()
        .remove("/v1/gc");
    assert!(
        all_problems(&missing_path)
            .iter()
            .any(|p| p == "route /v1/gc is not documented"),
    );

    let mut extra_method = good.clone();
    extra_method["paths"]["/v1/gc"]["put"] = extra_method["paths"]["/v1/gc"]["post"].clone();
    let problems = all_problems(&extra_method);
    assert!(
        problems.iter().any(|p| p.starts_with("route /v1/gc:")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("is used twice")),
        "{problems:?}"
    );

    let mut extra_path = good.clone();
    extra_path["paths"]["/v1/nothing"] = good["paths"]["/v1/health"].clone();
    assert!(
        all_problems(&extra_path)
            .iter()
            .any(|p| p == "documented path /v1/nothing is not a route")
    );

    let mut broken_ref = good.clone();
    broken_ref["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("Liveness");
    assert!(
        all_problems(&broken_ref)
            .iter()
            .any(|p| p.contains("#/components/schemas/Liveness does not resolve"))
    );

    let mut no_id = good.clone();
    no_id["paths"]["/v1/jobs"]["get"]
        .as_object_mut()
        .unwrap()
        .remove("operationId");
    assert!(
        all_problems(&no_id)
            .iter()
            .any(|p| p == "GET /v1/jobs: no operationId")
    );

    let mut no_responses = good.clone();
    no_responses["paths"]["/v1/events"]["get"]["responses"] = serde_json::json!({});
    assert!(
        all_problems(&no_responses)
            .iter()
            .any(|p| p == "GET /v1/events: no responses")
    );

    let mut no_param = good.clone();
    no_param["paths"]["/v1/jobs/{job}/logs"]
        .as_object_mut()
        .unwrap()
        .remove("parameters");
    assert!(
        all_problems(&no_param)
            .iter()
            .any(|p| p.starts_with("GET /v1/jobs/{job}/logs: the path has"))
    );

    let mut no_401 = good.clone();
    no_401["paths"]["/v1/workers"]["get"]["responses"]
        .as_object_mut()
        .unwrap()
        .remove("401");
    assert!(
        all_problems(&no_401)
            .iter()
            .any(|p| p == "GET /v1/workers: does not document 401")
    );
}

/// One request to the manager's real router, with `token` if any; the status and the error
/// code, if any.
async fn call(
    app: &axum::Router,
    token: Option<&str>,
    method: &str,
    path: &str,
) -> (StatusCode, Option<String>) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // Endless answers (the event stream) are not read: only errors are.
    let code = if is_json && (status.is_client_error() || status.is_server_error()) {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
    } else {
        None
    };
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_route_is_routed_with_exactly_its_methods_and_documented_security() {
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    // An operator may call everything: what is not routed is answered `no_route`, not 401/403.
    let token = m
        .tokens()
        .create(CreateToken {
            role: Role::Operator,
            name: Some("openapi test".into()),
        })
        .await
        .unwrap()
        .token;
    let app = orkestrator_runtime::http::server::router(m);
    // The baseline: a path that is not a route.
    let (status, code) = call(&app, Some(&token), "GET", "/v1/no-such-endpoint").await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::NOT_FOUND, Some("no_route"))
    );
    let mut problems = Vec::new();
    for (template, methods) in ROUTES {
        // An id that names nothing: handlers answer at once (404), long-polls do not wait.
        let path = template
            .replace("{job}", "openapi-probe")
            .replace("{id}", "openapi-probe")
            .replace("{index}", "0")
            .replace("{volume}", "openapi-probe");
        for method in METHODS
            .iter()
            .filter(|m| !matches!(**m, "head" | "options"))
        {
            let (status, code) = call(&app, Some(&token), &method.to_uppercase(), &path).await;
            if code.as_deref() == Some("no_route") {
                problems.push(format!("{method} {template}: not routed"));
            } else if methods.contains(method) && status == StatusCode::METHOD_NOT_ALLOWED {
                problems.push(format!(
                    "{method} {template}: the router refuses the method"
                ));
            } else if !methods.contains(method) && status != StatusCode::METHOD_NOT_ALLOWED {
                problems.push(format!(
                    "{method} {template}: the router takes it ({status}) but the list does not"
                ));
            }
        }
    }
    // Without a credential: what the document says is public is served, the rest is 401.
    let doc = document();
    for (template, methods) in documented(&doc) {
        let path = template
            .replace("{job}", "openapi-probe")
            .replace("{id}", "openapi-probe")
            .replace("{index}", "0")
            .replace("{volume}", "openapi-probe");
        for method in methods {
            let op = &doc["paths"][&template][&method];
            let public = op["security"].as_array().is_some_and(|s| s.is_empty());
            let (status, code) = call(&app, None, &method.to_uppercase(), &path).await;
            let refused = status == StatusCode::UNAUTHORIZED;
            if public == refused {
                problems.push(format!(
                    "{method} {template} without a credential: {status} {code:?}, public: {public}"
                ));
            }
        }
    }
    for path in STATIC_ROUTES {
        let (status, _) = call(&app, None, "GET", path).await;
        if status != StatusCode::OK {
            problems.push(format!("static file {path}: {status}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The schemas of a job against real jobs (issue 19's fields among them).

/// What in `value` the schema `schema` does not describe: a property an object with
/// `additionalProperties: false` does not list, a required one that is missing, a value of
/// another type or outside an `enum`. Follows `$ref`s; of a `oneOf` whose variants have types,
/// takes the one of the value's type. Enough to tell a field left out of the document.
fn shape_problems(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let mut schema = schema;
    // A `$ref` with siblings (a description) is the schema it refers to.
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        schema = resolve(doc, r).unwrap_or(&Value::Null);
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let typed = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !typed {
        out.push(format!("{at}: a {kind}, documented as {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!(
            "{at}: {value} is not in the documented enum {allowed:?}"
        ));
    }
    if types.is_empty()
        && let Some(variants) = schema["oneOf"].as_array()
        && let Some(v) = variants.iter().find(|v| v["type"] == kind)
    {
        shape_problems(doc, v, value, at, out);
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            for (k, v) in map {
                let here = format!("{at}.{k}");
                match (
                    props.and_then(|p| p.get(k)),
                    &schema["additionalProperties"],
                ) {
                    (Some(s), _) => shape_problems(doc, s, v, &here, out),
                    (None, Value::Bool(false)) => out.push(format!("{here}: not documented")),
                    (None, extra) if extra.is_object() => shape_problems(doc, extra, v, &here, out),
                    (None, _) => {}
                }
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !map.contains_key(r)
                {
                    out.push(format!("{at}: the required {r} is missing"));
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                shape_problems(doc, &schema["items"], v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// [`shape_problems`] of `value` against the schema named `name`.
fn against(doc: &Value, name: &str, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let schema = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
    shape_problems(doc, &schema, value, name, &mut out);
    out
}

/// A job with every field of a job file written, issue 19's and issue 20's among them, as JSON.
const EVERY_FIELD: &str = r#"{
  "name": "shop", "count": 2,
  "constraints": [{ "label": "zone", "equals": "a" }, { "label": "disk", "not_equals": "hdd" }],
  "network": { "mode": "bridge" },
  "volumes": {
    "data": { "type": "volume", "size": "1Gi", "read_only": false, "retain": true,
              "on_worker_loss": "recreate" },
    "plain": {},
    "cache": { "type": "tmpfs", "size": "64Mi" },
    "logs": { "type": "host", "source": "applogs", "read_only": true }
  },
  "tasks": [
    {
      "name": "api", "image": "shop:1.4",
      "entrypoint": ["/bin/api"], "command": "--listen :8080", "working_dir": "/srv/api",
      "env": { "MODE": "demo", "PORT": 8080 },
      "ports": [{ "container": 8080, "host": 18080, "protocol": "tcp", "host_ip": "127.0.0.1" }],
      "aliases": ["shop-api"], "shm_size": "64Mi",
      "labels": { "com.example.team": "shop", "com.example.tier": 1 },
      "extra_hosts": { "db.local": "10.0.0.5", "gw": "host-gateway" },
      "resources": { "cpu": "500m", "memory": "64Mi", "disk": "100Mi", "pids": 100 },
      "restart": { "policy": "always", "max_attempts": 3,
                   "backoff": { "initial": "1s", "max": "1m", "reset_after": 600 } },
      "health_check": { "http": { "port": 8080, "path": "/healthz" }, "interval": "5s",
                        "timeout": "1s", "failures": 3, "start_period": "20s" },
      "user": "1000:1000", "read_only": true,
      "depends_on": { "db": { "condition": "healthy" },
                      "migrate": { "condition": "completed_successfully" }, "cache": {} },
      "stop_signal": "SIGINT", "stop_grace": "30s", "init": true,
      "files": [
        { "path": "/etc/api/api.conf", "content": "listen = 8080\n", "mode": "0640" },
        { "path": "/etc/api/key", "content_base64": "3q2+7w==" }
      ],
      "mounts": [
        { "volume": "data", "path": "/var/lib/api", "read_only": false, "subpath": "api" },
        { "volume": "cache", "path": "/tmp/cache" },
        { "volume": "logs", "path": "/logs", "read_only": true },
        { "volume": "plain", "path": "/plain" }
      ],
      "secrets": [
        { "name": "db-password" },
        { "name": "tls.key", "path": "/etc/api/tls.key", "mode": "0440", "version": 3 }
      ]
    },
    { "name": "db", "image": "postgres:16",
      "health_check": { "tcp": { "port": 5432 } }, "stop_signal": 3 },
    { "name": "cache", "image": "redis:7", "health_check": { "exec": "redis-cli ping" },
      "restart": { "max_attempts": "unlimited", "backoff": { "initial": "100ms" } } },
    { "name": "migrate", "image": "shop:1.4", "restart": { "policy": "never" },
      "depends_on": ["db"] },
    { "name": "logs", "image": "shipper:2", "sidecar": true, "health_check": { "image": true } }
  ]
}"#;

#[test]
fn a_job_with_every_field_is_what_the_job_schemas_describe() {
    use orkestrator_core::spec::{Format, parse_job};
    let doc = document();
    // As submitted: the file shape.
    let submitted: Value = serde_json::from_str(EVERY_FIELD).unwrap();
    let problems = against(&doc, "JobSpec", &submitted);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // As the manager holds and answers it: every default filled in, files as content or
    // base64, every optional field written.
    let job = parse_job(EVERY_FIELD, Format::Json).expect("the job is valid");
    let held = serde_json::to_value(&job).unwrap();
    for field in [
        "entrypoint",
        "working_dir",
        "depends_on",
        "sidecar",
        "stop_signal",
        "mounts",
        "secrets",
        "aliases",
        "shm_size",
        "labels",
        "extra_hosts",
    ] {
        assert!(
            held["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.get(field).is_some()),
            "{field} is not written: {held:#}"
        );
    }
    assert_eq!(
        held["volumes"].as_object().map(|v| v.len()),
        Some(4),
        "volumes are not written: {held:#}"
    );
    let problems = against(&doc, "Job", &held);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let none = parse_job(
        r#"{"name": "n", "network": {"mode": "none"}, "tasks": [{"name": "t", "image": "a:1"}]}"#,
        Format::Json,
    )
    .unwrap();
    let problems = against(&doc, "Job", &serde_json::to_value(&none).unwrap());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The check tells a field the document leaves out, and a value it does not list.
    let mut broken = doc.clone();
    broken["components"]["schemas"]["Task"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("depends_on");
    broken["components"]["schemas"]["FileSpec"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("content_base64");
    broken["components"]["schemas"]["Condition"]["enum"] = serde_json::json!(["started"]);
    let problems = against(&broken, "Job", &held);
    assert!(
        problems
            .iter()
            .any(|p| p == "Job.tasks[0].depends_on: not documented"),
        "{problems:?}"
    );
    let problems = against(&broken, "JobSpec", &submitted);
    assert!(
        problems
            .iter()
            .any(|p| p == "JobSpec.tasks[0].files[1].content_base64: not documented"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("JobSpec.tasks[0].depends_on.db.condition: \"healthy\"")),
        "{problems:?}"
    );
}

#[test]
fn every_task_state_is_documented_in_lifecycle_order() {
    use orkestrator_core::state::TaskState;
    let doc = document();
    let states: Vec<Value> = TaskState::ALL
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    assert_eq!(
        doc["components"]["schemas"]["TaskState"]["enum"],
        Value::Array(states)
    );
    let described = doc["components"]["schemas"]["TaskState"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        described.contains("`Waiting`") && described.contains("waiting for db to be healthy"),
        "{described}"
    );
}

#[test]
fn a_workers_assignments_are_what_their_schema_describes() {
    use std::sync::Arc;

    use orkestrator_core::api::{Assignment, Assignments, Desired, VolumeRef};
    use orkestrator_core::ids::{InstanceId, JobId, TaskName};
    use orkestrator_core::spec::{Format, parse_job};
    let doc = document();
    let job = parse_job(EVERY_FIELD, Format::Json).expect("the job is valid");
    let answer = Assignments {
        index: 8,
        full: false,
        instances: vec![Assignment {
            instance: InstanceId::new("shop-0-0"),
            index: 0,
            desired: Desired::Run,
            job: Arc::new(job),
            ended: vec![TaskName::new("migrate")],
            version: 3,
        }],
        removed: vec![InstanceId::new("shop-1-0")],
        volumes_to_remove: vec![VolumeRef {
            job: JobId::new("shop"),
            index: 1,
            volume: "data".into(),
        }],
    };
    let value = serde_json::to_value(&answer).unwrap();
    for field in ["ended", "version"] {
        assert!(
            value["instances"][0].get(field).is_some(),
            "{field}: {value:#}"
        );
    }
    assert!(value.get("volumes_to_remove").is_some(), "{value:#}");
    let problems = against(&doc, "Assignments", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn host_volume_offers_are_what_the_worker_schemas_describe() {
    use std::collections::BTreeMap;

    use orkestrator_core::api::{
        HostVolumeOffer, Liveness, RegisterWorker, WorkerResources, WorkerView,
    };
    use orkestrator_core::ids::WorkerId;
    use orkestrator_core::spec::Resources;
    let doc = document();
    let offers = BTreeMap::from([
        ("applogs".to_owned(), HostVolumeOffer { read_only: true }),
        ("data".to_owned(), HostVolumeOffer::default()),
    ]);
    let resources = WorkerResources {
        total: Resources::ZERO,
        allocated: Resources::ZERO,
        available: Resources::ZERO,
    };
    let reg = RegisterWorker {
        id: WorkerId::new("w1"),
        address: None,
        labels: BTreeMap::new(),
        host_volumes: offers.clone(),
        resources,
        version: "0.2.0".into(),
    };
    let value = serde_json::to_value(&reg).unwrap();
    assert!(value.get("host_volumes").is_some());
    let problems = against(&doc, "RegisterWorker", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let view = WorkerView {
        id: WorkerId::new("w1"),
        status: Liveness::Ready,
        message: None,
        address: None,
        labels: BTreeMap::new(),
        host_volumes: offers,
        resources,
        reserved: Resources::ZERO,
        instances: 0,
        last_seen_ms_ago: 0,
        usage: None,
        tasks_usage: None,
    };
    let problems = against(&doc, "WorkerView", &serde_json::to_value(&view).unwrap());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_secrets_answer_is_what_its_schema_describes() {
    use orkestrator_core::secrets::{SecretKey, SecretValue};
    let config = ManagerConfig {
        secret_key: Some(SecretKey::from_bytes(&[3; 32]).unwrap()),
        ..ManagerConfig::default()
    };
    let m = Manager::new(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    m.secrets()
        .create("db-password", SecretValue::new(b"one".to_vec()))
        .await
        .unwrap();
    let info = m
        .secrets()
        .update("db-password", SecretValue::new(b"two".to_vec()))
        .await
        .unwrap();
    let doc = document();
    let value = serde_json::to_value(&info).unwrap();
    let problems = against(&doc, "SecretInfo", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let body = serde_json::json!({ "name": "a", "value_base64": "eA==" });
    assert!(against(&doc, "CreateSecret", &body).is_empty());
    let wrong = serde_json::json!({ "name": "a", "value": "x" });
    assert!(!against(&doc, "CreateSecret", &wrong).is_empty());
    let delivered = orkestrator_core::secrets::InstanceSecrets {
        instance: "web-0-1".into(),
        tasks: [(
            "app".to_owned(),
            vec![orkestrator_core::secrets::DeliveredSecret {
                name: "db-password".into(),
                version: 2,
                value_base64: "dHdv".into(),
            }],
        )]
        .into(),
    };
    let value = serde_json::to_value(&delivered).unwrap();
    let problems = against(&doc, "InstanceSecrets", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn volume_answers_are_what_their_schemas_describe() {
    use orkestrator_core::api::{
        PendingInstance, VolumeList, VolumeRef, VolumeView, VolumesRemoved,
    };
    use orkestrator_core::ids::{InstanceId, JobId, WorkerId};
    use orkestrator_core::spec::{Format, parse_job};
    let doc = document();
    let view = |state: &str, worker: &str| VolumeView {
        job: JobId::new("shop"),
        index: 0,
        volume: "data".into(),
        worker: WorkerId::new(worker),
        state: state.into(),
        in_use: state == "active",
        retain: state == "retained",
        name: format!("ork-{worker}-shop-0-data"),
        created_at: 1_700_000_000_000,
    };
    let list = VolumeList {
        volumes: ["active", "retained", "orphan", "removing"]
            .iter()
            .zip(["w1", "w2", "w3", "w4"])
            .map(|(s, w)| view(s, w))
            .collect(),
    };
    let value = serde_json::to_value(&list).unwrap();
    let problems = against(&doc, "VolumeList", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // A state the document does not list is told.
    let unknown = serde_json::to_value(view("lost", "w1")).unwrap();
    assert!(
        against(&doc, "VolumeView", &unknown)
            .iter()
            .any(|p| p.starts_with("VolumeView.state: \"lost\" is not in the documented enum")),
    );

    let confirmed = VolumesRemoved {
        volumes: vec![VolumeRef {
            job: JobId::new("shop"),
            index: 2,
            volume: "data".into(),
        }],
    };
    let problems = against(
        &doc,
        "VolumesRemoved",
        &serde_json::to_value(&confirmed).unwrap(),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let job = parse_job(EVERY_FIELD, Format::Json).expect("the job is valid");
    let pending = PendingInstance {
        instance: InstanceId::new("shop-0-0"),
        index: 0,
        job: Arc::new(job),
        pinned: Some(WorkerId::new("w1")),
    };
    let value = serde_json::to_value(&pending).unwrap();
    assert_eq!(value["pinned"], "w1");
    let problems = against(&doc, "PendingInstance", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // A real manager's answers: the (empty) list and a garbage collection's report.
    let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let list = m.volumes().list(None).await.unwrap();
    let problems = against(&doc, "VolumeList", &serde_json::to_value(&list).unwrap());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let report = m
        .cluster()
        .gc(std::time::Duration::from_secs(0))
        .await
        .unwrap();
    let value = serde_json::to_value(report).unwrap();
    assert!(value.get("volumes").is_some(), "{value:#}");
    let problems = against(&doc, "GcReport", &value);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
