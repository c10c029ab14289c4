//! A task's restart policy and its backoff.

use std::time::Duration;

use super::limits::{MAX_ATTEMPTS, MAX_BACKOFF};
use super::scalars::{scalar_duration, show};
use crate::spec::model::{Backoff, RestartMode, RestartPolicy};
use crate::spec::problems::Problems;
use crate::spec::raw::{RawBackoff, RawRestart};
use crate::units::{self, Scalar};

pub(super) fn validate_restart(
    p: &mut Problems,
    path: &str,
    rr: Option<RawRestart>,
) -> RestartPolicy {
    let mut r = RestartPolicy::default();
    let Some(rr) = rr else { return r };
    if let Some(s) = rr.policy {
        match s.as_str() {
            "never" => r.policy = RestartMode::Never,
            "on-failure" => r.policy = RestartMode::OnFailure,
            "always" => r.policy = RestartMode::Always,
            other => {
                let hint = match other
                    .trim()
                    .to_ascii_lowercase()
                    .replace(['_', ' '], "-")
                    .as_str()
                {
                    "on-failure" | "onfailure" | "on-error" | "failure" => {
                        " (did you mean on-failure?)"
                    }
                    "no" | "none" | "never" | "off" | "false" => " (did you mean never?)",
                    "always" | "unless-stopped" | "yes" | "true" => " (did you mean always?)",
                    _ => "",
                };
                p.push(
                    format!("{path}.policy"),
                    format!(
                        "{other:?} is not a restart policy (use never, on-failure or always){hint}"
                    ),
                );
            }
        }
    }
    if let Some(s) = rr.max_attempts {
        let fp = format!("{path}.max_attempts");
        match s {
            Scalar::Str(w) if w == "unlimited" => r.max_attempts = RestartPolicy::UNLIMITED,
            Scalar::Int(i) if (0..=MAX_ATTEMPTS as i128).contains(&i) => r.max_attempts = i as u32,
            Scalar::Int(i) => p.push(
                fp,
                format!("{i} is out of range (use 0 to {MAX_ATTEMPTS}, or unlimited)"),
            ),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() > MAX_ATTEMPTS as f64 => p.push(
                fp,
                format!("{f:?} is out of range (use 0 to {MAX_ATTEMPTS})"),
            ),
            other => p.push(
                fp,
                format!(
                    "{} is not a whole number (use e.g. 5, or unlimited to restart without end)",
                    show(&other)
                ),
            ),
        }
    }
    if let Some(b) = rr.backoff {
        r.backoff = validate_backoff(p, &format!("{path}.backoff"), b);
    }
    r
}

pub(super) fn validate_backoff(p: &mut Problems, path: &str, rb: RawBackoff) -> Backoff {
    let mut b = Backoff::default();
    let mut field = |name: &str, s: Option<Scalar>, slot: &mut Duration| {
        let Some(s) = s else { return };
        let fp = format!("{path}.{name}");
        match scalar_duration(s) {
            Err(m) => p.push(fp, m),
            Ok(d) if d.is_zero() => p.push(fp, "must be more than zero (e.g. 1s)"),
            Ok(d) if d > MAX_BACKOFF => p.push(
                fp,
                format!(
                    "{} is longer than the {max} allowed (ask for at most {max})",
                    units::format_duration(d),
                    max = format_args!("{}h", MAX_BACKOFF.as_secs() / 3600),
                ),
            ),
            Ok(d) => *slot = d,
        }
    };
    let explicit_max = rb.max.is_some();
    field("initial", rb.initial, &mut b.initial);
    field("max", rb.max, &mut b.max);
    field("reset_after", rb.reset_after, &mut b.reset_after);
    if b.max < b.initial {
        if explicit_max {
            p.push(
                format!("{path}.max"),
                format!(
                    "{} is shorter than initial ({}); max must be at least initial",
                    units::format_duration(b.max),
                    units::format_duration(b.initial)
                ),
            );
        } else {
            // Only `initial` was given and it exceeds the default cap: the cap follows it.
            b.max = b.initial;
        }
    }
    b
}
