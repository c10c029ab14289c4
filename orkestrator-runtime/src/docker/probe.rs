//! Health checks run against a container: a command inside it, or an HTTP GET to its address.

use std::time::Duration;

use super::client::DockerRuntime;

impl DockerRuntime {
    /// The container's address on its Docker network.
    pub(super) async fn container_ip(&self, id: &str) -> std::result::Result<String, String> {
        let docker = self.client().await.map_err(|e| e.to_string())?;
        let r = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| format!("inspect {id}: {e}"))?;
        r.network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| {
                nets.into_values()
                    .filter_map(|e| e.ip_address)
                    .find(|ip| !ip.is_empty())
            })
            .ok_or_else(|| {
                format!("container {id} has no network address (network mode host or none?)")
            })
    }

    /// Runs `cmd` in the container; healthy when it exits 0.
    pub(super) async fn exec_probe(
        &self,
        id: &str,
        cmd: &[String],
    ) -> std::result::Result<(), String> {
        let docker = self.client().await.map_err(|e| e.to_string())?;
        // Attached: the output stream ends when the command does, so its end is known at once
        // (no polling); the output itself is not kept.
        let config = bollard::models::ExecConfig {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = docker
            .create_exec(id, config)
            .await
            .map_err(|e| format!("exec in {id}: {e}"))?;
        let started = docker
            .start_exec(&exec.id, None::<bollard::exec::StartExecOptions>)
            .await
            .map_err(|e| format!("exec in {id}: {e}"))?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
            use futures_util::StreamExt;
            while let Some(chunk) = output.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        }
        loop {
            let r = docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| format!("exec in {id}: {e}"))?;
            if r.running != Some(true) {
                return match r.exit_code {
                    Some(0) => Ok(()),
                    Some(code) => Err(format!("`{}` exited with code {code}", cmd.join(" "))),
                    None => Err(format!("`{}` did not report an exit code", cmd.join(" "))),
                };
            }
            // The stream ended early (a broken connection): wait for the exit the slow way.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An HTTP/1.0 GET: healthy on a 2xx or 3xx status.
pub(super) async fn http_probe(ip: &str, port: u16, path: &str) -> std::result::Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let what = format!("http://{ip}:{port}{path}");
    let mut s = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: orkestrator-health\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < 12 {
        match s
            .read(&mut buf[n..])
            .await
            .map_err(|e| format!("{what}: {e}"))?
        {
            0 => break,
            k => n += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let code: Option<u16> = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match code {
        Some(c) if (200..400).contains(&c) => Ok(()),
        Some(c) => Err(format!("{what} answered {c}")),
        None => Err(format!("{what}: not an HTTP answer")),
    }
}
