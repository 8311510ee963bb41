//! The `portcullis` command line: `serve` (the default), `keys`, `openapi`,
//! and hidden benchmark helpers. Each command's body lives in `cli/`.

mod cli;

/// jemalloc instead of glibc's malloc: the request path allocates a few
/// dozen small blocks per request on many threads, where glibc's arenas
/// contend and consolidate (bench/README.md, round two: `GET /v1/me` from
/// ~0.045 to ~0.031 ms of CPU a request).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::{Application, Settings};

/// Where the configuration is: printed under `--help` of every command.
const CONFIG_HELP: &str = "\
Configuration:
  Every setting is a PORTCULLIS_* environment variable, for example
  PORTCULLIS_LISTEN=127.0.0.1:8080, PORTCULLIS_PUBLIC_URL=https://auth.example.com
  or PORTCULLIS_MONGODB_URI=mongodb://... The same keys can be written in
  ./portcullis.toml (or the file PORTCULLIS_CONFIG names), spelled in full or in
  lower case without the prefix (listen = \"0.0.0.0:8080\"); the environment wins.
  Every key, with its default, is in .env.example and in the configuration
  reference of the book (docs/). The binary does not read .env (docker compose does).
  For a laptop: `portcullis serve --dev` (or PORTCULLIS_DEV=true).";

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A stateless, token-issuing identity service",
    after_help = CONFIG_HELP
)]
struct Cli {
    /// Refuse to start when an unknown PORTCULLIS_* key is set (a typo),
    /// instead of warning.
    #[arg(long, global = true)]
    strict: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    #[command(after_help = CONFIG_HELP)]
    Serve {
        /// Developer mode (also PORTCULLIS_DEV=true): per-IP rate limits off,
        /// CORS open to http://localhost:* and http://127.0.0.1:*, every mail's
        /// links and codes printed to the log. Refuses a public URL that is not
        /// a loopback URL.
        #[arg(long)]
        dev: bool,
    },
    /// Manage signing keys in PORTCULLIS_KEYS_DIR.
    Keys {
        #[command(subcommand)]
        action: cli::keys::KeysAction,
    },
    /// Print the OpenAPI spec (JSON) to stdout.
    Openapi,
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        action: cli::admin::AdminAction,
    },
    /// Bring accounts in from another system.
    Users {
        #[command(subcommand)]
        action: cli::import::UsersAction,
    },
    /// Password tools: build the offline breached-password filter.
    Passwords {
        #[command(subcommand)]
        action: cli::passwords::PasswordsAction,
    },
    /// Manage OAuth clients (Portcullis as an OpenID provider).
    Clients {
        #[command(subcommand)]
        action: cli::clients::ClientsAction,
    },
    /// Load-benchmark helpers (bench/run.sh).
    #[command(hide = true, subcommand)]
    Bench(cli::bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { dev: false });
    if let Command::Openapi = command {
        print!("{}", portcullis::api::spec_json());
        return Ok(());
    }
    if let Command::Passwords { action } = command {
        return cli::passwords::run(action);
    }
    let mut settings = Settings::load(cli.strict)?;
    if let Command::Serve { dev: true } = command {
        settings.enable_dev()?;
    }
    portcullis::telemetry::init(settings.log_format);
    settings.warn_unknown_keys();
    match command {
        Command::Openapi | Command::Passwords { .. } => Ok(()),
        Command::Bench(action) => cli::bench::run(action, &settings),
        Command::Keys { action } => cli::keys::run(action, &settings),
        Command::Admin { action } => cli::admin::run(action, &settings).map_err(|e| {
            cli::explain_store_in_use(
                e,
                "admin create",
                "; or, signed in as an administrator, give the role through the running server: PATCH /v1/admin/users/{id} {\"roles\":[\"user\",\"admin\"]}",
            )
        }),
        Command::Users { action } => cli::import::run(action, &settings).map_err(|e| {
            cli::explain_store_in_use(
                e,
                "users import",
                " (with MongoDB, PORTCULLIS_MONGODB_URI, an import runs beside the server)",
            )
        }),
        Command::Clients { action } => cli::clients::run(action, &settings),
        Command::Serve { .. } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(settings)),
    }
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
