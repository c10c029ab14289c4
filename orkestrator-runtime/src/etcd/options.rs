//! How to reach etcd: the members, the prefix, TLS and credentials, and the connection.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, Identity, TlsOptions};
use orkestrator_core::error::{Error, Result};

use super::error::{EtcdError, unreachable_etcd};

/// Commits between two compactions of etcd's history (the default of
/// [`EtcdOptions::compact_every`]).
pub const COMPACT_EVERY: u64 = 1000;

/// Revisions of history kept behind the leader when it compacts (followers that fall further
/// behind reload).
pub const KEEP_REVISIONS: i64 = 10_000;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// The members, `host:port` each (from `etcd://HOST:PORT[,HOST:PORT...]`).
    pub endpoints: Vec<String>,
    /// The key prefix everything lives under, ending in `/`.
    pub prefix: String,
    /// TLS towards etcd: the CA that signed the members' certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate and key for etcd's client-certificate authentication.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A user name and password for etcd's own authentication.
    pub user: Option<(String, String)>,
    /// How long a request may take before its outcome is unknown.
    pub timeout: Duration,
    /// Commits between two compactions of etcd's history by the leader.
    pub compact_every: u64,
    /// Revisions of history the leader keeps behind itself when it compacts.
    pub keep_revisions: i64,
}

impl EtcdOptions {
    /// Options for `url` (`etcd://HOST:PORT[,HOST:PORT...]`) with the default prefix
    /// `/orkestrator/`, no TLS and no credentials.
    pub fn from_url(url: &str) -> Result<Self> {
        Ok(EtcdOptions {
            endpoints: parse_url(url)?,
            prefix: "/orkestrator/".into(),
            ca_file: None,
            client_cert: None,
            user: None,
            timeout: Duration::from_secs(5),
            compact_every: COMPACT_EVERY,
            keep_revisions: KEEP_REVISIONS,
        })
    }

    /// The same, under `prefix` (a `/` is added at the end when missing).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let mut p = prefix.to_string();
        if !p.ends_with('/') {
            p.push('/');
        }
        self.prefix = p;
        self
    }

    fn urls(&self) -> Vec<String> {
        let scheme = if self.ca_file.is_some() || self.client_cert.is_some() {
            "https"
        } else {
            "http"
        };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    fn connect_options(&self) -> std::result::Result<ConnectOptions, EtcdError> {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some((u, p)) = &self.user {
            o = o.with_user(u.clone(), p.clone());
        }
        if self.ca_file.is_some() || self.client_cert.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    EtcdError::Tls(Error::tls(
                        Some(ca),
                        format!("cannot read the etcd CA file: {e}"),
                    ))
                })?;
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &self.client_cert {
                let c = std::fs::read(cert).map_err(|e| {
                    EtcdError::Tls(Error::tls(
                        Some(cert),
                        format!("cannot read the etcd client certificate: {e}"),
                    ))
                })?;
                let k = std::fs::read(key).map_err(|e| {
                    EtcdError::Tls(Error::tls(
                        Some(key),
                        format!("cannot read the etcd client key: {e}"),
                    ))
                })?;
                tls = tls.identity(Identity::from_pem(c, k));
            }
            o = o.with_tls(tls);
        }
        Ok(o)
    }
}

/// The members of `etcd://HOST:PORT[,HOST:PORT...]`.
pub fn parse_url(url: &str) -> Result<Vec<String>> {
    let rest = url.strip_prefix("etcd://").ok_or_else(|| {
        Error::Store(format!(
            "{url:?} is not an etcd address: write etcd://HOST:PORT[,HOST:PORT...]"
        ))
    })?;
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err(Error::Store(format!(
            "{url:?} names no etcd member: write etcd://HOST:PORT[,HOST:PORT...]"
        )));
    }
    for e in &endpoints {
        let ok = e
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(Error::Store(format!(
                "etcd member {e:?} in {url:?} is not HOST:PORT (e.g. 127.0.0.1:2379)"
            )));
        }
    }
    Ok(endpoints)
}

/// Connects to etcd with `options`. A failure is reported as etcd unreachable, whatever its
/// kind (refused credentials, for one).
pub async fn connect(options: &EtcdOptions) -> std::result::Result<Client, EtcdError> {
    let client = tokio::time::timeout(
        options.timeout,
        Client::connect(options.urls(), Some(options.connect_options()?)),
    )
    .await
    .map_err(|_| EtcdError::Unreachable(unreachable_etcd(&options.endpoints, "no answer")))?
    .map_err(|e| EtcdError::of(&e, unreachable_etcd(&options.endpoints, &e.to_string())))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_how() {
        assert_eq!(
            parse_url("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap(),
            vec!["127.0.0.1:2379", "10.0.0.2:2379"]
        );
        let e = parse_url("http://x:1").unwrap_err().to_string();
        assert!(e.contains("etcd://HOST:PORT"), "{e}");
        let e = parse_url("etcd://x").unwrap_err().to_string();
        assert!(e.contains("not HOST:PORT"), "{e}");
        assert!(parse_url("etcd://").is_err());
    }

    #[tokio::test]
    async fn a_tls_file_that_cannot_be_read_is_a_tls_error() {
        let mut options = EtcdOptions::from_url("etcd://127.0.0.1:1").unwrap();
        options.ca_file = Some("/nonexistent/etcd-ca.pem".into());
        let Err(e) = connect(&options).await else {
            panic!("connected without its CA file");
        };
        assert!(matches!(e, EtcdError::Tls(Error::Tls { .. })), "{e:?}");
        assert!(
            e.to_string().contains("cannot read the etcd CA file"),
            "{e}"
        );
        assert!(!e.waiting_helps());
    }
}
