//! Managers' addresses: normalized, listed, and moved between.

use std::sync::atomic::{AtomicUsize, Ordering};

use orkestrator_core::{Error, Result};

/// Moves `current` from `from` to the address after it, unless it has moved already.
pub(super) fn advance_from(current: &AtomicUsize, from: usize, n: usize) {
    let _ = current.compare_exchange(from, (from + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
}

/// Each of `addrs` (and each of a comma-separated list in one of them) normalized, blanks
/// skipped, repeats dropped; an error if none is left.
pub(super) fn parse_addresses<I, S>(addrs: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    let mut given = Vec::new();
    for a in addrs {
        for one in a.as_ref().split(',') {
            given.push(one.to_owned());
            if one.trim().is_empty() {
                continue;
            }
            let a = normalize_addr(one)?;
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Unreachable {
            addr: given.join(","),
            message:
                "no address given (use e.g. http://127.0.0.1:5555, or several separated by commas)"
                    .into(),
        });
    }
    Ok(out)
}

/// `host:port` → `http://host:port`; trailing slashes removed; anything but `http://` and
/// `https://` refused.
pub fn normalize_addr(addr: &str) -> Result<String> {
    let a = addr.trim();
    let a = if a.contains("://") {
        a.to_owned()
    } else {
        format!("http://{a}")
    };
    let a = match a.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.trim_end_matches('/')),
        None => a,
    };
    if !a.starts_with("http://") && !is_https(&a) {
        return Err(Error::Unreachable {
            addr: addr.to_owned(),
            message:
                "only http:// and https:// addresses are supported (e.g. http://127.0.0.1:5555)"
                    .into(),
        });
    }
    match a.parse::<hyper::Uri>() {
        Ok(u) if u.host().is_some() => Ok(a),
        _ => Err(Error::Unreachable {
            addr: addr.to_owned(),
            message: "not a valid address (use e.g. http://127.0.0.1:5555)".into(),
        }),
    }
}

/// Whether `base` is an `https://` address.
pub(super) fn is_https(base: &str) -> bool {
    base.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            normalize_addr("127.0.0.1:5555").unwrap(),
            "http://127.0.0.1:5555"
        );
        assert_eq!(
            normalize_addr("http://localhost:5555/").unwrap(),
            "http://localhost:5555"
        );
        assert_eq!(normalize_addr("https://x:1/").unwrap(), "https://x:1");
        assert!(normalize_addr("ftp://x:1").is_err());
        assert!(normalize_addr("http://").is_err());
    }
}
