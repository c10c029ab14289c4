//! A task's health check: its probe (HTTP, TCP or exec) and its timing.

use std::time::Duration;

use super::limits::{MAX_HEALTH_INTERVAL, MAX_PROBE_PATH_BYTES, Rules, over_limit};
use super::names::check_command_size;
use super::ports::port_number;
use super::scalars::{scalar_duration, show};
use crate::spec::model::{HealthCheck, Probe};
use crate::spec::problems::Problems;
use crate::spec::raw::{RawCommand, RawHealthCheck};
use crate::units::{self, Scalar};

pub(super) fn validate_health(
    p: &mut Problems,
    path: &str,
    h: RawHealthCheck,
    rules: Rules,
) -> Option<HealthCheck> {
    let before = p.len();
    let mut kinds = Vec::new();
    if let Some(http) = h.http {
        let port = match http.port {
            None => {
                p.push(
                    format!("{path}.http.port"),
                    "is required (the container port to call)",
                );
                None
            }
            Some(s) => port_number(p, &format!("{path}.http.port"), s),
        };
        let probe_path = http.path.unwrap_or_else(|| "/".to_owned());
        let too_long = over_limit(
            p,
            rules,
            &format!("{path}.http.path"),
            probe_path.len(),
            MAX_PROBE_PATH_BYTES,
            "bytes",
        );
        if !too_long
            && (!probe_path.starts_with('/')
                || probe_path
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            p.push(
                format!("{path}.http.path"),
                format!("{probe_path:?} is not a URL path (use e.g. /healthz)"),
            );
        }
        kinds.push(port.map(|port| Probe::Http {
            port,
            path: probe_path,
        }));
    }
    if let Some(tcp) = h.tcp {
        let port = match tcp.port {
            None => {
                p.push(
                    format!("{path}.tcp.port"),
                    "is required (the container port to connect to)",
                );
                None
            }
            Some(s) => port_number(p, &format!("{path}.tcp.port"), s),
        };
        kinds.push(port.map(|port| Probe::Tcp { port }));
    }
    if let Some(exec) = h.exec {
        // A line runs through the image's shell, as Docker runs a health check written as one
        // string (`CMD-SHELL`).
        let cmd = match exec {
            RawCommand::List(words) => words,
            RawCommand::Line(line) if line.trim().is_empty() => Vec::new(),
            RawCommand::Line(line) => vec!["sh".to_owned(), "-c".to_owned(), line],
        };
        if check_command_size(p, rules, &format!("{path}.exec"), &cmd) {
            kinds.push(None);
        } else if cmd.first().is_none_or(|c| c.trim().is_empty()) {
            p.push(
                format!("{path}.exec"),
                "needs a command, e.g. [\"sh\", \"-c\", \"test -f /tmp/ready\"]",
            );
            kinds.push(None);
        } else if let Some(ci) = cmd.iter().position(|c| c.contains('\0')) {
            p.push(
                format!("{path}.exec[{ci}]"),
                "contains a NUL character (remove it: programs cannot receive it)",
            );
            kinds.push(None);
        } else {
            kinds.push(Some(Probe::Exec(cmd)));
        }
    }
    if let Some(image) = h.image {
        match image {
            Scalar::Bool(true) => kinds.push(Some(Probe::Image)),
            Scalar::Bool(false) => {
                p.push(
                    format!("{path}.image"),
                    "false is not a check (write image: true to use the image's own HEALTHCHECK, or write http, tcp or exec instead)",
                );
                kinds.push(None);
            }
            other => {
                p.push(
                    format!("{path}.image"),
                    format!(
                        "{} is not true or false (write image: true to use the image's own HEALTHCHECK)",
                        show(&other)
                    ),
                );
                kinds.push(None);
            }
        }
    }
    if kinds.len() != 1 {
        p.push(path, "needs exactly one of http, tcp, exec or image (e.g. { http: { port: 8080, path: /healthz } })");
    }
    let start_period = match h.start_period.map(scalar_duration) {
        None => Duration::ZERO,
        Some(Err(m)) => {
            p.push(format!("{path}.start_period"), m);
            Duration::ZERO
        }
        Some(Ok(d)) if d > MAX_HEALTH_INTERVAL => {
            p.push(
                format!("{path}.start_period"),
                format!(
                    "{} is longer than the 1h allowed (ask for at most 1h)",
                    units::format_duration(d)
                ),
            );
            Duration::ZERO
        }
        Some(Ok(d)) => d,
    };
    // `None`: the field is not written. `Some(None)`: it is written but invalid (reported).
    let mut duration = |name: &str, v: Option<Scalar>| -> Option<Option<Duration>> {
        let v = v?;
        let fp = format!("{path}.{name}");
        match scalar_duration(v) {
            Err(m) => p.push(fp, m),
            Ok(d) if d.is_zero() => p.push(fp, "must be more than zero (e.g. 10s)"),
            Ok(d) if d > MAX_HEALTH_INTERVAL => p.push(
                fp,
                format!(
                    "{} is longer than the 1h allowed (ask for at most 1h)",
                    units::format_duration(d)
                ),
            ),
            Ok(d) => return Some(Some(d)),
        }
        Some(None)
    };
    let interval = duration("interval", h.interval);
    let timeout = duration("timeout", h.timeout);
    // A timeout left out never exceeds the interval: it is the default or the interval,
    // whichever is shorter (as `interval: 1s` alone must not be refused for a timeout it does
    // not write).
    let checkable = matches!((interval, timeout), (Some(Some(_)) | None, Some(Some(_))));
    let interval = interval.flatten().unwrap_or(HealthCheck::DEFAULT_INTERVAL);
    let timeout = timeout
        .flatten()
        .unwrap_or(HealthCheck::DEFAULT_TIMEOUT.min(interval));
    if checkable && timeout > interval {
        p.push(
            format!("{path}.timeout"),
            format!(
                "{} is longer than the interval ({}); make it shorter",
                units::format_duration(timeout),
                units::format_duration(interval)
            ),
        );
    }
    let failures = match h.failures {
        None => HealthCheck::DEFAULT_FAILURES,
        Some(Scalar::Int(n)) if (1..=100).contains(&n) => n as u32,
        Some(Scalar::Int(n)) => {
            p.push(
                format!("{path}.failures"),
                format!("{n} is out of range (use 1 to 100)"),
            );
            HealthCheck::DEFAULT_FAILURES
        }
        Some(other) => {
            p.push(
                format!("{path}.failures"),
                format!("{} is not a whole number (use e.g. 3)", show(&other)),
            );
            HealthCheck::DEFAULT_FAILURES
        }
    };
    if p.len() != before {
        return None;
    }
    let probe = kinds.into_iter().next()??;
    Some(HealthCheck {
        interval,
        timeout,
        failures,
        probe,
        start_period,
    })
}
