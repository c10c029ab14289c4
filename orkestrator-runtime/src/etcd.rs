//! The manager's state in etcd, and the election that lets several managers share it.
//!
//! [`EtcdStore`] implements [`Store`]: each grouped commit is one etcd transaction that writes
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
//! | `P/jobs/NAME` | a [`JobRecord`] (JSON) |
//! | `P/specs/NAME/VERSION` | a job spec (JSON) |
//! | `P/instances/ID` | an [`InstanceRecord`] (JSON) |
//! | `P/workers/ID` | a worker registration (JSON) |
//! | `P/tokens/ID` | a token record (a digest, JSON) |
//! | `P/leader/...` | the election's candidates (etcd's election API, on a lease) |
//! | `P/managers/NAME` | each running manager and where it answers (on its lease) |
//!
//! etcd's default limits (128 operations and 1.5 MiB a transaction) are too small for one change
//! of a large job, so [`EtcdStore::connect`] checks that the members run with at least
//! [`REQUIRED_TXN_OPS`] operations and [`REQUIRED_REQUEST_BYTES`] bytes, and names the flags when
//! they do not. Commits larger than that are split between changes by the manager's committer.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn, TxnOp,
};
use orkestrator_core::api::RegisterWorker;
use orkestrator_core::auth::TokenRecord;
use orkestrator_core::error::{Error, Result};
use orkestrator_core::ids::JobId;
use orkestrator_core::spec::Job;
use orkestrator_core::store::{
    CommitLimits, FORMAT, InstanceRecord, JobRecord, Snapshot, Store, StoreOp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The fewest operations per transaction the etcd members must allow (`--max-txn-ops`): a job
/// of count 1,000 replaced by a new version writes about 2,000 instances in one change.
pub const REQUIRED_TXN_OPS: usize = 4096;

/// The fewest bytes per request the etcd members must allow (`--max-request-bytes`).
pub const REQUIRED_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// What etcd's gRPC server accepts beyond `--max-request-bytes` (its fixed overhead allowance).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Room kept in each commit for the store's own keys (index, format, next instance).
const OWN_OPS: usize = 8;

/// How stale a follower's read-only copy may be before a read rebuilds it.
pub const REPLICA_REFRESH: Duration = Duration::from_millis(100);

/// Keys read per page when loading.
const PAGE: i64 = 500;

/// Commits between two compactions of etcd's history (the default of
/// [`EtcdOptions::compact_every`]).
pub const COMPACT_EVERY: u64 = 1000;

/// Revisions of history kept behind the leader when it compacts (followers that fall further
/// behind reload).
pub const KEEP_REVISIONS: i64 = 10_000;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// The members, `host:port` each (from `etcd://HOST:PORT[,HOST:PORT...]`).
    pub endpoints: Vec<String>,
    /// The key prefix everything lives under, ending in `/`.
    pub prefix: String,
    /// TLS towards etcd: the CA that signed the members' certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate and key for etcd's client-certificate authentication.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A user name and password for etcd's own authentication.
    pub user: Option<(String, String)>,
    /// How long a request may take before its outcome is unknown.
    pub timeout: Duration,
    /// Commits between two compactions of etcd's history by the leader.
    pub compact_every: u64,
    /// Revisions of history the leader keeps behind itself when it compacts.
    pub keep_revisions: i64,
}

impl EtcdOptions {
    /// Options for `url` (`etcd://HOST:PORT[,HOST:PORT...]`) with the default prefix
    /// `/orkestrator/`, no TLS and no credentials.
    pub fn from_url(url: &str) -> Result<Self> {
        Ok(EtcdOptions {
            endpoints: parse_url(url)?,
            prefix: "/orkestrator/".into(),
            ca_file: None,
            client_cert: None,
            user: None,
            timeout: Duration::from_secs(5),
            compact_every: COMPACT_EVERY,
            keep_revisions: KEEP_REVISIONS,
        })
    }

    /// The same, under `prefix` (a `/` is added at the end when missing).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let mut p = prefix.to_string();
        if !p.ends_with('/') {
            p.push('/');
        }
        self.prefix = p;
        self
    }

    fn urls(&self) -> Vec<String> {
        let scheme = if self.ca_file.is_some() || self.client_cert.is_some() {
            "https"
        } else {
            "http"
        };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    fn connect_options(&self) -> Result<ConnectOptions> {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some((u, p)) = &self.user {
            o = o.with_user(u.clone(), p.clone());
        }
        if self.ca_file.is_some() || self.client_cert.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    Error::tls(Some(ca), format!("cannot read the etcd CA file: {e}"))
                })?;
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &self.client_cert {
                let c = std::fs::read(cert).map_err(|e| {
                    Error::tls(
                        Some(cert),
                        format!("cannot read the etcd client certificate: {e}"),
                    )
                })?;
                let k = std::fs::read(key).map_err(|e| {
                    Error::tls(Some(key), format!("cannot read the etcd client key: {e}"))
                })?;
                tls = tls.identity(Identity::from_pem(c, k));
            }
            o = o.with_tls(tls);
        }
        Ok(o)
    }
}

/// The members of `etcd://HOST:PORT[,HOST:PORT...]`.
pub fn parse_url(url: &str) -> Result<Vec<String>> {
    let rest = url.strip_prefix("etcd://").ok_or_else(|| {
        Error::Store(format!(
            "{url:?} is not an etcd address: write etcd://HOST:PORT[,HOST:PORT...]"
        ))
    })?;
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err(Error::Store(format!(
            "{url:?} names no etcd member: write etcd://HOST:PORT[,HOST:PORT...]"
        )));
    }
    for e in &endpoints {
        let ok = e
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(Error::Store(format!(
                "etcd member {e:?} in {url:?} is not HOST:PORT (e.g. 127.0.0.1:2379)"
            )));
        }
    }
    Ok(endpoints)
}

/// Connects to etcd with `options`.
pub async fn connect(options: &EtcdOptions) -> Result<Client> {
    let client = tokio::time::timeout(
        options.timeout,
        Client::connect(options.urls(), Some(options.connect_options()?)),
    )
    .await
    .map_err(|_| unreachable_etcd(options, "no answer"))?
    .map_err(|e| unreachable_etcd(options, &e.to_string()))?;
    Ok(client)
}

fn unreachable_etcd(options: &EtcdOptions, why: &str) -> Error {
    Error::Store(format!(
        "cannot reach etcd at {} ({why}): is it running, and are the addresses right?",
        options.endpoints.join(",")
    ))
}

/// The leader key a commit is fenced on.
#[derive(Debug, Clone)]
struct Fence {
    key: Vec<u8>,
    create_revision: i64,
}

/// The manager's state in etcd. See the module docs for the key layout and the fencing.
pub struct EtcdStore {
    client: Client,
    options: EtcdOptions,
    prefix: String,
    /// The mod revision of the index key as this store last read or wrote it (0: absent).
    index_revision: AtomicI64,
    fence: Mutex<Option<Fence>>,
    format_written: std::sync::atomic::AtomicBool,
    commits: AtomicU64,
    /// Told when a commit was refused because the fence no longer holds.
    lost: tokio::sync::watch::Sender<bool>,
    /// A follower's warm copy of the state, and the task keeping it.
    warm: Mutex<Option<Warm>>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    warm_loads: AtomicU64,
    /// The last read-only copy built from the warm copy (rebuilt when that moves on).
    replica: Mutex<Option<(Arc<orkestrator_core::manager::Replica>, std::time::Instant)>>,
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
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
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

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    async fn check_limits(&self) -> Result<()> {
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
            Err(Error::Store(m)) if m.contains("too many operations") => {
                return Err(Error::Store(format!(
                    "etcd refuses transactions of {REQUIRED_TXN_OPS} operations ({m}): run every \
                     etcd member with --max-txn-ops={REQUIRED_TXN_OPS} (or more); a job of count \
                     1,000 is committed in one transaction"
                )));
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
            Err(Error::Store(m))
                if m.contains("larger than max")
                    || m.contains("too large")
                    || m.contains("ResourceExhausted")
                    || m.contains("resource exhausted") =>
            {
                Err(Error::Store(format!(
                    "etcd refuses requests of {} MiB ({m}): run every etcd member with \
                     --max-request-bytes={REQUIRED_REQUEST_BYTES} (or more)",
                    REQUIRED_REQUEST_BYTES / (1024 * 1024)
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// [`EtcdStore::timed`], sent again (for up to a second) while it could not even be sent:
    /// with a member down, the client's balancer may first pick the dead one.
    async fn retrying<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.sending(f, false).await
    }

    /// [`EtcdStore::retrying`] for a read, which is also sent again (twice more) when its
    /// answer did not come: reading twice changes nothing, and a member cut off from the others
    /// may hold a connection that only its keep-alive finds dead.
    async fn reading<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.sending(f, true).await
    }

    async fn sending<T, F, Fut>(&self, mut f: F, read: bool) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut unanswered = 0;
        loop {
            match self.timed(f()).await {
                Err(e @ Error::Store(_))
                    if e.to_string().contains("cannot reach etcd")
                        && tokio::time::Instant::now() < give_up =>
                {
                    tracing::debug!(error = %e, "etcd request not sent; trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e @ Error::OutcomeUnknown(_)) if read && unanswered < 2 => {
                    unanswered += 1;
                    tracing::debug!(error = %e, "etcd read not answered; reading again");
                }
                other => return other,
            }
        }
    }

    /// Runs one request within the timeout; a late or broken answer is an unknown outcome.
    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.options.timeout, f).await {
            Err(_) => Err(Error::OutcomeUnknown(format!(
                "etcd did not answer within {:?}",
                self.options.timeout
            ))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&self.options, e)),
        }
    }

    fn compact_behind(&self, revision: i64) {
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

    /// The key `op` writes.
    fn op_key(&self, op: &StoreOp) -> Vec<u8> {
        let rest = match op {
            StoreOp::PutJob(j) => format!("jobs/{}", j.name),
            StoreOp::DeleteJob(name) => format!("jobs/{name}"),
            StoreOp::PutSpec { job, version, .. } | StoreOp::DeleteSpec { job, version } => {
                format!("specs/{job}/{version}")
            }
            StoreOp::PutInstance(i) => format!("instances/{}", i.id),
            StoreOp::DeleteInstance(id) => format!("instances/{id}"),
            StoreOp::PutWorker(w) => format!("workers/{}", w.id),
            StoreOp::DeleteWorker(id) => format!("workers/{id}"),
            StoreOp::SetNextInstance(_) => "meta/next_instance".to_owned(),
            StoreOp::PutToken(t) => format!("tokens/{}", t.id),
            StoreOp::DeleteToken(id) => format!("tokens/{id}"),
        };
        self.key(&rest).into_bytes()
    }

    fn to_txn_op(&self, op: StoreOp) -> Result<TxnOp> {
        let key = self.op_key(&op);
        Ok(match op {
            StoreOp::PutJob(j) => TxnOp::put(key, encode(&j)?, None),
            StoreOp::PutSpec { spec, .. } => TxnOp::put(key, encode(&*spec)?, None),
            StoreOp::PutInstance(i) => TxnOp::put(key, encode(&i)?, None),
            StoreOp::PutWorker(w) => TxnOp::put(key, encode(&w)?, None),
            StoreOp::SetNextInstance(n) => TxnOp::put(key, n.to_string(), None),
            StoreOp::PutToken(t) => TxnOp::put(key, encode(&t)?, None),
            StoreOp::DeleteJob(_)
            | StoreOp::DeleteSpec { .. }
            | StoreOp::DeleteInstance(_)
            | StoreOp::DeleteWorker(_)
            | StoreOp::DeleteToken(_) => TxnOp::delete(key, None),
        })
    }

    /// Why a commit's comparison failed: the fence, or another writer.
    async fn refused(&self, fence: Option<&Fence>) -> Error {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn classify(options: &EtcdOptions, e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    match &e {
        E::GRpcStatus(s) => match s.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange
            | tonic::Code::ResourceExhausted
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated => {
                Error::Store(format!("etcd refused: {}", s.message()))
            }
            tonic::Code::Unavailable if is_connect_error(s.message()) => {
                unreachable_etcd(options, s.message())
            }
            _ => Error::OutcomeUnknown(format!("etcd: {}", s.message())),
        },
        E::TransportError(_) | E::IoError(_) => unreachable_etcd(options, &e.to_string()),
        _ => Error::Store(format!("etcd: {e}")),
    }
}

fn is_connect_error(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("connect") || m.contains("refused") || m.contains("dns")
}

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("cannot encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Store(format!("corrupt record {key}: {e}")))
}

fn number(key: &str, bytes: &[u8]) -> Result<u64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Store(format!("corrupt record {key}: not a number")))
}

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
        let keyed: Vec<(Vec<u8>, StoreOp)> =
            ops.into_iter().map(|op| (self.op_key(&op), op)).collect();
        for (i, (k, _)) in keyed.iter().enumerate() {
            last.insert(k.clone(), i);
        }
        let mut then = Vec::with_capacity(last.len() + 2);
        for (i, (k, op)) in keyed.into_iter().enumerate() {
            if last.get(&k) == Some(&i) {
                then.push(self.to_txn_op(op)?);
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
            _ => 0,
        };
        value + self.prefix.len() + 128
    }
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

/// What the stored keys say beside the state.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    /// The mod revision of the index key (0: absent).
    index_revision: i64,
    format: u64,
    copying: bool,
}

impl Meta {
    fn check(&self, prefix: &str) -> Result<()> {
        if self.copying {
            return Err(Error::Store(format!(
                "a copy into etcd under {prefix} did not finish (`orkestrator store copy` was \
                 interrupted): run it again with --replace"
            )));
        }
        if self.format > FORMAT {
            return Err(Error::Store(format!(
                "the state in etcd under {prefix} has format {}, newer than this build reads \
                 ({FORMAT}): run a newer orkestrator",
                self.format
            )));
        }
        Ok(())
    }
}

/// Reads everything under the prefix at one revision: the state, its meta, and the revision.
async fn read_all(store: &EtcdStore) -> Result<(Snapshot, Meta, i64)> {
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

/// Applies one stored key (`rest`: the key less the prefix) to a snapshot being read.
fn put_record(
    snap: &mut Snapshot,
    meta: &mut Meta,
    rest: &str,
    v: &[u8],
    mod_revision: i64,
) -> Result<()> {
    let key = rest;
    match rest.split_once('/') {
        Some(("meta", "index")) => {
            snap.index = number(key, v)?;
            meta.index_revision = mod_revision;
        }
        Some(("meta", "next_instance")) => snap.next_instance = number(key, v)?,
        Some(("meta", "format")) => meta.format = number(key, v)?,
        Some(("meta", "copying")) => meta.copying = true,
        Some(("jobs", _)) => {
            let j: JobRecord = decode(key, v)?;
            snap.jobs.insert(j.name.clone(), j);
        }
        Some(("specs", name_version)) => {
            let (name, version) = spec_key(key, name_version)?;
            let spec: Job = decode(key, v)?;
            snap.specs
                .insert((JobId::new(name), version), Arc::new(spec));
        }
        Some(("instances", _)) => {
            let i: InstanceRecord = decode(key, v)?;
            snap.instances.insert(i.id.clone(), i);
        }
        Some(("workers", _)) => {
            let w: RegisterWorker = decode(key, v)?;
            snap.workers.insert(w.id.clone(), w);
        }
        Some(("tokens", _)) => {
            let t: TokenRecord = decode(key, v)?;
            snap.tokens.insert(t.id.clone(), t);
        }
        // The election, the managers' addresses and anything else: not state.
        _ => {}
    }
    Ok(())
}

/// Applies the deletion of one stored key to a warm copy.
fn delete_record(snap: &mut Snapshot, meta: &mut Meta, rest: &str) -> Result<()> {
    match rest.split_once('/') {
        Some(("meta", "copying")) => meta.copying = false,
        Some(("jobs", name)) => {
            snap.jobs.remove(&JobId::new(name));
        }
        Some(("specs", name_version)) => {
            let (name, version) = spec_key(rest, name_version)?;
            snap.specs.remove(&(JobId::new(name), version));
        }
        Some(("instances", id)) => {
            snap.instances
                .remove(&orkestrator_core::ids::InstanceId::new(id));
        }
        Some(("workers", id)) => {
            snap.workers
                .remove(&orkestrator_core::ids::WorkerId::new(id));
        }
        Some(("tokens", id)) => {
            snap.tokens.remove(id);
        }
        _ => {}
    }
    Ok(())
}

fn spec_key<'a>(key: &str, name_version: &'a str) -> Result<(&'a str, u64)> {
    let corrupt = || Error::Store(format!("corrupt key {key}"));
    let (name, version) = name_version.rsplit_once('/').ok_or_else(corrupt)?;
    Ok((name, version.parse().map_err(|_| corrupt())?))
}

/// A follower's copy of the state, kept current by watching etcd.
#[derive(Debug, Clone, Default)]
struct Warm {
    snap: Snapshot,
    meta: Meta,
}

impl EtcdStore {
    /// Starts keeping a warm copy of the state (a follower's): read once, then kept current by
    /// watching etcd; read again after a compaction overtook the watch or the watch broke. The
    /// next [`Store::load`] takes it instead of reading everything, once it holds the latest
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
    async fn take_warm(&self) -> Option<Warm> {
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

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Where a manager answers, as it tells the others in `P/managers/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ManagerRecord {
    /// Its name (unique among the managers: host and port by default).
    pub name: String,
    /// Where it answers, `http(s)://HOST:PORT`.
    pub addr: String,
}

/// One manager's place in the election: a lease kept alive in the background, the candidate
/// key, and whether it leads.
pub struct Member {
    client: Client,
    prefix: String,
    lease: i64,
    record: ManagerRecord,
    lost: tokio::sync::watch::Receiver<bool>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("lease", &self.lease)
            .field("record", &self.record)
            .finish()
    }
}

/// A won election: the leader key to fence commits on.
#[derive(Debug, Clone)]
pub struct Leadership {
    /// The leader key.
    pub key: Vec<u8>,
    /// Its create revision (what every commit compares).
    pub create_revision: i64,
}

impl Member {
    /// Joins: takes a lease of `ttl` (kept alive every third of it; lost when etcd does not
    /// renew it in time) and announces `record` under `P/managers/NAME` on it.
    pub async fn join(
        client: Client,
        prefix: &str,
        record: ManagerRecord,
        ttl: Duration,
    ) -> Result<Self> {
        // etcd counts leases in whole seconds, and grants no less than about its election
        // timeout: the lease held is what etcd granted, and the loss is judged by that.
        let secs = ttl.as_millis().div_ceil(1000).max(1) as i64;
        let mut c = client.clone();
        let granted = c
            .lease_grant(secs, None)
            .await
            .map_err(|e| Error::Store(format!("cannot take a lease in etcd: {e}")))?;
        let lease = granted.id();
        let held = Duration::from_secs(granted.ttl().max(secs) as u64);
        if held > ttl {
            tracing::warn!(
                asked = ?ttl,
                granted = ?held,
                "etcd granted a longer lease than --leader-lease asked (it grants no less than \
                 its election timeout, in whole seconds)"
            );
        }
        let (tx, lost) = tokio::sync::watch::channel(false);
        let keepalive = tokio::spawn(keep_alive(client.clone(), lease, held, tx));
        c.put(
            format!("{prefix}managers/{}", record.name),
            encode(&record)?,
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| Error::Store(format!("cannot announce this manager in etcd: {e}")))?;
        Ok(Member {
            client,
            prefix: prefix.to_string(),
            lease,
            record,
            lost,
            keepalive,
        })
    }

    /// Becomes `true` once the lease is lost (then this member must stop acting as leader).
    pub fn lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Waits until this member is elected (etcd's election API on its lease).
    pub async fn campaign(&self) -> Result<Leadership> {
        let mut c = self.client.clone();
        let r = c
            .campaign(self.election(), encode(&self.record)?, self.lease)
            .await
            .map_err(|e| Error::Store(format!("the election failed: {e}")))?;
        let key = r.leader().ok_or_else(|| {
            Error::Store("etcd answered the campaign without a leader key".into())
        })?;
        // The create revision of the key, read back (the leader key names it as `rev`).
        Ok(Leadership {
            key: key.key().to_vec(),
            create_revision: key.rev(),
        })
    }

    /// The election's name.
    fn election(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// This member's record.
    pub fn record(&self) -> &ManagerRecord {
        &self.record
    }

    /// Gives the lease back (its keys go at once), so the others need not wait for it to run
    /// out.
    pub async fn leave(self) {
        self.keepalive.abort();
        let mut c = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), c.lease_revoke(self.lease)).await;
    }
}

/// The current leader's record, if any.
pub async fn leader(client: &Client, prefix: &str) -> Result<Option<ManagerRecord>> {
    let mut c = client.clone();
    match c.leader(format!("{prefix}leader")).await {
        Ok(r) => Ok(match r.kv() {
            Some(kv) => Some(decode(&format!("{prefix}leader"), kv.value())?),
            None => None,
        }),
        Err(e) if e.to_string().contains("no leader") => Ok(None),
        Err(e) => Err(Error::Store(format!(
            "cannot read the leader from etcd: {e}"
        ))),
    }
}

/// Every manager that announced itself and still holds its lease.
pub async fn managers(client: &Client, prefix: &str) -> Result<Vec<ManagerRecord>> {
    let mut c = client.clone();
    let r = c
        .get(
            format!("{prefix}managers/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .map_err(|e| Error::Store(format!("cannot list the managers in etcd: {e}")))?;
    r.kvs()
        .iter()
        .map(|kv| decode(&String::from_utf8_lossy(kv.key()), kv.value()))
        .collect()
}

/// Keeps `lease` alive; tells `lost` once it was not renewed within `ttl` (by the monotonic
/// clock, which runs on while the process is stopped), or etcd says it is gone.
async fn keep_alive(
    mut client: Client,
    lease: i64,
    ttl: Duration,
    lost: tokio::sync::watch::Sender<bool>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut renewed = tokio::time::Instant::now();
    let mut channel = None;
    while renewed.elapsed() < ttl {
        if channel.is_none() {
            channel = match tokio::time::timeout(every, client.lease_keep_alive(lease)).await {
                Ok(Ok(c)) => Some(c),
                _ => None,
            };
        }
        if let Some((keeper, stream)) = &mut channel {
            let answer = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(every, answer).await {
                // A renewal that arrives after the lease ran out does not bring it back.
                Ok(Ok(Some(r))) if r.ttl() > 0 && renewed.elapsed() < ttl => {
                    renewed = tokio::time::Instant::now();
                }
                Ok(Ok(Some(_))) => break, // etcd says the lease is gone
                _ => channel = None,
            }
        }
        tokio::time::sleep(every.min(ttl.saturating_sub(renewed.elapsed()))).await;
    }
    tracing::warn!(lease, "the etcd lease was lost");
    let _ = lost.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_how() {
        assert_eq!(
            parse_url("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap(),
            vec!["127.0.0.1:2379", "10.0.0.2:2379"]
        );
        let e = parse_url("http://x:1").unwrap_err().to_string();
        assert!(e.contains("etcd://HOST:PORT"), "{e}");
        let e = parse_url("etcd://x").unwrap_err().to_string();
        assert!(e.contains("not HOST:PORT"), "{e}");
        assert!(parse_url("etcd://").is_err());
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/ork/"), b"/ork0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }
}
