//! # orkestrator-runtime
//!
//! Production implementations of `orkestrator-core`'s plug points.

pub mod docker;
pub mod probe;

pub use docker::DockerRuntime;
pub mod http;

pub use http::client::HttpTransport;
pub mod store;
pub use store::RedbStore;
