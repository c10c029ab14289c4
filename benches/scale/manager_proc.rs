//! The manager under test as a child process (`orkestrator server`), and what `/proc` says about
//! it and about the generator itself.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::wait_healthy;

/// How to start managers: the binary, where their data directories go, extra flags.
#[derive(Clone)]
pub struct Launcher {
    /// The release `orkestrator` binary.
    pub bin: PathBuf,
    /// Parent of every data directory made for a run.
    pub data_root: PathBuf,
    /// Flags added to every `orkestrator server` command line.
    pub extra_args: Vec<String>,
    /// How long a start may take until `GET /v1/health` answers.
    pub start_deadline: Duration,
}

impl Launcher {
    /// Finds the binary: `explicit` (the option or `ORKESTRATOR_BIN`), else `orkestrator` next to
    /// this program (both live in `target/release`).
    pub fn find_bin(explicit: Option<PathBuf>) -> Result<PathBuf> {
        let bin = match explicit {
            Some(p) => p,
            None => std::env::current_exe()
                .context("cannot locate this program")?
                .with_file_name("orkestrator"),
        };
        if !bin.is_file() {
            bail!(
                "no manager binary at {}: build it with `cargo build --release -p orkestrator-bin`, \
                 or name one with --orkestrator-bin / ORKESTRATOR_BIN",
                bin.display()
            );
        }
        Ok(bin)
    }

    /// A fresh, empty data directory under the data root (removed when dropped).
    pub fn data_dir(&self) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.data_root)?;
        tempfile::Builder::new()
            .prefix("orkestrator-scale-")
            .tempdir_in(&self.data_root)
            .with_context(|| {
                format!(
                    "cannot make a data directory in {}",
                    self.data_root.display()
                )
            })
    }

    /// Starts `orkestrator server` on a free loopback port with `data_dir`, plus `args`, and waits
    /// until it answers `GET /v1/health`.
    pub async fn start(&self, data_dir: &Path, args: &[&str]) -> Result<ManagerProc> {
        let port = free_port()?;
        self.start_on(data_dir, port, args).await
    }

    /// As [`Launcher::start`], on a given port (a restart reuses the port of the killed manager).
    pub async fn start_on(&self, data_dir: &Path, port: u16, args: &[&str]) -> Result<ManagerProc> {
        let proc = self.spawn(data_dir, port, args)?;
        if let Err(e) = wait_healthy(proc.addr, self.start_deadline).await {
            return Err(e.context(proc.log_tail()));
        }
        Ok(proc)
    }

    /// Spawns the manager without waiting for it.
    pub fn spawn(&self, data_dir: &Path, port: u16, args: &[&str]) -> Result<ManagerProc> {
        let log_path = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if std::env::var_os("ORKESTRATOR_LOG").is_none() {
            cmd.env("ORKESTRATOR_LOG", "warn");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        Ok(ManagerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path,
            killed: false,
        })
    }
}

/// A free loopback port (bound and released: the manager binds it a moment later).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running manager.
pub struct ManagerProc {
    child: Child,
    /// Where its API listens.
    pub addr: SocketAddr,
    log_path: PathBuf,
    killed: bool,
}

impl ManagerProc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now (`VmRSS`).
    pub fn rss(&self) -> Result<u64> {
        status_bytes(self.pid(), "VmRSS:")
    }

    /// Peak resident memory so far (`VmHWM`).
    pub fn peak_rss(&self) -> Result<u64> {
        status_bytes(self.pid(), "VmHWM:")
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> Result<Duration> {
        cpu_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        self.killed = true;
        self.child.kill().context("kill -9 the manager")?;
        self.child.wait()?;
        Ok(())
    }

    /// Whether it has exited (then with what status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("manager log {}:\n{tail}", self.log_path.display())
    }

    /// Waits until its CPU use falls under `max_share` of one core over 250 ms twice in a row
    /// (it has finished absorbing what it was sent), or `deadline` passes. Returns how long it took.
    pub async fn settle(&self, max_share: f64, deadline: Duration) -> Result<Duration> {
        let start = Instant::now();
        let step = Duration::from_millis(250);
        let mut quiet = 0;
        let mut last = self.cpu()?;
        while start.elapsed() < deadline {
            tokio::time::sleep(step).await;
            let now = self.cpu()?;
            let share = (now - last).as_secs_f64() / step.as_secs_f64();
            last = now;
            quiet = if share <= max_share { quiet + 1 } else { 0 };
            if quiet >= 2 {
                return Ok(start.elapsed());
            }
        }
        eprintln!("scale: the manager was still busy after {deadline:?}; going on");
        Ok(start.elapsed())
    }
}

impl Drop for ManagerProc {
    /// Kills the manager if it still runs and removes its log; a manager that exited on its own
    /// keeps its log, and its path is printed.
    fn drop(&mut self) {
        match self.exited() {
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let _ = std::fs::remove_file(&self.log_path);
            }
            Some(_) if self.killed => {}
            Some(status) => eprintln!(
                "scale: the manager exited by itself ({status}); its log is {}",
                self.log_path.display()
            ),
        }
    }
}

/// The generator's own CPU time so far (user + system).
pub fn self_cpu() -> Result<Duration> {
    cpu_of("/proc/self/stat")
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

fn cpu_of(stat_path: &str) -> Result<Duration> {
    let text = std::fs::read_to_string(stat_path).with_context(|| format!("read {stat_path}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("short stat")?
            .parse::<u64>()
            .context("stat field")? as f64)
    };
    let total = ticks(14 - 3)? + ticks(15 - 3)?;
    Ok(Duration::from_secs_f64(total / clock_ticks()))
}

fn status_bytes(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("{path} has no {key}"))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{path}: {line}"))?;
    Ok(kib * 1024)
}

/// The total size of the files under `dir` (the store's footprint on disk).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        assert!(self_cpu().is_ok());
        assert!(status_bytes(std::process::id(), "VmRSS:").unwrap() > 0);
    }
}
