//! Integration tests of image builds ([`DockerRuntime::build`]), pushes and image health checks
//! against the real Docker engine, on the locally built test image
//! (`scripts/build-test-image.sh`) as the base.
//!
//! Run them one at a time: `cargo test -p orkestrator-runtime --test build -- --test-threads=1`.
//!
//! Without an engine (or without `/usr/bin/docker-registry` for the push test) the tests print a
//! SKIP line and pass, unless `ORKESTRATOR_REQUIRE_DOCKER=1` or `CI=true`: then they fail.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use orkestrator_core::error::Error;
use orkestrator_runtime::build::{BuildRequest, context_tar};

mod engine;
use engine::{IMAGE, docker_or_skip, required, skip};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Removes the image references it collects when dropped (also when the test panics).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker")
                .args(["image", "rm", "-f"])
                .args(&self.0)
                .output();
        }
    }
}

/// A repository name of this process and test.
fn repository(test: &str) -> String {
    format!("ork-build-test-{}-{test}", std::process::id())
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn request(dir: &Path, repo: &str) -> BuildRequest {
    BuildRequest {
        context: dir.to_path_buf(),
        dockerfile: None,
        target: None,
        args: BTreeMap::new(),
        repository: repo.to_string(),
    }
}

/// Runs `script` with `sh -c` in a throwaway container of `image`; its stdout, or a panic with
/// its stderr.
fn run_in(image: &str, script: &str) -> String {
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}` in {image} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const MULTI_STAGE: &str = "\
ARG BASE=orkestrator/busybox:latest
FROM ${BASE} AS base
ARG GREETING=hello
RUN echo \"$GREETING\" > /greeting
COPY app/ /app/
FROM base AS final
RUN echo final > /stage
FROM base AS other
RUN echo other > /stage
";

/// A context with the multi-stage Dockerfile, files to copy and a `.dockerignore`.
fn multi_stage_context(dir: &Path) {
    write(dir, "Dockerfile", MULTI_STAGE);
    write(dir, "app/keep.txt", "kept\n");
    write(dir, "app/skip.log", "skipped\n");
    write(dir, "app/secret/key", "k\n");
    write(dir, "app/secret/public", "p\n");
    write(dir, "notes.md", "not copied anyway\n");
    write(
        dir,
        ".dockerignore",
        "# build noise\n**/*.log\n/app/secret\n!app/secret/public\n",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_with_args_target_and_dockerignore() {
    let Some(rt) = docker_or_skip("build_with_args_target_and_dockerignore").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    multi_stage_context(dir.path());
    let mut req = request(dir.path(), &repository("stages"));
    req.target = Some("final".into());
    req.args.insert("GREETING".into(), "hi from args".into());
    let mut images = Images(Vec::new());

    let built = rt.build(&req).await.unwrap();
    images.0.push(built.tag.clone());
    assert_eq!(
        built.tag,
        format!("{}:{}", req.repository, &built.content_hash[..16])
    );
    assert!(built.image_id.starts_with("sha256:"), "{built:?}");

    let listing = run_in(
        &built.tag,
        "cat /greeting /stage; cd /app && find . -type f | sort",
    );
    assert_eq!(
        listing, "hi from args\nfinal\n./keep.txt\n./secret/public\n",
        "the argument, the target stage, and the files .dockerignore keeps"
    );

    // Without the target, the last stage; without the argument, its default.
    let plain = rt
        .build(&request(dir.path(), &req.repository))
        .await
        .unwrap();
    images.0.push(plain.tag.clone());
    assert_ne!(plain.tag, built.tag);
    assert_eq!(run_in(&plain.tag, "cat /greeting /stage"), "hello\nother\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tag_is_stable_and_follows_content_and_args() {
    let Some(rt) = docker_or_skip("the_tag_is_stable_and_follows_content_and_args").await else {
        return;
    };
    let repo = repository("stable");
    let dir = tempfile::tempdir().unwrap();
    multi_stage_context(dir.path());
    let mut images = Images(Vec::new());

    let first = rt.build(&request(dir.path(), &repo)).await.unwrap();
    images.0.push(first.tag.clone());
    let again = rt.build(&request(dir.path(), &repo)).await.unwrap();
    assert_eq!(
        again, first,
        "the second build finds the same tag and image"
    );

    // The same files elsewhere, written later (other mtimes): the same tag.
    let copy = tempfile::tempdir().unwrap();
    multi_stage_context(copy.path());
    let (_, copied_hash) = context_tar(&request(copy.path(), &repo)).unwrap();
    assert_eq!(copied_hash, first.content_hash);

    let mut with_arg = request(dir.path(), &repo);
    with_arg.args.insert("GREETING".into(), "other".into());
    let by_arg = rt.build(&with_arg).await.unwrap();
    images.0.push(by_arg.tag.clone());
    assert_ne!(by_arg.tag, first.tag, "an argument changes the tag");
    assert_eq!(run_in(&by_arg.tag, "cat /greeting"), "other\n");

    // An excluded file changes nothing; a copied one changes the tag.
    write(dir.path(), "app/more.log", "x\n");
    assert_eq!(
        rt.build(&request(dir.path(), &repo)).await.unwrap().tag,
        first.tag
    );
    write(dir.path(), "app/keep.txt", "changed\n");
    let by_content = rt.build(&request(dir.path(), &repo)).await.unwrap();
    images.0.push(by_content.tag.clone());
    assert_ne!(
        by_content.tag, first.tag,
        "a file's content changes the tag"
    );
    assert_eq!(run_in(&by_content.tag, "cat /app/keep.txt"), "changed\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_run_reports_its_step_and_output() {
    let Some(rt) = docker_or_skip("a_failing_run_reports_its_step_and_output").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN echo first-line && echo boom-output >&2 && exit 3\n"),
    );
    let req = request(dir.path(), &repository("fails"));
    let err = rt.build(&req).await.unwrap_err();
    let text = err.to_string();
    match &err {
        Error::Build { step, message, .. } => {
            let step = step.as_deref().unwrap_or_default();
            assert!(
                step.contains("Step 2/2") && step.contains("RUN echo"),
                "{step}"
            );
            assert!(message.contains("non-zero code: 3"), "{message}");
            assert!(message.contains("boom-output"), "{message}");
            assert!(message.contains("first-line"), "{message}");
            assert!(!message.contains('\u{1b}'), "no colour codes: {message}");
        }
        other => panic!("expected a build error, got {other}"),
    }
    assert!(text.contains("Step 2/2"), "{text}");
    // Nothing was tagged.
    assert!(
        rt.image_healthcheck(&req.repository)
            .await
            .unwrap()
            .is_none()
    );

    // A Dockerfile outside the context is refused before the engine sees anything.
    let mut outside = request(&dir.path().join("sub"), "x");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    outside.dockerfile = Some("../Dockerfile".into());
    let err = rt.build(&outside).await.unwrap_err();
    assert!(matches!(err, Error::BuildContext { .. }), "{err}");
    assert!(err.to_string().contains("outside the context"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_healthcheck_reads_the_images_healthcheck() {
    let Some(rt) = docker_or_skip("image_healthcheck_reads_the_images_healthcheck").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM {IMAGE}\nHEALTHCHECK --interval=5s --timeout=2s --retries=4 --start-period=1s \
             CMD test -f /tmp/ok\n"
        ),
    );
    let mut images = Images(Vec::new());
    let built = rt
        .build(&request(dir.path(), &repository("health")))
        .await
        .unwrap();
    images.0.push(built.tag.clone());
    let hc = rt
        .image_healthcheck(&built.tag)
        .await
        .unwrap()
        .expect("a healthcheck");
    assert_eq!(hc.test, ["CMD-SHELL", "test -f /tmp/ok"]);
    assert_eq!(hc.interval, Some(Duration::from_secs(5)));
    assert_eq!(hc.timeout, Some(Duration::from_secs(2)));
    assert_eq!(hc.retries, Some(4));
    assert_eq!(hc.start_period, Some(Duration::from_secs(1)));

    // HEALTHCHECK NONE disables the base's check.
    let none = tempfile::tempdir().unwrap();
    write(
        none.path(),
        "Dockerfile",
        &format!("FROM {}\nHEALTHCHECK NONE\n", built.tag),
    );
    let disabled = rt
        .build(&request(none.path(), &repository("health-none")))
        .await
        .unwrap();
    images.0.push(disabled.tag.clone());
    assert_eq!(rt.image_healthcheck(&disabled.tag).await.unwrap(), None);

    assert_eq!(
        rt.image_healthcheck(IMAGE).await.unwrap(),
        None,
        "the plain test image"
    );
    assert_eq!(
        rt.image_healthcheck("ork-build-test-absent:nope")
            .await
            .unwrap(),
        None
    );
    assert!(
        orkestrator_core::runtime::Runtime::engine_id(&rt)
            .await
            .unwrap()
            .is_some_and(|id| !id.is_empty())
    );
    rt.remove_image("ork-build-test-absent:nope").await.unwrap();
}

/// A `docker-registry` started by the test, stopped when dropped.
struct Registry {
    child: Child,
    _storage: tempfile::TempDir,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `GET /v2/` on `addr` answers 200.
fn registry_answers(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn start_registry() -> Registry {
    let storage = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = storage.path().join("config.yml");
    let data = storage.path().join("data");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            data.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(storage.path().join("registry.log")).unwrap();
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut registry = Registry {
        child,
        _storage: storage,
        addr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !registry_answers(&registry.addr) {
        if let Ok(Some(status)) = registry.child.try_wait() {
            let log =
                std::fs::read_to_string(registry._storage.path().join("registry.log")).unwrap();
            panic!("docker-registry exited ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not answer within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    registry
}

#[tokio::test(flavor = "multi_thread")]
async fn push_to_a_registry_and_pull_back() {
    let test = "push_to_a_registry_and_pull_back";
    let Some(rt) = docker_or_skip(test).await else {
        return;
    };
    if !Path::new(REGISTRY_BIN).exists() {
        if required() {
            panic!("{test}: {REGISTRY_BIN} is required (apt-get install docker-registry)");
        }
        skip(test, &format!("no {REGISTRY_BIN}"));
        return;
    }
    let registry = start_registry();

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nCOPY payload /payload\n"),
    );
    write(
        dir.path(),
        "payload",
        &format!("pushed by {}\n", std::process::id()),
    );
    let mut images = Images(Vec::new());
    let built = rt
        .build(&request(dir.path(), &repository("push")))
        .await
        .unwrap();
    images.0.push(built.tag.clone());

    let remote = rt.push(&built.tag, &registry.addr).await.unwrap();
    images.0.push(remote.clone());
    assert_eq!(remote, format!("{}/{}", registry.addr, built.tag));

    // A registry that does not answer: the push fails with the engine's message.
    let closed = format!("127.0.0.1:{}", free_port());
    images.0.push(format!("{closed}/{}", built.tag));
    let Err(err) = rt.push(&built.tag, &closed).await else {
        panic!("a push to a closed port succeeded")
    };
    assert!(matches!(err, Error::Push { .. }), "{err}");
    assert!(err.to_string().contains(&closed), "{err}");

    // Gone locally (both tags), then back from the registry.
    rt.remove_image(&remote).await.unwrap();
    rt.remove_image(&built.tag).await.unwrap();
    rt.remove_image(&built.tag).await.unwrap(); // absent: still fine
    assert_eq!(rt.image_healthcheck(&remote).await.unwrap(), None);
    let present = Command::new("docker")
        .args(["image", "inspect", &remote])
        .output()
        .unwrap();
    assert!(!present.status.success(), "{remote} was removed");

    let docker = rt.client().await.unwrap();
    let mut pull = docker.create_image(
        Some(bollard::query_parameters::CreateImageOptions {
            from_image: Some(remote.clone()),
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(item) = pull.next().await {
        item.unwrap();
    }
    assert_eq!(
        run_in(&remote, "cat /payload"),
        format!("pushed by {}\n", std::process::id())
    );
}
