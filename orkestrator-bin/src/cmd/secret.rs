//! `orkestrator secret create|list|update|rm` (and `secrets`): the manager's secrets. Values are
//! read from a file, a literal or standard input, sent once in base64, and never printed.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Result;
use base64::Engine as _;
use orkestrator_core::secrets::{CreateSecret, MAX_SECRET_BYTES, SecretInfo, UpdateSecret};
use zeroize::Zeroizing;

use crate::cli::{Output, SecretCommand, SecretWriteArgs};
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
