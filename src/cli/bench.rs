//! The load benchmark's helpers (`bench/run.sh`): the hidden
//! `portcullis bench ...` commands.
//!
//! - `bench seed --count N [--start S]` writes users `user{i}@bench.test`
//!   (`i` in `S..S+N`) straight into the store (embedded, or MongoDB when
//!   `PORTCULLIS_MONGODB_URI` is set) in batches, all
//!   sharing ONE password hash made once with the real [`PasswordHasher`],
//!   the configured cost and the server's pepper (`PORTCULLIS_KEYS_DIR`), so
//!   they can sign in over HTTP with the benchmark password.
//! - `bench bcrypt --cost C --iterations K` prints the mean seconds of one
//!   password verification through the real [`PasswordHasher`] (one at a
//!   time), the unit of the "bcrypt limit" the login figures are compared to.
//!   With `--parallel P`, P tasks verify at once (K each, hasher concurrency
//!   P) and it prints wall seconds / K: P divided by that is what this
//!   machine actually sustains, which on shared or SMT cores can be less
//!   than P times the one-at-a-time rate.
//!
//! - `bench floor` serves like `portcullis serve`, plus an empty
//!   `GET /bench/floor` behind the same middleware (the "floor" row: what
//!   HTTP alone allows on this stack).
//! - `bench id-tokens` is the benchmark's upstream identity provider: it
//!   writes a discovery document and a JWKS for a static file server
//!   (`--publish`), and signs ID tokens (ES256) for the server's nonces,
//!   one per nonce, to be used once each (wrk cannot sign).
//!
//! Not part of the service's contract: hidden from `--help`.

use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use secrecy::SecretString;

use portcullis::auth::PasswordHasher;
use portcullis::auth::password::load_or_create_pepper;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::domain::Password;
use portcullis::store::embedded::EmbeddedStore;
use portcullis::store::mongo::MongoStore;
use portcullis::store::{CredentialRecord, UserRecord};

/// The password every seeded user has (passes the zxcvbn policy).
const BENCH_PASSWORD: &str = "correct horse battery staple 42";

/// `portcullis bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write COUNT users user{i}@bench.test into the embedded store
    /// (PORTCULLIS_DATA_DIR), hashed at PORTCULLIS_BCRYPT_COST with the pepper
    /// in PORTCULLIS_KEYS_DIR. The server must not be running on that store.
    Seed {
        /// How many users to write.
        #[arg(long)]
        count: u64,
        /// Index of the first user (to grow an already seeded store).
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Users per write transaction.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Print COUNT DPoP proofs (one a line; fresh `jti`, `iat` now) by the
    /// key in KEY, for METHOD URL; with TOKENS, `<token> <proof>` lines
    /// whose proofs carry `ath` of their token (wrk cannot sign ES256).
    DpopProofs(DpopProofsArgs),
    /// Serve like `portcullis serve`, plus an empty `GET /bench/floor`
    /// (200, no body) behind the same middleware.
    Floor,
    /// The benchmark's identity provider: with PUBLISH, write its
    /// discovery document and JWKS there; with NONCES, print one
    /// `<nonce> <ID token>` line per nonce (ES256, by the key in KEY).
    IdTokens(IdTokensArgs),
    /// Print the mean seconds of one bcrypt verification at COST.
    Bcrypt {
        #[arg(long)]
        cost: u32,
        #[arg(long, default_value_t = 10)]
        iterations: u32,
        /// Verifications running at once (each does ITERATIONS).
        #[arg(long, default_value_t = 1)]
        parallel: usize,
    },
}

/// `bench dpop-proofs`: see [`BenchCommand::DpopProofs`].
#[derive(Debug, clap::Args)]
pub struct DpopProofsArgs {
    /// PKCS#8 file of the client's P-256 key (created when absent).
    #[arg(long)]
    key: std::path::PathBuf,
    /// How many proofs.
    #[arg(long)]
    count: usize,
    /// `htm`.
    #[arg(long, default_value = "GET")]
    method: String,
    /// `htu` (the server's public URL and the path).
    #[arg(long)]
    url: String,
    /// A file of access tokens (one a line): line i of the output is
    /// `<token> <proof with ath of it>`, tokens taken round robin.
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Print the key's RFC 7638 thumbprint instead of proofs.
    #[arg(long)]
    thumbprint: bool,
}

/// `bench id-tokens`: see [`BenchCommand::IdTokens`].
#[derive(Debug, clap::Args)]
pub struct IdTokensArgs {
    /// PKCS#8 file of the provider's P-256 key (created when absent).
    #[arg(long)]
    key: std::path::PathBuf,
    /// The provider's issuer URL (where PUBLISH is served).
    #[arg(long)]
    issuer: String,
    /// Write `.well-known/openid-configuration` and `jwks.json` into this
    /// folder (served as static files at ISSUER).
    #[arg(long)]
    publish: Option<std::path::PathBuf>,
    /// `aud` of the tokens (the provider's client id at Portcullis).
    #[arg(long, default_value = "bench-client")]
    audience: String,
    /// A file of nonces (one a line, from `POST /v1/federation/nonce`).
    #[arg(long)]
    nonces: Option<std::path::PathBuf>,
    /// Token i is for subject `bench-{(FIRST + i) % SUBJECTS}`, email
    /// `fed{...}@idp.bench.test` (verified).
    #[arg(long, default_value_t = 1000)]
    subjects: u64,
    /// See SUBJECTS.
    #[arg(long, default_value_t = 0)]
    first: u64,
}

/// The `kid` of the benchmark provider's key.
const IDP_KID: &str = "bench-idp";

/// Runs a `bench` command with the usual settings (environment / TOML).
pub fn run(command: BenchCommand, settings: &Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        BenchCommand::Seed {
            count,
            start,
            batch,
        } => rt.block_on(seed(settings, start, count, batch.max(1))),
        BenchCommand::DpopProofs(args) => dpop_proofs(&args),
        BenchCommand::IdTokens(args) => id_tokens(&args),
        BenchCommand::Floor => rt.block_on(async {
            portcullis::startup::Application::build(settings.clone())
                .await
                .context("starting")?
                .with_floor()
                .run_until(crate::shutdown_signal())
                .await
        }),
        BenchCommand::Bcrypt {
            cost,
            iterations,
            parallel,
        } => {
            let secs = rt.block_on(bcrypt_verify_secs(
                settings,
                cost,
                iterations.max(1),
                parallel.max(1),
            ))?;
            println!("{secs:.6}");
            Ok(())
        }
    }
}

/// The P-256 key in `path`, created there when absent.
fn es256_key(path: &std::path::Path) -> anyhow::Result<portcullis::auth::dpop::ProofSigner> {
    use portcullis::auth::dpop::ProofSigner;
    let pkcs8 = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let b = ProofSigner::es256_pkcs8()?;
            std::fs::write(path, &b).with_context(|| format!("writing {}", path.display()))?;
            b
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    ProofSigner::es256_from_pkcs8(&pkcs8)
}

fn id_tokens(a: &IdTokensArgs) -> anyhow::Result<()> {
    use std::io::Write;

    let signer = es256_key(&a.key)?;
    let issuer = a.issuer.trim_end_matches('/');
    if let Some(dir) = &a.publish {
        let well_known = dir.join(".well-known");
        std::fs::create_dir_all(&well_known)
            .with_context(|| format!("creating {}", well_known.display()))?;
        let discovery = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let mut jwk = signer.jwk.clone();
        jwk["kid"] = IDP_KID.into();
        jwk["alg"] = "ES256".into();
        jwk["use"] = "sig".into();
        std::fs::write(
            well_known.join("openid-configuration"),
            discovery.to_string(),
        )?;
        std::fs::write(
            dir.join("jwks.json"),
            serde_json::json!({ "keys": [jwk] }).to_string(),
        )?;
    }
    let Some(path) = &a.nonces else {
        return Ok(());
    };
    let nonces =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let header = serde_json::json!({ "alg": "ES256", "kid": IDP_KID, "typ": "JWT" });
    let now = Clock::system().now_u64();
    let subjects = a.subjects.max(1);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, nonce) in nonces
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let s = a.first.wrapping_add(i as u64) % subjects;
        let claims = serde_json::json!({
            "iss": issuer,
            "aud": a.audience,
            "sub": format!("bench-{s}"),
            "email": format!("fed{s}@idp.bench.test"),
            "email_verified": true,
            "nonce": nonce,
            "iat": now,
            "exp": now + 3600,
        });
        writeln!(out, "{nonce} {}", signer.sign_raw(&header, &claims))?;
    }
    Ok(out.flush()?)
}

fn dpop_proofs(a: &DpopProofsArgs) -> anyhow::Result<()> {
    use std::io::Write;

    let signer = es256_key(&a.key)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.thumbprint {
        writeln!(out, "{}", signer.jkt())?;
        return Ok(out.flush()?);
    }
    let tokens: Vec<String> = match &a.tokens {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    let now = Clock::system().now_u64();
    for i in 0..a.count {
        match tokens.get(i % tokens.len().max(1)) {
            Some(t) => {
                let p = signer.proof(&a.method, &a.url, now, Some(t), None);
                writeln!(out, "{t} {p}")?;
            }
            None => writeln!(out, "{}", signer.proof(&a.method, &a.url, now, None, None))?,
        }
    }
    Ok(out.flush()?)
}

fn bench_password() -> anyhow::Result<Password> {
    Password::parse(SecretString::from(BENCH_PASSWORD.to_string()))
        .map_err(|p| anyhow::anyhow!("benchmark password refused: {}", p.detail()))
}

fn hasher(settings: &Settings, cost: u32, concurrency: usize) -> anyhow::Result<PasswordHasher> {
    let (pepper, _) = load_or_create_pepper(&settings.tokens.keys_dir)?;
    PasswordHasher::new(pepper, cost, concurrency)
}

/// Writes `count` users starting at index `start`, `batch` per transaction.
async fn seed(settings: &Settings, start: u64, count: u64, batch: usize) -> anyhow::Result<()> {
    let began = Instant::now();
    let credentials = CredentialRecord {
        password_hash: hasher(settings, settings.passwords.bcrypt_cost, 1)?
            .hash(&bench_password()?)
            .await?,
        legacy_bcrypt: false,
        ..CredentialRecord::default()
    };
    let store = BulkStore::open(settings).await?;
    let now = Clock::system().now();
    let end = start.saturating_add(count);
    let mut next = start;
    while next < end {
        let upto = end.min(next.saturating_add(batch as u64));
        let users: Vec<(UserRecord, CredentialRecord)> = (next..upto)
            .map(|i| {
                let user = UserRecord {
                    id: portcullis::domain::UserId::mint(),
                    email: format!("user{i}@bench.test"),
                    email_verified: true,
                    display_name: None,
                    roles: vec!["user".to_string()],
                    disabled: false,
                    created_at: now,
                    updated_at: now,
                    ..UserRecord::default()
                };
                (user, credentials.clone())
            })
            .collect();
        store
            .insert(&users)
            .await
            .with_context(|| format!("writing users {next}..{upto}"))?;
        next = upto;
    }
    println!(
        "seeded {count} users (user{start}..user{}@bench.test) at cost {} in {:.1}s",
        end.saturating_sub(1),
        settings.passwords.bcrypt_cost,
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The backend the settings name, opened for bulk seeding (which is not on
/// the service's store traits: nothing but the benchmark needs it).
enum BulkStore {
    Embedded(EmbeddedStore),
    Mongo(MongoStore),
}

impl BulkStore {
    async fn open(settings: &Settings) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let s = &settings.store;
        Ok(match &s.mongodb_uri {
            Some(uri) => Self::Mongo(
                MongoStore::connect(uri.expose_secret(), &s.mongodb_db, s.mongodb_timeout).await?,
            ),
            None => Self::Embedded(EmbeddedStore::open(&s.data_dir)?),
        })
    }

    async fn insert(&self, users: &[(UserRecord, CredentialRecord)]) -> anyhow::Result<()> {
        match self {
            Self::Embedded(s) => s.bulk_insert_users(users).await?,
            Self::Mongo(s) => s.bulk_insert_users(users).await?,
        }
        Ok(())
    }
}

/// Mean seconds of one verification of the benchmark password against a
/// hash of `cost` through the service's hasher: `parallel` tasks each verify
/// `iterations` times; the result is wall time / `iterations`.
async fn bcrypt_verify_secs(
    settings: &Settings,
    cost: u32,
    iterations: u32,
    parallel: usize,
) -> anyhow::Result<f64> {
    let hasher = hasher(settings, cost, parallel)?;
    let hash: std::sync::Arc<str> = hasher.hash(&bench_password()?).await?.into();
    let verify_n = |n: u32| {
        let (hasher, hash) = (hasher.clone(), hash.clone());
        async move {
            let password = bench_password()?;
            for _ in 0..n {
                if !hasher.verify(&password, Some(&hash)).await? {
                    anyhow::bail!("bcrypt verification failed");
                }
            }
            anyhow::Ok(())
        }
    };
    // One untimed verification warms caches and the blocking pool.
    verify_n(1).await?;
    let began = Instant::now();
    let tasks: Vec<_> = (0..parallel)
        .map(|_| tokio::spawn(verify_n(iterations)))
        .collect();
    for task in tasks {
        task.await.context("bcrypt task")??;
    }
    Ok(began.elapsed().as_secs_f64() / f64::from(iterations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis::store::{CredentialStore, UserStore};

    fn settings(dir: &std::path::Path) -> Settings {
        let map = std::collections::BTreeMap::from([
            (
                "PORTCULLIS_DATA_DIR".to_string(),
                dir.join("data").display().to_string(),
            ),
            (
                "PORTCULLIS_KEYS_DIR".to_string(),
                dir.join("keys").display().to_string(),
            ),
            ("PORTCULLIS_BCRYPT_COST".to_string(), "4".to_string()),
        ]);
        Settings::from_map(&map).unwrap()
    }

    #[tokio::test]
    async fn seeded_users_sign_in_with_the_bench_password() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        seed(&s, 0, 25, 10).await.unwrap();
        seed(&s, 25, 5, 10).await.unwrap();
        let store = EmbeddedStore::open(&s.store.data_dir).unwrap();
        let user = store
            .user_by_email("user29@bench.test")
            .await
            .unwrap()
            .unwrap();
        let hash = store
            .credentials(&user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        let (pepper, created) = load_or_create_pepper(&s.tokens.keys_dir).unwrap();
        assert!(!created);
        let h = PasswordHasher::new(pepper, 4, 1).unwrap();
        assert!(
            h.verify(&bench_password().unwrap(), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            store
                .user_by_email("user30@bench.test")
                .await
                .unwrap()
                .is_none()
        );
        // Seeding over existing users is refused, not duplicated.
        assert!(seed(&s, 20, 10, 10).await.is_err());
    }

    #[tokio::test]
    async fn bcrypt_measure_is_positive() {
        let dir = tempfile::tempdir().unwrap();
        for parallel in [1, 2] {
            let secs = bcrypt_verify_secs(&settings(dir.path()), 4, 2, parallel)
                .await
                .unwrap();
            assert!(secs > 0.0);
        }
    }
}
