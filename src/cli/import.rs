//! `portcullis users import FILE`: accounts from another system, as JSON
//! lines `{email, password_hash?, display_name?, email_verified?,
//! created_at?}`.
//!
//! The file is read as a stream, a batch of lines at a time, so memory
//! stays bounded whatever its size. Idempotent: an email that already has
//! an account is skipped, so a re-run after an interruption imports only
//! what is missing. A summary lists imported, skipped and refused lines
//! (with line numbers and reasons; never a hash). Bcrypt hashes of raw
//! passwords (`$2a$`, `$2b$`, `$2y$`) are kept and verified as such at the
//! first sign-in, then replaced by the service's own peppered hash.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::service::{ImportLine, ImportOutcome};
use portcullis::startup::build_core;

/// Lines per store write.
const BATCH: usize = 1000;
/// Refused lines listed one by one (the count covers all of them).
const MAX_LISTED: usize = 1000;
/// Longest accepted line, in bytes (a line is one small JSON object).
const MAX_LINE: usize = 64 * 1024;

/// `portcullis users ...`
#[derive(Subcommand)]
pub enum UsersAction {
    /// Import accounts from a JSON-lines file (`-` for stdin).
    Import {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Default)]
struct Summary {
    imported: u64,
    skipped: u64,
    refused: u64,
    listed: Vec<(u64, String)>,
}

impl Summary {
    fn refuse(&mut self, line: u64, why: String) {
        self.refused += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push((line, why));
        }
    }
}

/// Runs a `users` command.
pub fn run(action: UsersAction, settings: &Settings) -> anyhow::Result<()> {
    let UsersAction::Import { file } = action;
    let input: Box<dyn std::io::Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?)
    };
    let mut reader = BufReader::with_capacity(1 << 16, input);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let core = build_core(settings.clone(), Clock::system()).await?;
            let mut summary = Summary::default();
            let mut number = 0u64;
            let mut batch: Vec<(u64, ImportLine)> = Vec::with_capacity(BATCH);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = std::io::Read::take(&mut reader, MAX_LINE as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .context("reading the import file")?;
                if n == 0 {
                    break;
                }
                number += 1;
                if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
                    // Skip the rest of an overlong line.
                    let mut rest = Vec::new();
                    reader.read_until(b'\n', &mut rest)?;
                    summary.refuse(number, "line longer than 64 KiB".into());
                    continue;
                }
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_str::<ImportLine>(text) {
                    Ok(line) => batch.push((number, line)),
                    // serde's message may quote the input: give only where.
                    Err(e) => summary.refuse(
                        number,
                        format!(
                            "not a JSON object of the import format (column {})",
                            e.column()
                        ),
                    ),
                }
                if batch.len() >= BATCH {
                    flush(&core, &mut batch, &mut summary).await?;
                }
            }
            flush(&core, &mut batch, &mut summary).await?;
            println!(
                "imported {}, skipped {} (email already registered), refused {}",
                summary.imported, summary.skipped, summary.refused
            );
            for (line, why) in &summary.listed {
                println!("line {line}: refused: {why}");
            }
            if summary.refused as usize > summary.listed.len() {
                println!(
                    "... and {} more refused lines",
                    summary.refused as usize - summary.listed.len()
                );
            }
            Ok(())
        })
}

async fn flush(
    core: &portcullis::service::Core,
    batch: &mut Vec<(u64, ImportLine)>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let (numbers, lines): (Vec<u64>, Vec<ImportLine>) = batch.drain(..).unzip();
    let outcomes = core.import_users(lines).await?;
    for (number, outcome) in numbers.into_iter().zip(outcomes) {
        match outcome {
            ImportOutcome::Imported => summary.imported += 1,
            ImportOutcome::Skipped => summary.skipped += 1,
            ImportOutcome::Refused(why) => summary.refuse(number, why),
        }
    }
    Ok(())
}
