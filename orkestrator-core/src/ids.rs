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

/// The key of an instance: its job and its instance number (unique in the cluster's lifetime).
/// An [`InstanceId`] is built from it (`JOB-INDEX-NUMBER`, see [`instance_id`]) and read back
/// into it ([`parse_id`]).
pub(crate) type InstanceKey = (JobId, u64);

/// An instance's id from its key and index: `JOB-INDEX-NUMBER`.
pub(crate) fn instance_id(job: &JobId, index: u32, number: u64) -> InstanceId {
    InstanceId::for_job(job, index, number)
}

/// `s` with every character the engine does not allow in a container (or volume) name replaced
/// by `_`.
pub(crate) fn engine_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The key of an instance id, if it has the shape `JOB-INDEX-NUMBER`.
pub(crate) fn parse_id(id: &InstanceId) -> Option<InstanceKey> {
    let mut parts = id.as_str().rsplitn(3, '-');
    let number = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    let job = parts.next()?;
    Some((JobId::new(job), number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_parse_back_to_their_key() {
        for (job, index, number) in [("web", 0, 0), ("my-job-2", 17, 123_456), ("a-1-2", 3, 9)] {
            let id = instance_id(&JobId::new(job), index, number);
            assert_eq!(parse_id(&id), Some((JobId::new(job), number)), "{id}");
        }
        for bad in ["web", "web-1", "web-x-1", "web-1-x", ""] {
            assert_eq!(parse_id(&InstanceId::new(bad)), None, "{bad}");
        }
    }
}
