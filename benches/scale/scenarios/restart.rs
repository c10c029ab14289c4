//! `restart`: a manager with many tasks in its store and workers heartbeating is killed with
//! SIGKILL and started again on the same data directory and port. Timed: until the first write
//! is acknowledged (a submission answered 2xx). Checked: no worker is Down afterwards.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hyper::Method;
use serde_json::{Value, json};

use super::Managed;
use crate::client::{Conn, list_all};
use crate::load::{job_body, preload};
use crate::manager_proc::Launcher;
use crate::report::{Report, Table, count, dur};
use crate::sim::{Fleet, FleetConfig, Size};

/// The restart scenario.
pub struct Restart {
    /// Pending tasks pre-loaded.
    pub tasks: u64,
    /// Workers heartbeating through the restart (they offer too little to take any task).
    pub workers: usize,
    /// Connections shared by the heartbeats.
    pub heartbeat_conns: usize,
    /// Connections used to pre-load and to register.
    pub preload_conns: usize,
    /// Whether to check the floor (≤ 10 s).
    pub floors: bool,
}

/// How often the first write is tried.
const POLL: Duration = Duration::from_millis(10);

/// Workers by liveness, from `GET /v1/workers`.
async fn liveness(conn: &mut Conn) -> Result<(u64, u64, u64)> {
    let (mut ready, mut down, mut other) = (0, 0, 0);
    for w in list_all(conn, "/v1/workers").await? {
        match w.get("status").and_then(Value::as_str) {
            Some("Ready") => ready += 1,
            Some("Down") => down += 1,
            _ => other += 1,
        }
    }
    Ok((ready, down, other))
}

impl Restart {
    /// Runs it.
    pub async fn run(&self, launcher: &Launcher) -> Result<Report> {
        let mut report = Report::new("restart");
        let mut m = Managed::start(launcher, &[]).await?;
        let addr = m.proc.addr;
        let p = preload(&m.api, self.tasks, self.preload_conns, "rs").await?;
        let mut fleet = Fleet::new(
            &m.api,
            FleetConfig {
                workers: self.workers,
                prefix: "rw".into(),
                size: Size::Tiny,
                heartbeat_conns: self.heartbeat_conns.min(self.workers.max(1)),
                interval: Duration::from_secs(1),
                tolerant: true,
            },
        );
        fleet.start_heartbeats();
        fleet.register_all(self.preload_conns).await?;
        m.proc.settle(0.25, Duration::from_secs(120)).await?;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let mut conn = m.api.open().await?;
        let (ready0, down0, _) = liveness(&mut conn).await?;
        if down0 > 0 {
            bail!("{down0} workers were already Down before the kill");
        }
        let store = crate::manager_proc::dir_size(m.dir.path());
        fleet.reset_max_gap();
        let before = fleet.stats();

        let killed = Instant::now();
        m.proc.kill9()?;
        let restarted = Instant::now();
        m.proc = launcher.spawn(m.dir.path(), addr.port(), &[])?;
        // The restarted manager keeps the tokens of its data directory: the same operator token
        // and worker credentials work on.
        let mut writer = m.api.conn();
        let mut attempts = 0u64;
        let acked = loop {
            if let Some(status) = m.proc.exited() {
                bail!(
                    "the restarted manager exited ({status})\n{}",
                    m.proc.log_tail()
                );
            }
            if restarted.elapsed() > launcher.start_deadline {
                bail!(
                    "no write acknowledged within {:?} of the restart\n{}",
                    launcher.start_deadline,
                    m.proc.log_tail()
                );
            }
            attempts += 1;
            let name = format!("after-restart-{attempts}");
            match writer
                .call(Method::POST, "/v1/jobs", Some(job_body(&name, 1)))
                .await
            {
                Ok(a) if a.ok() => break Instant::now(),
                Ok(a) => bail!(
                    "POST /v1/jobs ({name}) after the restart answered {}: {}",
                    a.status,
                    a.body_text()
                ),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        let from_start = acked - restarted;
        let from_kill = acked - killed;
        let mut conn = m.api.open().await?;
        let (ready_at_ack, down_at_ack, _) = liveness(&mut conn).await?;
        // Past the heartbeat grace (3 s by default): a worker the restart lost would be Down now.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (ready, down, other) = liveness(&mut conn).await?;
        let after = fleet.stats();
        drop(fleet);

        let mut t = Table::new(
            "Restart after kill -9 (same data directory and port)",
            &[
                "tasks in store",
                "workers",
                "store on disk",
                "first write acked (from start)",
                "(from kill)",
                "workers Down at ack / 4 s later",
                "longest heartbeat gap",
            ],
        );
        t.row(vec![
            count(p.tasks),
            count(self.workers as u64),
            crate::report::bytes(store as f64),
            dur(from_start),
            dur(from_kill),
            format!("{down_at_ack} / {down}"),
            dur(after.max_gap),
        ]);
        report.tables.push(t);
        report.notes.push(format!(
            "before the kill: {ready0} Ready; at the first ack: {ready_at_ack} Ready; 4 s later: \
             {ready} Ready, {down} Down, {other} other. Heartbeats without answer during the \
             restart: {}; re-registrations after a 404: {}; write attempts: {attempts} (every {:?})",
            after.heartbeat_errors - before.heartbeat_errors,
            after.reregistrations - before.reregistrations,
            POLL,
        ));
        if self.floors {
            report.check(
                "first acknowledged write after kill -9",
                dur(from_start),
                "≤ 10 s",
                from_start <= Duration::from_secs(10),
            );
        }
        report.check(
            "workers Down after the restart",
            down.to_string(),
            "0",
            down == 0 && ready as usize + other as usize >= self.workers,
        );
        report.set(
            "result",
            json!({
                "tasks": p.tasks,
                "workers": self.workers,
                "store_bytes": store,
                "first_ack_from_start_ms": from_start.as_millis() as u64,
                "first_ack_from_kill_ms": from_kill.as_millis() as u64,
                "attempts": attempts,
                "down_at_ack": down_at_ack,
                "down_after_4s": down,
                "ready_after_4s": ready,
                "fleet": after.json(),
            }),
        );
        Ok(report)
    }
}
