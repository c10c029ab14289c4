//! [`HttpTransport`]: the manager's API over HTTP, on hyper. Workers, remote schedulers and the CLI
//! use it; it implements the same
//! [`Transport`](orkestrator_core::transport::Transport) traits as the in-process transport.
//!
//! A client may know several managers (a highly available manager: one leader, followers that
//! forward to it). It sends to one address at a time and moves on by itself: to the next address
//! when the current one cannot be reached, to the leader a follower names in
//! [`LEADER_HEADER`], and around the managers while they elect a leader (`no_leader`).

mod addr;
mod api;
mod describe;
mod exchange;
mod transport;

pub use addr::normalize_addr;
pub use transport::{
    ByteStream, DEFAULT_ELECTION_WAIT, HttpTransport, LEADER_HEADER, OnCredential, WORKER_HEADER,
    set_worker_tls,
};
