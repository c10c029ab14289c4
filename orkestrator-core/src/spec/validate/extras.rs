//! A task's extras for the engine: network aliases, `/dev/shm` size, container labels and extra
//! `/etc/hosts` entries.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::limits::{
    MAX_ALIASES, MAX_EXTRA_HOSTS, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_SHM,
    MAX_TASK_LABEL_BYTES, MAX_TASK_LABELS, Rules, over_limit,
};
use super::names::is_label_key;
use super::scalars::{scalar_size, show};
use crate::spec::problems::Problems;
use crate::units::{ByteSize, Scalar};

/// The label key prefix that is Orkestrator's own (see [`crate::runtime::labels`]).
const OURS: &str = "orkestrator";

/// The word that stands for the worker host's address in `extra_hosts`.
pub(crate) const HOST_GATEWAY: &str = "host-gateway";

/// `aliases`: host names (see [`check_alias`]), each once, none the task's own name (`task`). That no other task of
/// the job has one as its name or alias is checked with the job ([`check_aliases`]).
pub(super) fn validate_aliases(
    p: &mut Problems,
    path: &str,
    raw: Option<Vec<Option<String>>>,
    task: Option<&str>,
    rules: Rules,
) -> Vec<String> {
    let raw = raw.unwrap_or_default();
    let lp = format!("{path}.aliases");
    over_limit(p, rules, &lp, raw.len(), MAX_ALIASES, "aliases");
    let mut out: Vec<String> = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let Some(a) = a else { continue };
        let here = format!("{lp}[{i}]");
        if !check_alias(p, &here, &a) {
            continue;
        }
        if task == Some(a.as_str()) {
            p.push(
                here,
                format!("{a:?} is the task's own name, which it answers to anyway (remove it)"),
            );
        } else if let Some(first) = out.iter().position(|o| *o == a) {
            p.push(
                here,
                format!("{a:?} is already listed in {lp}[{first}] (list each alias once)"),
            );
        } else {
            out.push(a);
        }
    }
    out
}

/// Checks a network alias: a host name as the engine's resolver answers it, of ASCII letters,
/// digits, `-`, `_` and `.`, at most 253 bytes, each dot-separated part 1 to 63 bytes that
/// starts and ends with a letter or digit. Wider than a task name, so that the names Compose
/// files connect by (`my_db`, `db.internal`) carry over.
fn check_alias(p: &mut Problems, here: &str, a: &str) -> bool {
    if is_host_name(a, b"-_") {
        return true;
    }
    p.push(
        here,
        format!(
            "{a:?} is not a host name: use letters, digits, '-', '_' and '.', each dot-separated part starting and ending with a letter or digit (e.g. db or my_db)"
        ),
    );
    false
}

/// Checks that no alias of a task is another task's name or alias: `tasks` holds each task's
/// path, name and aliases.
pub(super) fn check_aliases(p: &mut Problems, tasks: &[(String, &str, &[String])]) {
    let mut taken: BTreeMap<&str, String> = BTreeMap::new();
    for (path, name, _) in tasks {
        taken.insert(name, format!("the name of {path}"));
    }
    for (path, name, aliases) in tasks {
        for (i, a) in aliases.iter().enumerate() {
            let here = format!("{path}.aliases[{i}]");
            match taken.get(a.as_str()) {
                Some(owner) if a != name => p.push(
                    here,
                    format!(
                        "{a:?} is already {owner} (names on the instance's network must be unique: pick another alias)"
                    ),
                ),
                Some(_) => {}
                None => {
                    taken.insert(a, format!("an alias of {path}"));
                }
            }
        }
    }
}

/// `shm_size`: a byte size, more than zero, at most [`MAX_SHM`].
pub(super) fn validate_shm(p: &mut Problems, path: &str, raw: Option<Scalar>) -> Option<ByteSize> {
    let fp = format!("{path}.shm_size");
    match scalar_size(raw?) {
        Err(m) => p.push(fp, m),
        Ok(s) if s == ByteSize::ZERO => p.push(
            fp,
            "must be more than zero (e.g. 64Mi; leave shm_size out for the engine's default)",
        ),
        Ok(s) if s > MAX_SHM => p.push(
            fp,
            format!(
                "{} is more than the {} allowed (ask for at most {})",
                s.human(),
                MAX_SHM.human(),
                MAX_SHM.human()
            ),
        ),
        Ok(s) => return Some(s),
    }
    None
}

/// A map value written as a scalar, as text; a float is refused (its digits may change).
fn text(p: &mut Problems, path: &str, v: Scalar) -> Option<String> {
    match v {
        Scalar::Str(s) => Some(s),
        Scalar::Int(i) => Some(i.to_string()),
        Scalar::Bool(b) => Some(b.to_string()),
        Scalar::Float(f) => {
            p.push(
                path,
                format!(
                    "{f:?} is a floating-point number, which may not keep the digits as written (quote the value, e.g. \"{f:?}\")"
                ),
            );
            None
        }
    }
}

/// `labels`: keys as worker label keys are written, none of Orkestrator's own; bounded.
pub(super) fn validate_labels(
    p: &mut Problems,
    path: &str,
    raw: Option<BTreeMap<String, Scalar>>,
    rules: Rules,
) -> BTreeMap<String, String> {
    let raw = raw.unwrap_or_default();
    let lp = format!("{path}.labels");
    over_limit(p, rules, &lp, raw.len(), MAX_TASK_LABELS, "labels");
    let mut out = BTreeMap::new();
    let mut bytes = 0usize;
    for (k, v) in raw {
        let here = if k.is_empty() || k.len() > MAX_LABEL_KEY_BYTES {
            lp.clone()
        } else {
            format!("{lp}.{k}")
        };
        if k.len() > MAX_LABEL_KEY_BYTES {
            p.push(
                &here,
                format!(
                    "a label key of {} bytes; at most {MAX_LABEL_KEY_BYTES} are allowed",
                    k.len()
                ),
            );
            continue;
        }
        if !is_label_key(&k) {
            p.push(
                &here,
                format!(
                    "{k:?} is not a label key (use letters, digits, '.', '_', '/' and '-', e.g. com.example.team)"
                ),
            );
            continue;
        }
        if k.to_ascii_lowercase().starts_with(OURS) {
            p.push(
                &here,
                format!(
                    "{k:?} starts with {OURS:?}, which is kept for Orkestrator's own labels (use another key, e.g. com.example.{})",
                    &k[OURS.len()..].trim_start_matches(['.', '-', '_', '/'])
                ),
            );
            continue;
        }
        let Some(value) = text(p, &here, v) else {
            continue;
        };
        if value.contains('\0') {
            p.push(&here, "contains a NUL character (remove it)");
            continue;
        }
        over_limit(p, rules, &here, value.len(), MAX_LABEL_VALUE_BYTES, "bytes");
        bytes += k.len() + value.len();
        out.insert(k, value);
    }
    if rules == Rules::Submission && bytes > MAX_TASK_LABEL_BYTES {
        p.push(
            &lp,
            format!(
                "{bytes} bytes in all (keys and values); at most {MAX_TASK_LABEL_BYTES} are allowed"
            ),
        );
    }
    out
}

/// Whether `name` is a DNS name: dot-separated labels of letters, digits and '-' (neither first
/// nor last in a label), each 1 to 63 bytes, 253 in all.
fn is_dns_name(name: &str) -> bool {
    is_host_name(name, b"-")
}

/// Whether `name` is dot-separated parts of letters, digits and the bytes of `inner` (which
/// neither start nor end a part), each part 1 to 63 bytes, 253 in all.
fn is_host_name(name: &str, inner: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || inner.contains(c))
        })
}

/// `extra_hosts`: DNS names to IP addresses (kept in canonical text) or `host-gateway`.
pub(super) fn validate_extra_hosts(
    p: &mut Problems,
    path: &str,
    raw: Option<BTreeMap<String, Scalar>>,
    rules: Rules,
) -> BTreeMap<String, String> {
    let raw = raw.unwrap_or_default();
    let lp = format!("{path}.extra_hosts");
    over_limit(p, rules, &lp, raw.len(), MAX_EXTRA_HOSTS, "hosts");
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        if !is_dns_name(&name) {
            let here = if name.is_empty() || name.len() > 253 || name.contains('\0') {
                lp.clone()
            } else {
                format!("{lp}.{name}")
            };
            p.push(
                here,
                format!(
                    "{:?} is not a host name (use a DNS name: labels of letters, digits and '-' joined by '.', e.g. db.local)",
                    name.chars().take(64).collect::<String>()
                ),
            );
            continue;
        }
        let here = format!("{lp}.{name}");
        let addr = match v {
            Scalar::Str(s) => s,
            other => {
                p.push(
                    here,
                    format!(
                        "{} is not an IP address (write an IPv4 or IPv6 address such as 10.0.0.5, or {HOST_GATEWAY})",
                        show(&other)
                    ),
                );
                continue;
            }
        };
        if addr == HOST_GATEWAY {
            out.insert(name, addr);
            continue;
        }
        match addr.trim().parse::<IpAddr>() {
            Ok(ip) => {
                out.insert(name, ip.to_string());
            }
            Err(_) => p.push(
                here,
                format!(
                    "{addr:?} is not an IP address (write an IPv4 or IPv6 address such as 10.0.0.5 or fd00::5, or {HOST_GATEWAY} for the worker host)"
                ),
            ),
        }
    }
    out
}

/// A port's `host_ip`: an IPv4 or IPv6 address.
pub(super) fn validate_host_ip(p: &mut Problems, path: &str, raw: &str) -> Option<IpAddr> {
    match raw.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            p.push(
                path,
                format!(
                    "{raw:?} is not an IP address (write the host address to publish on, e.g. 127.0.0.1 or ::1)"
                ),
            );
            None
        }
    }
}
