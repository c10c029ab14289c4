//! What went wrong in a request to etcd, by kind.
//!
//! The kind comes from the gRPC status code etcd answered with. Where etcd answers several of
//! its errors with one code (`InvalidArgument` stands for wrong credentials, a transaction with
//! too many operations and a request too large alike), the kind comes from etcd's own name for
//! the error, the status message, as etcd's Go client tells its errors apart. A manager uses the
//! kind to decide whether waiting can fix a failure ([`EtcdError::waiting_helps`]).

use orkestrator_core::error::Error;
use tonic::Code;

/// A failed request to etcd, by kind.
///
/// Each kind holds the error as the rest of Orkestrator reports it: the message and the
/// [`Error`] variant are the same whatever the kind, and [`From`] turns it back into that
/// [`Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// No member could be reached (the connection was refused, the name did not resolve, the
    /// transport broke before sending): nothing was sent. Waiting may fix it.
    #[error(transparent)]
    Unreachable(Error),
    /// The request may have reached etcd, but no usable answer came (in time, or at all): its
    /// outcome is unknown. Waiting may fix it.
    #[error(transparent)]
    NoAnswer(Error),
    /// etcd refused the credentials: a wrong user or password, none while its authentication
    /// is on, a token it does not take (`Unauthenticated`), or a user without the permission
    /// (`PermissionDenied`). Waiting does not fix it.
    #[error(transparent)]
    CredentialsRefused(Error),
    /// etcd refused a transaction with more operations than its members allow
    /// (`--max-txn-ops`). Waiting does not fix it.
    #[error(transparent)]
    TooManyOperations(Error),
    /// etcd refused a request larger than its members allow (`--max-request-bytes`; gRPC's
    /// `ResourceExhausted`). Waiting does not fix it.
    #[error(transparent)]
    RequestTooLarge(Error),
    /// TLS towards etcd could not be set up: a CA, certificate or key file that cannot be read.
    /// Waiting does not fix it.
    #[error(transparent)]
    Tls(Error),
    /// etcd refused the request for another reason: an argument or a precondition it does not
    /// accept (`InvalidArgument`, `FailedPrecondition`, `OutOfRange`).
    #[error(transparent)]
    Refused(Error),
    /// Anything else: an answer that could not be used, a record that does not decode.
    #[error(transparent)]
    Other(Error),
}

/// etcd's names for the errors it answers wrong or missing credentials with
/// (`ErrGRPCAuthFailed`, `ErrGRPCUserEmpty`, both `InvalidArgument`).
const CREDENTIALS_REFUSED: [&str; 2] = ["authentication failed", "user name is empty"];

/// etcd's name for a transaction over `--max-txn-ops` (`ErrGRPCTooManyOps`).
const TOO_MANY_OPERATIONS: &str = "too many operations";

/// etcd's name for a request over `--max-request-bytes` (`ErrGRPCRequestTooLarge`), and gRPC's
/// for a message over its size limit.
const TOO_LARGE: [&str; 2] = ["too large", "larger than max"];

impl EtcdError {
    /// Whether waiting (and trying again) may fix it: etcd unreachable or not answering, or a
    /// refusal of this one request. Not so for refused credentials, limits too small for the
    /// manager, or TLS files that cannot be read: those are set-up errors, to be reported and
    /// fixed by whoever runs the manager.
    pub fn waiting_helps(&self) -> bool {
        match self {
            EtcdError::Unreachable(_)
            | EtcdError::NoAnswer(_)
            | EtcdError::Refused(_)
            | EtcdError::Other(_) => true,
            EtcdError::CredentialsRefused(_)
            | EtcdError::TooManyOperations(_)
            | EtcdError::RequestTooLarge(_)
            | EtcdError::Tls(_) => false,
        }
    }

    /// The error as Orkestrator reports it.
    pub fn error(&self) -> &Error {
        match self {
            EtcdError::Unreachable(e)
            | EtcdError::NoAnswer(e)
            | EtcdError::CredentialsRefused(e)
            | EtcdError::TooManyOperations(e)
            | EtcdError::RequestTooLarge(e)
            | EtcdError::Tls(e)
            | EtcdError::Refused(e)
            | EtcdError::Other(e) => e,
        }
    }

    /// `e`'s kind, reported as `report`.
    pub(super) fn of(e: &etcd_client::Error, report: Error) -> Self {
        kind_of(e)(report)
    }
}

impl From<EtcdError> for Error {
    fn from(e: EtcdError) -> Self {
        match e {
            EtcdError::Unreachable(e)
            | EtcdError::NoAnswer(e)
            | EtcdError::CredentialsRefused(e)
            | EtcdError::TooManyOperations(e)
            | EtcdError::RequestTooLarge(e)
            | EtcdError::Tls(e)
            | EtcdError::Refused(e)
            | EtcdError::Other(e) => e,
        }
    }
}

/// The kind of failure `e` is.
fn kind_of(e: &etcd_client::Error) -> fn(Error) -> EtcdError {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => kind_of_status(s),
        E::TransportError(_) | E::IoError(_) => EtcdError::Unreachable,
        _ => EtcdError::Other,
    }
}

/// The kind of failure etcd's answer `s` is: by its code, and by etcd's name for the error
/// where etcd answers several with one code.
fn kind_of_status(s: &tonic::Status) -> fn(Error) -> EtcdError {
    let m = s.message();
    match s.code() {
        Code::Unauthenticated | Code::PermissionDenied => EtcdError::CredentialsRefused,
        Code::ResourceExhausted => EtcdError::RequestTooLarge,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            if CREDENTIALS_REFUSED.iter().any(|name| m.contains(name)) {
                EtcdError::CredentialsRefused
            } else if m.contains(TOO_MANY_OPERATIONS) {
                EtcdError::TooManyOperations
            } else if TOO_LARGE.iter().any(|name| m.contains(name)) {
                EtcdError::RequestTooLarge
            } else {
                EtcdError::Refused
            }
        }
        Code::Unavailable if is_connect_error(m) => EtcdError::Unreachable,
        _ => EtcdError::NoAnswer,
    }
}

/// A request's failure `e`, as the store reports it: refused, unreachable (members at
/// `endpoints`) or of unknown outcome, by its kind.
pub(super) fn classify(endpoints: &[String], e: etcd_client::Error) -> EtcdError {
    use etcd_client::Error as E;
    let report = match &e {
        E::GRpcStatus(s) => match s.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::PermissionDenied
            | Code::Unauthenticated => Error::Store(format!("etcd refused: {}", s.message())),
            Code::Unavailable if is_connect_error(s.message()) => {
                unreachable_etcd(endpoints, s.message())
            }
            _ => Error::OutcomeUnknown(format!("etcd: {}", s.message())),
        },
        E::TransportError(_) | E::IoError(_) => unreachable_etcd(endpoints, &e.to_string()),
        _ => Error::Store(format!("etcd: {e}")),
    };
    EtcdError::of(&e, report)
}

/// Whether an `Unavailable` answer's message says the connection could not be made (so that
/// nothing was sent).
fn is_connect_error(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("connect") || m.contains("refused") || m.contains("dns")
}

/// etcd at `endpoints` could not be reached, because of `why`.
pub(super) fn unreachable_etcd(endpoints: &[String], why: &str) -> Error {
    Error::Store(format!(
        "cannot reach etcd at {} ({why}): is it running, and are the addresses right?",
        endpoints.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<String> {
        vec!["127.0.0.1:2379".to_owned()]
    }

    /// What `classify` makes of etcd answering `code` with `message`.
    fn answered(code: Code, message: &str) -> EtcdError {
        let status = tonic::Status::new(code, message);
        classify(&endpoints(), etcd_client::Error::GRpcStatus(status))
    }

    #[test]
    fn unavailable_without_a_connection_is_unreachable() {
        let e = answered(
            Code::Unavailable,
            "error trying to connect: tcp connect error: Connection refused",
        );
        assert!(
            matches!(e, EtcdError::Unreachable(Error::Store(_))),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("cannot reach etcd at 127.0.0.1:2379"),
            "{e}"
        );
        assert!(e.waiting_helps());
    }

    #[test]
    fn unavailable_once_sent_is_no_answer() {
        let e = answered(Code::Unavailable, "etcdserver: leader changed");
        assert!(
            matches!(e, EtcdError::NoAnswer(Error::OutcomeUnknown(_))),
            "{e:?}"
        );
        assert!(e.waiting_helps());
    }

    #[test]
    fn deadline_exceeded_is_no_answer() {
        let e = answered(Code::DeadlineExceeded, "etcdserver: request timed out");
        assert!(
            matches!(e, EtcdError::NoAnswer(Error::OutcomeUnknown(_))),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "store: outcome unknown: etcd: etcdserver: request timed out"
        );
        assert!(e.waiting_helps());
    }

    #[test]
    fn unauthenticated_is_credentials_refused() {
        let e = answered(Code::Unauthenticated, "etcdserver: invalid auth token");
        assert!(
            matches!(e, EtcdError::CredentialsRefused(Error::Store(_))),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "store: etcd refused: etcdserver: invalid auth token"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn permission_denied_is_credentials_refused() {
        let e = answered(Code::PermissionDenied, "etcdserver: permission denied");
        assert!(
            matches!(e, EtcdError::CredentialsRefused(Error::Store(_))),
            "{e:?}"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn a_wrong_password_is_credentials_refused() {
        let e = answered(
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        );
        assert!(
            matches!(e, EtcdError::CredentialsRefused(Error::Store(_))),
            "{e:?}"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn no_user_while_authentication_is_on_is_credentials_refused() {
        let e = answered(Code::InvalidArgument, "etcdserver: user name is empty");
        assert!(
            matches!(e, EtcdError::CredentialsRefused(Error::Store(_))),
            "{e:?}"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn too_many_operations_is_its_own_kind() {
        let e = answered(
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        assert!(
            matches!(e, EtcdError::TooManyOperations(Error::Store(_))),
            "{e:?}"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn a_request_over_etcds_limit_is_too_large() {
        let e = answered(Code::InvalidArgument, "etcdserver: request is too large");
        assert!(
            matches!(e, EtcdError::RequestTooLarge(Error::Store(_))),
            "{e:?}"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn resource_exhausted_is_too_large() {
        let e = answered(
            Code::ResourceExhausted,
            "grpc: received message larger than max (4700000 vs. 2097152)",
        );
        assert!(
            matches!(e, EtcdError::RequestTooLarge(Error::Store(_))),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("etcd refused: grpc: received message"),
            "{e}"
        );
        assert!(!e.waiting_helps());
    }

    #[test]
    fn another_failed_precondition_is_refused() {
        let e = answered(
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        );
        assert!(matches!(e, EtcdError::Refused(Error::Store(_))), "{e:?}");
        assert!(e.waiting_helps());
    }

    #[test]
    fn out_of_range_is_refused() {
        let e = answered(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        assert!(matches!(e, EtcdError::Refused(Error::Store(_))), "{e:?}");
        assert!(e.waiting_helps());
    }

    #[test]
    fn another_invalid_argument_is_refused() {
        let e = answered(Code::InvalidArgument, "etcdserver: key is not provided");
        assert!(matches!(e, EtcdError::Refused(Error::Store(_))), "{e:?}");
        assert!(e.waiting_helps());
    }

    #[test]
    fn an_io_error_is_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = classify(&endpoints(), etcd_client::Error::IoError(io));
        assert!(
            matches!(e, EtcdError::Unreachable(Error::Store(_))),
            "{e:?}"
        );
        assert!(e.to_string().contains("cannot reach etcd"), "{e}");
    }

    #[test]
    fn anything_else_is_other() {
        let e = classify(
            &endpoints(),
            etcd_client::Error::ElectError("no leader".into()),
        );
        assert!(matches!(e, EtcdError::Other(Error::Store(_))), "{e:?}");
        assert_eq!(e.to_string(), "store: etcd: election error: no leader");
        assert!(e.waiting_helps());
    }

    #[test]
    fn a_kind_keeps_the_message_it_is_given() {
        let status = tonic::Status::new(Code::PermissionDenied, "etcdserver: permission denied");
        let e = etcd_client::Error::GRpcStatus(status);
        let kind = EtcdError::of(
            &e,
            Error::Store(format!("cannot take a lease in etcd: {e}")),
        );
        assert!(matches!(kind, EtcdError::CredentialsRefused(_)), "{kind:?}");
        let back = Error::from(kind);
        assert!(matches!(back, Error::Store(_)), "{back:?}");
        assert!(
            back.to_string()
                .starts_with("store: cannot take a lease in etcd: "),
            "{back}"
        );
    }
}
