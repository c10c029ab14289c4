//! Benchmarks of Orkestrator: see the `[[bench]]` targets.
