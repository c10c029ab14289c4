//! The Docker runtime: [`Runtime`](orkestrator_core::runtime::Runtime) over the Docker Engine API, with bollard.
//!
//! ```no_run
//! use orkestrator_core::runtime::Runtime;
//! use orkestrator_runtime::DockerRuntime;
//!
//! # async fn demo() -> orkestrator_core::Result<()> {
//! let docker = DockerRuntime::connect()?; // honours DOCKER_HOST
//! docker.ping().await?;
//! docker.ensure_image("busybox:1.36").await?;
//! # Ok(())
//! # }
//! ```
//!
//! The client speaks the newest API version bollard knows and negotiates down to the engine's on
//! first use, so older engines (Docker 20.10 speaks API 1.41) work unchanged.
//!
//! The rooms: `client` ([`DockerRuntime`] and its connection), `error` (bollard's errors sorted
//! into runtime errors), `spec` (a container spec as the engine's create request), `inspect`
//! (what the engine reports: state and stats), `network` (the
//! networks of instances), `volume` (named volumes), `probe` (health checks run against a container),
//! `build` (building images from a deterministic context, pushing them, their `HEALTHCHECK`;
//! with `dockerignore`, Docker's `.dockerignore` patterns), and `runtime` (the [`Runtime`](orkestrator_core::runtime::Runtime) implementation over them).

pub mod build;
mod client;
mod dockerignore;
mod error;
mod inspect;
mod network;
mod probe;
mod runtime;
mod spec;
mod volume;

pub use client::{DEFAULT_DOCKER_HOST, DEFAULT_TIMEOUT, DockerRuntime};
