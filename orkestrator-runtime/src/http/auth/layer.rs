//! The manager API's authentication layer: who presents what, and whether the request's route
//! lets them.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
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
use crate::http::table::{Access, Policies, Resolved};

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

impl Need {
    /// What a request needs, as the route table says.
    fn of(r: &Resolved) -> Need {
        let id = || r.id.clone().unwrap_or_default();
        match r.access {
            Access::Public => Need::Public,
            Access::AnyCredential => Need::AnyCredential,
            Access::Read => Need::Read,
            Access::Operator => Need::Operator,
            Access::Register => Need::Register,
            Access::Worker => Need::Worker(id()),
            Access::Scheduler => Need::Scheduler(id()),
        }
    }
}

fn resolve(m: &Manager, p: &Presented) -> Result<Principal, ApiError> {
    match p {
        Presented::Bearer(t) => m.tokens().authenticate(t),
        Presented::Session(s) => m.tokens().authenticate_session(s),
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
    /// Who may call each route, and which answers are long-lived: the route table's policies
    /// ([`crate::http::routes::policies`]).
    pub routes: &'static Policies,
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
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    let route = s.routes.resolve(matched, &method, &path);
    let need = Need::of(&route);
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
    let stream = route.long_lived;
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
        std::future::ready(manager.tokens().still_valid(&principal))
    }));
    Response::from_parts(parts, body)
}
