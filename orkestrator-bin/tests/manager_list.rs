//! `--manager a,b,c` and `ORKESTRATOR_ADDR=a,b,c`: clients and schedulers given several manager
//! addresses move past one that does not answer, and find the operator and join tokens of the
//! manager on this host by the first loopback address that has them.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// An address on this host where nothing listens (and no manager left a token pointer).
fn dead_address() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[test]
fn client_commands_take_a_list_of_managers() {
    let c = Cluster::start("manager-list-client");
    let list = format!("{},{}", dead_address(), c.addr);

    // --manager: the first address is dead and has no token pointer; the second's operator
    // token is found and the request goes on to it.
    let out = ork_in(c.dir(), &["workers", "--manager", &list, "-o", "json"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.json().is_array(), "{}", out.describe());

    // ORKESTRATOR_ADDR alike.
    let out = ork_in(
        c.dir(),
        &["workers", "-o", "json"],
        &[("ORKESTRATOR_ADDR", &list)],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());

    // Every address dead: unreachable (exit 3), naming them.
    let (a, b) = (dead_address(), dead_address());
    let out = ork_in(
        c.dir(),
        &["workers", "--manager", &format!("{a},{b}"), "--token", "x"],
        &[],
    );
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains(&a) && out.stderr.contains(&b),
        "{}",
        out.describe()
    );
}

#[test]
fn a_scheduler_joins_through_a_list_of_managers() {
    let c = Cluster::start_server("manager-list-scheduler", &["--no-embedded-scheduler"]);
    let list = format!("{},{}", dead_address(), c.addr);
    let args: Vec<String> = ["scheduler", "--manager", &list, "--name", "listed"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut scheduler = Proc::spawn(c.dir(), "scheduler listed", &args, c.dir(), None);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(s) = scheduler.exited() {
            panic!("the scheduler exited ({s}):\n{}", scheduler.tail(40));
        }
        let h = c.health().unwrap_or_default();
        if scheduler_in(&h, "listed").is_some_and(|s| s["status"] == "Ready") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not become Ready: {h}\n{}",
            scheduler.tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
