//! Authentication and authorization of the HTTP API, as one layer around the router (handlers
//! stay thin and know nothing of tokens).
//!
//! Every request but `/v1/health`, the dashboard's static files and signing in needs a
//! credential: `Authorization: Bearer TOKEN`, or the dashboard's `ork_session` cookie. What a
//! role may do:
//!
//! | request | who |
//! |---|---|
//! | `GET` (jobs, workers, events, logs, metrics, `/metrics`) | operator, read |
//! | `POST /v1/workers`, `POST /v1/schedulers` | join, operator, the component's own credential |
//! | `/v1/workers/{id}/heartbeat`, `status`, `assignments`, `POST metrics` | worker `id`, operator |
//! | `/v1/schedulers/{id}/...` | scheduler `id`, operator |
//! | `GET /v1/auth/whoami` | any valid credential |
//! | everything else (submit, stop, gc, tokens) | operator |
//!
//! Each credential may hold at most [`Limits::requests`] requests and [`Limits::streams`]
//! long-lived answers (long-polls, event streams, followed logs) at once; more get `429`.
//!
//! A worker's own endpoint uses [`worker_layer`]: its logs answer only the manager's credential
//! (and operators), its `/metrics` read tokens too, each checked with the manager
//! ([`Verifier`]).

mod credential;
mod layer;
mod limits;
mod worker;

pub use credential::SESSION_COOKIE;
pub(crate) use credential::session_cookie;
pub use layer::{AuthState, layer};
pub use limits::{Limits, Usage};
pub use worker::{RemoteVerifier, Verifier, WorkerAuth, worker_layer};
