//! Typed identifiers.
//!
//! Each identifier is a thin newtype over a `String` so that a worker id can never be passed where a
//! job id is expected. They serialize as plain strings.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string as this identifier (no validation: ids are checked where they enter).
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A job's identity: its name, unique in a cluster.
    JobId
);
string_id!(
    /// A task's name, unique within its job.
    TaskName
);
string_id!(
    /// One placed copy of a job (all its tasks, on one worker). Unique for the cluster's lifetime:
    /// a rescheduled instance gets a new id.
    InstanceId
);
string_id!(
    /// A worker's identity, chosen by the worker (its name) and stable across its restarts.
    WorkerId
);
string_id!(
    /// A scheduler's identity.
    SchedulerId
);

impl InstanceId {
    /// Builds the id of instance `index` of `job`, placed for the `generation`-th time.
    pub fn for_job(job: &JobId, index: u32, generation: u64) -> Self {
        Self(format!("{job}-{index}-{generation}"))
    }
}
