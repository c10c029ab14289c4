//! The one error type of `orkestrator-core`.

use std::path::PathBuf;

use crate::api::{ApiError, ErrorKind};
use crate::spec::format::Format;
use crate::spec::problems::Problems;
use crate::state::{IllegalTransition, TaskState};
use crate::store_failure::{StoreFailure, store_failure};

/// Everything that can go wrong in Orkestrator's core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A job file's extension names no known format.
    #[error("{}: unknown job file format (name it .yaml, .yml, .toml or .json)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A job file is not well-formed, or has the wrong shape (an unknown field, a list where a
    /// map belongs, ...).
    #[error("{format} error{}: {message}", location(*line, *column))]
    Syntax {
        /// The file's format.
        format: Format,
        /// 1-based line, where known.
        line: Option<usize>,
        /// 1-based column, where known.
        column: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// A job spec breaks one or more rules.
    #[error("{}", invalid_summary(.0))]
    Invalid(Problems),
    /// A job could not be rendered in a format.
    #[error("cannot render the job as {format}: {message}")]
    Render {
        /// The format.
        format: Format,
        /// What the serializer said.
        message: String,
    },
    /// A task state transition that the lifecycle does not allow.
    #[error("illegal task transition from {from} to {to}")]
    IllegalTransition {
        /// The current state.
        from: TaskState,
        /// The requested state.
        to: TaskState,
    },
    /// The container runtime failed.
    #[error("{kind}: {message}")]
    Runtime {
        /// What kind of failure.
        kind: RuntimeErrorKind,
        /// Details.
        message: String,
    },
    /// An image's build context cannot be used: the directory or the Dockerfile is missing, the
    /// Dockerfile lies outside the context, the context is too large, or a file in it cannot be
    /// read. The message says what to do.
    #[error("build context {}: {message}", path.display())]
    BuildContext {
        /// The context directory (or the file concerned).
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The image builder failed (a `RUN` step exited non-zero, an instruction is malformed, a
    /// base image is missing).
    #[error("image build of {image} failed{}: {message}", step_suffix(step.as_deref()))]
    Build {
        /// The tag being built.
        image: String,
        /// The builder's step that failed (`Step 3/5 : RUN make`), where known.
        step: Option<String>,
        /// The builder's error, with the tail of the failing step's output.
        message: String,
    },
    /// An image could not be pushed to its registry.
    #[error("cannot push {reference}: {message}")]
    Push {
        /// The remote reference (`registry/repository:tag`).
        reference: String,
        /// What the engine or the registry said.
        message: String,
    },
    /// The manager answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The manager could not be reached.
    #[error("cannot reach manager at {addr}: {message}")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The durable store failed.
    #[error("store: {0}")]
    Store(String),
    /// A commit was sent but its outcome is unknown (the store timed out or the connection broke
    /// before it answered): it may or may not have been applied, so the manager reloads.
    #[error("store: outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The store refused a commit because this manager is no longer the leader (another was
    /// elected, or its lease ran out): nothing of it was applied.
    #[error("store: not the leader: {0}")]
    NotLeader(String),
    /// The component was shut down.
    #[error("shutting down")]
    Shutdown,
    /// The operating system could not give what was needed (randomness for a token).
    #[error("{0}")]
    System(String),
    /// The secret key is unusable or is not the one the store's secrets were sealed with.
    #[error("secret key: {0}")]
    SecretKey(String),
    /// TLS could not be set up or did not verify: a certificate, key or CA file that is missing
    /// or unusable, a malformed CA digest, a peer whose certificate is not the cluster's. The
    /// message says what to do.
    #[error("TLS: {}{message}", path_prefix(path.as_deref()))]
    Tls {
        /// The file concerned, where there is one.
        path: Option<PathBuf>,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Kinds of container runtime failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum RuntimeErrorKind {
    /// The engine does not answer.
    Unavailable,
    /// The image is not present and cannot be pulled.
    ImageNotFound,
    /// No such container.
    NotFound,
    /// The engine refused the request (bad config, port in use, ...).
    Rejected,
    /// The engine refused a network's subnet: it overlaps one the engine already has.
    SubnetTaken,
    /// Anything else.
    Other,
}

impl std::fmt::Display for RuntimeErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeErrorKind::Unavailable => "container engine unavailable",
            RuntimeErrorKind::ImageNotFound => "image not available",
            RuntimeErrorKind::NotFound => "container not found",
            RuntimeErrorKind::Rejected => "container engine refused",
            RuntimeErrorKind::SubnetTaken => "subnet already in use",
            RuntimeErrorKind::Other => "container engine error",
        })
    }
}

impl Error {
    /// Whether the manager refused a component (a worker or a scheduler registering) for good, so
    /// that trying again cannot change its answer: its name is taken, its join token or credential
    /// is unknown or may not register, the request is invalid, or what answered is not a manager
    /// (`not_a_manager`, unless a proxy's 5xx). An unreachable manager, a `503` or `429`, and a
    /// manager without a leader are worth retrying.
    pub fn is_refused_for_good(&self) -> bool {
        use crate::api::ErrorKind as K;
        matches!(
            self,
            Error::Api(a) if matches!(
                a.kind,
                K::Invalid
                    | K::NotFound
                    | K::Conflict
                    | K::Unauthenticated
                    | K::Forbidden
                    | K::MethodNotAllowed
                    | K::UnsupportedMedia
            )
        )
    }

    /// A TLS error about `path` (`None` when no file is concerned).
    pub fn tls(path: Option<&std::path::Path>, message: impl Into<String>) -> Self {
        Error::Tls {
            path: path.map(std::path::Path::to_path_buf),
            message: message.into(),
        }
    }

    /// A runtime error of `kind`.
    pub fn runtime(kind: RuntimeErrorKind, message: impl Into<String>) -> Self {
        Error::Runtime {
            kind,
            message: message.into(),
        }
    }
}

impl From<IllegalTransition> for Error {
    fn from(e: IllegalTransition) -> Self {
        Error::IllegalTransition {
            from: e.from,
            to: e.to,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(problems) => ApiError {
                kind: ErrorKind::Invalid,
                code: "invalid_spec".into(),
                message: format!(
                    "invalid job spec ({} problem{})",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ),
                problems: Some(problems),
            },
            Error::Syntax { .. } | Error::UnknownFormat { .. } => {
                ApiError::bad_request("malformed_spec", e.to_string())
            }
            Error::IllegalTransition { .. } => ApiError::conflict(e.to_string()),
            Error::Api(a) => a,
            Error::Store(m) => store_failure(StoreFailure::Failed, &m),
            Error::OutcomeUnknown(m) => store_failure(StoreFailure::OutcomeUnknown, &m),
            Error::NotLeader(m) => store_failure(StoreFailure::NotLeader, &m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

fn step_suffix(step: Option<&str>) -> String {
    step.map(|s| format!(" at {s}")).unwrap_or_default()
}

fn path_prefix(path: Option<&std::path::Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn invalid_summary(p: &Problems) -> String {
    let n = p.len();
    format!(
        "invalid job spec ({n} problem{}):\n{p}",
        if n == 1 { "" } else { "s" }
    )
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
