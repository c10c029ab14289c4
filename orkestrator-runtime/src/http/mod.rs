//! The HTTP transport: the manager's API server ([`server`]) and the client that implements
//! [`Transport`](orkestrator_core::transport::Transport) over it ([`client`]), over plain HTTP
//! or TLS ([`tls`]).
//!
//! JSON under `/v1/`. Long-polls take `?index=N&wait=30s`.

pub mod auth;
pub mod client;
pub mod dashboard;
pub mod error;
mod events;
pub mod extract;
pub mod forward;
mod handlers;
mod logs;
pub mod openapi;
pub mod prom;
pub mod routes;
mod secrets;
pub mod serve;
pub mod server;
pub mod sse;
pub mod table;
pub mod tls;
mod tokens;
mod volumes;
pub mod worker_endpoint;
pub mod worker_metrics;

pub use error::MAX_BODY_BYTES;
