//! What a connection's failure says, in words for people (with a hint at the fix for TLS and
//! plain-HTTP mix-ups).

use orkestrator_core::Error;

/// `e` and each of its causes, and a hint at what to check, for a request to `peer` (the
/// command that serves the address) at `addr`.
pub(super) fn describe(e: &hyper_util::client::legacy::Error, peer: &str, addr: &str) -> String {
    let mut msg = e.to_string();
    let mut tls = None;
    let mut not_http = false;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        tls = tls.or_else(|| rustls_error(s));
        not_http |= s
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse);
        match &tls {
            // The TLS error says all there is below it, in its own words.
            Some(t) => {
                msg = format!("{msg}: {}", tls_text(t));
                break;
            }
            None => msg = format!("{msg}: {s}"),
        }
        src = s.source();
    }
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) if peer == super::transport::WORKER_PEER => msg
            .push_str(
                " (the worker's certificate must be issued by the manager's CA for the address it \
             registered: `orkestrator tls cert DIR --name NAME --san HOST` with the manager's DIR)",
            ),
        Some(rustls::Error::InvalidCertificate(_)) => msg.push_str(
            " (verify the server with --ca-file DIR/ca.pem or --ca-digest SHA256, both from \
             `orkestrator tls init DIR`; the address's host must be one of the certificate's \
             --san names)",
        ),
        Some(rustls::Error::InvalidMessage(_)) => {
            msg.push_str(" (does it serve plain HTTP? then use http://)")
        }
        Some(_) => {}
        None if not_http => {
            msg.push_str(" (the answer is not HTTP: if it serves TLS, use https://)")
        }
        None if e.is_connect() && refused(e) && peer != super::transport::WORKER_PEER => {
            msg = format!(
                "nothing answers at {addr}: is the manager running there? (start one with `{peer}`; {msg})"
            );
        }
        None if e.is_connect() => msg.push_str(&format!(" (is `{peer}` running there?)")),
        None => {}
    }
    msg
}

/// Whether the connection was refused: nothing listens at the address.
fn refused(e: &hyper_util::client::legacy::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        src = s.source();
    }
    false
}

/// A TLS error for people: rustls shows a verifier's own reason as a debug dump.
fn tls_text(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            match other.0.downcast_ref::<Error>() {
                Some(Error::Tls { message, .. }) => format!("invalid peer certificate: {message}"),
                _ => format!("invalid peer certificate: {}", other.0),
            }
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "invalid peer certificate: it is not signed by a CA this client trusts".to_owned()
        }
        other => other.to_string(),
    }
}

/// The TLS layer's error in `e`: it comes wrapped in `io::Error`s (tokio-rustls', then
/// hyper-rustls'), whose `source` skips what they wrap.
fn rustls_error(mut e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    loop {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.clone());
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}
