//! # orkestrator-core
//!
//! The embeddable heart of Orkestrator, a container orchestrator:
//!
//! - the job model ([`spec::Job`], [`spec::Task`], [`spec::Resources`], [`spec::RestartPolicy`]) and
//!   strict job files in YAML, TOML or JSON with errors that name the field and the fix;
//! - the task lifecycle ([`state::TaskState`]) with checked transitions;
//! - the plug points: [`scheduler::Scheduler`], [`runtime::Runtime`], [`transport::Transport`],
//!   [`store::Store`];
//! - the logic of the three components, written against those traits: the
//!   [`manager::Manager`], the [`worker::WorkerAgent`] and the [`scheduler::SchedulerAgent`];
//! - in-memory implementations for tests, examples and simulations: [`fake::FakeRuntime`],
//!   [`local::LocalTransport`], [`store::MemoryStore`].
//!
//! Production implementations (Docker, HTTP, redb) live in `orkestrator-runtime`.
//!
//! ```
//! use orkestrator_core::spec::{parse_job, Format};
//!
//! let job = parse_job("name: web\ntasks:\n  - name: server\n    image: busybox:1.36\n", Format::Yaml)?;
//! assert_eq!(job.tasks[0].resources.memory.to_string(), "128Mi");
//! # Ok::<(), orkestrator_core::Error>(())
//! ```

pub mod api;
pub mod auth;
pub mod clock;
pub mod compose;
pub mod error;
pub mod events;
pub mod fake;
pub(crate) mod gc_report;
pub mod ids;
pub mod local;
pub mod manager;
pub mod metrics;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod spec;
pub mod state;
pub mod store;
pub(crate) mod store_failure;
pub mod transport;
pub mod units;
pub(crate) mod usage;
pub mod worker;

pub use error::{Error, Result};
