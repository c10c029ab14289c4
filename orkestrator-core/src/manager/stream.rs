//! Event streams: a backlog read from the manager's window of recent events, then the live bus,
//! with no gap and no repeat between them. A subscriber that falls behind the bus re-reads from
//! the window; one that falls behind the window gets a [`Reset`] (re-list), never a silent gap.

use std::collections::VecDeque;
use std::sync::Weak;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::events::{Event, EventFilter, Position, Reset, StreamItem, StreamStart};

use super::inner::Inner;
use super::locks::lock;

/// A stream of the manager's events, from [`Events::stream`](super::Events::stream).
pub struct EventSubscription {
    inner: Weak<Inner>,
    filter: EventFilter,
    pending: VecDeque<StreamItem>,
    rx: broadcast::Receiver<Event>,
    /// The last position delivered or skipped: nothing at or before it is sent again.
    last: Position,
    /// Reading the window in chunks (after a lag) rather than the bus.
    catching_up: bool,
    /// The position of the last item handed out (or where the stream started).
    delivered: Position,
}

/// The most events read from the window under the publisher's lock at once.
const CHUNK: usize = 2048;

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription")
            .field("filter", &self.filter)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl EventSubscription {
    pub(crate) fn open(
        inner: &std::sync::Arc<Inner>,
        start: StreamStart,
        filter: EventFilter,
    ) -> Self {
        // Under the publisher's lock nothing is sent, so the backlog and the subscription meet
        // exactly.
        let p = lock(&inner.publisher);
        let rx = inner.events.subscribe();
        // The newest event's position, or, when commits since carried none, the last published
        // commit's index (no event sits at or before it unsent).
        let head = p.log.head().max(Position {
            index: p.index,
            seq: 0,
        });
        let (pending, last, complete) = match start {
            // An event id this manager never gave: it restarted with other state (in memory,
            // or from an older copy). Skipping up to that id would hide what happens meanwhile.
            StreamStart::After(p) if p > head => {
                let reset = Reset {
                    index: head.index,
                    seq: head.seq,
                    oldest_index: head.index,
                    message: format!(
                        "event {p} is newer than this manager's history (it restarted without the state that id came from): re-list, then follow {}",
                        head.resume()
                    ),
                };
                (VecDeque::from([StreamItem::Reset(reset)]), head, true)
            }
            _ => backlog(&p.log, start.after(head), &filter),
        };
        drop(p);
        let delivered = match start {
            StreamStart::Now => head,
            s => s.after(head).unwrap_or_default().min(last),
        };
        EventSubscription {
            inner: std::sync::Arc::downgrade(inner),
            filter,
            pending,
            rx,
            last,
            catching_up: !complete,
            delivered,
        }
    }

    /// The position of the last event delivered (or passed over by the filter).
    pub fn position(&self) -> Position {
        self.last
    }

    /// A bookmark of [`EventSubscription::position`]: a client resuming after it misses
    /// nothing this subscription would have sent.
    pub fn bookmark(&self) -> crate::events::Bookmark {
        if self.pending.is_empty() {
            // Everything scanned was handed out or passed over by the filter.
            self.last.into()
        } else {
            self.delivered.into()
        }
    }

    /// The next item; `None` once the manager is gone.
    pub async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.delivered = item.position();
                return Some(item);
            }
            if self.catching_up {
                self.refill()?;
                continue;
            }
            match self.rx.recv().await {
                Ok(e) => {
                    let at = e.position();
                    if at <= self.last {
                        continue;
                    }
                    self.last = at;
                    if self.filter.matches(&e.kind) {
                        self.delivered = at;
                        return Some(StreamItem::Event(e));
                    }
                }
                // Fell behind the bus: read what was missed from the window.
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Reads the next chunk of the window after `last`; `None` once the manager is gone.
    fn refill(&mut self) -> Option<()> {
        let inner = self.inner.upgrade()?;
        let p = lock(&inner.publisher);
        let (pending, last, complete) = backlog(&p.log, Some(self.last), &self.filter);
        drop(p);
        self.pending = pending;
        self.last = last;
        // Once the window's head is reached, the bus holds everything newer (anything it
        // dropped meanwhile shows as another lag).
        self.catching_up = !complete;
        Some(())
    }
}

/// The next chunk of the window for a stream resuming after `after`, the position it has then
/// seen up to, and whether that is the window's head.
fn backlog(
    log: &crate::events::EventLog,
    after: Option<Position>,
    filter: &EventFilter,
) -> (VecDeque<StreamItem>, Position, bool) {
    match log.after_bounded(after, filter, CHUNK) {
        Ok(chunk) => (
            chunk.events.into_iter().map(StreamItem::Event).collect(),
            // A start beyond the head skips what comes before it.
            chunk.through.max(after.unwrap_or_default()),
            chunk.complete,
        ),
        Err(reset @ Reset { .. }) => {
            let at = reset.position();
            (VecDeque::from([StreamItem::Reset(reset)]), at, true)
        }
    }
}
