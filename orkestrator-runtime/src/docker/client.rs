//! [`DockerRuntime`]: the connection to the engine, with the API version negotiated on first use.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use orkestrator_core::error::{Error, Result, RuntimeErrorKind};
use tokio::sync::OnceCell;

use super::error::{classify, unavailable};

/// Where the engine is when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The request timeout of [`DockerRuntime::connect`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The Docker implementation of [`Runtime`](orkestrator_core::runtime::Runtime).
///
/// Cheap to clone: clones share one connection pool and one negotiated API version.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    host: String,
    negotiated: std::sync::Arc<OnceCell<()>>,
}

impl DockerRuntime {
    /// Connects to the local engine: `DOCKER_HOST` if set (`unix://` or `tcp://`/`http://`),
    /// otherwise [`DEFAULT_DOCKER_HOST`], with a [`DEFAULT_TIMEOUT`] per request.
    ///
    /// Nothing is sent yet; a missing socket is reported here as
    /// [`RuntimeErrorKind::Unavailable`], an engine that does not answer on the first call.
    pub fn connect() -> Result<Self> {
        Self::connect_with_timeout(DEFAULT_TIMEOUT)
    }

    /// Like [`connect`](Self::connect), with a request timeout of `timeout` (whole seconds,
    /// at least one).
    pub fn connect_with_timeout(timeout: Duration) -> Result<Self> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        Self::connect_to(&host, timeout)
    }

    /// Connects to the engine at `host` (`unix:///path` or `tcp://host:port`/`http://host:port`).
    pub fn connect_to(host: &str, timeout: Duration) -> Result<Self> {
        let secs = timeout.as_secs().max(1);
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if host.starts_with("unix://") {
            Docker::connect_with_unix(host, secs, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, secs, version)
        } else {
            return Err(Error::runtime(
                RuntimeErrorKind::Unavailable,
                format!(
                    "cannot reach the Docker engine at {host}: unsupported address \
                     (use unix:///path/to/docker.sock or tcp://host:port in DOCKER_HOST)"
                ),
            ));
        };
        let docker = docker.map_err(|e| unavailable(host, &e))?;
        Ok(Self::with_client(docker, host))
    }

    /// Wraps an existing bollard client; `host` is only used in messages.
    pub fn with_client(docker: Docker, host: impl Into<String>) -> Self {
        DockerRuntime {
            docker,
            host: host.into(),
            negotiated: Default::default(),
        }
    }

    /// The engine address, as used in messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying bollard client, with the API version negotiated with the engine (for
    /// callers that need an engine feature the [`Runtime`](orkestrator_core::runtime::Runtime) trait does not cover, and for
    /// baselines in benchmarks).
    pub async fn client(&self) -> Result<&Docker> {
        self.negotiated
            .get_or_try_init(|| async {
                self.docker
                    .clone()
                    .negotiate_version()
                    .await
                    .map(drop)
                    .map_err(|e| self.error(e, "negotiate the API version"))
            })
            .await?;
        Ok(&self.docker)
    }

    /// Turns a bollard error into a runtime error, `what` saying what was being done.
    pub(super) fn error(&self, e: BollardError, what: &str) -> Error {
        classify(&self.host, e, what)
    }
}

/// The engine's list filter for containers, networks or volumes carrying every one of `labels`
/// (no filter for none).
pub(super) fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert(
            "label".to_owned(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        );
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_a_missing_socket_is_unavailable() {
        let err = DockerRuntime::connect_to("unix:///nonexistent/docker.sock", DEFAULT_TIMEOUT)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Runtime {
                kind: RuntimeErrorKind::Unavailable,
                ..
            }
        ));
        assert!(
            err.to_string().contains("/nonexistent/docker.sock"),
            "{err}"
        );
        assert!(
            DockerRuntime::connect_to("ftp://x", DEFAULT_TIMEOUT)
                .unwrap_err()
                .to_string()
                .contains("DOCKER_HOST")
        );
    }
}
