//! The `orkestrator` command.
fn main() {}
