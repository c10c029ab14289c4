//! `orkestrator health [-o json]`: the manager's summary (counts by state), the schedulers, and
//! the workers and jobs that need attention. Exits 1 when a worker or scheduler is not ready
//! (with `-o json` too).

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::api::Liveness;
use orkestrator_core::transport::ClientApi;

use crate::cli::{Output, OutputArgs};
use crate::output::{Paint, Table};

fn counts<K: std::fmt::Display>(m: &std::collections::BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(a: OutputArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let h = client.health().await?;
    let all_ready =
        h.unready_workers.is_empty() && h.schedulers.iter().all(|s| s.status == Liveness::Ready);
    let code = if all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::output::exit::FAILED)
    };
    if a.output == Output::Json {
        crate::output::print_json(&h)?;
        return Ok(code);
    }
    let color = crate::output::color();
    let mut t = Table::bare();
    t.painted_row(vec![
        ("manager".into(), Paint::Plain),
        ("".into(), Paint::Plain),
        (
            h.manager.status.to_string(),
            Paint::for_state(&h.manager.status.to_string()),
        ),
        (
            format!(
                "version {}, index {}, store commit p50 {}us p99 {}us",
                h.manager.version,
                h.manager.index,
                h.manager.store.commit_p50_us,
                h.manager.store.commit_p99_us
            ),
            Paint::Plain,
        ),
    ]);
    for s in &h.schedulers {
        t.painted_row(vec![
            ("scheduler".into(), Paint::Plain),
            (s.id.to_string(), Paint::Plain),
            (
                s.status.to_string(),
                Paint::for_state(&s.status.to_string()),
            ),
            (
                format!(
                    "{}, seen {}",
                    s.algorithm,
                    crate::output::ago(s.last_seen_ms_ago)
                ),
                Paint::Plain,
            ),
        ]);
    }
    for w in &h.unready_workers {
        t.painted_row(vec![
            ("worker".into(), Paint::Plain),
            (w.id.to_string(), Paint::Plain),
            (
                w.status.to_string(),
                Paint::for_state(&w.status.to_string()),
            ),
            (w.message.clone().unwrap_or_default(), Paint::Plain),
        ]);
    }
    for j in &h.failing_jobs {
        t.painted_row(vec![
            ("job".into(), Paint::Plain),
            (j.name.to_string(), Paint::Plain),
            (j.phase.to_string(), Paint::for_state(&j.phase.to_string())),
            (j.reason.clone().unwrap_or_default(), Paint::Plain),
        ]);
    }
    for line in t.render(color) {
        outln!("{line}");
    }
    let mut totals = Table::bare();
    totals.row(vec!["workers".into(), counts(&h.workers)]);
    totals.row(vec!["jobs".into(), counts(&h.jobs)]);
    totals.row(vec!["tasks".into(), counts(&h.tasks)]);
    totals.print()?;
    Ok(code)
}
