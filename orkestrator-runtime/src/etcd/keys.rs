//! The key layout under the prefix (see the table in the [module docs](super)), and how stored
//! keys become records of a [`Snapshot`] (read in full, or one watched change at a time).

use std::sync::Arc;

use orkestrator_core::api::RegisterWorker;
use orkestrator_core::auth::TokenRecord;
use orkestrator_core::error::{Error, Result};
use orkestrator_core::ids::JobId;
use orkestrator_core::secrets::SecretRecord;
use orkestrator_core::spec::Job;
use orkestrator_core::store::{FORMAT, InstanceRecord, JobRecord, Snapshot, StoreOp};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(super) fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("cannot encode a record: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Store(format!("corrupt record {key}: {e}")))
}

pub(super) fn number(key: &str, bytes: &[u8]) -> Result<u64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Store(format!("corrupt record {key}: not a number")))
}

/// What the stored keys say beside the state.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Meta {
    /// The mod revision of the index key (0: absent).
    pub(super) index_revision: i64,
    pub(super) format: u64,
    pub(super) copying: bool,
}

impl Meta {
    pub(super) fn check(&self, prefix: &str) -> Result<()> {
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

/// Applies one stored key (`rest`: the key less the prefix) to a snapshot being read.
pub(super) fn put_record(
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
        Some(("meta", "secret_key_check")) => {
            use base64::Engine;
            let check = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| Error::Store(format!("corrupt record {key}: not base64")))?;
            snap.secret_key_check = Some(check);
        }
        Some(("secrets", _)) => {
            let r: SecretRecord = decode(key, v)?;
            snap.secrets.insert((r.name.clone(), r.version), r);
        }
        Some(("volumes", _)) => {
            let r: orkestrator_core::api::VolumeRecord = decode(key, v)?;
            snap.volumes.insert((r.of.clone(), r.worker.clone()), r);
        }
        // The election, the managers' addresses and anything else: not state.
        _ => {}
    }
    Ok(())
}

/// Applies the deletion of one stored key to a warm copy.
pub(super) fn delete_record(snap: &mut Snapshot, meta: &mut Meta, rest: &str) -> Result<()> {
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
        Some(("secrets", name_version)) => {
            let (name, version) = spec_key(rest, name_version)?;
            snap.secrets.remove(&(name.to_owned(), version));
        }
        Some(("meta", "secret_key_check")) => snap.secret_key_check = None,
        Some(("volumes", path)) => {
            let corrupt = || Error::Store(format!("corrupt key {rest}"));
            let mut parts = path.splitn(4, '/');
            let (Some(job), Some(index), Some(volume), Some(worker)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt());
            };
            let of = orkestrator_core::api::VolumeRef {
                job: JobId::new(job),
                index: index.parse().map_err(|_| corrupt())?,
                volume: volume.to_owned(),
            };
            snap.volumes
                .remove(&(of, orkestrator_core::ids::WorkerId::new(worker)));
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn spec_key<'a>(key: &str, name_version: &'a str) -> Result<(&'a str, u64)> {
    let corrupt = || Error::Store(format!("corrupt key {key}"));
    let (name, version) = name_version.rsplit_once('/').ok_or_else(corrupt)?;
    Ok((name, version.parse().map_err(|_| corrupt())?))
}

/// The end of the range of keys starting with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The key of a volume's record, without the prefix: `volumes/job/index/volume/worker`.
fn volume_key(
    of: &orkestrator_core::api::VolumeRef,
    worker: &orkestrator_core::ids::WorkerId,
) -> String {
    format!("volumes/{}/{}/{}/{worker}", of.job, of.index, of.volume)
}

/// The key `op` writes, under `prefix`.
pub(super) fn op_key(prefix: &str, op: &StoreOp) -> Vec<u8> {
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
        StoreOp::PutSecret(r) => format!("secrets/{}/{}", r.name, r.version),
        StoreOp::DeleteSecret { name, version } => format!("secrets/{name}/{version}"),
        StoreOp::SetSecretKeyCheck(_) => "meta/secret_key_check".to_owned(),
        StoreOp::PutVolume(v) => volume_key(&v.of, &v.worker),
        StoreOp::DeleteVolume { of, worker } => volume_key(of, worker),
    };
    format!("{prefix}{rest}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/ork/"), b"/ork0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }
}
