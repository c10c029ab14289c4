//! The secrets room: secrets operators create, update, list and remove. Values are sealed
//! under the manager's key before they reach the state or the store (see
//! [`secrets`](crate::secrets)); answers carry names, versions, sizes and times, never values.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::ApiError;
use crate::error::{Error, Result};
use crate::ids::JobId;
use crate::secrets::{
    SecretInfo, SecretKey, SecretRecord, SecretValue, check_name, check_size, key_missing,
};
use crate::store::{Snapshot, StoreOp};

use crate::manager::inner::{ApiResult, Inner};
use crate::manager::state::State;

/// The manager's secrets, from [`Manager::secrets`](crate::manager::Manager::secrets).
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Secrets<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Secrets { inner }
    }

    /// Whether the manager has a key (without one, every operation answers 503).
    pub fn enabled(&self) -> bool {
        self.inner.config.secret_key.is_some()
    }

    fn key(&self) -> ApiResult<&SecretKey> {
        self.inner
            .config
            .secret_key
            .as_ref()
            .ok_or_else(key_missing)
    }

    /// Creates secret `name` at version 1. A 409 if it exists.
    pub async fn create(&self, name: &str, value: SecretValue) -> ApiResult<SecretInfo> {
        let key = self.key()?;
        check_name(name)?;
        check_size(value.len())?;
        let (t, info) = self.inner.write(|st, txn, _, now| {
            if st.secrets.contains_key(name) {
                return Err(ApiError::conflict(format!(
                    "secret {name} exists: make a new version with `orkestrator secret update {name}`"
                )));
            }
            let rec = seal(key, name, 1, &value, now.wall)?;
            txn.ops.push(StoreOp::PutSecret(rec.clone()));
            let versions = st.secrets.entry(name.to_owned()).or_default();
            versions.insert(1, rec);
            Ok(info(name, versions))
        })?;
        t.durable().await?;
        tracing::info!(secret = name, version = 1, "secret created");
        Ok(info)
    }

    /// Makes a new version of secret `name`. Earlier versions are kept while a job uses the
    /// secret (job versions will pin them); otherwise only the new one is.
    pub async fn update(&self, name: &str, value: SecretValue) -> ApiResult<SecretInfo> {
        let key = self.key()?;
        check_name(name)?;
        check_size(value.len())?;
        let (t, (info, version)) = self.inner.write(|st, txn, _, now| {
            let used = !users(st, name).is_empty();
            let versions = st
                .secrets
                .get_mut(name)
                .ok_or_else(|| ApiError::not_found("secret", name))?;
            let version = versions.keys().next_back().copied().unwrap_or(0) + 1;
            let rec = seal(key, name, version, &value, now.wall)?;
            txn.ops.push(StoreOp::PutSecret(rec.clone()));
            if !used {
                for old in std::mem::take(versions).into_keys() {
                    txn.ops.push(StoreOp::DeleteSecret {
                        name: name.to_owned(),
                        version: old,
                    });
                }
            }
            versions.insert(version, rec);
            Ok((info(name, versions), version))
        })?;
        t.durable().await?;
        tracing::info!(secret = name, version, "secret updated");
        Ok(info)
    }

    /// Every secret, by name (never values).
    pub async fn list(&self) -> ApiResult<Vec<SecretInfo>> {
        self.key()?;
        let (t, all) = self.inner.read(|st| {
            Ok(st
                .secrets
                .iter()
                .map(|(name, versions)| info(name, versions))
                .collect::<Vec<_>>())
        })?;
        t.durable().await?;
        Ok(all)
    }

    /// One secret (never its value).
    pub async fn get(&self, name: &str) -> ApiResult<SecretInfo> {
        self.key()?;
        let (t, one) = self.inner.read(|st| {
            st.secrets
                .get(name)
                .map(|versions| info(name, versions))
                .ok_or_else(|| ApiError::not_found("secret", name))
        })?;
        t.durable().await?;
        Ok(one)
    }

    /// Removes secret `name` and all its versions. Refused (409, naming them) while any job
    /// not yet garbage-collected uses it.
    pub async fn remove(&self, name: &str) -> ApiResult<SecretInfo> {
        self.key()?;
        let (t, gone) = self.inner.write(|st, txn, _, _| {
            let jobs = users(st, name);
            if !jobs.is_empty() {
                let names: Vec<&str> = jobs.iter().map(JobId::as_str).collect();
                return Err(ApiError::conflict(format!(
                    "secret {name} is used by job{} {}: change or stop {} and wait for garbage collection (or run `orkestrator gc`), then remove it",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    if names.len() == 1 { "it" } else { "them" },
                )));
            }
            let versions = st
                .secrets
                .remove(name)
                .ok_or_else(|| ApiError::not_found("secret", name))?;
            for version in versions.keys() {
                txn.ops.push(StoreOp::DeleteSecret {
                    name: name.to_owned(),
                    version: *version,
                });
            }
            Ok(info(name, &versions))
        })?;
        t.durable().await?;
        tracing::info!(secret = name, "secret removed");
        Ok(gone)
    }

    /// The plaintext of version `version` of secret `name` (the latest with `None`), for
    /// delivering it to a task. Never served by the operators' API.
    pub async fn value(&self, name: &str, version: Option<u64>) -> ApiResult<SecretValue> {
        let key = self.key()?;
        let (t, rec) = self.inner.read(|st| {
            let versions = st
                .secrets
                .get(name)
                .ok_or_else(|| ApiError::not_found("secret", name))?;
            let rec = match version {
                Some(v) => versions.get(&v),
                None => versions.values().next_back(),
            };
            rec.cloned().ok_or_else(|| {
                ApiError::not_found("secret version", format!("{name}@{}", version.unwrap_or(0)))
            })
        })?;
        t.durable().await?;
        key.open(&rec.name, rec.version, &rec.sealed)
            .map_err(ApiError::from)
    }
}

/// Seals one version.
fn seal(
    key: &SecretKey,
    name: &str,
    version: u64,
    value: &SecretValue,
    now: crate::clock::Millis,
) -> ApiResult<SecretRecord> {
    Ok(SecretRecord {
        name: name.to_owned(),
        version,
        size: value.len() as u64,
        created_at: now,
        sealed: key.seal(name, version, value).map_err(ApiError::from)?,
    })
}

/// What the API shows of a secret.
fn info(name: &str, versions: &BTreeMap<u64, SecretRecord>) -> SecretInfo {
    let first = versions.values().next();
    let last = versions.values().next_back();
    SecretInfo {
        name: name.to_owned(),
        version: last.map_or(0, |r| r.version),
        size: last.map_or(0, |r| r.size),
        created_at: first.map_or(0, |r| r.created_at),
        updated_at: last.map_or(0, |r| r.created_at),
        versions: versions.values().map(SecretRecord::info).collect(),
    }
}

/// The jobs not yet garbage-collected that use secret `name`, in any kept version.
fn users(st: &State, name: &str) -> Vec<JobId> {
    st.jobs
        .iter()
        .filter(|(_, e)| e.specs.values().any(|s| s.secret_names().contains(name)))
        .map(|(n, _)| n.clone())
        .collect()
}

/// Checks the manager's key against the store's key check when the manager starts: the op
/// that records the check if the store has none yet, an error if the key is another.
pub(crate) fn check_secret_key(
    key: Option<&SecretKey>,
    snap: &Snapshot,
) -> Result<Option<StoreOp>> {
    let other = || {
        Error::SecretKey(
            "the key given with --secret-key-file is not the key this store's secrets are sealed with: start the manager with the key file it used before (every manager on one etcd store needs the same file)"
                .into(),
        )
    };
    match (key, snap.secret_key_check.as_deref()) {
        (None, Some(_)) => {
            tracing::warn!(
                "the store holds sealed secrets but this manager has no key: secret operations answer 503 until it is started with --secret-key-file"
            );
            Ok(None)
        }
        (None, None) => Ok(None),
        (Some(k), Some(check)) if k.matches_check(check) => Ok(None),
        (Some(_), Some(_)) => Err(other()),
        (Some(k), None) => {
            if let Some(r) = snap.secrets.values().next()
                && k.open(&r.name, r.version, &r.sealed).is_err()
            {
                return Err(other());
            }
            Ok(Some(StoreOp::SetSecretKeyCheck(k.key_check()?)))
        }
    }
}
