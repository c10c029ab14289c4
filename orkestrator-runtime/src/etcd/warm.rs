//! A follower's warm copy of the state: read once, kept current by watching etcd, taken by the
//! next load, and the read-only copies followers answer job reads from.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use orkestrator_core::error::{Error, Result};

use super::keys::{delete_record, put_record};
use super::store::{EtcdStore, Warm, lock, read_all};

/// How stale a follower's read-only copy may be before a read rebuilds it.
pub const REPLICA_REFRESH: Duration = Duration::from_millis(100);

impl EtcdStore {
    /// Starts keeping a warm copy of the state (a follower's): read once, then kept current by
    /// watching etcd; read again after a compaction overtook the watch or the watch broke. The
    /// next [`Store::load`](orkestrator_core::store::Store::load) takes it instead of reading everything, once it holds the latest
    /// commit, so that a newly elected leader is ready at once.
    pub fn follow(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                let Some(store) = weak.upgrade() else { return };
                if let Err(e) = store.keep_warm().await {
                    tracing::debug!(error = %e, "the warm copy is read again");
                }
                *lock(&store.warm) = None;
                drop(store);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        if let Some(old) = lock(&self.follower).replace(task) {
            old.abort();
        }
    }

    async fn keep_warm(&self) -> Result<()> {
        let (snap, meta, at) = read_all(self).await?;
        *lock(&self.warm) = Some(Warm { snap, meta });
        let mut c = self.client.clone();
        let o = etcd_client::WatchOptions::new()
            .with_prefix()
            .with_start_revision(at + 1);
        let mut stream = c
            .watch(self.prefix.clone(), Some(o))
            .await
            .map_err(|e| Error::Store(format!("cannot watch etcd: {e}")))?;
        loop {
            let Some(r) = stream
                .message()
                .await
                .map_err(|e| Error::Store(format!("the watch broke: {e}")))?
            else {
                return Err(Error::Store("the watch ended".into()));
            };
            if r.compact_revision() > 0 || r.canceled() {
                return Err(Error::Store(format!(
                    "the watch was overtaken by a compaction (at {}) or cancelled",
                    r.compact_revision()
                )));
            }
            let mut guard = lock(&self.warm);
            let Some(w) = guard.as_mut() else {
                return Ok(());
            };
            for ev in r.events() {
                let Some(kv) = ev.kv() else { continue };
                let key = String::from_utf8_lossy(kv.key());
                let Some(rest) = key.strip_prefix(&self.prefix) else {
                    continue;
                };
                match ev.event_type() {
                    etcd_client::EventType::Put => put_record(
                        &mut w.snap,
                        &mut w.meta,
                        rest,
                        kv.value(),
                        kv.mod_revision(),
                    )?,
                    etcd_client::EventType::Delete => {
                        delete_record(&mut w.snap, &mut w.meta, rest)?
                    }
                }
            }
        }
    }

    /// How many loads took the warm copy rather than reading everything.
    pub fn warm_loads(&self) -> u64 {
        self.warm_loads.load(Ordering::Relaxed)
    }

    /// A read-only copy of the state as the warm copy holds it, at `min_index` or later, to
    /// answer reads with while following; `None` without a warm copy, or while it is behind
    /// `min_index`. A copy is rebuilt (O(state)) only when the warm copy moved on and the last
    /// one is older than [`REPLICA_REFRESH`] or behind `min_index`: reads may see state up to
    /// that much behind, unless they name an index.
    pub fn replica(&self, min_index: u64) -> Option<Arc<orkestrator_core::manager::Replica>> {
        let snap = {
            let warm = lock(&self.warm);
            let w = warm.as_ref()?;
            if w.snap.index < min_index {
                return None;
            }
            if let Some((r, built)) = lock(&self.replica).as_ref()
                && r.index() >= min_index
                && (r.index() == w.snap.index || built.elapsed() < REPLICA_REFRESH)
            {
                return Some(r.clone());
            }
            w.snap.clone()
        };
        let r = Arc::new(orkestrator_core::manager::Replica::from_snapshot(snap));
        *lock(&self.replica) = Some((r.clone(), std::time::Instant::now()));
        Some(r)
    }

    /// The state index of the warm copy, while there is one.
    pub fn warm_index(&self) -> Option<u64> {
        lock(&self.warm).as_ref().map(|w| w.snap.index)
    }

    /// The warm copy, once it holds the latest commit (waiting up to a second for the watch to
    /// catch up); `None` when there is none or it lags. Following stops either way.
    pub(super) async fn take_warm(&self) -> Option<Warm> {
        let task = lock(&self.follower).take()?;
        let latest = {
            let kv = self.client.kv_client();
            let key = self.key("meta/index");
            self.reading(|| {
                let (mut kv, key) = (kv.clone(), key.clone());
                async move { kv.get(key, None).await }
            })
            .await
            .ok()?
            .kvs()
            .first()
            .map_or(0, |kv| kv.mod_revision())
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let warm = loop {
            let current = lock(&self.warm)
                .as_ref()
                .filter(|w| w.meta.index_revision >= latest)
                .cloned();
            if current.is_some() || tokio::time::Instant::now() > deadline {
                break current;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        task.abort();
        *lock(&self.warm) = None;
        *lock(&self.replica) = None;
        warm
    }
}
