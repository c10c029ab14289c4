//! Secrets through the real `orkestrator` binary (no Docker): `secret create` from a literal, a
//! file and standard input, `secret list` and `secrets` (table and JSON, never values), `secret
//! update`, `secret rm`; the default key file (mode 0600) in the data directory; the plaintext
//! nowhere in the redb file; a manager started with another key refuses to start and says so.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Cluster, run_with_timeout};

const NEEDLE: &str = "needle-plaintext-7f3a9c-do-not-leak";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `orkestrator secret ARGS -` with `input` on standard input.
fn with_stdin(c: &Cluster, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(c.dir())
        .env("ORKESTRATOR_ADDR", &c.addr)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn secret_commands_create_list_update_and_remove_without_showing_values() {
    let c = Cluster::start("secret-cli");
    let out = c.ork(&["secret", "create", "db-password", "--from-literal", NEEDLE]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("created secret db-password version 1"),
        "{}",
        out.describe()
    );

    let file = c.write("tls.key", NEEDLE);
    let out = c.ork(&["secret", "create", "tls.key", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.describe());

    let (code, stdout, stderr) = with_stdin(
        &c,
        &["secret", "create", "from-stdin", "-"],
        NEEDLE.as_bytes(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // Exactly one source.
    let out = c.ork(&[
        "secret",
        "create",
        "two",
        "--from-literal",
        "a",
        "-f",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    let out = c.ork(&["secret", "create", "none"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    // A bad name is refused by the manager, naming the field.
    let out = c.ork(&["secret", "create", "Bad", "--from-literal", "a"]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("name:"), "{}", out.describe());

    let out = c.ork(&[
        "secret",
        "update",
        "db-password",
        "--from-literal",
        "second-value",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.contains("version 2"), "{}", out.describe());

    let table = c.ork(&["secret", "list"]);
    assert_eq!(table.code, Some(0), "{}", table.describe());
    assert!(
        table.stdout.contains("NAME") && table.stdout.contains("tls.key"),
        "{}",
        table.stdout
    );
    let json = c.ork(&["secrets", "-o", "json"]);
    assert_eq!(json.code, Some(0), "{}", json.describe());
    let all = json.json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-password", "from-stdin", "tls.key"]);
    assert_eq!(all[0]["version"], 2);
    assert_eq!(all[1]["size"], NEEDLE.len());
    for out in [&table, &json] {
        assert!(!out.stdout.contains(NEEDLE) && !out.stderr.contains(NEEDLE));
    }

    // The key file the manager made, and no plaintext in any file of its data directory.
    let data = c.dir().join("data");
    let files = files_under(&data);
    let key = files
        .iter()
        .find(|p| p.ends_with("secret.key"))
        .expect("a default key file");
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "redb")),
        "{files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(NEEDLE.len()).any(|w| w == NEEDLE.as_bytes()),
            "the plaintext is in {}",
            f.display()
        );
    }
    assert!(
        !c.logs().contains(NEEDLE),
        "the plaintext is in the manager's logs"
    );

    // Restarted with the same (default) key: the secrets are still there.
    c.restart_manager();
    let json = c.ork(&["secret", "list", "-o", "json"]);
    assert_eq!(
        json.json().as_array().unwrap().len(),
        3,
        "{}",
        json.describe()
    );

    let out = c.ork(&["secret", "rm", "tls.key"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let out = c.ork(&["secret", "rm", "tls.key"]);
    assert_ne!(out.code, Some(0));
}

#[test]
fn a_manager_with_another_key_refuses_to_start_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let data_s = data.to_str().unwrap().to_owned();
    {
        let c = Cluster::start_server("secret-key", &["--data-dir", &data_s]);
        let out = c.ork(&["secret", "create", "k", "--from-literal", NEEDLE]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
    }
    let other = dir.path().join("other.key");
    std::fs::write(&other, [7u8; 32]).unwrap();
    let port = common::free_port().to_string();
    let out = run_with_timeout(
        Command::new(BIN)
            .args([
                "server",
                "--port",
                &port,
                "--data-dir",
                &data_s,
                "--secret-key-file",
            ])
            .arg(&other)
            .env("NO_COLOR", "1")
            .env("XDG_DATA_HOME", dir.path().join("xdg")),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("other.key"), "{}", out.describe());
    assert!(out.stderr.contains("not the key"), "{}", out.describe());

    // A key file of the wrong size is named with the fix.
    std::fs::write(&other, b"short").unwrap();
    let out = run_with_timeout(
        Command::new(BIN)
            .args([
                "server",
                "--port",
                &port,
                "--data-dir",
                &data_s,
                "--secret-key-file",
            ])
            .arg(&other)
            .env("NO_COLOR", "1"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("32 bytes"), "{}", out.describe());
}

#[test]
fn rotate_key_re_encrypts_a_stopped_managers_secrets_under_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let data_s = data.to_str().unwrap().to_owned();
    {
        let c = Cluster::start_server("secret-rotate", &["--data-dir", &data_s]);
        for name in ["a", "b"] {
            let out = c.ork(&["secret", "create", name, "--from-literal", NEEDLE]);
            assert_eq!(out.code, Some(0), "{}", out.describe());
        }
    }
    let old_key = std::fs::read(data.join("secret.key")).unwrap();
    // A directory that holds no manager's state is refused, and nothing is made there.
    let empty = dir.path().join("empty");
    let out = run_with_timeout(
        Command::new(BIN)
            .args(["secret", "rotate-key", "--data-dir"])
            .arg(&empty)
            .env("NO_COLOR", "1"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("no state file"), "{}", out.describe());
    assert!(!empty.exists());
    let out = run_with_timeout(
        Command::new(BIN)
            .args(["secret", "rotate-key", "--data-dir", &data_s])
            .env("NO_COLOR", "1"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("re-encrypted 2 secret versions"),
        "{}",
        out.describe()
    );
    let new_key = std::fs::read(data.join("secret.key")).unwrap();
    assert_ne!(old_key, new_key);
    assert_eq!(std::fs::read(data.join("secret.key.old")).unwrap(), old_key);
    assert_eq!(
        std::fs::metadata(data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // The old key no longer opens the store; the new one (the default file) does.
    let port = common::free_port().to_string();
    let out = run_with_timeout(
        Command::new(BIN)
            .args([
                "server",
                "--port",
                &port,
                "--data-dir",
                &data_s,
                "--secret-key-file",
            ])
            .arg(data.join("secret.key.old"))
            .env("NO_COLOR", "1"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    let c = Cluster::start_server("secret-rotate", &["--data-dir", &data_s]);
    let json = c.ork(&["secrets", "-o", "json"]);
    assert_eq!(
        json.json().as_array().unwrap().len(),
        2,
        "{}",
        json.describe()
    );
    let out = c.ork(&["secret", "update", "a", "--from-literal", "x"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
}
