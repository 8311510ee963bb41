//! `portcullis admin create EMAIL`: creates an administrator or promotes an
//! existing account. Uses the same store settings as `serve`. No default
//! administrator ever exists: this command is the only way one appears.

use std::io::BufRead;

use anyhow::Context;
use clap::Subcommand;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::startup::build_core;
use secrecy::SecretString;

/// `portcullis admin ...`
#[derive(Subcommand)]
pub enum AdminAction {
    /// Create an administrator (password from PORTCULLIS_ADMIN_PASSWORD or
    /// one line on stdin), or give an existing account the admin role.
    Create {
        /// The administrator's email address.
        email: String,
    },
}

/// The new administrator's password: `PORTCULLIS_ADMIN_PASSWORD`, else
/// the first line of stdin (without its line ending).
fn read_password() -> anyhow::Result<SecretString> {
    if let Ok(p) = std::env::var("PORTCULLIS_ADMIN_PASSWORD")
        && !p.is_empty()
    {
        return Ok(SecretString::from(p));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        anyhow::bail!("no password: set PORTCULLIS_ADMIN_PASSWORD or write it on stdin");
    }
    Ok(SecretString::from(line))
}

/// Runs an `admin` command.
pub fn run(action: AdminAction, settings: &Settings) -> anyhow::Result<()> {
    let AdminAction::Create { email } = action;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let core = build_core(settings.clone(), Clock::system()).await?;
            match core.admin_create(&email, read_password).await {
                Ok((account, true)) => {
                    println!(
                        "created administrator {} (id {})",
                        account.email, account.id
                    );
                    Ok(())
                }
                Ok((account, false)) => {
                    println!(
                        "{} (id {}) now has the admin role",
                        account.email, account.id
                    );
                    Ok(())
                }
                Err(portcullis::service::Error::Validation(errors)) => {
                    let why = errors
                        .iter()
                        .map(|e| e.detail.clone())
                        .collect::<Vec<_>>()
                        .join("; ");
                    anyhow::bail!("refused: {why}")
                }
                Err(e) => Err(anyhow::Error::new(e)),
            }
        })
}
