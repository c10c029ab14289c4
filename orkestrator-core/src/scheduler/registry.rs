//! Names for schedulers, so `orkestrator server --scheduler NAME` can pick one.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::parts::Scheduler;
use super::pipeline::Pipeline;
use super::scores::{BinPack, Epvm, JobSpread, RoundRobin, Spread};

type Factory = Box<dyn Fn() -> Arc<dyn Scheduler> + Send + Sync>;

/// Maps names to scheduler factories. [`Registry::builtin`] has `spread` (the default), `binpack`,
/// `round-robin` and `epvm`; add your own with [`Registry::register`].
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

/// The name of the default scheduler.
pub const DEFAULT: &str = "spread";

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            factories: BTreeMap::new(),
        }
    }

    /// The built-in schedulers. Each is the standard filters (resource fit, host ports,
    /// constraints) plus its score, with instances of one job spread across workers.
    pub fn builtin() -> Self {
        let mut r = Self::new();
        for name in BUILTIN {
            r.register(name, move || {
                Arc::new(builtin_pipeline(name).expect("a built-in scheduler"))
            });
        }
        r
    }

    /// Adds (or replaces) a scheduler under `name`.
    pub fn register(
        &mut self,
        name: &str,
        factory: impl Fn() -> Arc<dyn Scheduler> + Send + Sync + 'static,
    ) {
        self.factories.insert(name.to_owned(), Box::new(factory));
    }

    /// A new scheduler named `name`, or `None`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Scheduler>> {
        self.factories.get(name).map(|f| f())
    }

    /// The registered names.
    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }
}

/// The names of the built-in schedulers.
const BUILTIN: [&str; 4] = ["spread", "binpack", "round-robin", "epvm"];

/// The pipeline of the built-in scheduler `name`, or `None`.
pub(super) fn builtin_pipeline(name: &str) -> Option<Pipeline> {
    let p = Pipeline::standard(name);
    let p = match name {
        "spread" => p.with_score(Spread, 1),
        "binpack" => p.with_score(BinPack, 1),
        "round-robin" => p.with_score(RoundRobin::default(), 1),
        "epvm" => p.with_score(Epvm::default(), 1),
        _ => return None,
    };
    // JobSpread weighs 10 to 1: a job's instances go to different workers where they fit, and the
    // algorithm's own score decides among equally spread choices.
    Some(p.with_score(JobSpread, 10))
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_named() {
        let r = Registry::builtin();
        assert_eq!(r.names(), ["binpack", "epvm", "round-robin", "spread"]);
        for n in r.names() {
            assert_eq!(r.get(n).unwrap().name(), n);
        }
        assert!(r.get("nope").is_none());
        assert!(r.get(DEFAULT).is_some());
    }
}
