//! `GET /v1/events`: the manager's event stream as Server-Sent Events.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use orkestrator_core::api::ApiError;
use orkestrator_core::events::{EventFilter, StreamItem, StreamStart};
use orkestrator_core::manager::Manager;
use serde::Deserialize;

use super::error::ErrorResponse;
use super::extract::Query;
use super::serve::Closing;

/// `GET /v1/events` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Start with the first event stamped with this index (`N`), or after this event
    /// (`INDEX.SEQ`). Left out: from now. A `Last-Event-ID` header wins over it.
    index: Option<String>,
    /// Topics to keep, comma-separated: job, task, worker, scheduler, manager.
    topic: Option<String>,
    /// The key to keep: a job name (job and task events), a worker or a scheduler id.
    key: Option<String>,
    /// Keep-alive interval (default 15s).
    keepalive: Option<String>,
}

/// `GET /v1/events`: the event stream as Server-Sent Events. Each event's `id` is
/// `INDEX.SEQ`, its data the event as JSON; a client that reconnects with `Last-Event-ID` misses
/// nothing and sees nothing twice. One that starts before the manager's window gets an `event:
/// reset` (re-list, then follow on).
pub(crate) async fn events(
    State(m): State<Manager>,
    headers: HeaderMap,
    closing: Option<axum::Extension<Closing>>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ErrorResponse> {
    let bad = |m: String| ErrorResponse(ApiError::bad_request("invalid_query", m));
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let start = match last_id.or(q.index.as_deref()) {
        None => StreamStart::Now,
        Some(s) => s
            .parse::<StreamStart>()
            .map_err(|e| bad(format!("index: {e}")))?,
    };
    let mut filter = EventFilter::default();
    if let Some(t) = &q.topic {
        for part in t.split(',').filter(|p| !p.trim().is_empty()) {
            filter
                .topics
                .push(part.parse().map_err(|e| bad(format!("topic: {e}")))?);
        }
    }
    filter.key = q.key.filter(|k| !k.is_empty());
    let keepalive = match &q.keepalive {
        None => Duration::from_secs(15),
        Some(k) => orkestrator_core::units::parse_duration(k)
            .map_err(|e| bad(format!("keepalive: {e}")))?
            .max(Duration::from_millis(100)),
    };
    let sub = m.events().stream(start, filter);
    // The stream ends when the server shuts down (a client resumes with `Last-Event-ID`).
    let closing = closing.map(|axum::Extension(Closing(rx))| rx);
    // A bookmark first (where the stream starts), then whenever a keep-alive interval passes
    // with the position moved but nothing sent (a quiet filtered stream).
    let state = Streaming {
        sub,
        closing,
        tick: tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive),
        sent: None,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        st.sent = Some(item.position());
        Some((Ok::<_, std::convert::Infallible>(sse_event(&item)), st))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keepalive))
        .into_response())
}

/// An event stream being served.
struct Streaming {
    sub: orkestrator_core::manager::EventSubscription,
    closing: Option<tokio::sync::watch::Receiver<bool>>,
    tick: tokio::time::Interval,
    /// The position of the last item sent.
    sent: Option<orkestrator_core::events::Position>,
}

impl Streaming {
    /// The next item to send; `None` ends the stream (the manager or the server going away).
    async fn next(&mut self) -> Option<StreamItem> {
        if self.sent.is_none() {
            return Some(StreamItem::Bookmark(self.sub.bookmark()));
        }
        loop {
            let closing = async {
                match &mut self.closing {
                    Some(rx) => {
                        let _ = rx.wait_for(|c| *c).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = self.sub.next() => return item,
                _ = closing => return None,
                _ = self.tick.tick() => {
                    let b = self.sub.bookmark();
                    if Some(b.position()) != self.sent {
                        return Some(StreamItem::Bookmark(b));
                    }
                }
            }
        }
    }
}

/// One stream item as Server-Sent Event: the id is its position, the data its JSON.
fn sse_event(item: &StreamItem) -> SseEvent {
    let ev = SseEvent::default().id(item.position().to_string());
    let ev = match item {
        StreamItem::Event(_) => ev,
        StreamItem::Reset(_) => ev.event("reset"),
        StreamItem::Bookmark(_) => ev.event("bookmark"),
    };
    match item {
        StreamItem::Event(e) => ev.json_data(e),
        StreamItem::Reset(r) => ev.json_data(r),
        StreamItem::Bookmark(b) => ev.json_data(b),
    }
    .unwrap_or_default()
}
