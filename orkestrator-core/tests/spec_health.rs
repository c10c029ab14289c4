//! Health checks in job files: the three probe kinds, defaults, rules, and round trips.

use std::time::Duration;

use orkestrator_core::Error;
use orkestrator_core::spec::{Format, HealthCheck, Probe, parse_job};

fn check(yaml_health: &str) -> Result<Option<HealthCheck>, Vec<String>> {
    let text =
        format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    health_check: {yaml_health}\n");
    match parse_job(&text, Format::Yaml) {
        Ok(j) => Ok(j.tasks[0].health_check.clone()),
        // Every problem is on the health check's line: what matters here is path and message.
        Err(Error::Invalid(p)) => Err(p
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()),
        Err(e) => Err(vec![e.to_string()]),
    }
}

#[test]
fn each_probe_kind_parses_with_defaults() {
    let h = check("{ http: { port: 8080, path: /healthz } }")
        .unwrap()
        .unwrap();
    assert_eq!(
        h.probe,
        Probe::Http {
            port: 8080,
            path: "/healthz".into()
        }
    );
    assert_eq!(
        (h.interval, h.timeout, h.failures),
        (Duration::from_secs(10), Duration::from_secs(2), 3)
    );
    let h = check("{ http: { port: 80 } }").unwrap().unwrap();
    assert_eq!(
        h.probe,
        Probe::Http {
            port: 80,
            path: "/".into()
        }
    );
    let h = check("{ tcp: { port: 5432 }, interval: 5s, timeout: 1s, failures: 2 }")
        .unwrap()
        .unwrap();
    assert_eq!(h.probe, Probe::Tcp { port: 5432 });
    assert_eq!(
        (h.interval, h.timeout, h.failures),
        (Duration::from_secs(5), Duration::from_secs(1), 2)
    );
    let h = check("{ exec: [sh, -c, 'test -f /tmp/ok'] }")
        .unwrap()
        .unwrap();
    assert_eq!(
        h.probe,
        Probe::Exec(vec!["sh".into(), "-c".into(), "test -f /tmp/ok".into()])
    );
}

#[test]
fn bad_health_checks_name_the_field() {
    let e = check("{ interval: 5s }").unwrap_err();
    assert_eq!(
        e,
        [
            "tasks[0].health_check: needs exactly one of http, tcp, exec or image (e.g. { http: { port: 8080, path: /healthz } })"
        ]
    );
    let e = check("{ http: { port: 80 }, tcp: { port: 81 } }").unwrap_err();
    assert!(
        e[0].starts_with("tasks[0].health_check: needs exactly one of"),
        "{e:?}"
    );
    let e = check("{ http: { port: 70000, path: healthz } }").unwrap_err();
    assert!(
        e.iter()
            .any(|m| m.starts_with("tasks[0].health_check.http.port: 70000 is out of range")),
        "{e:?}"
    );
    assert!(
        e.iter().any(
            |m| m.starts_with("tasks[0].health_check.http.path: \"healthz\" is not a URL path")
        ),
        "{e:?}"
    );
    let e = check("{ tcp: { port: 80 }, interval: 1s, timeout: 5s, failures: 0 }").unwrap_err();
    assert!(e.iter().any(|m| m.starts_with("tasks[0].health_check.timeout: 5s is longer than the interval")), "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.starts_with("tasks[0].health_check.failures: 0 is out of range")),
        "{e:?}"
    );
    let e = check("{ exec: [] }").unwrap_err();
    assert!(
        e[0].starts_with("tasks[0].health_check.exec: needs a command"),
        "{e:?}"
    );
    let e = check("{ tcp: {} }").unwrap_err();
    assert_eq!(
        e,
        ["tasks[0].health_check.tcp.port: is required (the container port to connect to)"]
    );
    assert!(
        check("{ grpc: { port: 1 } }").unwrap_err()[0].contains("grpc"),
        "unknown probe kinds are refused"
    );
}

#[test]
fn health_checks_round_trip_in_every_format() {
    for h in [
        "{ http: { port: 8080, path: /ready }, interval: 3s, timeout: 500ms, failures: 4 }",
        "{ tcp: { port: 6379 } }",
        "{ exec: [cat, /tmp/ok], interval: 1m }",
    ] {
        let text = format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    health_check: {h}\n");
        let job = parse_job(&text, Format::Yaml).unwrap();
        for f in [Format::Yaml, Format::Toml, Format::Json] {
            let printed = f.render(&job).unwrap();
            let back = parse_job(&printed, f).unwrap_or_else(|e| panic!("{f}: {e}\n{printed}"));
            assert_eq!(back, job, "{f}:\n{printed}");
        }
    }
}
