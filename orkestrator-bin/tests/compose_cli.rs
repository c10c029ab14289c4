//! `compose convert`, `validate -f` and `run -f` on Compose files, without a cluster: the job
//! on standard output, warnings and refusals on standard error with the keys' paths, and the
//! exit codes.

mod common;

use std::path::Path;

use common::ork_in;

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const GOOD: &str = "services:
  my_db:
    image: postgres
    environment:
      POSTGRES_PASSWORD: ${PW:-dev}
    volumes: [db:/var/lib/postgresql/data]
  web:
    image: busybox:1.36
    command: httpd -f -p 8080
    ports: [\"8080:8080\"]
    depends_on: [my_db]
    logging: {driver: json-file}
volumes:
  db: {}
";

#[test]
fn convert_prints_the_job_and_warns_on_standard_error() {
    let dir = project(&[("compose.yaml", GOOD)]);
    let out = ork_in(
        dir.path(),
        &["compose", "convert", "-p", "shop", "-o", "json"],
        &[("PW", "s3cret")],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let job: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON job on stdout");
    assert_eq!(job["name"], "shop");
    let db = &job["tasks"][0];
    assert_eq!(db["name"], "my-db");
    assert_eq!(db["image"], "postgres:latest");
    assert_eq!(db["aliases"], serde_json::json!(["my_db"]));
    assert_eq!(db["env"]["POSTGRES_PASSWORD"], "s3cret");
    assert_eq!(db["mounts"][0]["volume"], "db");
    assert_eq!(job["volumes"]["db"]["retain"], true);
    assert_eq!(
        job["tasks"][1]["depends_on"]["my-db"]["condition"],
        "started"
    );
    for warned in [
        "services.my_db.image",
        "services.web.logging",
        "set no resources",
    ] {
        assert!(out.stderr.contains(warned), "{warned}: {}", out.describe());
    }
    assert!(!out.stdout.contains("warning"), "{}", out.describe());

    // --strict makes the warnings refusals.
    let strict = ork_in(dir.path(), &["compose", "convert", "--strict"], &[]);
    assert_eq!(strict.code, Some(2), "{}", strict.describe());
    assert!(
        strict.stderr.contains("services.web.logging") && strict.stderr.contains("--strict"),
        "{}",
        strict.describe()
    );
    assert!(strict.stdout.is_empty(), "{}", strict.describe());
}

#[test]
fn refusals_name_the_key_and_exit_2() {
    let dir = project(&[(
        "docker-compose.yml",
        "services:
  web:
    image: busybox:1.36
    privileged: true
    cap_add: [NET_ADMIN]
    volumes:
      - ./data:/data
      - /var/run/docker.sock:/var/run/docker.sock
    network_mode: host
",
    )]);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let out = ork_in(dir.path(), &["compose", "convert"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    for key in [
        "services.web.privileged",
        "services.web.cap_add",
        "services.web.volumes[0]",
        "services.web.volumes[1]",
        "services.web.network_mode",
    ] {
        assert!(out.stderr.contains(key), "{key}: {}", out.describe());
    }
    assert!(out.stderr.contains("orkestrator dev"), "{}", out.describe());

    let v = ork_in(
        dir.path(),
        &["validate", "-f", "docker-compose.yml", "-o", "json"],
        &[],
    );
    assert_eq!(v.code, Some(2), "{}", v.describe());
    let j: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(j["valid"], false);
    assert_eq!(j["compose"], true);
    assert!(
        j["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == "services.web.cap_add"),
        "{j}"
    );
}

#[test]
fn validate_reads_compose_files_and_run_points_at_compose_up() {
    let dir = project(&[("compose.yaml", GOOD)]);
    let v = ork_in(dir.path(), &["validate", "-f", "compose.yaml"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.describe());
    assert!(v.stdout.contains("valid Compose file"), "{}", v.describe());

    // A Compose file under another name is known by its content.
    std::fs::copy(dir.path().join("compose.yaml"), dir.path().join("app.yaml")).unwrap();
    let r = ork_in(
        dir.path(),
        &["run", "-f", "app.yaml", "--manager", "http://127.0.0.1:9"],
        &[],
    );
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("orkestrator compose up"),
        "{}",
        r.describe()
    );
    assert!(Path::new(&dir.path().join("app.yaml")).exists());
}

#[test]
fn no_file_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = ork_in(dir.path(), &["compose", "convert"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr.contains("compose.yaml") && out.stderr.contains("-f"),
        "{}",
        out.describe()
    );
}
