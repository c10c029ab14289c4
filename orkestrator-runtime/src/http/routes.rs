//! The manager's API, each endpoint stated once: method and path, handler, who may call it,
//! whether its answer is long-lived and whether an HA follower answers it from its own copy.
//! The router ([`super::server`]), the authentication layer ([`super::auth`]) and the HA
//! forwarder ([`super::forward`]) all read this table. Adding an endpoint is adding a row.

use std::sync::OnceLock;

use super::table::Access::{AnyCredential, Operator, Public, Read, Register, Scheduler, Worker};
use super::table::{FollowerRead, Policies, Table, delete, get, post};
use super::{dashboard, events, handlers, logs, openapi, prom, secrets, tokens, volumes};

/// Every route of the manager's API.
///
/// Rooms first: who may call what no route takes under a prefix (a `404`, or a method a route
/// of it does not take). Then the routes, each with its methods.
pub fn table() -> Table {
    Table::new()
        .room("/ui", Some(Public), None)
        .room("/v1/schedulers/{id}", Some(Scheduler), Some(Scheduler))
        .room("/v1/tokens", Some(Operator), Some(Operator))
        .room("/v1/secrets", Some(Operator), Some(Operator))
        .route("/metrics", get(Read, prom::page))
        .route("/v1/health", get(Public, handlers::health))
        .route(
            "/v1/jobs",
            post(Operator, handlers::submit_job)
                .get(Read, handlers::list_jobs)
                .followers_read(FollowerRead::JobList),
        )
        .route(
            "/v1/jobs/{job}",
            get(Read, handlers::get_job)
                .followers_read(FollowerRead::Job)
                .delete(Operator, handlers::stop_job),
        )
        .route("/v1/jobs/{job}/stop", post(Operator, handlers::stop_job))
        .route(
            "/v1/jobs/{job}/restart",
            post(Operator, handlers::restart_job),
        )
        .route(
            "/v1/jobs/{job}/logs",
            get(Read, logs::job_logs).long_lived(),
        )
        .route("/v1/jobs/{job}/metrics", get(Read, handlers::job_metrics))
        .route("/v1/events", get(Read, events::events).long_lived())
        .route(
            "/v1/workers",
            get(Read, handlers::list_workers).post(Register, handlers::register_worker),
        )
        .route(
            "/v1/workers/{id}/heartbeat",
            post(Worker, handlers::worker_heartbeat).others(Worker),
        )
        .route(
            "/v1/workers/{id}/metrics",
            get(Read, handlers::worker_metrics)
                .post(Worker, handlers::report_metrics)
                .others(Worker),
        )
        .route("/v1/gc", post(Operator, handlers::collect_garbage))
        .route(
            "/v1/workers/{id}/assignments",
            get(Worker, handlers::watch_assignments)
                .long_lived()
                .others(Worker),
        )
        .route(
            "/v1/workers/{id}/status",
            post(Worker, handlers::report_status).others(Worker),
        )
        .route(
            "/v1/workers/{id}/volumes/removed",
            post(Worker, volumes::removed).others(Worker),
        )
        .route("/v1/volumes", get(Read, volumes::list))
        .route(
            "/v1/volumes/{job}/{index}/{volume}",
            delete(Operator, volumes::remove),
        )
        .route(
            "/v1/workers/{id}/instances/{instance}/secrets",
            get(Worker, secrets::instance_secrets).others(Worker),
        )
        .route(
            "/v1/schedulers",
            post(Register, handlers::register_scheduler),
        )
        .route(
            "/v1/schedulers/{id}/heartbeat",
            post(Scheduler, handlers::scheduler_heartbeat),
        )
        .route(
            "/v1/schedulers/{id}/work",
            get(Scheduler, handlers::scheduling_work).long_lived(),
        )
        .route(
            "/v1/schedulers/{id}/decisions",
            post(Scheduler, handlers::submit_decisions),
        )
        .route("/", get(Public, dashboard::index))
        .route("/ui/app.js", get(Public, dashboard::app_js))
        .route("/ui/style.css", get(Public, dashboard::style_css))
        .route("/ui/icon.svg", get(Public, dashboard::icon_svg))
        .route("/v1/openapi.json", get(Read, openapi::document))
        .route(
            "/v1/tokens",
            get(Operator, tokens::list_tokens).post(Operator, tokens::create_token),
        )
        .route("/v1/tokens/{id}", delete(Operator, tokens::revoke_token))
        .route(
            "/v1/secrets",
            get(Operator, secrets::list).post(Operator, secrets::create),
        )
        .route(
            "/v1/secrets/{id}",
            get(Operator, secrets::get_one)
                .put(Operator, secrets::update)
                .delete(Operator, secrets::remove),
        )
        .route(
            "/v1/auth/whoami",
            get(AnyCredential, tokens::whoami).others(AnyCredential),
        )
        .route(
            "/v1/session",
            post(Public, tokens::sign_in)
                .delete(Public, tokens::sign_out)
                .others(Public),
        )
}

/// The policies of [`table`], made once.
pub fn policies() -> &'static Policies {
    static POLICIES: OnceLock<Policies> = OnceLock::new();
    POLICIES.get_or_init(|| table().policies())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::extract::{MatchedPath, Request};
    use axum::http::{HeaderValue, Method};
    use axum::response::{IntoResponse, Response};
    use orkestrator_core::manager::{Manager, ManagerConfig};
    use orkestrator_core::store::MemoryStore;
    use tower::ServiceExt as _;

    use super::*;
    use crate::http::table::Access;

    /// The rules as `auth.rs` wrote them by parsing paths before the table: who may call
    /// `method path` (and the `{id}` it names), and whether the answer is long-lived.
    fn by_path(method: &Method, path: &str) -> ((Access, Option<String>), bool) {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let read = matches!(*method, Method::GET | Method::HEAD);
        let id = |s: &str| Some(crate::http::table::decode(s));
        let access = match segs.as_slice() {
            [""] | ["ui", ..] if read => (Access::Public, None),
            ["v1", "health"] if read => (Access::Public, None),
            ["v1", "session"] => (Access::Public, None),
            ["v1", "auth", "whoami"] => (Access::AnyCredential, None),
            ["v1", "workers"] | ["v1", "schedulers"] if *method == Method::POST => {
                (Access::Register, None)
            }
            ["v1", "workers", w, "heartbeat" | "status" | "assignments"] => (Access::Worker, id(w)),
            ["v1", "workers", w, "instances", _, "secrets"] => (Access::Worker, id(w)),
            ["v1", "workers", w, "volumes", "removed"] => (Access::Worker, id(w)),
            ["v1", "workers", w, "metrics"] if !read => (Access::Worker, id(w)),
            ["v1", "schedulers", s, ..] => (Access::Scheduler, id(s)),
            ["v1", "tokens" | "secrets", ..] => (Access::Operator, None),
            _ if read => (Access::Read, None),
            _ => (Access::Operator, None),
        };
        let stream = path == "/v1/events"
            || path.ends_with("/logs")
            || path.ends_with("/assignments")
            || (path.starts_with("/v1/schedulers/") && path.ends_with("/work"));
        (access, stream)
    }

    /// `id` in plain ASCII (for a header, and to compare).
    fn show(access: Access, id: Option<String>, long_lived: bool) -> String {
        let id = id
            .filter(|_| matches!(access, Access::Worker | Access::Scheduler))
            .map(|i| i.escape_unicode().to_string());
        format!("{access:?} {id:?} {long_lived}")
    }

    /// Answers, for each request, what the table resolves it to (by the route axum matched),
    /// without running any handler.
    async fn probe(req: Request, _: axum::middleware::Next) -> Response {
        let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
        let r = policies().resolve(matched, req.method(), req.uri().path());
        let mut resp = ().into_response();
        let h = resp.headers_mut();
        let text = show(r.access, r.id, r.long_lived);
        h.insert("x-resolved", HeaderValue::from_str(&text).unwrap());
        h.insert("x-matched", HeaderValue::from(u16::from(matched.is_some())));
        resp
    }

    #[tokio::test]
    async fn the_table_says_who_may_call_what_the_path_rules_said() {
        let m = Manager::new(ManagerConfig::default(), Arc::new(MemoryStore::new()))
            .await
            .unwrap();
        let app = table()
            .router()
            .fallback(crate::http::error::not_found)
            .method_not_allowed_fallback(crate::http::error::method_not_allowed)
            .layer(axum::middleware::from_fn(probe))
            .with_state(m);
        let mut paths: Vec<String> = [
            "/",
            "//",
            "/ui",
            "/ui/",
            "/ui/x",
            "/ui/a/b",
            "/uix",
            "/v1",
            "/v1/",
            "/v1/nope",
            "/v1/schedulers/",
            "/v1/schedulers/s",
            "/v1/schedulers/s/",
            "/v1/schedulers/s/x/y",
            "/v1/tokens/",
            "/v1/tokens/a/b",
            "/v1/secrets/",
            "/v1/secrets/a/b",
            "/v1/workers/",
            "/v1/workers/w",
            "/v1/workers/w/x",
            "/v1/jobs/a/b/c",
            "/v1/containers/c/logs",
            "/metrics/x",
            "/v1/auth",
            "/v1/auth/whoami/x",
            "/health",
            "/v1/workers//heartbeat",
            "/v1/schedulers//work",
            "//v1/health",
            "//v1/workers/w/heartbeat",
            "///ui/x",
            "//v1/tokens/a",
        ]
        .iter()
        .map(|p| p.to_string())
        .collect();
        for t in policies().templates() {
            for id in ["w", "w%201", "", "a%2Fb", "%ff"] {
                let p = t.replace("{id}", id).replace("{job}", id);
                paths.push(format!("{p}/"));
                paths.push(format!("{p}/x"));
                paths.push(p);
            }
        }
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
        let mut differ = Vec::new();
        let mut checked = 0;
        for path in &paths {
            for method in methods {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let req = Request::builder()
                    .method(method.clone())
                    .uri(path.as_str())
                    .body(axum::body::Body::empty())
                    .unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                let got = resp.headers()["x-resolved"].to_str().unwrap().to_owned();
                let matched = resp.headers()["x-matched"] == "1";
                let ((access, id), stream) = by_path(&method, path);
                // A request no route takes is never long-lived now: it was when its path ended
                // like a stream's (`/logs`), which only mattered at the stream limit.
                let stream = stream && (matched || got.ends_with("true"));
                let want = show(access, id, stream);
                checked += 1;
                if got != want {
                    differ.push(format!("{method} {path}: table {got}, path rules {want}"));
                }
            }
        }
        assert!(differ.is_empty(), "{}", differ.join("\n"));
        assert!(checked > 1000, "{checked} requests checked");
    }
}
