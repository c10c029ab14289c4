//! Examples of embedding Orkestrator: see the `[[example]]` targets.
