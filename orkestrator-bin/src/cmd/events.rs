//! `orkestrator events [--job J] [--topic T,...] [--key K] [--from-index N|N.S] [-o json]`:
//! follows the manager's event stream until Ctrl-C. A dropped connection is resumed after the
//! last event seen, so nothing is missed or repeated, after a pause that grows (100 ms, doubling,
//! at most 5 s) while connections bring nothing (see [`Backoff`]).

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use futures_util::StreamExt;
use orkestrator_core::events::{
    Event, EventFilter, EventKind, Reset, StreamItem, StreamStart, Topic,
};
use orkestrator_core::transport::Transport;
use serde_json::json;

use crate::cli::{EventsArgs, Output};
use crate::follow::Backoff;
use crate::output::Paint;

pub async fn run(a: EventsArgs) -> Result<ExitCode> {
    let client = crate::connect::client(&a.addr)?;
    let mut filter = EventFilter {
        topics: a.topics.clone(),
        key: a.key.clone(),
    };
    if let Some(job) = &a.job {
        filter.key = Some(job.clone());
        if filter.topics.is_empty() {
            filter.topics = vec![Topic::Job, Topic::Task];
        }
    }
    let start = a.from_index.unwrap_or_default();
    tokio::select! {
        r = follow(&client, start, &filter, a.output) => r,
        _ = crate::signals::shutdown_signal() => Ok(ExitCode::SUCCESS),
    }
}

/// Prints items from `start` on, reconnecting when the stream ends or breaks, after the last item
/// seen (bookmarks included). The first connection's error is the command's; later ones are
/// retried (with a note on standard error). One [`Backoff`] paces every reconnection and is reset
/// only by an item, so a stream that opens and ends at once is not reopened in a tight loop.
async fn follow(
    client: &impl Transport,
    mut start: StreamStart,
    filter: &EventFilter,
    output: Output,
) -> Result<ExitCode> {
    let color = crate::output::color();
    // Every stream opens with a bookmark of where it starts, so even one that breaks before any
    // event resumes exactly there.
    let mut stream = client.events(start, filter).await?;
    let mut backoff = Backoff::default();
    loop {
        while let Some(item) = stream.next().await {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    tracing::debug!(error = %e, "event stream broke");
                    break;
                }
            };
            start = StreamStart::After(item.position());
            // A bookmark is only where to resume from: nothing to show (and, coming first on
            // every stream, no sign that the stream works).
            if matches!(item, StreamItem::Bookmark(_)) {
                continue;
            }
            backoff.reset();
            match output {
                Output::Json => crate::output::print_json_line(&json_item(&item))?,
                Output::Table => outln!("{}", human(&item, color)),
            }
        }
        stream = reconnect(client, start, filter, &mut backoff).await;
    }
}

/// Opens the stream again at `start`, pausing as `backoff` says before each try (the stream just
/// ended, and may end at once again), until it opens.
async fn reconnect(
    client: &impl Transport,
    start: StreamStart,
    filter: &EventFilter,
    backoff: &mut Backoff,
) -> orkestrator_core::transport::EventStream {
    let mut told = false;
    loop {
        tokio::time::sleep(backoff.pause()).await;
        match client.events(start, filter).await {
            Ok(s) => {
                if told {
                    errln!("reconnected");
                }
                return s;
            }
            Err(e) => {
                if !told {
                    errln!("event stream lost ({e}); reconnecting");
                    told = true;
                }
            }
        }
    }
}

/// An item as one JSON object: an event as the manager sends it, with its `id`; a reset with
/// `"type": "reset"`.
pub fn json_item(item: &StreamItem) -> serde_json::Value {
    match item {
        StreamItem::Event(e) => {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), json!(e.id()));
            }
            v
        }
        StreamItem::Reset(r) => {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("type".into(), json!("reset"));
            }
            v
        }
        StreamItem::Bookmark(b) => json!({"type": "bookmark", "index": b.index, "seq": b.seq}),
    }
}

/// `2024-05-01T12:00:00.123Z` for milliseconds since the epoch.
fn time(ms: u64) -> String {
    // Year 9999 at most: humantime formats four-digit years.
    let t = UNIX_EPOCH + Duration::from_millis(ms.min(253_402_300_799_000));
    humantime::format_rfc3339_millis(t).to_string()
}

/// An item as one line: time, id, type, key, details.
pub fn human(item: &StreamItem, color: bool) -> String {
    match item {
        StreamItem::Event(e) => event_line(e, color),
        StreamItem::Reset(r) => reset_line(r, color),
        StreamItem::Bookmark(b) => format!("(bookmark {})", b.position()),
    }
}

fn event_line(e: &Event, color: bool) -> String {
    let (details, paint) = details(&e.kind);
    format!(
        "{}  {:<9} {:<22} {:<20} {}",
        time(e.at),
        e.id(),
        e.kind.name(),
        e.kind.key().unwrap_or("-"),
        paint.apply(&details, color)
    )
    .trim_end()
    .to_owned()
}

fn reset_line(r: &Reset, color: bool) -> String {
    Paint::Yellow.apply(
        &format!(
            "reset: events were missed; the stream goes on {}: {}",
            r.position().resume(),
            r.message
        ),
        color,
    )
}

/// What an event says beyond its type and key, and the colour for it.
fn details(k: &EventKind) -> (String, Paint) {
    let why = |r: &Option<String>| r.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
    match k {
        EventKind::JobSubmitted { version, .. } | EventKind::JobUpdated { version, .. } => {
            (format!("version {version}"), Paint::Plain)
        }
        EventKind::InstancePlaced {
            instance,
            worker,
            scheduler,
            ..
        } => (
            format!("instance {instance} on worker {worker} (by {scheduler})"),
            Paint::Plain,
        ),
        EventKind::InstanceUnschedulable {
            instance, reason, ..
        } => (format!("instance {instance}: {reason}"), Paint::Yellow),
        EventKind::TaskStateChanged {
            instance,
            task,
            from,
            to,
            reason,
            ..
        } => (
            format!(
                "instance {instance} task {task}: {from} -> {to}{}",
                why(reason)
            ),
            Paint::for_state(&to.to_string()),
        ),
        EventKind::WorkerLiveness { status, .. } | EventKind::SchedulerLiveness { status, .. } => {
            (status.to_string(), Paint::for_state(&status.to_string()))
        }
        EventKind::Collected {
            jobs,
            instances,
            workers,
        } => (
            format!("{jobs} jobs, {instances} instances, {workers} workers"),
            Paint::Plain,
        ),
        _ => (String::new(), Paint::Plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orkestrator_core::ids::{InstanceId, JobId, TaskName};
    use orkestrator_core::state::TaskState;

    #[test]
    fn a_task_event_reads_as_one_line_with_its_reason() {
        let e = Event {
            index: 12,
            seq: 1,
            at: 0,
            kind: EventKind::TaskStateChanged {
                job: JobId::new("web"),
                instance: InstanceId::new("web-0"),
                task: TaskName::new("main"),
                from: TaskState::Running,
                to: TaskState::Failed,
                reason: Some("exited with code 3".into()),
            },
        };
        let line = human(&StreamItem::Event(e.clone()), false);
        assert!(
            line.starts_with("1970-01-01T00:00:00.000Z  12.1 "),
            "{line}"
        );
        assert!(line.contains("task_state_changed"), "{line}");
        assert!(line.contains(" web "), "{line}");
        assert!(
            line.ends_with("instance web-0 task main: Running -> Failed (exited with code 3)"),
            "{line}"
        );
        let v = json_item(&StreamItem::Event(e));
        assert_eq!(v["id"], "12.1");
        assert_eq!(v["kind"]["type"], "task_state_changed");
    }

    /// Issue 18, item 8: the line for a reset shows where to go on as a user writes it.
    #[test]
    fn a_reset_line_shows_indexes_as_written() {
        let r = Reset {
            index: 130,
            seq: u32::MAX,
            oldest_index: 130,
            message: "events up to index 130 are no longer held".into(),
        };
        let line = human(&StreamItem::Reset(r), false);
        assert!(!line.contains("4294967295"), "{line}");
        assert!(line.contains("from index 131"), "{line}");
    }

    #[test]
    fn a_reset_is_a_json_object_with_a_type() {
        let r = Reset {
            index: 5,
            seq: 0,
            oldest_index: 9,
            message: "too old".into(),
        };
        let v = json_item(&StreamItem::Reset(r));
        assert_eq!(v["type"], "reset");
        assert_eq!(v["oldest_index"], 9);
    }
}
