//! The secrets room: secrets operators create, update, list and remove. Values are sealed
//! under the manager's key before they reach the state or the store (see
//! [`secrets`](crate::secrets)); answers carry names, versions, sizes and times, never values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::{ApiError, ErrorKind};
use crate::clock::Now;
use crate::error::{Error, Result};
use crate::ids::{JobId, WorkerId, parse_id};
use crate::secrets::{
    DeliveredSecret, InstanceSecrets, SecretInfo, SecretKey, SecretRecord, SecretValue, check_name,
    check_size, encode_value, key_missing,
};
use crate::spec::{Job, Problems};
use crate::store::{Snapshot, StoreOp};

use crate::manager::commit::Txn;
use crate::manager::config::ManagerConfig;
use crate::manager::inner::{ApiResult, Inner};
use crate::manager::jobs;
use crate::manager::state::State;
use crate::manager::tokens::forbidden;

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

    /// Makes a new version of secret `name`, and a new version of every job that uses it and
    /// has not ended (stopped, completed or failed), pinning the new secret version: it rolls
    /// out as any new job version does. Earlier versions of the secret are kept while a kept
    /// job version pins them; the others are removed.
    ///
    /// A value equal to the latest version's changes nothing: no new version, no rollout (so
    /// that `compose up` may update every secret it carries on each run).
    pub async fn update(&self, name: &str, value: SecretValue) -> ApiResult<SecretInfo> {
        let key = self.key()?;
        check_name(name)?;
        check_size(value.len())?;
        let (t, (info, version, jobs)) = self.inner.write(|st, txn, cfg, now| {
            let versions = st
                .secrets
                .get_mut(name)
                .ok_or_else(|| ApiError::not_found("secret", name))?;
            if let Some(latest) = versions.values().next_back()
                && let Ok(current) = key.open(name, latest.version, &latest.sealed)
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    current.as_bytes(),
                    value.as_bytes(),
                ))
            {
                let version = latest.version;
                return Ok((info(name, versions), version, Vec::new()));
            }
            let version = versions.keys().next_back().copied().unwrap_or(0) + 1;
            let rec = seal(key, name, version, &value, now.wall)?;
            txn.ops.push(StoreOp::PutSecret(rec.clone()));
            versions.insert(version, rec);
            let jobs = roll_users(st, txn, cfg, name, version, now);
            prune(st, txn, Some(name));
            let info = st.secrets.get(name).map(|v| info(name, v));
            Ok((info.unwrap_or_else(|| empty(name)), version, jobs))
        })?;
        t.durable().await?;
        tracing::info!(secret = name, version, jobs = jobs.len(), "secret updated");
        Ok(info)
    }

    /// The secrets of `instance`'s tasks, for `worker`, the worker it is assigned to: each at
    /// the version the instance's job version pins. Refused (403 `not_your_instance`) for an
    /// instance that is not assigned to `worker`, as for one that does not exist.
    pub async fn for_instance(
        &self,
        worker: &WorkerId,
        instance: &str,
    ) -> ApiResult<InstanceSecrets> {
        let key = self.key()?;
        let not_yours = || {
            forbidden(
                "not_your_instance",
                format!(
                    "instance {instance} is not assigned to worker \"{worker}\": a worker is given the secrets of its own instances only"
                ),
            )
        };
        let (t, records) = self.inner.read(|st| {
            let key = parse_id(&crate::ids::InstanceId::new(instance)).ok_or_else(not_yours)?;
            let inst = st.instance(&key).ok_or_else(not_yours)?;
            if inst.worker.as_ref() != Some(worker) {
                return Err(not_yours());
            }
            let spec = st.spec_of(&key).ok_or_else(not_yours)?;
            let mut out: Vec<(String, SecretRecord)> = Vec::new();
            for task in &spec.tasks {
                for r in &task.secrets {
                    let versions = st.secrets.get(&r.name);
                    let rec = match r.version {
                        Some(v) => versions.and_then(|vs| vs.get(&v)),
                        None => versions.and_then(|vs| vs.values().next_back()),
                    };
                    let Some(rec) = rec else {
                        return Err(ApiError::not_found(
                            "secret version",
                            format!("{}@{}", r.name, r.version.unwrap_or(0)),
                        ));
                    };
                    out.push((task.name.as_str().to_owned(), rec.clone()));
                }
            }
            Ok(out)
        })?;
        t.durable().await?;
        let mut answer = InstanceSecrets {
            instance: instance.to_owned(),
            tasks: BTreeMap::new(),
        };
        for (task, rec) in records {
            let value = key
                .open(&rec.name, rec.version, &rec.sealed)
                .map_err(ApiError::from)?;
            answer.tasks.entry(task).or_default().push(DeliveredSecret {
                name: rec.name.clone(),
                version: rec.version,
                value_base64: encode_value(&value),
            });
        }
        Ok(answer)
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

/// What the API shows of a secret that has no version left (not reached: the latest version
/// is never pruned).
fn empty(name: &str) -> SecretInfo {
    info(name, &BTreeMap::new())
}

/// Pins the secrets a submitted job names: each reference gets the latest version of its
/// secret, unless the job is exactly an earlier kept version of itself whose pinned versions
/// are all kept (going back to it brings back its values). Refuses a job naming a secret that
/// does not exist (400, at `tasks[i].secrets[j].name`), and any job naming secrets on a
/// manager without a key (503). Changes nothing in the state.
pub(crate) fn pin(st: &State, cfg: &ManagerConfig, job: &mut Job) -> ApiResult<()> {
    if job.tasks.iter().all(|t| t.secrets.is_empty()) {
        return Ok(());
    }
    if cfg.secret_key.is_none() {
        return Err(ApiError::unavailable(
            "secrets_need_key",
            format!(
                "job {} names secrets, and secrets need a key: start the manager with --secret-key-file",
                job.name
            ),
        ));
    }
    let mut problems = Problems::default();
    for (i, t) in job.tasks.iter().enumerate() {
        for (j, r) in t.secrets.iter().enumerate() {
            if !st.secrets.contains_key(&r.name) {
                problems.push(
                    format!("tasks[{i}].secrets[{j}].name"),
                    format!(
                        "there is no secret named {}: create it first (`orkestrator secret create {} -f FILE`), or fix the name",
                        r.name, r.name
                    ),
                );
            }
        }
    }
    if !problems.0.is_empty() {
        let n = problems.0.len();
        return Err(ApiError {
            kind: ErrorKind::Invalid,
            code: "invalid_spec".into(),
            message: format!(
                "job not accepted ({n} problem{}): it names secrets that do not exist",
                if n == 1 { "" } else { "s" }
            ),
            problems: Some(problems),
        });
    }
    let going_back = st.jobs.get(&job.name).is_some_and(|e| {
        e.specs.values().any(|s| **s == *job)
            && job.tasks.iter().flat_map(|t| &t.secrets).all(|r| {
                r.version.is_some_and(|v| {
                    st.secrets
                        .get(&r.name)
                        .is_some_and(|vs| vs.contains_key(&v))
                })
            })
    });
    if going_back {
        return Ok(());
    }
    for t in &mut job.tasks {
        for r in &mut t.secrets {
            r.version = st
                .secrets
                .get(&r.name)
                .and_then(|vs| vs.keys().next_back().copied());
        }
    }
    Ok(())
}

/// Makes a new version of every job that uses secret `name` and has not ended, pinning its
/// `version`; returns the jobs. Each rolls out as any new job version does.
fn roll_users(
    st: &mut State,
    txn: &mut Txn,
    cfg: &ManagerConfig,
    name: &str,
    version: u64,
    now: Now,
) -> Vec<JobId> {
    let users: Vec<Job> = st
        .jobs
        .values()
        .filter(|e| !jobs::ended(e) && e.spec().secret_names().contains(name))
        .map(|e| (**e.spec()).clone())
        .collect();
    let mut rolled = Vec::with_capacity(users.len());
    for mut job in users {
        for r in job.tasks.iter_mut().flat_map(|t| t.secrets.iter_mut()) {
            if r.name == name {
                r.version = Some(version);
            }
        }
        rolled.push(job.name.clone());
        jobs::submit(st, txn, cfg, job, now);
    }
    rolled
}

/// Removes the versions of secrets (of `only`, or of all) that are neither the latest nor
/// pinned by a kept job version.
pub(crate) fn prune(st: &mut State, txn: &mut Txn, only: Option<&str>) {
    let pinned: BTreeSet<(&str, u64)> = st
        .jobs
        .values()
        .flat_map(|e| e.specs.values())
        .flat_map(|s| s.tasks.iter().flat_map(|t| t.secrets.iter()))
        .filter_map(|r| Some((r.name.as_str(), r.version?)))
        .collect();
    let mut gone: Vec<(String, u64)> = Vec::new();
    for (name, versions) in &st.secrets {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let latest = versions.keys().next_back().copied();
        gone.extend(
            versions
                .keys()
                .filter(|v| Some(**v) != latest && !pinned.contains(&(name.as_str(), **v)))
                .map(|v| (name.clone(), *v)),
        );
    }
    for (name, version) in gone {
        if let Some(vs) = st.secrets.get_mut(&name) {
            vs.remove(&version);
        }
        txn.ops.push(StoreOp::DeleteSecret { name, version });
    }
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
