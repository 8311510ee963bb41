//! `portcullis clients create NAME --redirect-uri URI [--redirect-uri …]
//! [--confidential] [--first-party]`: registers an OAuth client (Portcullis
//! as an OpenID provider). Prints the client id on the first line of
//! stdout and, for a confidential client, its secret on the second: the
//! only time it is shown (it is stored hashed). Uses the same store
//! settings as `serve`.

use clap::Subcommand;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::service::oidc::{ClientType, NewClient};
use portcullis::startup::build_core;

/// `portcullis clients ...`
#[derive(Subcommand)]
pub enum ClientsAction {
    /// Register an OAuth client; prints its id (and its secret, once).
    Create {
        /// Shown on the consent page.
        name: String,
        /// A redirect URI (repeat for several): https, loopback
        /// (http://127.0.0.1/…, any port) or a private-use scheme.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may return to (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A confidential client (server-side): gets a secret.
        #[arg(long)]
        confidential: bool,
        /// A first-party client: no consent page, always a refresh token.
        #[arg(long = "first-party")]
        first_party: bool,
    },
}

/// Runs a `clients` command.
pub fn run(action: ClientsAction, settings: &Settings) -> anyhow::Result<()> {
    let ClientsAction::Create {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        confidential,
        first_party,
    } = action;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let core = build_core(settings.clone(), Clock::system()).await?;
            let new = NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                client_type: if confidential {
                    ClientType::Confidential
                } else {
                    ClientType::Public
                },
                first_party,
                scopes: None,
                audience: None,
                id_token_signed_response_alg: None,
            };
            match core.create_client(new).await {
                Ok(r) => {
                    println!("{}", r.client.id);
                    if let Some(secret) = r.secret {
                        println!("{secret}");
                        eprintln!("client id on the first line, secret on the second: the secret is shown only this once");
                    }
                    Ok(())
                }
                Err(portcullis::service::Error::Validation(errors)) => {
                    for e in errors {
                        eprintln!("{}: {}", e.field, e.detail);
                    }
                    anyhow::bail!("the client was not registered")
                }
                Err(e) => Err(anyhow::anyhow!("registering the client failed: {e}")),
            }
        })
}
