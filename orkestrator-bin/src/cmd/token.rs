//! `orkestrator token create|list|revoke`: the manager's tokens.

use std::process::ExitCode;

use anyhow::Result;
use orkestrator_core::auth::CreateToken;

use crate::cli::{Output, TokenCommand};

pub async fn run(c: TokenCommand) -> Result<ExitCode> {
    match c {
        TokenCommand::Create(a) => {
            let client = crate::connect::client(&a.out.addr)?;
            let issued = client
                .create_token(&CreateToken {
                    role: a.role,
                    name: a.name,
                })
                .await?;
            match a.out.output {
                Output::Json => crate::output::print_json(&issued)?,
                Output::Table => {
                    // The token alone on standard output (for `> file`); what it is on stderr.
                    outln!("{}", issued.token);
                    errln!(
                        "created {} token {} (shown once: keep it in a file of mode 0600; revoke with `orkestrator token revoke {}`)",
                        issued.info.role,
                        issued.info.id,
                        issued.info.id
                    );
                }
            }
        }
        TokenCommand::List(a) => {
            let client = crate::connect::client(&a.addr)?;
            let all = client.list_tokens().await?;
            match a.output {
                Output::Json => crate::output::print_json(&all)?,
                Output::Table => {
                    let now = orkestrator_core::clock::now_millis();
                    let mut t = crate::output::Table::new(&["ID", "ROLE", "FOR", "CREATED"]);
                    for i in &all {
                        t.row(vec![
                            i.id.clone(),
                            i.role.to_string(),
                            i.subject
                                .clone()
                                .or_else(|| i.name.clone())
                                .unwrap_or_default(),
                            crate::output::ago(now.saturating_sub(i.created_at)),
                        ]);
                    }
                    t.print()?;
                }
            }
        }
        TokenCommand::Revoke(a) => {
            let client = crate::connect::client(&a.out.addr)?;
            let info = client.revoke_token(&a.id).await?;
            match a.out.output {
                Output::Json => crate::output::print_json(&info)?,
                Output::Table => outln!("revoked {} token {}", info.role, info.id),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
