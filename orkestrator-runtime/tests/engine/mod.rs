//! What the Docker integration tests share: the test image, and reaching the engine or
//! skipping loudly (failing instead when `ORKESTRATOR_REQUIRE_DOCKER=1` or `CI=true`).

#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use orkestrator_core::runtime::Runtime as _;
use orkestrator_runtime::DockerRuntime;

/// The locally built test image (`scripts/build-test-image.sh`).
pub const IMAGE: &str = "orkestrator/busybox:latest";

/// Whether a missing engine (or tool) fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("ORKESTRATOR_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Prints a SKIP line for `test`, in one piece (the harness captures `eprintln!`).
pub fn skip(test: &str, why: &str) {
    let line = format!("\nSKIP {test}: {why}; set ORKESTRATOR_REQUIRE_DOCKER=1 to fail instead\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The runtime, or `None` (with a SKIP line) when no engine answers and Docker is not required.
/// Makes sure the test image exists (a missing one that cannot be built fails the test).
pub async fn docker_or_skip(test: &str) -> Option<DockerRuntime> {
    let reached = match DockerRuntime::connect() {
        Ok(rt) => rt.ping().await.map(|()| rt),
        Err(e) => Err(e),
    };
    match reached {
        Ok(rt) => {
            ensure_test_image();
            Some(rt)
        }
        Err(e) if required() => {
            panic!("{test}: the Docker engine is required (ORKESTRATOR_REQUIRE_DOCKER/CI): {e}")
        }
        Err(e) => {
            skip(test, &format!("no Docker engine ({e})"));
            None
        }
    }
}

/// Builds the test image once per test process if it is not there.
pub fn ensure_test_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return Ok(());
        }
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-test-image.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed:\n{}{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("the test image {IMAGE} is missing and could not be built: {e}");
    }
}
