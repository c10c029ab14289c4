//! Compose files.

pub(crate) mod text;
