//! Issue 18, item 3: the counts `health` (and with it `ork_jobs`, `ork_tasks` and the dashboard
//! header) gives equal what the job list says, after `kill -9` and a restart of the manager, a
//! stop and garbage collection. Against a real manager process; no worker (and no Docker): a job
//! with no worker is `Pending`, a stopped one `Stopped`, which is enough to tell one count from
//! two.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, TIMEOUT, http};
use serde_json::Value;

/// Non-zero entries of a JSON object of counts.
fn counted(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, n)| n.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default()
}

fn get(c: &Cluster, path: &str) -> Result<Value, String> {
    let r = http(c.port, "GET", path, None, b"").map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("GET {path}: {} {}", r.status, r.text()));
    }
    Ok(r.json())
}

/// Counts by name (of a phase or a task state).
type Counts = BTreeMap<String, u64>;

/// Jobs by phase and tasks by state, as the job list and each job's instances give them.
fn listed(c: &Cluster) -> Result<(Counts, Counts), String> {
    let mut jobs = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    let page = get(c, "/v1/jobs")?;
    for j in page["items"].as_array().ok_or("no items")? {
        let phase = j["phase"].as_str().ok_or("no phase")?.to_owned();
        *jobs.entry(phase).or_insert(0) += 1;
        let name = j["name"].as_str().ok_or("no name")?;
        let v = get(c, &format!("/v1/jobs/{name}"))?;
        for i in v["instances"].as_array().ok_or("no instances")? {
            for t in i["tasks"].as_object().ok_or("no tasks")?.values() {
                let state = t["state"].as_str().ok_or("no state")?.to_owned();
                *tasks.entry(state).or_insert(0) += 1;
            }
        }
    }
    Ok((jobs, tasks))
}

/// Waits until `health` counts what the list says (a count is briefly behind at most), then
/// checks it holds, and returns the jobs by phase.
fn counts_agree(c: &Cluster, when: &str) -> BTreeMap<String, u64> {
    c.wait_until(
        &format!("health counts as the job list does {when}"),
        TIMEOUT,
        |c| {
            let h = c.health()?;
            let (jobs, tasks) = listed(c)?;
            let (hj, ht) = (counted(&h["jobs"]), counted(&h["tasks"]));
            if hj == jobs && ht == tasks {
                Ok(jobs)
            } else {
                Err(format!(
                    "health: jobs {hj:?}, tasks {ht:?}\nlist:   jobs {jobs:?}, tasks {tasks:?}"
                ))
            }
        },
    )
}

fn run(c: &Cluster, name: &str, count: u32) {
    let file = c.write(
        &format!("{name}.yaml"),
        &format!("name: {name}\ncount: {count}\ntasks:\n  - name: t\n    image: x:1\n"),
    );
    let out = c.ork(&["run", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
}

fn stop(c: &Cluster, name: &str) {
    let out = c.ork(&["stop", name]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

#[test]
fn counts_equal_the_job_list_after_manager_restarts_and_stops() {
    let c = Cluster::start_server("countsrestart", &["--gc-after", "1h"]);
    run(&c, "waits", 3);
    run(&c, "ended", 2);
    stop(&c, "ended");
    let want = expect(&[("Pending", 1), ("Stopped", 1)]);
    assert_eq!(counts_agree(&c, "before a restart"), want);
    for n in 1..=2 {
        c.restart_manager();
        assert_eq!(counts_agree(&c, &format!("after restart {n}")), want);
    }
    stop(&c, "waits");
    assert_eq!(counts_agree(&c, "after a stop"), expect(&[("Stopped", 2)]));
    c.restart_manager();
    assert_eq!(
        counts_agree(&c, "after a stop and a restart"),
        expect(&[("Stopped", 2)])
    );
}

#[test]
fn counts_equal_the_job_list_after_garbage_collection_and_a_restart() {
    let c = Cluster::start_server("countsgc", &["--gc-after", "0s"]);
    run(&c, "stays", 2);
    run(&c, "goes", 2);
    stop(&c, "goes");
    c.wait_until("the stopped job is collected", TIMEOUT, |c| {
        let r = http(c.port, "POST", "/v1/gc", None, b"").map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("gc: {} {}", r.status, r.text()));
        }
        let r = http(c.port, "GET", "/v1/jobs/goes", None, b"").map_err(|e| e.to_string())?;
        if r.status == 404 {
            Ok(())
        } else {
            Err(format!("still there: {} {}", r.status, r.text()))
        }
    });
    let want = expect(&[("Pending", 1)]);
    assert_eq!(counts_agree(&c, "after garbage collection"), want);
    c.restart_manager();
    assert_eq!(counts_agree(&c, "after gc and a restart"), want);
}
