//! The manager's rooms: each groups the operations of one audience or concern, borrowing the
//! manager's shared core. A new kind of thing the manager keeps (secrets, volumes, services...)
//! gets a room of its own here.

mod cluster;
mod events;
mod jobs;
mod metrics;
mod schedulers;
mod secrets;
mod tokens;
mod volumes;
mod workers;

pub use cluster::Cluster;
pub use events::Events;
pub use jobs::Jobs;
pub use metrics::Metrics;
pub use schedulers::Schedulers;
pub use secrets::Secrets;
pub(crate) use secrets::{check_secret_key, prune as prune_secrets};
pub use tokens::Tokens;
pub use volumes::Volumes;
pub use workers::Workers;
