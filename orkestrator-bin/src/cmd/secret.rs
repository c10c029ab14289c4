//! `orkestrator secret create|list|update|rm` (and `secrets`): the manager's secrets. Values are
//! read from a file, a literal or standard input, sent once in base64, and never printed.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Result;
use base64::Engine as _;
use orkestrator_core::secrets::{CreateSecret, MAX_SECRET_BYTES, SecretInfo, UpdateSecret};
use zeroize::Zeroizing;

use crate::cli::{Output, SecretCommand, SecretRotateKeyArgs, SecretWriteArgs};
use crate::output::{exit, fail};

pub async fn run(c: SecretCommand) -> Result<ExitCode> {
    match c {
        SecretCommand::Create(a) => {
            let value_base64 = read_value(&a)?;
            let client = crate::connect::client(&a.out.addr)?;
            let req = CreateSecret {
                name: a.name.clone(),
                value_base64,
            };
            let info = client.create_secret(&req).await?;
            written(&a.out.output, "created", &info)?;
        }
        SecretCommand::Update(a) => {
            let value_base64 = read_value(&a)?;
            let client = crate::connect::client(&a.out.addr)?;
            let info = client
                .update_secret(&a.name, &UpdateSecret { value_base64 })
                .await?;
            written(&a.out.output, "updated", &info)?;
        }
        SecretCommand::List(a) => {
            let client = crate::connect::client(&a.addr)?;
            let all = client.list_secrets().await?;
            match a.output {
                Output::Json => crate::output::print_json(&all)?,
                Output::Table => {
                    let now = orkestrator_core::clock::now_millis();
                    let mut t = crate::output::Table::new(&[
                        "NAME", "VERSION", "VERSIONS", "SIZE", "CREATED", "UPDATED",
                    ]);
                    for s in &all {
                        t.row(vec![
                            s.name.clone(),
                            s.version.to_string(),
                            s.versions.len().to_string(),
                            crate::output::bytes(s.size),
                            crate::output::ago(now.saturating_sub(s.created_at)),
                            crate::output::ago(now.saturating_sub(s.updated_at)),
                        ]);
                    }
                    t.print()?;
                }
            }
        }
        SecretCommand::RotateKey(a) => rotate_key(a).await?,
        SecretCommand::Rm(a) => {
            let client = crate::connect::client(&a.out.addr)?;
            let info = client.remove_secret(&a.name).await?;
            match a.out.output {
                Output::Json => crate::output::print_json(&info)?,
                Output::Table => outln!(
                    "removed secret {} ({} version{})",
                    info.name,
                    info.versions.len(),
                    if info.versions.len() == 1 { "" } else { "s" }
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn written(output: &Output, what: &str, info: &SecretInfo) -> Result<()> {
    match output {
        Output::Json => crate::output::print_json(info),
        Output::Table => {
            outln!(
                "{what} secret {} version {} ({})",
                info.name,
                info.version,
                crate::output::bytes(info.size)
            );
            Ok(())
        }
    }
}

/// The value, from exactly one of -f, --from-literal and -, in base64 (checked against the
/// size limit before anything is sent).
fn read_value(a: &SecretWriteArgs) -> Result<String> {
    let raw: Zeroizing<Vec<u8>> = if let Some(path) = &a.file {
        let meta = std::fs::metadata(path)
            .map_err(|e| fail(exit::USAGE, format!("-f {}: {e}", path.display())))?;
        if meta.len() > MAX_SECRET_BYTES as u64 {
            return Err(too_large(meta.len()));
        }
        Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| fail(exit::USAGE, format!("-f {}: {e}", path.display())))?,
        )
    } else if let Some(v) = &a.from_literal {
        Zeroizing::new(v.as_bytes().to_vec())
    } else {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .take(MAX_SECRET_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| {
                fail(
                    exit::USAGE,
                    format!("reading the value from standard input: {e}"),
                )
            })?;
        buf
    };
    if raw.len() > MAX_SECRET_BYTES {
        return Err(too_large(raw.len() as u64));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(&*raw))
}

fn too_large(n: u64) -> anyhow::Error {
    fail(
        exit::USAGE,
        format!(
            "value: {n} bytes or more; a secret holds at most {MAX_SECRET_BYTES} bytes (512 KiB)"
        ),
    )
}

/// `secret rotate-key`: every secret version of a stopped manager's redb store sealed again
/// under a new key, in one commit. A new default key is written beside the old one first
/// (`secret.key.new`), and takes its place only once the store is committed, so that a crash
/// between the two leaves both keys on disk.
async fn rotate_key(a: SecretRotateKeyArgs) -> Result<()> {
    use orkestrator_core::secrets::SecretKey;
    use orkestrator_core::store::Store as _;
    let state = a.data_dir.join(orkestrator_runtime::store::FILE_NAME);
    if !state.is_file() {
        return Err(fail(
            exit::USAGE,
            format!(
                "--data-dir {}: no state file ({}) there: give a redb manager's data directory (a store on etcd cannot be rotated yet)",
                a.data_dir.display(),
                orkestrator_runtime::store::FILE_NAME
            ),
        ));
    }
    let default = a.data_dir.join(super::server::SECRET_KEY_FILE);
    if !default.exists() && a.secret_key_file.is_none() {
        return Err(fail(
            exit::USAGE,
            format!(
                "--data-dir {}: no {} there: give a manager's data directory, or its key with --secret-key-file",
                a.data_dir.display(),
                super::server::SECRET_KEY_FILE
            ),
        ));
    }
    let old_path = a.secret_key_file.clone().unwrap_or_else(|| default.clone());
    let old = super::server::read_secret_key(&old_path)?;
    let store = orkestrator_runtime::RedbStore::open_dir(&a.data_dir).map_err(|e| {
        fail(
            exit::USAGE,
            format!(
                "--data-dir {}: {e} (stop its manager first; a store on etcd cannot be rotated yet)",
                a.data_dir.display()
            ),
        )
    })?;
    let (new, staged) = match &a.new_key_file {
        Some(p) => (super::server::read_secret_key(p)?, None),
        None => {
            let raw = SecretKey::generate_file_bytes()?;
            let staged = default.with_extension("key.new");
            let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*raw));
            crate::creds::write_secret(&staged, &text)?;
            (SecretKey::from_bytes(&raw)?, Some(staged))
        }
    };
    let snap = store.load().await?;
    let ops = snap
        .reseal_secrets(&old, &new)
        .map_err(|e| fail(exit::USAGE, format!("{}: {e}", old_path.display())))?;
    let versions = ops.len() - 1;
    store.commit(snap.index + 1, ops).await?;
    match staged {
        Some(staged) => {
            std::fs::rename(&default, default.with_extension("key.old"))?;
            std::fs::rename(&staged, &default)?;
            outln!(
                "re-encrypted {versions} secret versions under a new key in {} (the old key is in {})",
                default.display(),
                default.with_extension("key.old").display()
            );
        }
        None => outln!(
            "re-encrypted {versions} secret versions under the key in {}: start the manager with --secret-key-file {}",
            a.new_key_file.as_deref().unwrap_or(&default).display(),
            a.new_key_file.as_deref().unwrap_or(&default).display()
        ),
    }
    Ok(())
}
