//! `portcullis passwords build-filter SOURCE OUT`: the offline
//! breached-password filter (see `auth::breached`).

use std::path::PathBuf;

use clap::Subcommand;

/// `portcullis passwords ...`.
#[derive(Subcommand)]
pub enum PasswordsAction {
    /// Build a breached-password filter from a SHA-1 list (one hex hash per
    /// line, `HASH` or `HASH:COUNT`); load it with PORTCULLIS_BREACHED_PASSWORDS.
    BuildFilter {
        /// The SHA-1 list.
        source: PathBuf,
        /// Where to write the filter.
        out: PathBuf,
    },
}

/// Runs a `passwords` command.
pub fn run(action: PasswordsAction) -> anyhow::Result<()> {
    match action {
        PasswordsAction::BuildFilter { source, out } => {
            let report = portcullis::auth::breached::build_filter_file(&source, &out)?;
            println!(
                "wrote {}: {} hashes, {} bytes ({:.2} bytes per entry), {} lines skipped",
                out.display(),
                report.entries,
                report.bytes,
                report.bytes as f64 / report.entries.max(1) as f64,
                report.skipped
            );
            Ok(())
        }
    }
}
