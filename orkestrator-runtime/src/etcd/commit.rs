//! Loading and committing the state: [`EtcdStore`]'s [`Store`] implementation (each commit one
//! fenced etcd transaction), and copying a whole state in.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use base64::Engine;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use orkestrator_core::error::Result;
use orkestrator_core::store::{CommitLimits, FORMAT, Snapshot, Store, StoreOp};

use super::keys::{encode, op_key};
use super::store::{EtcdStore, OWN_OPS, REQUIRED_REQUEST_BYTES, REQUIRED_TXN_OPS, lock, read_all};

#[async_trait]
impl Store for EtcdStore {
    async fn load(&self) -> Result<Snapshot> {
        let warm = self.take_warm().await;
        let (snap, meta) = match warm {
            Some(w) => {
                self.warm_loads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(index = w.snap.index, "state taken from the warm copy");
                (w.snap, w.meta)
            }
            None => {
                let (snap, meta, _) = read_all(self).await?;
                (snap, meta)
            }
        };
        meta.check(&self.prefix)?;
        self.format_written
            .store(meta.format == FORMAT, Ordering::Relaxed);
        self.index_revision
            .store(meta.index_revision, Ordering::Release);
        Ok(snap)
    }

    async fn commit(&self, index: u64, ops: Vec<StoreOp>) -> Result<()> {
        let fence = lock(&self.fence).clone();
        let index_key = self.key("meta/index");
        let mut when = vec![Compare::mod_revision(
            index_key.clone(),
            CompareOp::Equal,
            self.index_revision.load(Ordering::Acquire),
        )];
        if let Some(f) = &fence {
            when.push(Compare::create_revision(
                f.key.clone(),
                CompareOp::Equal,
                f.create_revision,
            ));
        }
        // etcd refuses a transaction that names a key twice; a group of changes may write one
        // record (the next instance number, an instance) more than once: the last write wins.
        let mut last: std::collections::HashMap<Vec<u8>, usize> =
            std::collections::HashMap::with_capacity(ops.len());
        let keyed: Vec<(Vec<u8>, StoreOp)> = ops
            .into_iter()
            .map(|op| (op_key(&self.prefix, &op), op))
            .collect();
        for (i, (k, _)) in keyed.iter().enumerate() {
            last.insert(k.clone(), i);
        }
        let mut then = Vec::with_capacity(last.len() + 2);
        for (i, (k, op)) in keyed.into_iter().enumerate() {
            if last.get(&k) == Some(&i) {
                then.push(to_txn_op(k, op)?);
            }
        }
        then.push(TxnOp::put(index_key, index.to_string(), None));
        if !self.format_written.load(Ordering::Relaxed) {
            then.push(TxnOp::put(
                self.key("meta/format"),
                FORMAT.to_string(),
                None,
            ));
        }
        let kv = self.client.kv_client();
        let txn = Txn::new().when(when).and_then(then);
        let r = self
            .retrying(|| {
                let mut kv = kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        if !r.succeeded() {
            return Err(self.refused(fence.as_ref()).await);
        }
        let revision = r.header().map_or(0, |h| h.revision());
        self.index_revision.store(revision, Ordering::Release);
        self.format_written.store(true, Ordering::Relaxed);
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(self.options.compact_every.max(1)) {
            self.compact_behind(revision);
        }
        Ok(())
    }

    fn limits(&self) -> CommitLimits {
        CommitLimits {
            ops: REQUIRED_TXN_OPS - OWN_OPS,
            bytes: REQUIRED_REQUEST_BYTES - 64 * 1024,
        }
    }

    fn op_bytes(&self, op: &StoreOp) -> usize {
        // Key plus value, about: records are small JSON, specs the largest.
        let value = match op {
            StoreOp::PutJob(j) => serde_json::to_vec(j).map_or(0, |v| v.len()),
            StoreOp::PutSpec { spec, .. } => serde_json::to_vec(&**spec).map_or(0, |v| v.len()),
            StoreOp::PutInstance(i) => serde_json::to_vec(i).map_or(0, |v| v.len()),
            StoreOp::PutWorker(w) => serde_json::to_vec(w).map_or(0, |v| v.len()),
            StoreOp::PutToken(t) => serde_json::to_vec(t).map_or(0, |v| v.len()),
            StoreOp::PutSecret(r) => serde_json::to_vec(r).map_or(0, |v| v.len()),
            StoreOp::SetSecretKeyCheck(c) => c.len() * 4 / 3 + 4,
            StoreOp::PutVolume(v) => serde_json::to_vec(v).map_or(0, |v| v.len()),
            _ => 0,
        };
        value + self.prefix.len() + 128
    }
}

impl EtcdStore {
    /// The key check of the key the stored secrets are sealed with, if a manager with a key
    /// has led on this store (one key read, so that a manager checks its key when it starts,
    /// not only once elected).
    pub async fn secret_key_check(&self) -> std::result::Result<Option<Vec<u8>>, super::EtcdError> {
        let mut kv = self.client.kv_client();
        let r = self
            .timed(kv.get(self.key("meta/secret_key_check"), None))
            .await?;
        Ok(r.kvs().first().and_then(|kv| {
            base64::engine::general_purpose::STANDARD
                .decode(kv.value())
                .ok()
        }))
    }

    /// Writes `snap` (what another store loaded) under the empty prefix: in commits within the
    /// limits, guarded by a `meta/copying` key that [`Store::load`] refuses, so that an
    /// interrupted copy is never taken for a cluster's state. Answers the number of records.
    pub async fn copy_in(&self, snap: Snapshot) -> Result<usize> {
        let mut kv = self.client.kv_client();
        self.timed(kv.put(self.key("meta/copying"), "1", None))
            .await?;
        let mut ops: Vec<StoreOp> = Vec::new();
        ops.extend(snap.jobs.into_values().map(StoreOp::PutJob));
        ops.extend(
            snap.specs
                .into_iter()
                .map(|((job, version), spec)| StoreOp::PutSpec { job, version, spec }),
        );
        ops.extend(snap.instances.into_values().map(StoreOp::PutInstance));
        ops.extend(snap.workers.into_values().map(StoreOp::PutWorker));
        ops.extend(snap.tokens.into_values().map(StoreOp::PutToken));
        // Secrets go as they are stored: sealed, under the same key (the key check with them).
        ops.extend(snap.secrets.into_values().map(StoreOp::PutSecret));
        ops.extend(snap.secret_key_check.map(StoreOp::SetSecretKeyCheck));
        ops.extend(snap.volumes.into_values().map(StoreOp::PutVolume));
        let records = ops.len();
        ops.push(StoreOp::SetNextInstance(snap.next_instance));
        let limits = self.limits();
        // The index key's revision as it is now (the guard's put did not touch it).
        self.index_revision.store(0, Ordering::Release);
        let mut chunk: Vec<StoreOp> = Vec::new();
        let mut bytes = 0;
        for op in ops {
            let n = self.op_bytes(&op);
            if !chunk.is_empty() && (chunk.len() + 1 > limits.ops || bytes + n > limits.bytes) {
                self.commit(snap.index, std::mem::take(&mut chunk)).await?;
                bytes = 0;
            }
            bytes += n;
            chunk.push(op);
        }
        self.commit(snap.index, chunk).await?;
        self.timed(kv.delete(self.key("meta/copying"), None))
            .await?;
        Ok(records)
    }
}

/// The transaction operation of `op`, which writes `key`.
fn to_txn_op(key: Vec<u8>, op: StoreOp) -> Result<TxnOp> {
    Ok(match op {
        StoreOp::PutJob(j) => TxnOp::put(key, encode(&j)?, None),
        StoreOp::PutSpec { spec, .. } => TxnOp::put(key, encode(&*spec)?, None),
        StoreOp::PutInstance(i) => TxnOp::put(key, encode(&i)?, None),
        StoreOp::PutWorker(w) => TxnOp::put(key, encode(&w)?, None),
        StoreOp::SetNextInstance(n) => TxnOp::put(key, n.to_string(), None),
        StoreOp::PutToken(t) => TxnOp::put(key, encode(&t)?, None),
        StoreOp::PutSecret(r) => TxnOp::put(key, encode(&r)?, None),
        StoreOp::PutVolume(v) => TxnOp::put(key, encode(&v)?, None),
        StoreOp::SetSecretKeyCheck(c) => TxnOp::put(
            key,
            base64::engine::general_purpose::STANDARD.encode(c),
            None,
        ),
        StoreOp::DeleteSecret { .. }
        | StoreOp::DeleteVolume { .. }
        | StoreOp::DeleteJob(_)
        | StoreOp::DeleteSpec { .. }
        | StoreOp::DeleteInstance(_)
        | StoreOp::DeleteWorker(_)
        | StoreOp::DeleteToken(_) => TxnOp::delete(key, None),
    })
}
