//! Support for the load benchmark (`bench/run.sh`): the hidden
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
//! Not part of the service's contract: hidden from `--help`.

use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::PasswordHasher;
use crate::auth::password::load_or_create_pepper;
use crate::config::Settings;
use crate::domain::Password;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;
use crate::store::{CredentialRecord, StoreResult, UserRecord};

/// The password every seeded user has (passes the zxcvbn policy).
pub const BENCH_PASSWORD: &str = "correct horse battery staple 42";

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

fn bench_password() -> anyhow::Result<Password> {
    Password::parse(SecretString::from(BENCH_PASSWORD.to_string()))
        .map_err(|p| anyhow::anyhow!("benchmark password refused: {}", p.detail()))
}

fn hasher(settings: &Settings, cost: u32, concurrency: usize) -> anyhow::Result<PasswordHasher> {
    let (pepper, _) = load_or_create_pepper(&settings.keys_dir)?;
    Ok(PasswordHasher::new(pepper, cost, concurrency))
}

/// Writes `count` users starting at index `start`, `batch` per transaction.
pub async fn seed(settings: &Settings, start: u64, count: u64, batch: usize) -> anyhow::Result<()> {
    let began = Instant::now();
    let hash = hasher(settings, settings.bcrypt_cost, 1)?
        .hash(&bench_password()?)
        .await?;
    let store = SeedStore::open(settings).await?;
    let now = i64::try_from(crate::auth::tokens::now_secs()).unwrap_or(i64::MAX);
    let end = start.saturating_add(count);
    let mut next = start;
    while next < end {
        let upto = end.min(next.saturating_add(batch as u64));
        let users: Vec<(UserRecord, CredentialRecord)> = (next..upto)
            .map(|i| {
                let user = UserRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    email: format!("user{i}@bench.test"),
                    email_verified: true,
                    display_name: None,
                    roles: vec!["user".to_string()],
                    disabled: false,
                    created_at: now,
                    updated_at: now,
                };
                let credentials = CredentialRecord {
                    password_hash: hash.clone(),
                };
                (user, credentials)
            })
            .collect();
        store
            .bulk_insert_users(&users)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("writing users {next}..{upto}"))?;
        next = upto;
    }
    println!(
        "seeded {count} users (user{start}..user{}@bench.test) at cost {} in {:.1}s",
        end.saturating_sub(1),
        settings.bcrypt_cost,
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The store `seed` writes to, by backend: bulk insertion is not part of
/// the store traits.
enum SeedStore {
    Embedded(EmbeddedStore),
    Mongo(MongoStore),
}

impl SeedStore {
    /// Opens the store the settings name (as `startup::open_store` does).
    async fn open(settings: &Settings) -> anyhow::Result<Self> {
        if let Some(uri) = &settings.mongodb_uri {
            let store = MongoStore::connect(
                uri.expose_secret(),
                &settings.mongodb_db,
                settings.mongodb_timeout,
            )
            .await
            .with_context(|| {
                format!(
                    "opening the MongoDB store (database `{}`, PORTCULLIS_MONGODB_URI)",
                    settings.mongodb_db
                )
            })?;
            return Ok(Self::Mongo(store));
        }
        Ok(Self::Embedded(EmbeddedStore::open(&settings.data_dir)?))
    }

    async fn bulk_insert_users(&self, users: &[(UserRecord, CredentialRecord)]) -> StoreResult<()> {
        match self {
            Self::Embedded(store) => store.bulk_insert_users(users).await,
            Self::Mongo(store) => store.bulk_insert_users(users).await,
        }
    }
}

/// Mean seconds of one verification of the benchmark password against a
/// hash of `cost` through the service's hasher: `parallel` tasks each verify
/// `iterations` times; the result is wall time / `iterations`.
pub async fn bcrypt_verify_secs(
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
    use crate::store::{CredentialStore, UserStore};

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
        let store = EmbeddedStore::open(&s.data_dir).unwrap();
        let user = store
            .user_by_email("user29@bench.test")
            .await
            .unwrap()
            .unwrap();
        let (pepper, created) = load_or_create_pepper(&s.keys_dir).unwrap();
        assert!(!created);
        let h = PasswordHasher::new(pepper, 4, 1);
        assert!(
            h.verify(
                &bench_password().unwrap(),
                Some(
                    &store
                        .credentials(&user.id)
                        .await
                        .unwrap()
                        .unwrap()
                        .password_hash
                )
            )
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
