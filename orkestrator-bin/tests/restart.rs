//! Issue 18, item 5, from the command line against a real manager (no worker, no Docker): `run`
//! of an unchanged spec for a stopped job starts it again and says so; `orkestrator restart JOB`
//! restarts a job under its current version, and refuses a job that does not exist.

mod common;

use common::Cluster;

#[test]
fn run_again_and_restart_start_a_job_again_under_the_same_version() {
    let c = Cluster::start("restartcli");
    let file = c.write(
        "web.yaml",
        "name: web\ncount: 2\ntasks:\n  - name: t\n    image: x:1\n",
    );
    let file = file.to_str().unwrap();
    let out = c.ork(&["run", file]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    // Not ended (it waits for a worker): replaced one at a time.
    let out = c.ork(&["restart", "web"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains(
            "job web restarted (version 1, unchanged): its instances are replaced one at a time"
        ),
        "{}",
        out.describe()
    );
    let out = c.ork(&["stop", "web"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_phase("web", "Stopped");
    // The same file again: started again, no new version, and said.
    let out = c.ork(&["run", file]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("job web restarted") && out.stdout.contains("(version 1)"),
        "{}",
        out.describe()
    );
    let v = c.wait_phase("web", "Pending");
    assert_eq!(v["version"], 1, "{v:#}");
    // `restart` of the stopped job: every instance at once, as JSON too.
    let out = c.ork(&["stop", "web"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_phase("web", "Stopped");
    let out = c.ork(&["restart", "web", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let r = out.json();
    assert_eq!(r["outcome"], "restarted", "{r:#}");
    assert_eq!(r["version"], 1, "{r:#}");
    let v = c.wait_phase("web", "Pending");
    let live = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["desired"] == "run")
        .count();
    assert_eq!(live, 2, "{v:#}");
    // A job that does not exist.
    let out = c.ork(&["restart", "nosuch"]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(out.stderr.contains("nosuch"), "{}", out.describe());
}
