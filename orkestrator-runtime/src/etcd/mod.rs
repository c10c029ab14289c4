//! The manager's state in etcd, and the election that lets several managers share it.
//!
//! [`EtcdStore`] implements [`Store`](orkestrator_core::store::Store): each grouped commit is one etcd transaction that writes
//! the changed records and the state index, and succeeds only while
//!
//! - the index key has not been written by anyone else since this store last read or wrote it
//!   (so two writers can never interleave), and
//! - when the store is fenced ([`EtcdStore::fence`]), the leader key this manager won the
//!   election with still exists with the same create revision: a leader that was paused past its
//!   lease, or cut off, can never write after another was elected.
//!
//! Key layout under the prefix `P` (default `/orkestrator/`), one key per record so that a job
//! of count 1,000 is about a thousand small puts:
//!
//! | key | value |
//! |---|---|
//! | `P/meta/format`, `P/meta/index`, `P/meta/next_instance` | decimal numbers |
//! | `P/jobs/NAME` | a [`JobRecord`](orkestrator_core::store::JobRecord) (JSON) |
//! | `P/specs/NAME/VERSION` | a job spec (JSON) |
//! | `P/instances/ID` | an [`InstanceRecord`](orkestrator_core::store::InstanceRecord) (JSON) |
//! | `P/workers/ID` | a worker registration (JSON) |
//! | `P/tokens/ID` | a token record (a digest, JSON) |
//! | `P/secrets/NAME/VERSION` | a secret version: sealed, never plain (JSON, the sealed bytes in base64) |
//! | `P/meta/secret_key_check` | the key check of the key the secrets are sealed with (base64) |
//! | `P/leader/...` | the election's candidates (etcd's election API, on a lease) |
//! | `P/managers/NAME` | each running manager and where it answers (on its lease) |
//!
//! etcd's default limits (128 operations and 1.5 MiB a transaction) are too small for one change
//! of a large job, so [`EtcdStore::connect`] checks that the members run with at least
//! [`REQUIRED_TXN_OPS`] operations and [`REQUIRED_REQUEST_BYTES`] bytes, and names the flags when
//! they do not. Commits larger than that are split between changes by the manager's committer.
//!
//! The rooms, from the ground up: `error` (what went wrong, by kind: [`EtcdError`]), `keys` (the
//! key layout and how records are read from it), [`options`] (how to reach etcd), [`store`]
//! (the store, its requests and its fence), `commit` (loading and committing the state),
//! [`warm`] (a follower's warm copy), [`election`] (the members' leases and the election), and
//! on top [`leader`](mod@leader): one of several managers on one etcd, from following to leading and
//! stepping down.

mod commit;
pub mod election;
mod error;
mod keys;
pub mod leader;
pub mod options;
pub mod store;
pub mod warm;

pub use election::{Leadership, ManagerRecord, Member, leader, managers};
pub use error::EtcdError;
pub use leader::{Candidate, HaConfig, HaError, Leader, Step};
pub use options::{COMPACT_EVERY, EtcdOptions, KEEP_REVISIONS, connect, parse_url};
pub use store::{EtcdStore, REQUIRED_REQUEST_BYTES, REQUIRED_TXN_OPS};
pub use warm::REPLICA_REFRESH;
