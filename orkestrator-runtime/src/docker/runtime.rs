//! [`Runtime`] over the Docker Engine API.

use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use orkestrator_core::error::{Error, Result, RuntimeErrorKind};
use orkestrator_core::runtime::{
    ContainerInfo, ContainerSpec, ContainerStats, LogOptions, LogStream, NetworkInfo, NetworkSpec,
    Runtime, VolumeInfo, VolumeSpec,
};
use orkestrator_core::spec::Probe;

use super::client::{DockerRuntime, label_filters};
use super::error::{engine_text, image_hint, is_connection_error, is_status};
use super::inspect::{container_info, container_stats};
use super::probe::http_probe;
use super::spec::{create_body, pull_reference};

/// Extra time allowed to a stop request beyond its grace period.
const STOP_SLACK: Duration = Duration::from_secs(30);

#[async_trait]
impl Runtime for DockerRuntime {
    async fn create_network(&self, spec: &NetworkSpec) -> Result<String> {
        self.make_network(spec).await
    }

    async fn remove_network(&self, id: &str) -> Result<()> {
        self.drop_network(id).await
    }

    async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkInfo>> {
        self.networks(labels).await
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<VolumeInfo> {
        self.make_volume(spec).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.drop_volume(name).await
    }

    async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<VolumeInfo>> {
        self.volumes(labels).await
    }

    async fn ping(&self) -> Result<()> {
        let docker = self.client().await?;
        docker
            .ping()
            .await
            .map(drop)
            .map_err(|e| self.error(e, "ping the engine"))
    }

    async fn engine_id(&self) -> Result<Option<String>> {
        let docker = self.client().await?;
        let info = docker
            .info()
            .await
            .map_err(|e| self.error(e, "read the engine's info"))?;
        Ok(info.id.filter(|id| !id.trim().is_empty()))
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        let docker = self.client().await?;
        match docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(self.error(e, &format!("inspect image {image}"))),
        }

        tracing::info!(image, "image not present locally; pulling");
        let options = CreateImageOptions {
            from_image: Some(pull_reference(image)),
            ..Default::default()
        };
        let mut pull = docker.create_image(Some(options), None, None);
        let mut failure = None;
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                failure = Some(e);
                break;
            }
        }
        let Some(e) = failure else {
            return Ok(());
        };
        if is_connection_error(&e) {
            return Err(self.error(e, &format!("pull {image}")));
        }
        Err(Error::runtime(
            RuntimeErrorKind::ImageNotFound,
            format!(
                "image {image} is not present locally and could not be pulled ({}); {}",
                engine_text(&e),
                image_hint(image)
            ),
        ))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let docker = self.client().await?;
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match docker
            .create_container(Some(options), create_body(spec))
            .await
        {
            Ok(created) => {
                for warning in &created.warnings {
                    tracing::warn!(container = %spec.name, "engine warning: {warning}");
                }
                Ok(created.id)
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.to_ascii_lowercase().contains("no such image") => Err(Error::runtime(
                RuntimeErrorKind::ImageNotFound,
                format!(
                    "image {} is not present locally: {}; {}",
                    spec.image,
                    message.trim(),
                    image_hint(&spec.image)
                ),
            )),
            Err(e) => Err(self.error(e, &format!("create container {}", spec.name))),
        }
    }

    async fn start(&self, id: &str) -> Result<()> {
        let docker = self.client().await?;
        docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error(e, &format!("start container {id}")))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        // The engine counts in whole seconds; round up so the container gets at least `grace`.
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let options = StopContainerOptions {
            t: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
            signal: None,
        };
        // The engine answers only once the container is gone: give the request time for that.
        let docker = self.client().await?;
        let needed = grace + STOP_SLACK;
        let result = if docker.timeout() < needed {
            docker
                .clone()
                .with_timeout(needed)
                .stop_container(id, Some(options))
                .await
        } else {
            docker.stop_container(id, Some(options)).await
        };
        // 304 (already stopped) is a success for bollard.
        result.map_err(|e| self.error(e, &format!("stop container {id}")))
    }

    async fn probe(
        &self,
        id: &str,
        probe: &Probe,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        let run = async {
            match probe {
                Probe::Http { port, path } => {
                    let ip = self.container_ip(id).await?;
                    http_probe(&ip, *port, path).await
                }
                Probe::Tcp { port } => {
                    let ip = self.container_ip(id).await?;
                    tokio::net::TcpStream::connect((ip.as_str(), *port))
                        .await
                        .map(drop)
                        .map_err(|e| format!("tcp {ip}:{port}: {e}"))
                }
                Probe::Exec(cmd) => self.exec_probe(id, cmd).await,
                // The engine runs it: its verdict is read with `inspect` (`ContainerInfo::health`).
                Probe::Image => Err(
                    "the image's HEALTHCHECK is run by the engine: read its status with inspect"
                        .to_owned(),
                ),
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("{probe}: no answer within {timeout:?}")),
        }
    }

    async fn wait(&self, id: &str) -> Result<()> {
        use futures_util::StreamExt;
        let docker = self.client().await?;
        let options = bollard::query_parameters::WaitContainerOptions {
            condition: "not-running".into(),
        };
        // The engine answers when the container stops; a non-zero exit comes back as an error,
        // and so does the request timeout: either way the caller re-checks the state.
        let mut stream = docker.wait_container(id, Some(options));
        match stream.next().await {
            Some(Err(e)) if is_status(&e, 404) => Ok(()),
            Some(Err(BollardError::RequestTimeoutError)) => Ok(()),
            Some(Err(BollardError::DockerContainerWaitError { .. })) => Ok(()),
            Some(Err(e)) => Err(self.error(e, &format!("wait for container {id}"))),
            _ => Ok(()),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let docker = self.client().await?;
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(self.error(e, &format!("remove container {id}"))),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let docker = self.client().await?;
        let r = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(e, &format!("inspect container {id}")))?;
        Ok(container_info(r, id))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let docker = self.client().await?;
        let filters = label_filters(labels);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let summaries = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(e, "list containers"))?;

        // The summary has no exit code or error: inspect each one (a container removed in
        // between is simply left out).
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected = futures_util::future::join_all(ids.iter().map(|id| self.inspect(id))).await;
        let mut out = Vec::with_capacity(ids.len());
        for r in inspected {
            match r {
                Ok(info) => out.push(info),
                Err(Error::Runtime {
                    kind: RuntimeErrorKind::NotFound,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let docker = self.client().await?;
        // One-shot (API 1.41): one read of the cgroup, answered at once. Without it the engine
        // waits for a second sample about a second later, only to compute a CPU figure that the
        // worker computes itself from consecutive `cpu_seconds_total` readings (see
        // BENCHMARKS.md, "Worker metrics sampling"). So `cpu_cores` is 0 here.
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = docker.stats(id, Some(options));
        match stream.next().await {
            Some(Ok(sample)) => Ok(container_stats(&sample)),
            Some(Err(e)) => Err(self.error(e, &format!("read stats of container {id}"))),
            None => Err(Error::runtime(
                RuntimeErrorKind::Other,
                format!("cannot read stats of container {id}: the engine sent none"),
            )),
        }
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String> {
        let docker = self.client().await?;
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let mut stream = docker.logs(id, Some(options));
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| self.error(e, &format!("read logs of container {id}")))?;
            bytes.extend_from_slice(chunk.as_ref());
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The engine's log stream (`follow` ends when the container stops). Without a tail, all of
    /// the output; `since` is whole seconds, as the engine takes it.
    async fn stream_logs(&self, id: &str, options: &LogOptions) -> Result<LogStream> {
        let docker = self.client().await?;
        // Ask once, so that an unknown container is an error now rather than inside the stream.
        docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(e, &format!("read logs of container {id}")))?;
        let since = options
            .since
            .map_or(0, |s| s.clamp(0, i64::from(i32::MAX)) as i32);
        let bollard_options = LogsOptions {
            stdout: true,
            stderr: true,
            follow: options.follow,
            since,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let me = self.clone();
        let id = id.to_owned();
        let stream = docker.logs(&id, Some(bollard_options)).map(move |chunk| {
            chunk
                .map(|c| c.into_bytes().to_vec())
                .map_err(|e| me.error(e, &format!("read logs of container {id}")))
        });
        Ok(Box::pin(stream))
    }
}
