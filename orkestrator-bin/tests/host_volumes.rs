//! Host volumes (issue 20): directories a worker's operator offers to jobs by name with
//! `worker --host-volume NAME=/path[:ro]`. The manager learns the names and whether they are
//! read-only, never the paths; `workers` lists them; a bad offer stops the worker at once.

mod common;

use common::{Cluster, docker_or_skip};

#[test]
fn a_worker_offers_host_volumes_by_name_and_refuses_bad_offers() {
    let test = "host-volumes-offer";
    if !docker_or_skip(test) {
        return;
    }
    let mut c = Cluster::start(test);
    let logs = c.dir().join("logs");
    let data = c.dir().join("data");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let worker = c.add_worker(&[
        "--host-volume",
        &format!("applogs={}:ro", logs.display()),
        "--host-volume",
        &format!("data={}", data.display()),
    ]);
    let out = c.ork(&["workers", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let workers = out.json();
    let me = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == worker.as_str())
        .expect("the worker is listed");
    assert_eq!(
        me["host_volumes"],
        serde_json::json!({ "applogs": { "read_only": true }, "data": { "read_only": false } })
    );
    let text = serde_json::to_string(&workers).unwrap();
    assert!(
        !text.contains(&logs.display().to_string()),
        "the manager never learns the paths: {text}"
    );
    let table = c.ork(&["workers"]);
    assert!(
        table.stdout.contains("applogs:ro,data"),
        "{}",
        table.describe()
    );

    // A path that is not there, a relative one, a bad name, a name given twice: refused at once.
    for (bad, says) in [
        ("x=/no/such/dir".to_owned(), "/no/such/dir"),
        ("x=relative".to_owned(), "not an absolute path"),
        (format!("Logs={}", logs.display()), "not a host volume name"),
    ] {
        let out = c.ork(&[
            "worker",
            "--manager",
            "http://127.0.0.1:1",
            "--host-volume",
            &bad,
        ]);
        assert_ne!(out.code, Some(0), "{bad}: {}", out.describe());
        assert!(out.stderr.contains(says), "{bad}: {}", out.describe());
    }
    let twice = format!("x={}", logs.display());
    let out = c.ork(&[
        "worker",
        "--manager",
        "http://127.0.0.1:1",
        "--data-dir",
        &c.dir().join("w-twice").display().to_string(),
        "--host-volume",
        &twice,
        "--host-volume",
        &twice,
    ]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(out.stderr.contains("given twice"), "{}", out.describe());
}
