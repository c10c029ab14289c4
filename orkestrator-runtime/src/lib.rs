//! # orkestrator-runtime
//!
//! Production implementations of `orkestrator-core`'s plug points.
