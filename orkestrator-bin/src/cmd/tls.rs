//! `orkestrator tls init DIR` and `orkestrator tls cert DIR --name NAME`: a cluster CA and the
//! certificates it issues (rcgen, ECDSA P-256), as files the servers and clients take.
//!
//! `DIR/ca.pem` and `DIR/ca-key.pem` are the CA; `DIR/NAME.pem` is a chain (the certificate, then
//! the CA, so that a client that knows only the CA's digest can verify it) and `DIR/NAME-key.pem`
//! its key. Keys are written readable by their owner only, and nothing is ever overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use orkestrator_runtime::http::tls::{cert_digest, check_chain, digest_hex, sha256};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::cli::{TlsArgs, TlsCertArgs, TlsCommand, TlsInitArgs};
use crate::output::{exit, fail};

/// How long the cluster CA is valid.
const CA_DAYS: u32 = 3650;
/// The names every certificate is valid for, before those given with `--san`.
const DEFAULT_SANS: [&str; 2] = ["localhost", "127.0.0.1"];

pub fn run(a: TlsArgs) -> Result<ExitCode> {
    match a.command {
        TlsCommand::Init(a) => init(a),
        TlsCommand::Cert(a) => cert(a),
    }
}

fn init(a: TlsInitArgs) -> Result<ExitCode> {
    let ca_pem = a.dir.join("ca.pem");
    let ca_key_pem = a.dir.join("ca-key.pem");
    for existing in [&ca_pem, &ca_key_pem] {
        if existing.exists() {
            return Err(fail(
                exit::USAGE,
                format!(
                    "{} exists: {} already holds a cluster CA, and replacing it would cut off \
                     every certificate it issued. Issue another certificate from it with \
                     `orkestrator tls cert {} --name NAME`, or pick another DIR",
                    existing.display(),
                    a.dir.display(),
                    a.dir.display()
                ),
            ));
        }
    }
    let (cert_path, key_path) = leaf_paths(&a.dir, &a.name)?;
    let sans = names(&a.sans);
    let leaf = leaf_params(&a.name, &sans, a.days)?;
    create_dir(&a.dir)?;

    let ca_key = KeyPair::generate().context("cannot generate the CA's key")?;
    let ca_params = ca_params(&ca_key, CA_DAYS);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot sign the CA certificate")?;
    write_new(&ca_key_pem, &ca_key.serialize_pem(), true)?;
    write_new(&ca_pem, &ca_cert.pem(), false)?;
    let issuer = Issuer::new(ca_params, ca_key);
    issue(&issuer, &ca_cert.pem(), leaf, &cert_path, &key_path)?;
    check_chain(&cert_path, DEFAULT_SANS[0])?;

    let digest = digest_hex(&cert_digest(ca_cert.der()));
    outln!(
        "created a cluster CA and a certificate for {} in {}:",
        a.name,
        a.dir.display()
    );
    print_files(&[
        (
            &ca_pem,
            "the cluster CA (for clients: --ca-file)".to_owned(),
        ),
        (
            &ca_key_pem,
            "the CA's key: keep it secret, it issues certificates".to_owned(),
        ),
        (
            &cert_path,
            format!(
                "{}'s certificate, then the CA (--tls-cert), for {}",
                a.name,
                sans.join(", ")
            ),
        ),
        (&key_path, "its key (--tls-key)".to_owned()),
    ])?;
    outln!("CA digest (SHA-256): {digest}");
    outln!(
        "serve with: orkestrator server --bind 0.0.0.0 --tls-cert {} --tls-key {}",
        cert_path.display(),
        key_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cert(a: TlsCertArgs) -> Result<ExitCode> {
    let ca_pem_path = a.dir.join("ca.pem");
    let ca_key_path = a.dir.join("ca-key.pem");
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            fail(
                exit::USAGE,
                format!(
                    "cannot read {}: {e} (DIR must hold the CA that `orkestrator tls init DIR` \
                     created)",
                    p.display()
                ),
            )
        })
    };
    let ca_pem = read(&ca_pem_path)?;
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(|e| {
        fail(
            exit::USAGE,
            format!(
                "{}: not a private key rcgen can use ({e})",
                ca_key_path.display()
            ),
        )
    })?;
    let (cert_path, key_path) = leaf_paths(&a.dir, &a.name)?;
    let sans = names(&a.sans);
    let leaf = leaf_params(&a.name, &sans, a.days)?;
    // The CA's name derives from its key (see `ca_params`), so the issuer is rebuilt exactly.
    let issuer = Issuer::new(ca_params(&ca_key, CA_DAYS), ca_key);
    issue(&issuer, &ca_pem, leaf, &cert_path, &key_path)?;
    if let Err(e) = check_chain(&cert_path, DEFAULT_SANS[0]) {
        let _ = std::fs::remove_file(&cert_path);
        let _ = std::fs::remove_file(&key_path);
        return Err(fail(
            exit::USAGE,
            format!(
                "{} and {} do not belong together, or the CA was not made by `orkestrator tls \
                 init` ({e}); nothing was written",
                ca_pem_path.display(),
                ca_key_path.display()
            ),
        ));
    }
    let digest = orkestrator_runtime::http::tls::ca_digest(&cert_path)?;
    outln!(
        "issued {} a certificate from the CA in {}, for {}:",
        a.name,
        a.dir.display(),
        sans.join(", ")
    );
    print_files(&[
        (
            &cert_path,
            "the certificate, then the CA (--tls-cert)".to_owned(),
        ),
        (&key_path, "its key (--tls-key)".to_owned()),
    ])?;
    outln!("CA digest (SHA-256): {}", digest_hex(&digest));
    Ok(ExitCode::SUCCESS)
}

/// One line a file: its path, padded, and what it is.
fn print_files(files: &[(&PathBuf, String)]) -> Result<()> {
    let width = files
        .iter()
        .map(|(p, _)| p.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    for (path, what) in files {
        outln!("  {:<width$}  {what}", path.display().to_string());
    }
    Ok(())
}

/// The CA's parameters. Its common name carries the start of its key's digest: two clusters'
/// CAs never share a name (a client given the wrong one is told "unknown issuer", not "bad
/// signature"), and `tls cert` rebuilds the same name from the key alone.
fn ca_params(key: &KeyPair, days: u32) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "Orkestrator");
    let id = &digest_hex(&sha256(key.public_key_raw()))[..16];
    p.distinguished_name
        .push(DnType::CommonName, format!("Orkestrator cluster CA {id}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (p.not_before, p.not_after) = validity(days);
    p
}

/// A server (and client) certificate's parameters for `sans`.
fn leaf_params(name: &str, sans: &[String], days: u32) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(sans.to_vec()).map_err(|e| {
        fail(
            exit::USAGE,
            format!(
                "--san: {e} (give host names like manager.example.com or IP addresses like \
                 10.0.0.5)"
            ),
        )
    })?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "Orkestrator");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    (p.not_before, p.not_after) = validity(days);
    Ok(p)
}

/// Signs a new key's certificate with `issuer` and writes it (chained with `ca_pem`) and the key.
fn issue(
    issuer: &Issuer<'_, KeyPair>,
    ca_pem: &str,
    params: CertificateParams,
    cert_path: &Path,
    key_path: &Path,
) -> Result<()> {
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, issuer)
        .context("cannot sign the certificate")?;
    write_new(key_path, &key.serialize_pem(), true)?;
    let mut chain = cert.pem();
    if !chain.ends_with('\n') {
        chain.push('\n');
    }
    chain.push_str(ca_pem);
    write_new(cert_path, &chain, false)
}

/// `DIR/NAME.pem` and `DIR/NAME-key.pem`, once `name` is checked and neither exists.
fn leaf_paths(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok || name == "ca" || name.ends_with("-key") {
        return Err(fail(
            exit::USAGE,
            format!(
                "--name {name:?}: use letters, digits, '.', '_' and '-' (it names the files \
                 NAME.pem and NAME-key.pem; not \"ca\", not ending in \"-key\")"
            ),
        ));
    }
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    for p in [&cert, &key] {
        if p.exists() {
            return Err(fail(
                exit::USAGE,
                format!(
                    "{} exists: remove it first to issue {name} a new certificate, or pick \
                     another --name",
                    p.display()
                ),
            ));
        }
    }
    Ok((cert, key))
}

/// The default names and then `extra`, each once.
fn names(extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
    for n in extra {
        let n = n.trim();
        if !n.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.to_owned());
        }
    }
    out
}

/// From an hour ago (clocks differ a little between hosts) to `days` from now.
fn validity(days: u32) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(i64::from(days)),
    )
}

fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `text` to a new file at `path` (never over an existing one), readable by its owner
/// only when `secret`.
fn write_new(path: &Path, text: &str, secret: bool) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, if secret { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_the_defaults_and_keep_each_once() {
        let n = names(&["LOCALHOST".into(), "10.0.0.5".into(), " m.example ".into()]);
        assert_eq!(n, ["localhost", "127.0.0.1", "10.0.0.5", "m.example"]);
    }

    #[test]
    fn the_ca_name_follows_from_its_key() {
        let name = |k: &KeyPair| {
            let p = ca_params(k, 1);
            p.distinguished_name
                .iter()
                .map(|(t, v)| format!("{t:?}={v:?}"))
                .collect::<Vec<_>>()
        };
        let key = KeyPair::generate().unwrap();
        let again = KeyPair::from_pem(&key.serialize_pem()).unwrap();
        let other = KeyPair::generate().unwrap();
        assert_eq!(name(&key), name(&again));
        assert_ne!(name(&key), name(&other));
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "ca", "../x", ".hidden", "a/b", "w-key", "-x"] {
            assert!(leaf_paths(dir.path(), bad).is_err(), "{bad:?}");
        }
        assert!(leaf_paths(dir.path(), "worker-1.example").is_ok());
    }
}
