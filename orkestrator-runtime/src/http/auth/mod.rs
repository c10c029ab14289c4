//! Authentication and authorization of the HTTP API, as one layer around the router (handlers
//! stay thin and know nothing of tokens).
//!
//! Every request but `/v1/health`, the dashboard's static files and signing in needs a
//! credential: `Authorization: Bearer TOKEN`, or the dashboard's `ork_session` cookie. Who may
//! call each route, and which answers are long-lived, is the route table's to say
//! ([`crate::http::routes::table`], read through [`AuthState::routes`]): reads are for read and
//! operator tokens, registering for the join token (or the component's own credential), a
//! worker's or scheduler's own routes for its own credential, the rest for operators (each
//! [`Access`](crate::http::table::Access) says which).
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
