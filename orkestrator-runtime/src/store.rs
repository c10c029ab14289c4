//! [`RedbStore`]: the manager's durable state in one redb file.
//!
//! Every [`Store::commit`] is one redb write transaction with immediate durability, run on
//! tokio's blocking pool (never on the async runtime's threads): when it returns, the change is
//! on disk and survives `kill -9` of the manager (and a power cut, as far as the disk honours
//! fsync). The manager groups many changes into one commit.
//!
//! Layout (format 2): `jobs` (name → job record), `specs` ((name, version) → spec: one copy per
//! version, shared by its instances), `instances` (id → instance record), `workers`
//! (id → registration), `tokens` (id → token record: a digest, never a secret; added within
//! format 2, older releases ignore it), `secrets` ((name, version) → secret version: sealed,
//! never plain; added within format 2), `secret_key` (`check` → the key check of the key the
//! secrets are sealed with) and `meta` (`format`, `index`, `next_instance`). Records are JSON, so a
//! record that gains an optional field still loads. A file of format 1 (release 0.1.0: a spec
//! inside every job and instance record) is rewritten to format 2 when opened; a file of a newer
//! format is refused with a message that says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use orkestrator_core::api::{Desired, RegisterWorker, TaskStatus, VolumeRecord, VolumeRef};
use orkestrator_core::auth::TokenRecord;
use orkestrator_core::clock::Millis;
use orkestrator_core::ids::{InstanceId, JobId, TaskName, WorkerId};
use orkestrator_core::secrets::SecretRecord;
use orkestrator_core::spec::Job;
use orkestrator_core::state::TaskState;
use orkestrator_core::store::{FORMAT, InstanceRecord, JobRecord, Snapshot, Store, StoreOp};
use orkestrator_core::{Error, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const JOBS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("jobs");
const SPECS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("specs");
const INSTANCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("instances");
const WORKERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("workers");
const TOKENS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tokens");
const SECRETS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("secrets");
const SECRET_KEY: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("secret_key");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const VOLUMES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("volumes");

/// The file name inside `--data-dir`.
pub const FILE_NAME: &str = "orkestrator.redb";

/// The page cache redb may use by default (64 MiB): the manager keeps its own state in memory,
/// so the cache only needs to hold the pages that commits touch.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// The manager's state in a redb database file.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

fn store_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Store(format!("{what} {}: {e}", path.display()))
}

impl RedbStore {
    /// Opens (or creates) the store in directory `dir` (created if missing).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| store_err("cannot create the data directory", dir, e))?;
        Self::open(&dir.join(FILE_NAME))
    }

    /// Opens (or creates) the store file at `path` with the default page cache.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store file at `path`, letting redb cache `cache_bytes` of pages.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| {
                store_err(
                    "cannot open the state file (is another manager using this --data-dir?)",
                    path,
                    e,
                )
            })?;
        let store = RedbStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
        };
        store.prepare()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        store_err("state file", &self.path, e)
    }

    /// Creates the tables, checks the format and migrates a format-1 file.
    fn prepare(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let format = {
            let meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.get("format")
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
        };
        let has_data = {
            let jobs = txn.open_table(JOBS).map_err(|e| self.err(e))?;
            jobs.iter().map_err(|e| self.err(e))?.next().is_some()
        };
        {
            txn.open_table(SPECS).map_err(|e| self.err(e))?;
            txn.open_table(INSTANCES).map_err(|e| self.err(e))?;
            txn.open_table(WORKERS).map_err(|e| self.err(e))?;
            txn.open_table(TOKENS).map_err(|e| self.err(e))?;
            txn.open_table(SECRETS).map_err(|e| self.err(e))?;
            txn.open_table(SECRET_KEY).map_err(|e| self.err(e))?;
            txn.open_table(VOLUMES).map_err(|e| self.err(e))?;
        }
        match format {
            Some(f) if f > FORMAT => {
                return Err(Error::Store(format!(
                    "{} was written by a newer Orkestrator (store format {f}); this release reads format {FORMAT} and older: upgrade, or start with another --data-dir",
                    self.path.display()
                )));
            }
            Some(_) => {}
            None if has_data => {
                migrate_v1(&txn).map_err(|e| self.err(format!("migrating format 1: {e}")))?;
                tracing::info!(path = %self.path.display(), "state file migrated from store format 1 to {FORMAT}");
            }
            None => {}
        }
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("format", FORMAT).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("cannot encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Store(format!("corrupt record {table}/{key}: {e}")))
}

fn load(db: &Database, path: &Path) -> Result<Snapshot> {
    let err = |e: &dyn std::fmt::Display| store_err("state file", path, e);
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let mut snap = Snapshot::default();
    {
        let t = txn.open_table(JOBS).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let rec: JobRecord = decode("jobs", k.value(), v.value())?;
            snap.jobs.insert(rec.name.clone(), rec);
        }
    }
    {
        let t = txn.open_table(SPECS).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let (job, version) = k.value();
            let spec: Job = decode("specs", job, v.value())?;
            snap.specs
                .insert((JobId::new(job), version), Arc::new(spec));
        }
    }
    {
        let t = txn.open_table(INSTANCES).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let rec: InstanceRecord = decode("instances", k.value(), v.value())?;
            snap.instances.insert(rec.id.clone(), rec);
        }
    }
    {
        let t = txn.open_table(WORKERS).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let rec: RegisterWorker = decode("workers", k.value(), v.value())?;
            snap.workers.insert(rec.id.clone(), rec);
        }
    }
    {
        let t = txn.open_table(TOKENS).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let rec: TokenRecord = decode("tokens", k.value(), v.value())?;
            snap.tokens.insert(rec.id.clone(), rec);
        }
    }
    {
        let t = txn.open_table(SECRETS).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let (name, _) = k.value();
            let rec: SecretRecord = decode("secrets", name, v.value())?;
            snap.secrets.insert((rec.name.clone(), rec.version), rec);
        }
    }
    {
        let t = txn.open_table(VOLUMES).map_err(|e| err(&e))?;
        for row in t.iter().map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let rec: VolumeRecord = decode("volumes", k.value(), v.value())?;
            snap.volumes
                .insert((rec.of.clone(), rec.worker.clone()), rec);
        }
    }
    {
        let t = txn.open_table(SECRET_KEY).map_err(|e| err(&e))?;
        snap.secret_key_check = t
            .get("check")
            .map_err(|e| err(&e))?
            .map(|v| v.value().to_vec());
    }
    {
        let t = txn.open_table(META).map_err(|e| err(&e))?;
        let get = |k: &str| -> Result<u64> {
            Ok(t.get(k)
                .map_err(|e| err(&e))?
                .map(|v| v.value())
                .unwrap_or(0))
        };
        snap.index = get("index")?;
        snap.next_instance = get("next_instance")?;
    }
    Ok(snap)
}

fn commit(db: &Database, path: &Path, index: u64, ops: Vec<StoreOp>) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| store_err("state file", path, e);
    let txn = db.begin_write().map_err(|e| err(&e))?;
    {
        let mut jobs = txn.open_table(JOBS).map_err(|e| err(&e))?;
        let mut specs = txn.open_table(SPECS).map_err(|e| err(&e))?;
        let mut instances = txn.open_table(INSTANCES).map_err(|e| err(&e))?;
        let mut workers = txn.open_table(WORKERS).map_err(|e| err(&e))?;
        let mut tokens = txn.open_table(TOKENS).map_err(|e| err(&e))?;
        let mut secrets = txn.open_table(SECRETS).map_err(|e| err(&e))?;
        let mut secret_key = txn.open_table(SECRET_KEY).map_err(|e| err(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
        let mut volumes = txn.open_table(VOLUMES).map_err(|e| err(&e))?;
        for op in ops {
            match op {
                StoreOp::PutJob(j) => {
                    jobs.insert(j.name.as_str(), encode(&j)?.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteJob(name) => {
                    jobs.remove(name.as_str()).map_err(|e| err(&e))?;
                }
                StoreOp::PutSpec { job, version, spec } => {
                    specs
                        .insert((job.as_str(), version), encode(&*spec)?.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteSpec { job, version } => {
                    specs.remove((job.as_str(), version)).map_err(|e| err(&e))?;
                }
                StoreOp::PutInstance(i) => {
                    instances
                        .insert(i.id.as_str(), encode(&i)?.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteInstance(id) => {
                    instances.remove(id.as_str()).map_err(|e| err(&e))?;
                }
                StoreOp::PutWorker(w) => {
                    workers
                        .insert(w.id.as_str(), encode(&w)?.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteWorker(id) => {
                    workers.remove(id.as_str()).map_err(|e| err(&e))?;
                }
                StoreOp::SetNextInstance(n) => {
                    meta.insert("next_instance", n).map_err(|e| err(&e))?;
                }
                StoreOp::PutToken(t) => {
                    tokens
                        .insert(t.id.as_str(), encode(&t)?.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteToken(id) => {
                    tokens.remove(id.as_str()).map_err(|e| err(&e))?;
                }
                StoreOp::PutSecret(r) => {
                    secrets
                        .insert((r.name.as_str(), r.version), encode(&r)?.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteSecret { name, version } => {
                    secrets
                        .remove((name.as_str(), version))
                        .map_err(|e| err(&e))?;
                }
                StoreOp::SetSecretKeyCheck(c) => {
                    secret_key
                        .insert("check", c.as_slice())
                        .map_err(|e| err(&e))?;
                }
                StoreOp::PutVolume(v) => {
                    volumes
                        .insert(
                            volume_key(&v.of, &v.worker).as_str(),
                            encode(&v)?.as_slice(),
                        )
                        .map_err(|e| err(&e))?;
                }
                StoreOp::DeleteVolume { of, worker } => {
                    volumes
                        .remove(volume_key(&of, &worker).as_str())
                        .map_err(|e| err(&e))?;
                }
            }
        }
        meta.insert("index", index).map_err(|e| err(&e))?;
    }
    txn.commit().map_err(|e| err(&e))
}

/// The key of a volume's record: `job/index/volume/worker`.
fn volume_key(of: &VolumeRef, worker: &WorkerId) -> String {
    format!("{}/{}/{}/{worker}", of.job, of.index, of.volume)
}

#[async_trait]
impl Store for RedbStore {
    async fn load(&self) -> Result<Snapshot> {
        let (db, path) = (self.db.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || load(&db, &path))
            .await
            .map_err(|e| Error::Store(format!("the store's load task failed: {e}")))?
    }

    async fn commit(&self, index: u64, ops: Vec<StoreOp>) -> Result<()> {
        let (db, path) = (self.db.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || commit(&db, &path, index, ops))
            .await
            .map_err(|e| Error::Store(format!("the store's commit task failed: {e}")))?
    }
}

/// A job record of format 1.
#[derive(Deserialize)]
struct JobV1 {
    spec: Job,
    version: u64,
    submitted_at: Millis,
    stopped: bool,
}

/// An instance record of format 1.
#[derive(Deserialize)]
struct InstanceV1 {
    id: InstanceId,
    job: JobId,
    version: u64,
    spec: Job,
    index: u32,
    worker: Option<WorkerId>,
    desired: Desired,
    pending_reason: Option<String>,
    tasks: BTreeMap<TaskName, TaskStatus>,
}

/// Rewrites a format-1 file's jobs and instances as format 2, in the open transaction.
fn migrate_v1(txn: &WriteTransaction) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut jobs_v1 = Vec::new();
    {
        let t = txn.open_table(JOBS).map_err(|x| e(&x))?;
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let j: JobV1 =
                serde_json::from_slice(v.value()).map_err(|x| format!("job {}: {x}", k.value()))?;
            jobs_v1.push(j);
        }
    }
    let mut instances_v1 = Vec::new();
    {
        let t = txn.open_table(INSTANCES).map_err(|x| e(&x))?;
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let i: InstanceV1 = serde_json::from_slice(v.value())
                .map_err(|x| format!("instance {}: {x}", k.value()))?;
            instances_v1.push(i);
        }
    }
    let mut specs = txn.open_table(SPECS).map_err(|x| e(&x))?;
    let mut jobs = txn.open_table(JOBS).map_err(|x| e(&x))?;
    let mut instances = txn.open_table(INSTANCES).map_err(|x| e(&x))?;
    let mut meta = txn.open_table(META).map_err(|x| e(&x))?;
    for j in jobs_v1 {
        let name = j.spec.name.clone();
        specs
            .insert((name.as_str(), j.version), enc(&j.spec)?.as_slice())
            .map_err(|x| e(&x))?;
        let rec = JobRecord {
            name: name.clone(),
            version: j.version,
            submitted_at: j.submitted_at,
            stopped: j.stopped,
            ended_at: None,
            restart_below: None,
        };
        jobs.insert(name.as_str(), enc(&rec)?.as_slice())
            .map_err(|x| e(&x))?;
    }
    let mut next_instance = 0u64;
    for i in instances_v1 {
        if specs
            .get((i.job.as_str(), i.version))
            .map_err(|x| e(&x))?
            .is_none()
        {
            specs
                .insert((i.job.as_str(), i.version), enc(&i.spec)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        if let Some(n) =
            i.id.as_str()
                .rsplit('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        {
            next_instance = next_instance.max(n + 1);
        }
        let mut tasks_by_name = i.tasks;
        let tasks = i
            .spec
            .tasks
            .iter()
            .map(|t| {
                tasks_by_name
                    .remove(&t.name)
                    .unwrap_or_else(|| TaskStatus::new(TaskState::Pending))
            })
            .collect();
        let rec = InstanceRecord {
            id: i.id.clone(),
            job: i.job,
            version: i.version,
            index: i.index,
            worker: i.worker,
            desired: i.desired,
            pending_reason: i.pending_reason,
            tasks,
        };
        instances
            .insert(i.id.as_str(), enc(&rec)?.as_slice())
            .map_err(|x| e(&x))?;
    }
    meta.insert("next_instance", next_instance)
        .map_err(|x| e(&x))?;
    Ok(())
}

fn enc<T: Serialize>(v: &T) -> std::result::Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| format!("cannot encode a record: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orkestrator_core::api::ListQuery;
    use orkestrator_core::manager::{Manager, ManagerConfig};
    use orkestrator_core::spec::{Format, parse_job};

    use super::*;

    #[tokio::test]
    async fn secrets_are_never_plain_in_the_file_and_survive_reopening() {
        use orkestrator_core::secrets::{SecretKey, SecretValue};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let plain = b"plaintext-needle-0123456789-abcdefghij";
        let config = |b: u8| ManagerConfig {
            secret_key: Some(SecretKey::from_bytes(&[b; 32]).unwrap()),
            ..ManagerConfig::default()
        };
        {
            let store = Arc::new(RedbStore::open(&path).unwrap());
            let m = Manager::new(config(5), store).await.unwrap();
            m.secrets()
                .create("db-password", SecretValue::new(plain.to_vec()))
                .await
                .unwrap();
            m.secrets()
                .update("db-password", SecretValue::new(plain.repeat(2)))
                .await
                .unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain),
            "the plaintext is in the redb file"
        );
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let m = Manager::new(config(5), store).await.unwrap();
        let v = m.secrets().value("db-password", None).await.unwrap();
        assert_eq!(v.as_bytes(), plain.repeat(2).as_slice());
        drop(m);
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let e = Manager::new(config(6), store).await.err().unwrap();
        assert!(e.to_string().contains("--secret-key-file"), "{e}");
    }

    #[tokio::test]
    async fn volume_records_survive_reopening_and_go_when_deleted() {
        use orkestrator_core::api::VolumeState;
        let dir = tempfile::tempdir().unwrap();
        let rec = |worker: &str, state| VolumeRecord {
            of: VolumeRef {
                job: JobId::new("db"),
                index: 2,
                volume: "data".into(),
            },
            worker: WorkerId::new(worker),
            state,
            retain: true,
            created_at: 7,
        };
        {
            let store = RedbStore::open_dir(dir.path()).unwrap();
            store
                .commit(
                    1,
                    vec![
                        StoreOp::PutVolume(rec("w1", VolumeState::Orphan)),
                        StoreOp::PutVolume(rec("w2", VolumeState::Active)),
                    ],
                )
                .await
                .unwrap();
        }
        let store = RedbStore::open_dir(dir.path()).unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(snap.volumes.len(), 2);
        let one = &snap.volumes[&(rec("w1", VolumeState::Orphan).of, WorkerId::new("w1"))];
        assert_eq!(*one, rec("w1", VolumeState::Orphan));
        store
            .commit(
                2,
                vec![StoreOp::DeleteVolume {
                    of: rec("w1", VolumeState::Orphan).of,
                    worker: WorkerId::new("w1"),
                }],
            )
            .await
            .unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(
            snap.volumes.into_values().collect::<Vec<_>>(),
            [rec("w2", VolumeState::Active)]
        );
    }

    #[tokio::test]
    async fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(RedbStore::open_dir(dir.path()).unwrap());
            let m = Manager::new(ManagerConfig::default(), store).await.unwrap();
            for name in ["a", "b"] {
                let j = parse_job(
                    &format!("name: {name}\ncount: 2\ntasks: [{{name: t, image: x:1}}]"),
                    Format::Yaml,
                )
                .unwrap();
                m.jobs().submit(j).await.unwrap();
            }
            m.jobs().stop(&"a".into()).await.unwrap();
        }
        let store = RedbStore::open_dir(dir.path()).unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(snap.jobs.len(), 2);
        assert!(snap.jobs[&JobId::new("a")].stopped);
        assert_eq!(snap.instances.len(), 4);
        assert_eq!(
            snap.specs.len(),
            2,
            "one spec per version, not per instance"
        );
        assert!(snap.index >= 4);
        assert_eq!(snap.next_instance, 4);
        let m = Manager::new(ManagerConfig::default(), Arc::new(store))
            .await
            .unwrap();
        assert_eq!(
            m.jobs()
                .list(&ListQuery::default())
                .await
                .unwrap()
                .items
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_stored_spec_below_the_cpu_minimum_still_loads() {
        // Specs are JSON read back through `Job`'s own `Deserialize`. A spec stored before
        // submissions had to ask for at least 10m of CPU must still load, or the manager could
        // not start on its own data directory.
        use orkestrator_core::units::Cpu;

        let dir = tempfile::tempdir().unwrap();
        let mut spec =
            parse_job("name: old\ntasks: [{name: t, image: x:1}]", Format::Yaml).unwrap();
        spec.tasks[0].resources.cpu = Cpu::from_millis(1);
        let name = spec.name.clone();
        let record = JobRecord {
            name: name.clone(),
            version: 1,
            submitted_at: 0,
            stopped: false,
            ended_at: None,
            restart_below: None,
        };
        let ops = vec![
            StoreOp::PutJob(record.clone()),
            StoreOp::PutSpec {
                job: name.clone(),
                version: 1,
                spec: Arc::new(spec),
            },
        ];
        RedbStore::open_dir(dir.path())
            .unwrap()
            .commit(1, ops)
            .await
            .unwrap();
        let store = RedbStore::open_dir(dir.path()).unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(snap.jobs[&name], record);
        let m = Manager::new(ManagerConfig::default(), Arc::new(store))
            .await
            .unwrap();
        let view = m.jobs().get(&name).await.unwrap();
        assert_eq!(view.spec.tasks[0].resources.cpu, Cpu::from_millis(1));
    }

    #[test]
    fn a_second_manager_on_the_same_file_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open_dir(dir.path()).unwrap();
        let err = RedbStore::open_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("is another manager using this --data-dir?"),
            "{err}"
        );
    }

    #[test]
    fn a_newer_format_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open_dir(dir.path()).unwrap();
            let txn = s.db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("format", 99).unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer Orkestrator (store format 99)"), "{err}");
    }
}
