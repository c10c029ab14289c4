//! Per-credential limits: how many requests and long-lived answers one credential holds at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use orkestrator_core::api::{ApiError, ErrorKind};

/// Per-credential limits on what one credential holds at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests being answered at once. Default [`Limits::DEFAULT_REQUESTS`].
    pub requests: usize,
    /// Long-lived answers (long-polls, event streams, followed logs) open at once. Default
    /// [`Limits::DEFAULT_STREAMS`].
    pub streams: usize,
}

impl Limits {
    /// The default of [`Limits::requests`]: far above what one CLI, worker or scheduler needs
    /// (a worker holds two or three), low enough that one credential cannot take the manager.
    pub const DEFAULT_REQUESTS: usize = 1024;
    /// The default of [`Limits::streams`].
    pub const DEFAULT_STREAMS: usize = 128;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: Self::DEFAULT_REQUESTS,
            streams: Self::DEFAULT_STREAMS,
        }
    }
}

/// Counts what each credential holds.
#[derive(Debug, Default)]
pub struct Usage {
    limits: Limits,
    held: Mutex<HashMap<String, Arc<Held>>>,
}

#[derive(Debug, Default)]
struct Held {
    requests: AtomicUsize,
    streams: AtomicUsize,
}

/// Gives back what one request held when it (and its answer's body) is done.
#[derive(Debug)]
pub(crate) struct Guard {
    held: Arc<Held>,
    stream: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.held.requests.fetch_sub(1, Ordering::AcqRel);
        if self.stream {
            self.held.streams.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Usage {
    /// Counting against `limits`.
    pub fn new(limits: Limits) -> Self {
        Usage {
            limits,
            held: Mutex::default(),
        }
    }

    /// Takes one request (and one stream if `stream`) for `token`; a 429 when it holds its
    /// limit already. What it took is given back when the guard drops.
    pub(crate) fn take(&self, token: &str, stream: bool) -> Result<Guard, ApiError> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(token.to_owned())
            .or_default()
            .clone();
        let over = |what: &str, limit: usize| {
            ApiError::new(
                ErrorKind::LimitExceeded,
                "limit_exceeded",
                format!(
                    "this credential already holds {limit} {what} at once (the limit); wait for some to finish, or use another credential"
                ),
            )
        };
        if held.requests.fetch_add(1, Ordering::AcqRel) >= self.limits.requests {
            held.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(over("requests", self.limits.requests));
        }
        if stream && held.streams.fetch_add(1, Ordering::AcqRel) >= self.limits.streams {
            held.streams.fetch_sub(1, Ordering::AcqRel);
            held.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(over("long-polls and streams", self.limits.streams));
        }
        Ok(Guard { held, stream })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orkestrator_core::api::ErrorKind;

    #[test]
    fn limits_count_and_give_back() {
        let u = Usage::new(Limits {
            requests: 2,
            streams: 1,
        });
        let a = u.take("t", true).unwrap();
        assert_eq!(
            u.take("t", true).unwrap_err().kind,
            ErrorKind::LimitExceeded
        );
        let b = u.take("t", false).unwrap();
        assert!(u.take("t", false).is_err(), "two requests held");
        assert!(u.take("other", true).is_ok(), "limits are per credential");
        drop(a);
        drop(b);
        assert!(u.take("t", true).is_ok());
    }
}
