//! A task's ports: container port, host port and protocol.

use super::extras::validate_host_ip;
use super::scalars::show;
use crate::spec::model::{PortMapping, Protocol};
use crate::spec::problems::Problems;
use crate::spec::raw::RawPort;
use crate::units::Scalar;

pub(super) fn validate_port(p: &mut Problems, path: &str, rp: RawPort) -> Option<PortMapping> {
    let before = p.len();
    let container = match rp.container {
        None => {
            p.push(
                format!("{path}.container"),
                "is required (the port the container listens on, 1-65535)",
            );
            None
        }
        Some(s) => port_number(p, &format!("{path}.container"), s),
    };
    let host_written = rp.host.is_some();
    let host = rp
        .host
        .and_then(|s| port_number(p, &format!("{path}.host"), s));
    let protocol = match rp.protocol.as_deref() {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(other) => {
            p.push(
                format!("{path}.protocol"),
                format!("{other:?} is not a protocol (use tcp or udp)"),
            );
            Protocol::Tcp
        }
    };
    let host_ip = rp.host_ip.and_then(|ip| {
        let here = format!("{path}.host_ip");
        let ip = validate_host_ip(p, &here, &ip)?;
        if !host_written {
            p.push(
                here,
                "needs host: the address is where the host port is published (add host, or remove host_ip)",
            );
        }
        Some(ip)
    });
    if p.len() != before {
        return None;
    }
    Some(PortMapping {
        container: container?,
        host,
        protocol,
        host_ip,
    })
}

pub(super) fn port_number(p: &mut Problems, path: &str, s: Scalar) -> Option<u16> {
    match s {
        Scalar::Int(i) if (1..=65535).contains(&i) => Some(i as u16),
        Scalar::Int(i) => {
            p.push(path, format!("{i} is out of range (ports are 1-65535)"));
            None
        }
        other => {
            p.push(
                path,
                format!(
                    "{} is not a port number (use an integer 1-65535)",
                    show(&other)
                ),
            );
            None
        }
    }
}
