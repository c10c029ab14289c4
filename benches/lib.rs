//! Benchmarks of Orkestrator: see the `[[bench]]` targets. Helpers the benchmark programs share.

/// This process's resident set size, in bytes (0 where `/proc/self/status` cannot be read).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
