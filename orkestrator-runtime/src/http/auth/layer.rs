//! The manager API's authentication layer: who presents what, and whether the request's route
//! lets them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use orkestrator_core::api::ApiError;
use orkestrator_core::auth::{Principal, Role};
use orkestrator_core::manager::Manager;
use orkestrator_core::manager::tokens::{forbidden, unauthenticated};

use super::credential::{Presented, presented};
use super::limits::Usage;
use crate::http::error::ErrorResponse;

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    Public,
    AnyCredential,
    Read,
    Operator,
    /// Registering: join, operator or the component's own credential (the manager decides).
    Register,
    Worker(String),
    Scheduler(String),
}

/// The rules of the table in the module's docs.
fn need(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = matches!(*method, Method::GET | Method::HEAD);
    match segs.as_slice() {
        [""] | ["ui", ..] if read => Need::Public,
        ["v1", "health"] if read => Need::Public,
        ["v1", "session"] => Need::Public,
        ["v1", "auth", "whoami"] => Need::AnyCredential,
        ["v1", "workers"] | ["v1", "schedulers"] if *method == Method::POST => Need::Register,
        ["v1", "workers", id, "heartbeat" | "status" | "assignments"] => Need::Worker(decode(id)),
        ["v1", "workers", id, "metrics"] if !read => Need::Worker(decode(id)),
        ["v1", "schedulers", id, ..] => Need::Scheduler(decode(id)),
        ["v1", "tokens", ..] => Need::Operator,
        _ if read => Need::Read,
        _ => Need::Operator,
    }
}

/// Whether a request holds its answer open (a long-poll or a stream).
fn is_stream(path: &str) -> bool {
    path == "/v1/events"
        || path.ends_with("/logs")
        || path.ends_with("/assignments")
        || (path.starts_with("/v1/schedulers/") && path.ends_with("/work"))
}

/// Percent-decodes a path segment (`w%201` is worker `w 1`); one that does not decode names no
/// component.
fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| "\u{fffd}".into())
}

fn resolve(m: &Manager, p: &Presented) -> Result<Principal, ApiError> {
    match p {
        Presented::Bearer(t) => m.authenticate(t),
        Presented::Session(s) => m.authenticate_session(s),
    }
}

/// Whether `p` may do what `need` asks; the 403 if not.
fn permit(p: &Principal, need: &Need, method: &Method, path: &str) -> Result<(), ApiError> {
    let ok = match need {
        Need::Public | Need::AnyCredential => true,
        _ if p.role == Role::Operator => true,
        Need::Read => p.role == Role::Read,
        Need::Operator => false,
        Need::Register => matches!(p.role, Role::Join | Role::Worker | Role::Scheduler),
        Need::Worker(id) => p.is_worker(&id.as_str().into()),
        Need::Scheduler(id) => p.is_scheduler(&id.as_str().into()),
    };
    if ok {
        return Ok(());
    }
    let what = match need {
        Need::Read => "a read or operator token".to_owned(),
        Need::Worker(id) => format!("worker \"{id}\"'s own credential (or an operator token)"),
        Need::Scheduler(id) => {
            format!("scheduler \"{id}\"'s own credential (or an operator token)")
        }
        Need::Register => "the join token".to_owned(),
        _ => "an operator token".to_owned(),
    };
    let who = match &p.subject {
        Some(orkestrator_core::auth::Subject::Worker(w)) => format!("worker \"{w}\"'s credential"),
        Some(orkestrator_core::auth::Subject::Scheduler(s)) => {
            format!("scheduler \"{s}\"'s credential")
        }
        None => format!("a {} token", p.role),
    };
    Err(forbidden(
        "forbidden",
        format!("{method} {path} needs {what}; this is {who}"),
    ))
}

/// The state of [`layer`].
#[derive(Clone)]
pub struct AuthState {
    /// Who checks credentials.
    pub manager: Manager,
    /// What each credential holds.
    pub usage: Arc<Usage>,
}

/// The manager API's authentication layer (see the module's docs): resolves the credential,
/// checks the rule, counts it against its limits and hands the [`Principal`] to the handler as
/// an extension.
pub async fn layer(
    State(s): State<AuthState>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let need = need(&method, &path);
    let principal = match presented(req.headers()) {
        Ok(Some(p)) => match resolve(&s.manager, &p) {
            Ok(p) => Some(p),
            // A session that ended (expired, revoked, a restarted manager) is no one on a public
            // endpoint: the browser holding its cookie must still load the page and sign in again.
            Err(_) if need == Need::Public && matches!(p, Presented::Session(_)) => None,
            // A bad bearer token is refused even there: the caller meant to use it.
            Err(e) => return ErrorResponse(e).into_response(),
        },
        Ok(None) => None,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    let Some(principal) = principal else {
        if need == Need::Public {
            return next.run(req).await;
        }
        return ErrorResponse(unauthenticated(&format!("{method} {path} needs a token")))
            .into_response();
    };
    if let Err(e) = permit(&principal, &need, &method, &path) {
        return ErrorResponse(e).into_response();
    }
    let stream = is_stream(&path);
    let guard = match s.usage.take(&principal.token, stream) {
        Ok(g) => g,
        Err(e) => return ErrorResponse(e).into_response(),
    };
    req.extensions_mut().insert(principal.clone());
    let resp = next.run(req).await;
    if !stream {
        // The answer is whole: what the request held is given back now.
        drop(guard);
        return resp;
    }
    // A stream holds its guard as long as its body lasts, and ends at its next chunk (an event
    // or a keep-alive) once its token is revoked.
    let (parts, body) = resp.into_parts();
    let manager = s.manager.clone();
    let body = axum::body::Body::from_stream(body.into_data_stream().take_while(move |_| {
        let _held = &guard;
        std::future::ready(manager.still_valid(&principal))
    }));
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_hold() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(need(&g, "/v1/health"), Need::Public);
        assert_eq!(need(&g, "/"), Need::Public);
        assert_eq!(need(&g, "/ui/app.js"), Need::Public);
        assert_eq!(need(&p, "/v1/session"), Need::Public);
        assert_eq!(need(&p, "/v1/health"), Need::Operator);
        assert_eq!(need(&g, "/v1/jobs"), Need::Read);
        assert_eq!(need(&g, "/metrics"), Need::Read);
        assert_eq!(need(&p, "/v1/jobs"), Need::Operator);
        assert_eq!(need(&Method::DELETE, "/v1/jobs/a"), Need::Operator);
        assert_eq!(need(&p, "/v1/workers"), Need::Register);
        assert_eq!(need(&p, "/v1/schedulers"), Need::Register);
        assert_eq!(
            need(&p, "/v1/workers/w%201/heartbeat"),
            Need::Worker("w 1".into())
        );
        assert_eq!(
            need(&g, "/v1/workers/w/assignments"),
            Need::Worker("w".into())
        );
        assert_eq!(need(&p, "/v1/workers/w/metrics"), Need::Worker("w".into()));
        assert_eq!(need(&g, "/v1/workers/w/metrics"), Need::Read);
        assert_eq!(
            need(&g, "/v1/schedulers/s/work"),
            Need::Scheduler("s".into())
        );
        assert_eq!(need(&g, "/v1/tokens"), Need::Operator);
        assert_eq!(need(&g, "/v1/auth/whoami"), Need::AnyCredential);
        assert!(is_stream("/v1/events"));
        assert!(is_stream("/v1/jobs/a/logs"));
        assert!(!is_stream("/v1/jobs"));
    }

    #[test]
    fn segments_decode() {
        assert_eq!(decode("a%2Fb"), "a/b");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("end%"), "end%");
    }
}
