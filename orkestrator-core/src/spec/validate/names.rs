//! Names and strings: DNS labels, label keys, environment names, commands and image references.

use super::limits::{
    MAX_COMMAND_ARG_BYTES, MAX_COMMAND_ARGS, MAX_COMMAND_BYTES, MAX_IMAGE_BYTES,
    MAX_LABEL_KEY_BYTES, Rules, over_limit,
};
use crate::spec::problems::Problems;

pub(super) fn is_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_LABEL_KEY_BYTES
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
}

/// Checks that `s` is an RFC 1123 DNS label; pushes a problem and returns false if not.
pub(super) fn check_dns_label(p: &mut Problems, path: &str, s: &str) -> bool {
    let why = if s.is_empty() {
        Some("is empty".to_owned())
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some(format!(
            "{s:?} has characters other than lowercase letters, digits and '-'"
        ))
    } else if s.starts_with('-') || s.ends_with('-') {
        Some(format!("{s:?} starts or ends with '-'"))
    } else if s.len() > 63 {
        Some(format!("{s:?} is longer than 63 characters"))
    } else {
        None
    };
    match why {
        None => true,
        Some(w) => {
            let suggestion = suggest_dns_label(s);
            let fix = if suggestion.is_empty() || suggestion == s {
                "use a DNS label: lowercase letters, digits and '-', e.g. web-1".to_owned()
            } else {
                format!("use a DNS label such as {suggestion:?}")
            };
            p.push(path, format!("{w} ({fix})"));
            false
        }
    }
}

pub(super) fn suggest_dns_label(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// Holds a submitted command (`command`, `exec`) to [`MAX_COMMAND_ARGS`],
/// [`MAX_COMMAND_ARG_BYTES`] and [`MAX_COMMAND_BYTES`]; returns whether it broke one.
pub(super) fn check_command_size(
    p: &mut Problems,
    rules: Rules,
    path: &str,
    command: &[String],
) -> bool {
    let before = p.len();
    over_limit(p, rules, path, command.len(), MAX_COMMAND_ARGS, "elements");
    for (i, c) in command.iter().enumerate() {
        over_limit(
            p,
            rules,
            &format!("{path}[{i}]"),
            c.len(),
            MAX_COMMAND_ARG_BYTES,
            "bytes",
        );
    }
    let total: usize = command.iter().map(String::len).sum();
    if rules == Rules::Submission && total > MAX_COMMAND_BYTES {
        p.push(
            path,
            format!("{total} bytes in all; at most {MAX_COMMAND_BYTES} are allowed"),
        );
    }
    p.len() != before
}

/// The prefix of the environment variables the orchestrator itself may set in a container.
pub(super) const RESERVED_ENV_PREFIX: &str = "ORK_";

/// Checks an environment variable name as the container engine takes it: anything but the
/// empty name, `=` (which ends the name) and NUL (which ends the string), so that names such as
/// `discovery.type` are valid; a submitted name may not start with [`RESERVED_ENV_PREFIX`].
/// Returns the message for the problem, if any.
pub(super) fn check_env_name(k: &str, rules: Rules) -> Result<(), String> {
    if k.is_empty() {
        Err("a variable has an empty name (give it a name, e.g. MODE)".to_owned())
    } else if k.contains('\0') {
        Err(format!(
            "{k:?} holds a NUL character, which no variable name can hold (remove it)"
        ))
    } else if k.contains('=') {
        Err(format!(
            "{k:?} holds '=', which ends a variable's name (write the name alone as the key and the value after it: {}: ...)",
            k.split('=').next().unwrap_or_default()
        ))
    } else if rules == Rules::Submission && k.starts_with(RESERVED_ENV_PREFIX) {
        Err(format!(
            "{k:?} starts with {RESERVED_ENV_PREFIX}, which is reserved for the orchestrator's own variables (choose another name)"
        ))
    } else {
        Ok(())
    }
}

/// Checks a Docker image reference (`[registry[:port]/]path[:tag][@digest]`); a tag or a digest is
/// required. Returns the message for the problem, if any.
pub(crate) fn check_image(image: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{image:?} is not a valid image reference: {why}"));
    if image.is_empty() {
        return Err("is empty (use an image reference with a tag, e.g. busybox:1.36)".to_owned());
    }
    if image.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "is {} bytes long, longer than {MAX_IMAGE_BYTES} (the most an image reference may have)",
            image.len()
        ));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return bad("the digest must look like sha256:<64 hex digits>");
        }
    }
    // The tag follows the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let valid = !t.is_empty()
            && t.len() <= 128
            && t.as_bytes()[0] != b'.'
            && t.as_bytes()[0] != b'-'
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return bad(
                "the tag may hold letters, digits, '_', '.' and '-', and not start with '.' or '-'",
            );
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        let is_registry = first.contains('.') || first.contains(':') || first == "localhost";
        if is_registry {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            let port_ok = port.is_none_or(|p| {
                !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
            });
            if !host_ok || !port_ok {
                return bad("the registry host is malformed");
            }
            components.remove(0);
        }
    }
    for c in &components {
        if !path_component_ok(c) {
            if c.bytes().any(|b| b.is_ascii_uppercase()) {
                return bad("repository names must be lowercase");
            }
            return bad(
                "each path part must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
            );
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "{image:?} has no tag (use image:tag, e.g. {image}:latest or a pinned version)"
        ));
    }
    Ok(())
}

pub(super) fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}
