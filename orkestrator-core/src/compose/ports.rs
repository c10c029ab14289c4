//! Compose `ports`, short (`[ip:][host:]container[/proto]`, with ranges) and long
//! (`{target, published, host_ip, protocol, mode}`), as the job's port mappings.

use serde_json::{Map, Value, json};

use super::yaml::{kind, scalar_text};

/// The most ports one range may expand to.
pub const MAX_PORT_RANGE: u32 = 100;

/// One port mapping as the job file writes it, or what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Port {
    /// Published on the host.
    Published(Value),
    /// A container port only: published nowhere until dynamic host ports come.
    Unpublished(u16),
}

/// Reads one item of `ports` into the mappings it stands for.
pub(crate) fn parse(v: &Value) -> Result<Vec<Port>, String> {
    match v {
        Value::Object(m) => long(m),
        Value::String(_) | Value::Number(_) => short(&scalar_text(v).unwrap_or_default()),
        other => Err(format!(
            "a port is \"HOST:CONTAINER\" or {{target, published}}, found {}",
            kind(other)
        )),
    }
}

fn long(m: &Map<String, Value>) -> Result<Vec<Port>, String> {
    let target = m
        .get("target")
        .and_then(scalar_text)
        .ok_or("a port needs its `target` (the container port)")?;
    let target = port(&target)?;
    let protocol = protocol(m.get("protocol").and_then(scalar_text).as_deref())?;
    let host_ip = m
        .get("host_ip")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty());
    let Some(published) = m
        .get("published")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
    else {
        return Ok(vec![Port::Unpublished(target)]);
    };
    let (lo, hi) = range(&published)?;
    if lo != hi {
        return Err(format!(
            "published {published} is a range for the single target {target}: publish one port"
        ));
    }
    Ok(vec![Port::Published(mapping(
        target,
        lo,
        protocol,
        host_ip.as_deref(),
    ))])
}

fn short(s: &str) -> Result<Vec<Port>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, p)) => (spec, protocol(Some(p))?),
        None => (s, "tcp"),
    };
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| format!("{s:?}: an IPv6 address needs `]:` after it"))?;
        (Some(ip.to_owned()), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec),
            3 => (Some(parts[0].to_owned()), &spec[parts[0].len() + 1..]),
            _ => return Err(format!("{s:?} is not [IP:][HOST:]CONTAINER[/PROTOCOL]")),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    let (clo, chi) = range(container)?;
    let count = u32::from(chi - clo) + 1;
    if count > MAX_PORT_RANGE {
        return Err(format!(
            "{s:?} spans {count} ports; a range may span at most {MAX_PORT_RANGE}"
        ));
    }
    let ip = ip.filter(|i| !i.is_empty());
    match host.filter(|h| !h.is_empty()) {
        None => Ok((clo..=chi).map(Port::Unpublished).collect()),
        Some(h) => {
            let (hlo, hhi) = range(h)?;
            let hcount = u32::from(hhi - hlo) + 1;
            if hcount != count && hcount != 1 {
                return Err(format!(
                    "{s:?}: the host range has {hcount} ports and the container range {count}; they must be as long"
                ));
            }
            if hcount == 1 && count > 1 {
                return Err(format!(
                    "{s:?}: a range of container ports needs a range of host ports as long"
                ));
            }
            Ok((0..count)
                .map(|i| {
                    let c = clo + i as u16;
                    let h = hlo + i as u16;
                    Port::Published(mapping(c, h, proto, ip.as_deref()))
                })
                .collect())
        }
    }
}

fn mapping(container: u16, host: u16, protocol: &str, host_ip: Option<&str>) -> Value {
    let mut m = json!({"container": container, "host": host, "protocol": protocol});
    if let Some(ip) = host_ip {
        m["host_ip"] = Value::String(ip.to_owned());
    }
    m
}

fn protocol(p: Option<&str>) -> Result<&'static str, String> {
    match p.map(str::to_ascii_lowercase).as_deref() {
        None | Some("tcp") => Ok("tcp"),
        Some("udp") => Ok("udp"),
        Some(other) => Err(format!("protocol {other:?}: use tcp or udp")),
    }
}

fn port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{s:?} is not a port (1-65535)")),
    }
}

fn range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("the range {s} ends before it starts"));
            }
            Ok((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(v: Vec<Port>) -> Vec<Value> {
        v.into_iter()
            .map(|p| match p {
                Port::Published(v) => v,
                Port::Unpublished(c) => json!({"unpublished": c}),
            })
            .collect()
    }

    #[test]
    fn short_syntax() {
        assert_eq!(
            published(parse(&json!("8080:80")).unwrap()),
            vec![json!({"container": 80, "host": 8080, "protocol": "tcp"})]
        );
        assert_eq!(
            published(parse(&json!("127.0.0.1:5353:53/udp")).unwrap()),
            vec![json!({"container": 53, "host": 5353, "protocol": "udp", "host_ip": "127.0.0.1"})]
        );
        assert_eq!(
            published(parse(&json!("[::1]:8080:80")).unwrap()),
            vec![json!({"container": 80, "host": 8080, "protocol": "tcp", "host_ip": "::1"})]
        );
        assert_eq!(parse(&json!("80")).unwrap(), vec![Port::Unpublished(80)]);
        assert_eq!(parse(&json!(80)).unwrap(), vec![Port::Unpublished(80)]);
        assert_eq!(
            parse(&json!("127.0.0.1::80")).unwrap(),
            vec![Port::Unpublished(80)]
        );
    }

    #[test]
    fn ranges_expand_and_are_bounded() {
        let v = published(parse(&json!("9000-9002:8000-8002")).unwrap());
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[2],
            json!({"container": 8002, "host": 9002, "protocol": "tcp"})
        );
        let e = parse(&json!("1000-2000:1000-2000")).unwrap_err();
        assert!(e.contains("at most 100"), "{e}");
        let e = parse(&json!("9000-9001:8000-8002")).unwrap_err();
        assert!(e.contains("as long"), "{e}");
    }

    #[test]
    fn long_syntax() {
        let v = parse(&json!({"target": 80, "published": "8080", "host_ip": "127.0.0.1", "protocol": "tcp", "mode": "host"})).unwrap();
        assert_eq!(
            published(v),
            vec![json!({"container": 80, "host": 8080, "protocol": "tcp", "host_ip": "127.0.0.1"})]
        );
        assert_eq!(
            parse(&json!({"target": 80})).unwrap(),
            vec![Port::Unpublished(80)]
        );
        assert!(parse(&json!({"published": 80})).is_err());
        assert!(
            parse(&json!("70000:80"))
                .unwrap_err()
                .contains("not a port")
        );
        assert!(
            parse(&json!("80:80/sctp"))
                .unwrap_err()
                .contains("tcp or udp")
        );
    }
}
