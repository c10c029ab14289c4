//! [`EtcdStore`]: the connection, the fence, the checks of etcd's limits, and the requests
//! (timed, and sent again while they could not be sent).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use orkestrator_core::error::{Error, Result};
use orkestrator_core::store::Snapshot;

use super::error::{EtcdError, classify};
use super::keys::{Meta, prefix_end, put_record};
use super::options::{EtcdOptions, connect};

/// The fewest operations per transaction the etcd members must allow (`--max-txn-ops`): a job
/// of count 1,000 replaced by a new version writes about 2,000 instances in one change.
pub const REQUIRED_TXN_OPS: usize = 4096;

/// The fewest bytes per request the etcd members must allow (`--max-request-bytes`).
pub const REQUIRED_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// What etcd's gRPC server accepts beyond `--max-request-bytes` (its fixed overhead allowance).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Room kept in each commit for the store's own keys (index, format, next instance).
pub(super) const OWN_OPS: usize = 8;

/// Keys read per page when loading.
const PAGE: i64 = 500;

/// The leader key a commit is fenced on.
#[derive(Debug, Clone)]
pub(super) struct Fence {
    pub(super) key: Vec<u8>,
    pub(super) create_revision: i64,
}

/// The manager's state in etcd. See the module docs for the key layout and the fencing.
pub struct EtcdStore {
    pub(super) client: Client,
    pub(super) options: EtcdOptions,
    pub(super) prefix: String,
    /// The mod revision of the index key as this store last read or wrote it (0: absent).
    pub(super) index_revision: AtomicI64,
    pub(super) fence: Mutex<Option<Fence>>,
    pub(super) format_written: std::sync::atomic::AtomicBool,
    pub(super) commits: AtomicU64,
    /// Told when a commit was refused because the fence no longer holds.
    pub(super) lost: tokio::sync::watch::Sender<bool>,
    /// A follower's warm copy of the state, and the task keeping it.
    pub(super) warm: Mutex<Option<Warm>>,
    pub(super) follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) warm_loads: AtomicU64,
    /// The last read-only copy built from the warm copy (rebuilt when that moves on).
    pub(super) replica:
        Mutex<Option<(Arc<orkestrator_core::manager::Replica>, std::time::Instant)>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.options.endpoints)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl EtcdStore {
    /// Connects, checks that the members allow transactions as large as the manager needs
    /// (naming the flags when they do not) and that the stored format is one this build reads.
    pub async fn connect(options: EtcdOptions) -> std::result::Result<Self, EtcdError> {
        let client = connect(&options).await?;
        let store = EtcdStore {
            client,
            prefix: options.prefix.clone(),
            options,
            index_revision: AtomicI64::new(0),
            fence: Mutex::new(None),
            format_written: Default::default(),
            commits: AtomicU64::new(0),
            lost: tokio::sync::watch::channel(false).0,
            warm: Mutex::new(None),
            follower: Mutex::new(None),
            warm_loads: AtomicU64::new(0),
            replica: Mutex::new(None),
        };
        store.check_limits().await?;
        Ok(store)
    }

    /// The etcd client (shared: cheap to clone).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// From now on, commit only while the leader key `key` exists with `create_revision`.
    pub fn fence(&self, key: Vec<u8>, create_revision: i64) {
        *lock(&self.fence) = Some(Fence {
            key,
            create_revision,
        });
    }

    /// Becomes `true` once a commit was refused because the fence no longer holds.
    pub fn fenced_out(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost.subscribe()
    }

    pub(super) fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    async fn check_limits(&self) -> std::result::Result<(), EtcdError> {
        let mut kv = self.client.kv_client();
        // Read-only: a transaction of range operations behind a comparison that never holds
        // (no key has a version below 0) is checked for size and then does nothing.
        let never = Compare::version(self.key("meta/never"), CompareOp::Less, 0);
        let ops: Vec<TxnOp> = (0..REQUIRED_TXN_OPS)
            .map(|i| TxnOp::get(self.key(&format!("probe/{i}")), None))
            .collect();
        let probe = Txn::new().when(vec![never]).and_then(ops);
        match self.timed(kv.txn(probe)).await {
            Ok(_) => {}
            Err(EtcdError::TooManyOperations(Error::Store(m))) => {
                return Err(EtcdError::TooManyOperations(Error::Store(format!(
                    "etcd refuses transactions of {REQUIRED_TXN_OPS} operations ({m}): run every \
                     etcd member with --max-txn-ops={REQUIRED_TXN_OPS} (or more); a job of count \
                     1,000 is committed in one transaction"
                ))));
            }
            Err(e) => return Err(e),
        }
        // A request as large as the manager sends, checked by etcd's gRPC size limit (which is
        // --max-request-bytes plus a fixed allowance); a range read, so nothing is written.
        let big = vec![b'x'; REQUIRED_REQUEST_BYTES + GRPC_OVERHEAD_BYTES - 16 * 1024];
        match self
            .timed(kv.get(big, Some(GetOptions::new().with_count_only())))
            .await
        {
            Ok(_) => Ok(()),
            Err(EtcdError::RequestTooLarge(Error::Store(m))) => {
                Err(EtcdError::RequestTooLarge(Error::Store(format!(
                    "etcd refuses requests of {} MiB ({m}): run every etcd member with \
                     --max-request-bytes={REQUIRED_REQUEST_BYTES} (or more)",
                    REQUIRED_REQUEST_BYTES / (1024 * 1024)
                ))))
            }
            Err(e) => Err(e),
        }
    }

    /// [`EtcdStore::timed`], sent again (for up to a second) while it could not even be sent:
    /// with a member down, the client's balancer may first pick the dead one.
    pub(super) async fn retrying<T, F, Fut>(&self, f: F) -> std::result::Result<T, EtcdError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.sending(f, false).await
    }

    /// [`EtcdStore::retrying`] for a read, which is also sent again (twice more) when its
    /// answer did not come: reading twice changes nothing, and a member cut off from the others
    /// may hold a connection that only its keep-alive finds dead.
    pub(super) async fn reading<T, F, Fut>(&self, f: F) -> std::result::Result<T, EtcdError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.sending(f, true).await
    }

    async fn sending<T, F, Fut>(&self, mut f: F, read: bool) -> std::result::Result<T, EtcdError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut unanswered = 0;
        loop {
            match self.timed(f()).await {
                Err(e @ EtcdError::Unreachable(_)) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!(error = %e, "etcd request not sent; trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e @ EtcdError::NoAnswer(_)) if read && unanswered < 2 => {
                    unanswered += 1;
                    tracing::debug!(error = %e, "etcd read not answered; reading again");
                }
                other => return other,
            }
        }
    }

    /// Runs one request within the timeout; a late or broken answer is an unknown outcome.
    pub(super) async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> std::result::Result<T, EtcdError> {
        match tokio::time::timeout(self.options.timeout, f).await {
            Err(_) => Err(EtcdError::NoAnswer(Error::OutcomeUnknown(format!(
                "etcd did not answer within {:?}",
                self.options.timeout
            )))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&self.options.endpoints, e)),
        }
    }

    pub(super) fn compact_behind(&self, revision: i64) {
        let at = revision - self.options.keep_revisions;
        if at <= 0 {
            return;
        }
        let mut client = self.client.clone();
        tokio::spawn(async move {
            match client.compact(at, None).await {
                Ok(_) => tracing::debug!(revision = at, "compacted etcd's history"),
                Err(e) if e.to_string().contains("compacted") => {}
                Err(e) => tracing::warn!(error = %e, "cannot compact etcd's history"),
            }
        });
    }

    /// Why a commit's comparison failed: the fence, or another writer.
    pub(super) async fn refused(&self, fence: Option<&Fence>) -> Error {
        if let Some(f) = fence {
            let kv = self.client.kv_client();
            let holds = match self
                .reading(|| {
                    let mut kv = kv.clone();
                    let key = f.key.clone();
                    async move { kv.get(key, None).await }
                })
                .await
            {
                Ok(r) => r
                    .kvs()
                    .first()
                    .is_some_and(|kv| kv.create_revision() == f.create_revision),
                Err(_) => false,
            };
            if !holds {
                let _ = self.lost.send(true);
                return Error::NotLeader(
                    "its leader key in etcd is gone (its lease ran out, or another manager was \
                     elected)"
                        .into(),
                );
            }
        }
        let _ = self.lost.send(true);
        Error::NotLeader(
            "another manager wrote to the state in etcd since this one last read it (two \
             managers on one prefix; only the elected leader may commit)"
                .into(),
        )
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EtcdStore {
    /// Whether anything is stored under the prefix.
    pub async fn is_empty(&self) -> Result<bool> {
        let mut kv = self.client.kv_client();
        let o = GetOptions::new().with_prefix().with_count_only();
        let r = self.timed(kv.get(self.prefix.clone(), Some(o))).await?;
        Ok(r.count() == 0)
    }

    /// Deletes everything under the prefix (the election and managers' keys too).
    pub async fn clear(&self) -> Result<()> {
        let mut kv = self.client.kv_client();
        let o = etcd_client::DeleteOptions::new().with_prefix();
        self.timed(kv.delete(self.prefix.clone(), Some(o))).await?;
        self.index_revision.store(0, Ordering::Release);
        self.format_written.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads everything under the prefix at one revision: the state, its meta, and the revision.
pub(super) async fn read_all(store: &EtcdStore) -> Result<(Snapshot, Meta, i64)> {
    let kv = store.client.kv_client();
    let mut snap = Snapshot::default();
    let mut meta = Meta::default();
    let end = prefix_end(store.prefix.as_bytes());
    let mut from = store.prefix.as_bytes().to_vec();
    let mut at = 0i64;
    loop {
        let mut o = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if at > 0 {
            o = o.with_revision(at);
        }
        let r = store
            .reading(|| {
                let (mut kv, from, o) = (kv.clone(), from.clone(), o.clone());
                async move { kv.get(from, Some(o)).await }
            })
            .await?;
        if at == 0 {
            at = r.header().map_or(0, |h| h.revision());
        }
        for item in r.kvs() {
            let key = String::from_utf8_lossy(item.key());
            if let Some(rest) = key.strip_prefix(&store.prefix) {
                put_record(
                    &mut snap,
                    &mut meta,
                    rest,
                    item.value(),
                    item.mod_revision(),
                )?;
            }
        }
        if !r.more() {
            break;
        }
        let Some(last) = r.kvs().last() else { break };
        from = last.key().to_vec();
        from.push(0);
    }
    Ok((snap, meta, at))
}

#[derive(Debug, Clone, Default)]
pub(super) struct Warm {
    pub(super) snap: Snapshot,
    pub(super) meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd_testing::EtcdCluster;

    fn options(cluster: &EtcdCluster, prefix: &str) -> EtcdOptions {
        EtcdOptions::from_url(&cluster.url())
            .unwrap()
            .with_prefix(prefix)
    }

    /// What a real etcd answers falls into the kinds its status codes map to.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcds_refusals_are_told_apart_by_kind() {
        let Some(small) = EtcdCluster::start_with_default_limits() else {
            return;
        };
        let e = EtcdStore::connect(options(&small, "/k1"))
            .await
            .unwrap_err();
        assert!(matches!(e, EtcdError::TooManyOperations(_)), "{e:?}");
        assert!(e.to_string().contains("--max-txn-ops=4096"), "{e}");
        drop(small);

        let Some(cluster) = EtcdCluster::start(1) else {
            return;
        };
        let mut admin = connect(&options(&cluster, "/k2")).await.unwrap();
        admin.role_add("root").await.unwrap();
        admin.user_add("root", "s3cret", None).await.unwrap();
        admin.user_grant_role("root", "root").await.unwrap();
        admin.auth_enable().await.unwrap();
        let mut wrong = options(&cluster, "/k2");
        wrong.user = Some(("root".into(), "nope".into()));
        let e = EtcdStore::connect(wrong).await.unwrap_err();
        assert!(matches!(e, EtcdError::CredentialsRefused(_)), "{e:?}");
        let e = EtcdStore::connect(options(&cluster, "/k2"))
            .await
            .unwrap_err();
        assert!(matches!(e, EtcdError::CredentialsRefused(_)), "{e:?}");
        assert!(!e.waiting_helps());

        let mut gone = options(&cluster, "/k3");
        gone.endpoints = vec!["127.0.0.1:1".into()];
        let e = EtcdStore::connect(gone).await.unwrap_err();
        assert!(e.waiting_helps(), "{e:?}");
    }
}
