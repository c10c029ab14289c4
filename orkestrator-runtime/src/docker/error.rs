//! bollard's errors, sorted into runtime errors of a [`RuntimeErrorKind`] with a message that
//! says what to do.

use bollard::errors::Error as BollardError;
use orkestrator_core::error::{Error, RuntimeErrorKind};

/// The error for an engine that cannot be reached.
pub(super) fn unavailable(host: &str, e: &dyn std::fmt::Display) -> Error {
    Error::runtime(
        RuntimeErrorKind::Unavailable,
        format!("cannot reach the Docker engine at {host}: {e} (is dockerd running?)"),
    )
}

/// Sorts a bollard error into a [`RuntimeErrorKind`].
pub(super) fn classify(host: &str, e: BollardError, what: &str) -> Error {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => RuntimeErrorKind::NotFound,
                400 | 403 | 409 => RuntimeErrorKind::Rejected,
                // Port clashes surface as 500 when the container starts.
                _ if is_port_clash(&message) => RuntimeErrorKind::Rejected,
                _ => RuntimeErrorKind::Other,
            };
            Error::runtime(kind, format!("cannot {what}: {}", message.trim()))
        }
        BollardError::SocketNotFoundError(path) => {
            unavailable(host, &format!("socket {path} does not exist"))
        }
        BollardError::RequestTimeoutError => unavailable(
            host,
            &format!("no answer in time while trying to {what} (request timed out)"),
        ),
        e @ (BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }) => {
            // bollard's own wrapper ("Error in the hyper legacy client") adds nothing.
            let cause = match std::error::Error::source(&e) {
                Some(inner) => error_chain(inner),
                None => e.to_string(),
            };
            unavailable(host, &cause)
        }
        BollardError::DockerStreamError { error } => Error::runtime(
            RuntimeErrorKind::Other,
            format!("cannot {what}: {}", error.trim()),
        ),
        e => Error::runtime(
            RuntimeErrorKind::Other,
            format!("cannot {what}: {}", error_chain(&e)),
        ),
    }
}

/// An error and its sources, joined with `: ` (hyper hides the useful part in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Whether `e` means the engine could not be reached at all.
pub(super) fn is_connection_error(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
    )
}

/// What the engine said, without bollard's wrapping.
pub(super) fn engine_text(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        BollardError::DockerStreamError { error } => error.trim().to_string(),
        e => error_chain(e),
    }
}

fn is_port_clash(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("port is already allocated") || m.contains("address already in use")
}

pub(super) fn is_status(e: &BollardError, code: u16) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// How to make `image` available when it is neither present nor pullable.
pub(super) fn image_hint(image: &str) -> String {
    format!(
        "pull it on this worker's engine (`docker pull {image}`) or build it there \
         (`docker build -t {image} .`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::DEFAULT_DOCKER_HOST;

    #[test]
    fn errors_are_classified() {
        let server = |status_code, message: &str| BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        let kind = |e: Error| match e {
            Error::Runtime { kind, .. } => kind,
            other => panic!("{other}"),
        };
        let h = DEFAULT_DOCKER_HOST;
        assert_eq!(
            kind(classify(h, server(404, "No such container: x"), "inspect")),
            RuntimeErrorKind::NotFound
        );
        assert_eq!(
            kind(classify(
                h,
                server(409, "Conflict. The container name"),
                "create"
            )),
            RuntimeErrorKind::Rejected
        );
        assert_eq!(
            kind(classify(
                h,
                server(500, "Bind for 0.0.0.0:80 failed: port is already allocated"),
                "start"
            )),
            RuntimeErrorKind::Rejected
        );
        assert_eq!(
            kind(classify(h, server(500, "boom"), "start")),
            RuntimeErrorKind::Other
        );
        let missing = classify(
            h,
            BollardError::SocketNotFoundError("/var/run/docker.sock".into()),
            "ping",
        );
        let text = missing.to_string();
        assert!(text.contains("cannot reach the Docker engine at unix:///var/run/docker.sock"));
        assert!(text.contains("is dockerd running?"), "{text}");
        assert_eq!(kind(missing), RuntimeErrorKind::Unavailable);
    }
}
