//! The `portcullis` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::auth::keys::generate_key_file;
use portcullis::{Application, Settings};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A stateless, token-issuing identity service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Manage signing keys in PORTCULLIS_KEYS_DIR.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print the OpenAPI spec (JSON) to stdout.
    Openapi,
    /// Load-benchmark helpers (bench/run.sh).
    #[command(hide = true, subcommand)]
    Bench(portcullis::bench_support::BenchCommand),
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a signing key of PORTCULLIS_SIGNING_ALG and the password pepper, if absent.
    Generate,
    /// Add a new signing key; older keys stay published for verification.
    Rotate,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", portcullis::api::spec_json());
            Ok(())
        }
        Command::Bench(action) => portcullis::bench_support::run(action, &Settings::load()?),
        Command::Keys { action } => {
            let settings = Settings::load()?;
            portcullis::telemetry::init(settings.log_format);
            keys(action, &settings)
        }
        Command::Serve => {
            let settings = Settings::load()?;
            portcullis::telemetry::init(settings.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(settings))
        }
    }
}

fn keys(action: KeysAction, settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.keys_dir;
    let (_, pepper_created) = portcullis::auth::password::load_or_create_pepper(dir)?;
    if pepper_created {
        println!("created {}", dir.join("password-pepper.key").display());
    }
    match action {
        KeysAction::Generate => {
            let (ring, generated) =
                portcullis::auth::KeyRing::load_or_generate(dir, settings.signing_alg)?;
            match generated {
                Some(path) => println!("created {} (kid {})", path.display(), ring.signer().kid),
                None => println!(
                    "a {} signing key already exists (kid {}); use `keys rotate` to add another",
                    settings.signing_alg.jose_name(),
                    ring.signer().kid
                ),
            }
        }
        KeysAction::Rotate => {
            let path = generate_key_file(dir, settings.signing_alg)?;
            let ring = portcullis::auth::KeyRing::load(dir, settings.signing_alg)?;
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

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await.context("starting")?;
    app.run_until(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
