//! Time as a value: wall-clock milliseconds (persisted: ends, GC cut-offs, event times).

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
