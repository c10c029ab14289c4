//! [`RedbStore`]: the manager's durable state in one redb file.
//!
//! Every [`Store::commit`] is one redb write transaction with immediate durability: when it returns,
//! the change is on disk and survives `kill -9` of the manager (and a power cut, as far as the disk
//! honours fsync). Values are JSON, so the file stays readable across versions of the structs that
//! add optional fields.

use std::path::{Path, PathBuf};

use orkestrator_core::store::{Snapshot, Store, StoreOp};
use orkestrator_core::{Error, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

const JOBS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("jobs");
const INSTANCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("instances");
const WORKERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("workers");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// The file name inside `--data-dir`.
pub const FILE_NAME: &str = "orkestrator.redb";

/// The manager's state in a redb database file.
pub struct RedbStore {
    db: Database,
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

    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(|e| {
            store_err(
                "cannot open the state file (is another manager using this --data-dir?)",
                path,
                e,
            )
        })?;
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
        };
        // Create the tables up front so that reads never meet a missing table.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        {
            txn.open_table(JOBS).map_err(|e| store.err(e))?;
            txn.open_table(INSTANCES).map_err(|e| store.err(e))?;
            txn.open_table(WORKERS).map_err(|e| store.err(e))?;
            txn.open_table(META).map_err(|e| store.err(e))?;
        }
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        store_err("state file", &self.path, e)
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("cannot encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Store(format!("corrupt record {table}/{key}: {e}")))
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut snap = Snapshot::default();
        {
            let t = txn.open_table(JOBS).map_err(|e| self.err(e))?;
            for row in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let rec: orkestrator_core::store::JobRecord = decode("jobs", k.value(), v.value())?;
                snap.jobs.insert(rec.spec.name.clone(), rec);
            }
        }
        {
            let t = txn.open_table(INSTANCES).map_err(|e| self.err(e))?;
            for row in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let rec: orkestrator_core::store::InstanceRecord =
                    decode("instances", k.value(), v.value())?;
                snap.instances.insert(rec.id.clone(), rec);
            }
        }
        {
            let t = txn.open_table(WORKERS).map_err(|e| self.err(e))?;
            for row in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let rec: orkestrator_core::api::RegisterWorker =
                    decode("workers", k.value(), v.value())?;
                snap.workers.insert(rec.id.clone(), rec);
            }
        }
        {
            let t = txn.open_table(META).map_err(|e| self.err(e))?;
            snap.index = t
                .get("index")
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .unwrap_or(0);
        }
        Ok(snap)
    }

    fn commit(&self, index: u64, ops: &[StoreOp]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut jobs = txn.open_table(JOBS).map_err(|e| self.err(e))?;
            let mut instances = txn.open_table(INSTANCES).map_err(|e| self.err(e))?;
            let mut workers = txn.open_table(WORKERS).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            for op in ops {
                match op {
                    StoreOp::PutJob(j) => {
                        jobs.insert(j.spec.name.as_str(), encode(j)?.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    StoreOp::PutInstance(i) => {
                        instances
                            .insert(i.id.as_str(), encode(i)?.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    StoreOp::DeleteInstance(id) => {
                        instances.remove(id.as_str()).map_err(|e| self.err(e))?;
                    }
                    StoreOp::PutWorker(w) => {
                        workers
                            .insert(w.id.as_str(), encode(w)?.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                }
            }
            meta.insert("index", index).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orkestrator_core::manager::{Manager, ManagerConfig};
    use orkestrator_core::spec::{Format, parse_job};

    use super::*;

    #[test]
    fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(RedbStore::open_dir(dir.path()).unwrap());
            let m = Manager::new(ManagerConfig::default(), store).unwrap();
            for name in ["a", "b"] {
                let j = parse_job(
                    &format!("name: {name}\ncount: 2\ntasks: [{{name: t, image: x:1}}]"),
                    Format::Yaml,
                )
                .unwrap();
                m.submit_job(j).unwrap();
            }
            m.stop_job(&"a".into()).unwrap();
        }
        let store = RedbStore::open_dir(dir.path()).unwrap();
        let snap = store.load().unwrap();
        assert_eq!(snap.jobs.len(), 2);
        assert!(snap.jobs[&orkestrator_core::ids::JobId::new("a")].stopped);
        assert_eq!(snap.instances.len(), 4);
        assert!(snap.index >= 3);
        let m = Manager::new(ManagerConfig::default(), Arc::new(store)).unwrap();
        assert_eq!(m.list_jobs().len(), 2);
    }

    #[test]
    fn a_stored_spec_below_the_cpu_minimum_still_loads() {
        // Records are JSON read back through `Job`'s own `Deserialize`. A spec stored before
        // submissions had to ask for at least 10m of CPU must still load, or the manager could
        // not start on its own data directory.
        use orkestrator_core::store::JobRecord;
        use orkestrator_core::units::Cpu;

        let dir = tempfile::tempdir().unwrap();
        let mut spec = parse_job(
            "name: old
tasks: [{name: t, image: x:1}]",
            Format::Yaml,
        )
        .unwrap();
        spec.tasks[0].resources.cpu = Cpu::from_millis(1);
        let record = JobRecord {
            spec,
            version: 1,
            submitted_at: 0,
            stopped: false,
            next_generation: 0,
        };
        RedbStore::open_dir(dir.path())
            .unwrap()
            .commit(1, &[StoreOp::PutJob(record.clone())])
            .unwrap();
        let store = RedbStore::open_dir(dir.path()).unwrap();
        let snap = store.load().unwrap();
        assert_eq!(snap.jobs[&record.spec.name], record);
        let m = Manager::new(ManagerConfig::default(), Arc::new(store)).unwrap();
        let view = m.get_job(&record.spec.name).unwrap();
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
}
