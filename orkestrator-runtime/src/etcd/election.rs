//! The election among the managers: each holds a lease kept alive in the background, announces
//! itself under `P/managers/NAME`, and campaigns with etcd's election API.

use std::time::Duration;

use etcd_client::{Client, GetOptions};
use orkestrator_core::error::Error;
use serde::Serialize;

use super::error::EtcdError;
use super::keys::{decode, encode};

/// What the election's requests answer.
type Result<T> = std::result::Result<T, EtcdError>;

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
        let granted = c.lease_grant(secs, None).await.map_err(|e| {
            EtcdError::of(
                &e,
                Error::Store(format!("cannot take a lease in etcd: {e}")),
            )
        })?;
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
            encode(&record).map_err(EtcdError::Other)?,
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| {
            EtcdError::of(
                &e,
                Error::Store(format!("cannot announce this manager in etcd: {e}")),
            )
        })?;
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
            .campaign(
                self.election(),
                encode(&self.record).map_err(EtcdError::Other)?,
                self.lease,
            )
            .await
            .map_err(|e| EtcdError::of(&e, Error::Store(format!("the election failed: {e}"))))?;
        let key = r.leader().ok_or_else(|| {
            EtcdError::Other(Error::Store(
                "etcd answered the campaign without a leader key".into(),
            ))
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
            Some(kv) => {
                Some(decode(&format!("{prefix}leader"), kv.value()).map_err(EtcdError::Other)?)
            }
            None => None,
        }),
        Err(e) if e.to_string().contains("no leader") => Ok(None),
        Err(e) => Err(EtcdError::of(
            &e,
            Error::Store(format!("cannot read the leader from etcd: {e}")),
        )),
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
        .map_err(|e| {
            EtcdError::of(
                &e,
                Error::Store(format!("cannot list the managers in etcd: {e}")),
            )
        })?;
    r.kvs()
        .iter()
        .map(|kv| decode(&String::from_utf8_lossy(kv.key()), kv.value()))
        .collect::<std::result::Result<_, _>>()
        .map_err(EtcdError::Other)
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
