//! Wiring: loads keys and secrets, opens the store, assembles the [`Core`],
//! binds the listener and runs the server with its background jobs.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpListener};
use secrecy::ExposeSecret;

use crate::api::timeouts::{TimeoutAcceptor, Timeouts};
use crate::auth::password::load_or_create_pepper;
use crate::auth::secrets::load_or_create_secret;
use crate::auth::tokens::RefreshKey;
use crate::auth::totp::SecondFactorKeys;
use crate::auth::{Captcha, KeyRing, Limits, PasskeyRp, PasswordHasher, TokenService};
use crate::clock::Clock;
use crate::config::{RefreshSigning, Settings, StoreSettings};
use crate::domain::PasswordPolicy;
use crate::service::{Core, CoreParts, Postbox};
use crate::store::DynStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;

/// How long a CAPTCHA challenge may be solved and used.
const CAPTCHA_TTL_SECS: u64 = 600;

/// Opens the store the settings name (the embedded one with its default cache).
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<DynStore> {
    open_store_sized(settings, crate::store::embedded::DEFAULT_CACHE_BYTES).await
}

/// [`open_store`], the embedded store caching at most `redb_cache` bytes
/// of pages (`PORTCULLIS_REDB_CACHE_SIZE`).
pub async fn open_store_sized(
    settings: &StoreSettings,
    redb_cache: usize,
) -> anyhow::Result<DynStore> {
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
        return Ok(Arc::new(store));
    }
    let store = EmbeddedStore::open_with_cache(&settings.data_dir, redb_cache)?;
    Ok(Arc::new(store))
}

/// Loads keys (generating dev keys on first start), opens the store and
/// assembles the service core around `clock`.
pub async fn build_core(settings: Settings, clock: Clock) -> anyhow::Result<Core> {
    let keys_dir = &settings.tokens.keys_dir;
    let alg = settings.tokens.signing_alg;
    let (ring, generated) =
        KeyRing::load_or_generate_with_rs256(keys_dir, alg).context("loading signing keys")?;
    // The ring's loading installed it before its first use of jsonwebtoken.
    if !crate::auth::signers::install() {
        tracing::warn!("{}", crate::auth::signers::NOT_INSTALLED);
    }
    for path in generated {
        tracing::warn!(
            path = %path.display(),
            alg = alg.jose_name(),
            "no signing key found: generated a new one (fine for development; back up keys/ in production)"
        );
    }
    let (pepper, created) = load_or_create_pepper(keys_dir)?;
    if created {
        tracing::warn!(dir = %keys_dir.display(), "generated the password pepper: losing it invalidates every password");
    }
    let (captcha_key, _) = load_or_create_secret(keys_dir, "captcha-hmac.key")?;
    let (dpop_nonce_key, _) = load_or_create_secret(keys_dir, "dpop-nonce-hmac.key")?;
    let second_factor = Arc::new(SecondFactorKeys::load(keys_dir)?);
    let postbox = build_postbox(&settings)?;
    let store = open_store_sized(&settings.store, settings.performance.redb_cache_size).await?;
    let t = &settings.tokens;
    let tokens = TokenService::new(
        Arc::new(ring),
        t.issuer.clone(),
        t.audience.clone(),
        t.access_ttl,
        t.refresh_ttl,
    )
    .with_refresh_key(
        load_refresh_key(&settings)?,
        settings.performance.refresh_signing == RefreshSigning::Hmac,
    );
    let p = &settings.passwords;
    let hasher = PasswordHasher::new(pepper, p.bcrypt_cost, p.bcrypt_concurrency)?;
    let policy = PasswordPolicy {
        min_score: p.min_score,
    };
    // Passkeys: the relying party follows the public URL (after
    // `bound_to`, so a defaulted URL names the bound port).
    let passkeys = PasskeyRp::configured(&settings.http.public_url, &settings.passkeys)
        .context("configuring passkeys (PORTCULLIS_WEBAUTHN_RP_ID, PORTCULLIS_WEBAUTHN_ORIGINS)")?;
    if passkeys.is_none() {
        tracing::warn!(public_url = %settings.http.public_url, "passkeys are off: the public URL names an IP address and WebAuthn needs a domain (set PORTCULLIS_PUBLIC_URL or PORTCULLIS_WEBAUTHN_RP_ID)");
    }
    let breached = match &p.breached_filter {
        Some(path) => {
            let filter = crate::auth::breached::BreachedFilter::load(path)?;
            tracing::info!(path = %path.display(), "breached-password filter loaded");
            Some(Arc::new(filter))
        }
        None => None,
    };
    Ok(Core::new(CoreParts {
        passkeys: passkeys.map(Arc::new),
        limits: Arc::new(Limits::new(settings.limits.rate_limit)),
        federation: Arc::new(crate::service::federation::Upstreams::new(
            &settings.federation.providers,
        )?),
        captcha: Arc::new(Captcha::new(
            captcha_key,
            settings.limits.captcha_difficulty,
            CAPTCHA_TTL_SECS,
        )),
        settings: Arc::new(settings),
        store,
        tokens,
        verified_tokens: Arc::default(),
        hasher,
        policy,
        clock,
        security: Arc::default(),
        second_factor,
        mail: Arc::new(postbox),
        breached,
        dpop_nonces: Arc::new(crate::auth::dpop::NonceKeys::new(dpop_nonce_key)),
    }))
}

/// The HMAC key of refresh tokens (`keys/refresh-hmac.key`, made on first
/// start). With `PORTCULLIS_REFRESH_SIGNING=signing-key` a folder that lacks
/// it and cannot get it (read-only) is no error: the replica then signs and
/// verifies refresh tokens with the ring, as releases before the key did.
fn load_refresh_key(settings: &Settings) -> anyhow::Result<Option<RefreshKey>> {
    let dir = &settings.tokens.keys_dir;
    match RefreshKey::load_or_create(dir) {
        Ok((key, created)) => {
            if created {
                tracing::warn!(dir = %dir.display(), "generated the refresh-token key (refresh-hmac.key): share it with every replica");
            }
            Ok(Some(key))
        }
        Err(e) if settings.performance.refresh_signing == RefreshSigning::SigningKey => {
            tracing::warn!(error = %format!("{e:#}"), "no refresh-token HMAC key: refresh tokens signed with it are refused by this replica");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The mailer (SMTP or outbox), templates and email-code key.
fn build_postbox(settings: &Settings) -> anyhow::Result<Postbox> {
    let m = &settings.mail;
    let mut mailer = crate::mail::mailer_from_settings(
        m.smtp_url.as_ref().map(|u| u.expose_secret()),
        &settings.store.data_dir,
    )?;
    if settings.dev {
        mailer = Arc::new(crate::mail::DevLogMailer(mailer));
    }
    let from = crate::mail::parse_from(&m.smtp_from)?;
    let templates = crate::mail::Templates::new(m.templates_dir.clone());
    let (code_key, _) = load_or_create_secret(&settings.tokens.keys_dir, "email-code-hmac.key")?;
    Ok(Postbox::new(mailer, templates, from, code_key))
}

/// A bound, ready-to-run server.
pub struct Application {
    acceptor: TimeoutAcceptor<poem::listener::TcpAcceptor>,
    addr: SocketAddr,
    core: Core,
    floor: bool,
}

impl Application {
    /// Builds the core on the system clock and binds the listener (port 0
    /// picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Like [`Application::build`], with the clock every expiry rule reads
    /// (tests pass a manual one to move time without sleeping).
    pub async fn build_with_clock(mut settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let listen = settings.http.listen;
        let acceptor = TcpListener::bind(listen)
            .into_acceptor()
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no socket address")?;
        settings.bound_to(addr.port());
        let acceptor = TimeoutAcceptor::new(
            acceptor,
            Timeouts {
                request: settings.http.request_timeout,
                idle: settings.http.idle_timeout,
            },
        );
        let core = build_core(settings, clock).await?;
        Ok(Self {
            acceptor,
            addr,
            core,
            floor: false,
        })
    }

    /// Also serves the load benchmark's empty endpoint
    /// ([`crate::api::FLOOR_PATH`]; `portcullis bench floor`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_floor(mut self) -> Self {
        self.floor = true;
        self
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The store the server uses (a test seam: tests make states the API
    /// cannot, e.g. an account whose only credential is a passkey, as an
    /// import without `password_hash` leaves one once it has a passkey).
    #[doc(hidden)]
    pub fn store(&self) -> crate::store::DynStore {
        self.core.store.clone()
    }

    /// The service core (a test seam: tests run a background job's step,
    /// e.g. the purge of unused anonymous users, on the server's clock).
    #[doc(hidden)]
    pub fn core(&self) -> crate::service::Core {
        self.core.clone()
    }

    /// Serves until the future `stop` completes. Then it stops accepting,
    /// lets in-flight requests finish for up to `PORTCULLIS_SHUTDOWN_TIMEOUT`,
    /// stores the buffered audit events and stops the background jobs.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let jobs = crate::jobs::spawn(self.core.clone());
        if self.core.settings.dev {
            tracing::warn!("{}", crate::config::DEV_BANNER);
        }
        tracing::info!(addr = %self.addr, store = %self.core.store_name(), mail = %self.core.mailer_name(), "portcullis listening");
        let grace = self.core.settings.security.shutdown_timeout;
        let core = self.core.clone();
        let app = crate::api::routes_with_floor(self.core, self.floor);
        let result = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, stop, Some(grace))
            .await;
        jobs.shutdown(&core).await;
        result.context("server error")
    }
}
