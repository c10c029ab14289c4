//! `orkestrator compose up|down|convert`: a Compose file run as it is, as one job. `up` builds
//! the images (on the local engine, classic builder), creates or updates the file's secrets,
//! then submits; `down` stops the job and, with `-v`, removes its volumes and those secrets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use base64::Engine as _;
use orkestrator_core::api::{ErrorKind, JobPhase, VolumeRef};
use orkestrator_core::compose::{
    self, BuildPlan, ComposeError, Conversion, ConvertOptions, ImageHealth, LoadOptions, Note,
    Project,
};
use orkestrator_core::ids::JobId;
use orkestrator_core::secrets::{CreateSecret, UpdateSecret};
use orkestrator_core::spec::{Constraint, ConstraintOp, Format, MAX_SPEC_BYTES};
use orkestrator_core::transport::ClientApi;
use orkestrator_runtime::DockerRuntime;
use orkestrator_runtime::build::{BuildRequest, context_tar};

use crate::cli::{
    ComposeCommand, ComposeConvertArgs, ComposeDownArgs, ComposeUpArgs, Output, PrintFormat,
    ProjectArgs,
};
use crate::follow::{Goal, wait};
use crate::output::exit;

/// The worker label that names the engine a worker runs on.
pub const ENGINE_LABEL: &str = "engine.id";

pub async fn run(c: ComposeCommand) -> Result<ExitCode> {
    match c {
        ComposeCommand::Up(a) => up(a, None).await,
        ComposeCommand::Down(a) => down(a).await,
        ComposeCommand::Convert(a) => convert_cmd(a).await,
    }
}

/// The load options of `compose` flags, with the process environment and current directory.
pub(crate) fn load_options(p: &ProjectArgs) -> LoadOptions {
    LoadOptions {
        files: p.files.clone(),
        dir: std::env::current_dir().unwrap_or_else(|_| ".".into()),
        project_name: p.project_name.clone(),
        env_file: p.env_file.clone(),
        profiles: p.profiles.clone(),
        environment: std::env::vars().collect(),
    }
}

/// Prints warnings on standard error.
pub(crate) fn warn_all(notes: &[Note]) {
    for n in notes {
        errln!("warning: {n}");
    }
}

/// Prints why a project cannot run, and gives the exit code (2: the file is at fault).
pub(crate) fn report(e: &ComposeError) -> ExitCode {
    if let ComposeError::Refused { warnings, .. } = e {
        warn_all(warnings);
    }
    errln!("{e}");
    ExitCode::from(exit::USAGE)
}

/// The tag each build would get, computed from its context without building (for `convert`
/// and `validate`).
fn planned_images(plans: &[BuildPlan]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in plans {
        let (_, hash) = context_tar(&request(p))
            .with_context(|| format!("the build context of service {}", p.service))?;
        out.insert(
            p.service.clone(),
            format!("{}:{}", p.repository, &hash[..16.min(hash.len())]),
        );
    }
    Ok(out)
}

fn request(p: &BuildPlan) -> BuildRequest {
    BuildRequest {
        context: p.context.clone(),
        dockerfile: p.dockerfile.clone(),
        target: p.target.clone(),
        args: p.args.clone(),
        repository: p.repository.clone(),
    }
}

/// The `HEALTHCHECK` of the images of services without a `healthcheck`, from the local engine
/// (an image it does not have is left out: the service then has no health check).
async fn image_healthchecks(
    docker: &DockerRuntime,
    project: &Project,
    images: &BTreeMap<String, String>,
) -> BTreeMap<String, ImageHealth> {
    let mut out = BTreeMap::new();
    let Some(services) = project.doc.get("services").and_then(|s| s.as_object()) else {
        return out;
    };
    for (name, s) in services {
        if s.get("healthcheck")
            .is_some_and(|h| h.get("test").is_some())
        {
            continue;
        }
        let image = match images.get(name) {
            Some(i) => i.clone(),
            None => match s.get("image").and_then(|i| i.as_str()) {
                Some(i)
                    if i.rsplit('/').next().is_some_and(|l| l.contains(':')) || i.contains('@') =>
                {
                    i.to_owned()
                }
                Some(i) => format!("{i}:latest"),
                None => continue,
            },
        };
        if let Ok(Some(h)) = docker.image_healthcheck(&image).await {
            out.insert(
                image,
                ImageHealth {
                    interval: h.interval,
                    timeout: h.timeout,
                    retries: h.retries,
                    start_period: h.start_period,
                },
            );
        }
    }
    out
}

/// Reads and converts a project without an engine's help beyond what is at hand: for
/// `convert` and `validate`.
pub(crate) async fn convert_offline(
    opts: &LoadOptions,
    strict: bool,
) -> Result<Result<Conversion, ComposeError>> {
    let project = match compose::load(opts) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let plans = match compose::builds(&project) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let images = planned_images(&plans)?;
    let mut copts = ConvertOptions {
        images,
        strict,
        ..ConvertOptions::default()
    };
    if let Ok(docker) = DockerRuntime::connect()
        && orkestrator_core::runtime::Runtime::ping(&docker)
            .await
            .is_ok()
    {
        copts.image_healthchecks = image_healthchecks(&docker, &project, &copts.images).await;
    }
    Ok(compose::convert(&project, &copts))
}

async fn convert_cmd(a: ComposeConvertArgs) -> Result<ExitCode> {
    let opts = load_options(&a.project);
    match convert_offline(&opts, a.project.strict).await? {
        Ok(c) => {
            warn_all(&c.warnings);
            let f = match a.output {
                PrintFormat::Yaml => Format::Yaml,
                PrintFormat::Toml => Format::Toml,
                PrintFormat::Json => Format::Json,
            };
            crate::output::write_out(format_args!("{}", f.render(&c.job)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(&e)),
    }
}

/// The host volume `orkestrator dev` offers a Compose project's directory as.
pub const DEV_PROJECT_VOLUME: &str = "compose-project";

/// `compose up`; under `orkestrator dev`, `dev_volume` names the host volume its worker offers
/// the project directory as, so that bind mounts of directories under it carry over.
pub(crate) async fn up(a: ComposeUpArgs, dev_volume: Option<String>) -> Result<ExitCode> {
    let opts = load_options(&a.project);
    let project = match compose::load(&opts) {
        Ok(p) => p,
        Err(e) => return Ok(report(&e)),
    };
    let plans = match compose::builds(&project) {
        Ok(p) => p,
        Err(e) => return Ok(report(&e)),
    };
    let table = a.output == Output::Table;

    // Build on the local engine.
    let docker = DockerRuntime::connect().ok();
    let mut images = BTreeMap::new();
    let mut engine = None;
    if !plans.is_empty() {
        let docker = docker
            .as_ref()
            .context("the project builds images, which needs a Docker engine here")?;
        engine = Some(
            orkestrator_core::runtime::Runtime::engine_id(docker)
                .await
                .context("asking the engine its ID")?
                .context(
                    "the engine reported no ID, so the job cannot be tied to it: use --push REGISTRY",
                )?,
        );
        for p in &plans {
            let built = docker
                .build(&request(p))
                .await
                .with_context(|| format!("building service {}", p.service))?;
            let image = match &a.push {
                Some(registry) => {
                    let remote = docker
                        .push(&built.tag, registry)
                        .await
                        .with_context(|| format!("pushing {} to {registry}", built.tag))?;
                    if table {
                        outln!("built {} as {} (pushed as {remote})", p.service, built.tag);
                    }
                    remote
                }
                None => {
                    if table {
                        outln!("built {} as {}", p.service, built.tag);
                    }
                    built.tag
                }
            };
            images.insert(p.service.clone(), image);
        }
    }
    let mut copts = ConvertOptions {
        images,
        strict: a.project.strict,
        dev_host_volume: dev_volume,
        ..ConvertOptions::default()
    };
    if let Some(docker) = &docker {
        copts.image_healthchecks = image_healthchecks(docker, &project, &copts.images).await;
    }
    let conversion = match compose::convert(&project, &copts) {
        Ok(c) => c,
        Err(e) => return Ok(report(&e)),
    };
    warn_all(&conversion.warnings);
    let mut job = conversion.job;
    // Images built here and not pushed exist on this engine only.
    if let Some(id) = engine.filter(|_| a.push.is_none()) {
        if table {
            outln!(
                "the built images are on this engine only: the job runs on its workers ({ENGINE_LABEL}={id}); push them with --push REGISTRY to run elsewhere"
            );
        }
        let c = Constraint {
            label: ENGINE_LABEL.into(),
            op: ConstraintOp::Equals(id),
        };
        if !job.constraints.contains(&c) {
            job.constraints.push(c);
        }
    }
    let sent = serde_json::to_vec(&job)?.len();
    if sent > MAX_SPEC_BYTES {
        errln!(
            "the job is {sent} bytes as sent, with the content of its files; the manager takes at most {MAX_SPEC_BYTES}: carry big files in the image (build:) instead"
        );
        return Ok(ExitCode::from(exit::USAGE));
    }

    let client = crate::connect::client(&a.addr)?;
    for s in &conversion.secrets {
        match &s.content {
            None => {
                if secret_version(&client, &s.name).await?.is_none() {
                    errln!(
                        "secrets.{}: the external secret {} does not exist: create it with `orkestrator secret create {}`",
                        s.compose_name,
                        s.name,
                        s.name
                    );
                    return Ok(ExitCode::from(exit::REFUSED));
                }
            }
            Some(value) => {
                let value_base64 = base64::engine::general_purpose::STANDARD.encode(value);
                let req = CreateSecret {
                    name: s.name.clone(),
                    value_base64: value_base64.clone(),
                };
                match client.create_secret(&req).await {
                    Ok(info) => {
                        if table {
                            outln!("created secret {} (version {})", info.name, info.version);
                        }
                    }
                    Err(orkestrator_core::Error::Api(e)) if e.kind == ErrorKind::Conflict => {
                        let before = secret_version(&client, &s.name).await?;
                        let info = client
                            .update_secret(&s.name, &UpdateSecret { value_base64 })
                            .await?;
                        if table && Some(info.version) != before {
                            outln!("updated secret {} (version {})", info.name, info.version);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    let r = client.submit_job(&job).await?;
    if a.output == Output::Json && !a.wait {
        crate::output::print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = super::run::outcome(r.outcome);
    if table {
        outln!(
            "project {} {what} as job {} (version {})",
            project.name,
            r.job,
            r.version
        );
    }
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait(&client, &r.job, r.index, Goal::Running, a.timeout, a.output).await
}

/// The latest version of secret `name`, if it exists.
async fn secret_version(
    client: &orkestrator_runtime::HttpTransport,
    name: &str,
) -> Result<Option<u64>> {
    Ok(client
        .list_secrets()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.version))
}

/// The project's name for `down`: from the file when there is one, else from `-p`,
/// `COMPOSE_PROJECT_NAME` or the directory, as `up` names it.
fn down_project(a: &ComposeDownArgs) -> Result<(String, Option<Project>), ComposeError> {
    let opts = load_options(&a.project);
    match compose::load(&opts) {
        Ok(p) => Ok((p.name.clone(), Some(p))),
        Err(ComposeError::NoFile { dir }) => {
            let raw = a
                .project
                .project_name
                .clone()
                .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok())
                .or_else(|| dir_name(&opts.dir))
                .unwrap_or_default();
            let name = compose::dns_label(&raw);
            if name.is_empty() {
                return Err(ComposeError::NoFile { dir });
            }
            Ok((name, None))
        }
        Err(e) => Err(e),
    }
}

fn dir_name(dir: &Path) -> Option<String> {
    std::fs::canonicalize(dir)
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

async fn down(a: ComposeDownArgs) -> Result<ExitCode> {
    let (name, project) = match down_project(&a) {
        Ok(p) => p,
        Err(e) => return Ok(report(&e)),
    };
    let client = crate::connect::client(&a.addr)?;
    let id = JobId::new(name.clone());
    let view = match client.get_job(&id).await {
        Ok(v) => Some(v),
        Err(orkestrator_core::Error::Api(e)) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    match &view {
        None => outln!("no job {name}: nothing to stop"),
        Some(v) => {
            // A failed or completed job may still have containers (a failed task's siblings):
            // stopping it stops them; a stopped one answers as it is.
            let v = if v.phase == JobPhase::Stopped {
                v.clone()
            } else {
                client.stop_job(&id).await?
            };
            let code = wait(
                &client,
                &id,
                v.index,
                Goal::Stopped,
                a.timeout,
                Output::Table,
            )
            .await?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
        }
    }
    if !a.volumes {
        return Ok(ExitCode::SUCCESS);
    }

    // Volumes: every record of the job's (retained ones outlive the job).
    let list = client.list_volumes(Some(&name)).await?;
    for v in &list.volumes {
        if v.state == "removing" {
            continue;
        }
        let of = VolumeRef {
            job: v.job.clone(),
            index: v.index,
            volume: v.volume.clone(),
        };
        match client.remove_volume(&of, Some(v.worker.as_str())).await {
            Ok(_) => outln!("removing volume {of} ({})", v.name),
            Err(e) => errln!("volume {of}: {e}"),
        }
    }

    // The stopped job pins the secrets' versions: collect it, so that they can go.
    if view.is_some() {
        match client.gc_job(&name).await {
            Ok(_) => {}
            Err(orkestrator_core::Error::Api(e)) if e.kind == ErrorKind::NotFound => {}
            Err(e) => errln!("job {name}: {e}"),
        }
    }

    // Secrets `up` created: the project's, named PROJECT_SECRET.
    let mut secrets: Vec<String> = Vec::new();
    if let Some(v) = &view {
        secrets.extend(
            v.spec
                .secret_names()
                .into_iter()
                .filter(|s| s.starts_with(&format!("{name}_")))
                .map(str::to_owned),
        );
    }
    if let Some(p) = &project
        && let Some(decl) = p.doc.get("secrets").and_then(|s| s.as_object())
    {
        for (key, d) in decl {
            if d.get("external") != Some(&serde_json::Value::Bool(true)) {
                secrets.push(compose::secret_name(&name, key));
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    for s in secrets {
        match client.remove_secret(&s).await {
            Ok(_) => outln!("removed secret {s}"),
            Err(orkestrator_core::Error::Api(e)) if e.kind == ErrorKind::NotFound => {}
            Err(e) => errln!("secret {s}: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` is a Compose file rather than a job file: by its name, or by its content.
pub(crate) fn is_compose_file(path: &Path) -> bool {
    let named = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        compose::DEFAULT_FILES.contains(&n)
            || n.ends_with(".override.yaml")
            || n.ends_with(".override.yml")
    });
    named
        || std::fs::read_to_string(path)
            .map(|t| compose::looks_like_compose(&t))
            .unwrap_or(false)
}
