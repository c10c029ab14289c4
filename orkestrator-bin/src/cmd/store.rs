//! `orkestrator store copy --from DIR --to etcd://...`: moves a cluster from its redb file onto
//! etcd.

use std::process::ExitCode;

use anyhow::{Context, Result};
use orkestrator_core::store::Store;
use orkestrator_runtime::{EtcdStore, RedbStore};

use crate::cli::{StoreArgs, StoreCommand, StoreCopyArgs};
use crate::output::{exit, fail};

pub async fn run(a: StoreArgs) -> Result<ExitCode> {
    match a.command {
        StoreCommand::Copy(c) => copy(c).await,
    }
}

async fn copy(a: StoreCopyArgs) -> Result<ExitCode> {
    let from = if a.from.is_dir() {
        RedbStore::open_dir(&a.from)
    } else if a.from.is_file() {
        RedbStore::open(&a.from)
    } else {
        return Err(fail(
            exit::USAGE,
            format!(
                "--from {}: no such directory or file (give the manager's --data-dir)",
                a.from.display()
            ),
        ));
    }
    .with_context(|| {
        format!(
            "cannot open the state in {} (is its manager still running? stop it first)",
            a.from.display()
        )
    })?;
    let snap = from.load().await?;
    let options = crate::connect::etcd_options(&a.to, &a.etcd, "--to")?;
    // As the Error it holds, so that the exit code says what it is (TLS files: a usage error).
    let to = EtcdStore::connect(options)
        .await
        .map_err(orkestrator_core::Error::from)?;
    if !to.is_empty().await? {
        if !a.replace {
            return Err(fail(
                exit::REFUSED,
                format!(
                    "etcd already holds state under {} (another cluster, or an interrupted copy): \
                     pick another --etcd-prefix, or pass --replace to delete it first",
                    to.prefix()
                ),
            ));
        }
        to.clear().await?;
    }
    let (jobs, instances, index) = (snap.jobs.len(), snap.instances.len(), snap.index);
    let secrets = snap.secrets.len();
    let sealed = snap.secret_key_check.is_some();
    let records = to.copy_in(snap).await?;
    println!(
        "copied {records} records ({jobs} jobs, {instances} instances, {secrets} secret versions) at index {index} into {} \
         under {}; start the managers with --store {} --etcd-prefix {}",
        a.to,
        to.prefix(),
        a.to,
        to.prefix()
    );
    if sealed {
        // Copied sealed: the managers on etcd need the key they were sealed with.
        let dir = if a.from.is_dir() {
            a.from.clone()
        } else {
            a.from
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default()
        };
        println!(
            "secrets were copied sealed: give every manager on etcd the key file the old manager used \
             (by default {}) with --secret-key-file",
            dir.join("secret.key").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
