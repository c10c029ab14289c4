//! The manager's error answers: what kind of failure ([`ErrorKind`]) and the error itself
//! ([`ApiError`]). How the crate's error becomes one is beside the error (`crate::error`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::problems::Problems;

/// What kind of failure an [`ApiError`] is, in the manager's own terms. Transports map it to
/// their own codes (`orkestrator-runtime` maps it to HTTP statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule (a bad spec, query or body).
    Invalid,
    /// What the request names does not exist.
    NotFound,
    /// The request conflicts with the current state (not placed yet, no container yet, ...).
    Conflict,
    /// The manager cannot serve it now (its store failed); retrying later may succeed.
    Unavailable,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// The request exceeds a limit (too large, too many).
    LimitExceeded,
    /// This manager is not the leader; ask the leader.
    NotLeader,
    /// The request's media type is not one the endpoint reads.
    UnsupportedMedia,
    /// The endpoint does not take this method.
    MethodNotAllowed,
    /// A component the manager relays to (a worker) failed or did not answer.
    Upstream,
    /// A bug or an unexpected failure inside the manager.
    Internal,
}

/// An error answered by the manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// A stable machine-readable code (`invalid_spec`, `not_found`, ...).
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// For `invalid_spec`: every problem with its field path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Problems>,
}

impl ApiError {
    /// An error of `kind` with `code` and `message`.
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code: code.into(),
            message: message.into(),
            problems: None,
        }
    }

    /// An invalid request, with `code` and `message`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// An unknown `kind` of thing with `id`.
    pub fn not_found(kind: &str, id: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{kind} \"{id}\" not found"),
        )
    }

    /// A conflict with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, "conflict", message)
    }

    /// The manager cannot serve the request now.
    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(p) = &self.problems {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}
