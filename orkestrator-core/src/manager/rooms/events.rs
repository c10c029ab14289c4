//! The events room: the live event bus, and streams that resume from the manager's window of
//! recent events.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::events::{Event, EventFilter, StreamStart};

use crate::manager::inner::Inner;
use crate::manager::stream::EventSubscription;

/// The manager's events, from [`Manager::events`](crate::manager::Manager::events).
#[derive(Clone, Copy)]
pub struct Events<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Events<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Events { inner }
    }

    /// Subscribes to the event bus: every event from now on, in id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A stream of events from `start` that pass `filter`: first those the manager's window
    /// holds, then live ones, none missed and none twice. Starting before the window gives a
    /// [`Reset`](crate::events::Reset) first.
    pub fn stream(&self, start: StreamStart, filter: EventFilter) -> EventSubscription {
        EventSubscription::open(self.inner, start, filter)
    }
}
