//! TLS for the manager's API and the workers' endpoints: rustls on the `ring` provider.
//!
//! - Servers load a PEM certificate chain (the leaf first, the cluster CA last) and its key
//!   with [`server_config`].
//! - Clients say how they verify the server with a [`ClientTls`]: the system's roots, a CA file,
//!   a CA certificate in memory, or the SHA-256 digest of the cluster CA (what a join token
//!   carries, as in Docker Swarm: a worker needs no CA file copied by hand).
//! - [`ca_digest`] is that digest for a chain file; [`digest_hex`] and [`parse_digest`] write
//!   and read it.
//!
//! Every error is an [`Error::Tls`] that names the file and says what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use orkestrator_core::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName, UnixTime};

pub use rustls::{ClientConfig, ServerConfig};
pub use rustls_pki_types::CertificateDer;

/// The one protocol both sides offer in ALPN.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The hint added where a certificate chain file is expected.
const CHAIN_HINT: &str = "expected a PEM certificate chain, the leaf first and the CA last, as \
     `orkestrator tls init DIR` writes (DIR/manager.pem)";

/// The crypto provider every config here uses: rustls' `ring` provider.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The SHA-256 digest of a DER-encoded certificate: what identifies a cluster CA.
pub fn cert_digest(der: &[u8]) -> [u8; 32] {
    sha256(der)
}

/// `digest` as 64 lower-case hex digits.
pub fn digest_hex(digest: &[u8; 32]) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads a digest written by [`digest_hex`]: 64 hex digits, either case, optionally after
/// `sha256:`.
pub fn parse_digest(text: &str) -> Result<[u8; 32]> {
    let t = text.trim();
    let t = t.strip_prefix("sha256:").unwrap_or(t);
    let bad = || {
        Error::tls(
            None,
            format!(
                "{text:?} is not a CA digest: expected 64 hex digits (the SHA-256 of the cluster \
                 CA that `orkestrator tls init` prints)"
            ),
        )
    };
    if t.len() != 64 || !t.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Every certificate in the PEM file `path`, in order (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::tls(
                Some(path),
                format!("not a readable PEM file ({e}); {CHAIN_HINT}"),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::tls(
            Some(path),
            format!("holds no CERTIFICATE block; {CHAIN_HINT}"),
        ));
    }
    Ok(certs)
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        Error::tls(
            Some(path),
            format!(
                "holds no usable private key ({e}); expected the PEM key written beside the \
                 certificate (e.g. DIR/manager-key.pem from `orkestrator tls init DIR`)"
            ),
        )
    })
}

/// The last certificate of the chain file `path`: the CA that signed the chain.
pub fn ca_of_chain(path: &Path) -> Result<CertificateDer<'static>> {
    let mut certs = load_certs(path)?;
    if certs.len() < 2 {
        return Err(Error::tls(
            Some(path),
            format!(
                "holds one certificate, not a chain: the cluster CA must come after the leaf \
                 ({CHAIN_HINT})"
            ),
        ));
    }
    Ok(certs.pop().expect("checked: two or more"))
}

/// The SHA-256 digest of the CA in the chain file `path` (its last certificate): what a join
/// token carries so that workers can verify the manager.
pub fn ca_digest(path: &Path) -> Result<[u8; 32]> {
    Ok(cert_digest(&ca_of_chain(path)?))
}

/// Checks that the chain file `path` holds a leaf valid now for `host` that verifies against the
/// chain's own last certificate (its CA), as a client given that CA or its digest would check.
pub fn check_chain(path: &Path, host: &str) -> Result<()> {
    let certs = load_certs(path)?;
    let ca = ca_of_chain(path)?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Error::tls(None, format!("{host:?} is not a host name: {e}")))?;
    let verifier = PinnedCa {
        digest: cert_digest(&ca),
        provider: provider(),
    };
    verifier
        .verify_server_cert(&certs[0], &certs[1..], &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| {
            Error::tls(
                Some(path),
                format!("its certificate does not verify against its CA for {host}: {e}"),
            )
        })
}

/// A server's TLS: the chain in `cert` (the leaf first, the CA last) and the key in `key`,
/// offering HTTP/1.1 in ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(None, format!("cannot set up the TLS protocols: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            let hint = match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "the key in {} is not the key of the certificate in {}: pass the key that \
                     was written with that certificate",
                    key.display(),
                    cert.display()
                ),
                other => format!(
                    "cannot use the certificate in {} with the key in {}: {other}",
                    cert.display(),
                    key.display()
                ),
            };
            Error::tls(None, hint)
        })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// How a client verifies the server it connects to over `https://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientTls {
    /// Against the system's trusted roots (a server with a certificate from a public CA).
    #[default]
    System,
    /// Against the CA certificates in a PEM file (the cluster's `ca.pem`).
    CaFile(PathBuf),
    /// Against one CA certificate (what the manager uses for its workers: its own CA).
    CaCert(CertificateDer<'static>),
    /// Against the CA whose SHA-256 digest this is (the digest a join token carries): the server
    /// must present that CA after its leaf, and the leaf must verify against it, host name
    /// included.
    CaDigest([u8; 32]),
}

impl ClientTls {
    /// The rustls client configuration (HTTP/1.1 in ALPN, no client certificate).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        match self {
            ClientTls::System => system_config(),
            ClientTls::CaFile(path) => {
                let mut roots = RootCertStore::empty();
                for cert in load_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        Error::tls(
                            Some(path),
                            format!(
                                "holds a certificate that cannot be a trusted root ({e}); pass \
                                 the cluster CA (DIR/ca.pem from `orkestrator tls init DIR`)"
                            ),
                        )
                    })?;
                }
                finish(builder()?.with_root_certificates(roots))
            }
            ClientTls::CaCert(cert) => {
                let mut roots = RootCertStore::empty();
                roots.add(cert.clone()).map_err(|e| {
                    Error::tls(
                        None,
                        format!("the CA certificate cannot be a trusted root: {e}"),
                    )
                })?;
                finish(builder()?.with_root_certificates(roots))
            }
            ClientTls::CaDigest(digest) => {
                let verifier = Arc::new(PinnedCa {
                    digest: *digest,
                    provider: provider(),
                });
                finish(
                    builder()?
                        .dangerous()
                        .with_custom_certificate_verifier(verifier),
                )
            }
        }
    }
}

/// A client config that trusts nothing: for plain `http://` clients, which never use it.
pub(crate) fn no_roots_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default protocol versions");
            let mut config = builder
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth();
            config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// The system's roots, read once per process (reading them takes a while).
fn system_config() -> Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "skipping part of the system's trusted certificates");
    }
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    let config = finish(builder()?.with_root_certificates(roots))?;
    Ok(CONFIG.get_or_init(|| config).clone())
}

type WantsVerifier = rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>;

fn builder() -> Result<WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(None, format!("cannot set up the TLS protocols: {e}")))
}

fn finish(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
) -> Result<Arc<ClientConfig>> {
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; create the cluster's certificates with `orkestrator tls init DIR` (or issue one \
             more with `orkestrator tls cert DIR --name NAME`)"
        } else {
            ""
        };
        Error::tls(
            Some(path),
            format!("cannot read the {what} file: {e}{hint}"),
        )
    })
}

/// Verifies a server against the CA whose digest it holds: the CA must be among the
/// certificates after the leaf, and the leaf must verify against it with webpki (validity,
/// signature, host name) as it would against a CA file.
#[derive(Debug)]
struct PinnedCa {
    digest: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates.iter().find(|c| cert_digest(c) == self.digest) else {
            return Err(rejected(format!(
                "the server's certificate chain holds no CA with the digest sha256:{} (it is \
                 another cluster's server, its --tls-cert chain lacks the CA after the leaf, or \
                 the digest is wrong)",
                digest_hex(&self.digest)
            )));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rejected(format!("the CA with the pinned digest is unusable: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("cannot set up verification: {e}")))?;
        let rest: Vec<CertificateDer<'_>> =
            intermediates.iter().filter(|c| *c != ca).cloned().collect();
        inner.verify_server_cert(end_entity, &rest, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate refused by [`PinnedCa`], with the reason.
fn rejected(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Error::tls(
        None, message,
    )))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let d = cert_digest(b"not really a certificate");
        let hex = digest_hex(&d);
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_digest(&hex).unwrap(), d);
        assert_eq!(parse_digest(&hex.to_uppercase()).unwrap(), d);
        assert_eq!(parse_digest(&format!("sha256:{hex}")).unwrap(), d);
        for bad in [
            "",
            "abc",
            &hex[..63],
            &format!("{}zz", &hex[..62]),
            &format!("{hex}00"),
        ] {
            let e = parse_digest(bad).unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_missing_file_is_named_with_the_fix() {
        let e = server_config(Path::new("/nonexistent/manager.pem"), Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/manager.pem"), "{e}");
        assert!(e.contains("orkestrator tls init"), "{e}");
    }
}
