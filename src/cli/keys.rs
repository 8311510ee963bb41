//! `portcullis keys generate | rotate`.

use clap::Subcommand;
use portcullis::auth::KeyRing;
use portcullis::auth::keys::generate_key_file;
use portcullis::auth::password::load_or_create_pepper;
use portcullis::auth::tokens::{REFRESH_KEY_FILE, RefreshKey};
use portcullis::config::Settings;

/// `portcullis keys ...`
#[derive(Subcommand)]
pub enum KeysAction {
    /// Create a signing key of PORTCULLIS_SIGNING_ALG, the password pepper and the refresh-token key, if absent.
    Generate,
    /// Add a new signing key; older keys stay published for verification.
    Rotate,
}

/// Runs a `keys` command.
pub fn run(action: KeysAction, settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.tokens.keys_dir;
    let alg = settings.tokens.signing_alg;
    let (_, pepper_created) = load_or_create_pepper(dir)?;
    if pepper_created {
        println!("created {}", dir.join("password-pepper.key").display());
    }
    // The refresh-token key is secret and never rotated by `keys rotate`
    // (replacing it would end every session); made here so a keys folder
    // filled by the CLI holds every file a replica needs.
    let (_, refresh_created) = RefreshKey::load_or_create(dir)?;
    if refresh_created {
        println!("created {}", dir.join(REFRESH_KEY_FILE).display());
    }
    match action {
        KeysAction::Generate => {
            let (ring, generated) = KeyRing::load_or_generate(dir, alg)?;
            match generated {
                Some(path) => println!("created {} (kid {})", path.display(), ring.signer().kid),
                None => println!(
                    "a {} signing key already exists (kid {}); use `keys rotate` to add another",
                    alg.jose_name(),
                    ring.signer().kid
                ),
            }
        }
        KeysAction::Rotate => {
            let path = generate_key_file(dir, alg)?;
            let ring = KeyRing::load(dir, alg)?;
            println!(
                "created {}; new signer kid {}; {} key(s) published",
                path.display(),
                ring.signer().kid,
                ring.len()
            );
        }
    }
    Ok(())
}
