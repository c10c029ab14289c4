//! # orkestrator-runtime
//!
//! Production implementations of `orkestrator-core`'s plug points.

pub mod docker;
pub mod etcd;
#[cfg(any(test, feature = "testing"))]
pub mod etcd_testing;
pub mod probe;

pub use docker::DockerRuntime;
pub use docker::build;
pub mod http;

pub use http::client::HttpTransport;
pub mod store;
pub use etcd::EtcdStore;
pub use store::RedbStore;
