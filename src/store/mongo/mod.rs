//! The MongoDB store, on the official driver. Works with MongoDB and with
//! FerretDB v1 (the CI server), whose gaps it works around:
//!
//! - No TTL deletion (`expireAfterSeconds` answers 238 NotImplemented): the
//!   TTL indexes are optional, every read checks `expires_at`, and
//!   [`Store::purge_expired`](super::Store::purge_expired) deletes what a TTL monitor would have.
//! - No transactions: every operation that must not race is one
//!   single-document atomic command.
//! - Conditional updates are not atomic: FerretDB v1 runs `findAndModify`
//!   and `update` as a query, then a replace by `_id` (its
//!   `internal/handler/msg_findandmodify.go` and `common/update.go`), so
//!   two racers can both "match". Only an insert under a unique index is atomic
//!   on both servers. Refresh rotation therefore decides the race with an
//!   insert: the attempt that inserts the retired token's record
//!   (`revocations`, `_id` `rt:<jti>`, see `RevocationId`) is the one that rotates; its swap of
//!   the session is a conditional `findAndModify` that any later attempt
//!   may finish for it (idempotent), so a crash between the two steps does
//!   not wedge the family. On MongoDB the conditional update is atomic too.
//!   What stays weaker on FerretDB: two different updates of one document
//!   racing (say a revocation and a rotation of the same session within
//!   milliseconds) can lose one of them.
//! - No projection on `findAndModify`: none is used there. (`find` takes
//!   one: profile reads leave the credential fields out, see `users.rs`.)
//!
//! Documents are the store records as BSON with `id` renamed to `_id`;
//! timestamps stay i64 unix seconds. MongoDB's TTL monitor only deletes on
//! BSON dates, so a document that expires also carries `expires_at_date`, a
//! date copy of `expires_at` that the TTL index is built on; `expires_at`
//! stays the value every query checks.
//!
//! A user's profile and credentials are one document in `users` (see
//! [`records`](super::records)): profile reads leave the credential fields
//! out with a projection, credential reads take only them.
//!
//! The connection string may hold a password: it never appears in errors or
//! logs.
//!
//! One file per trait (`users.rs`, `credentials.rs`, `sessions.rs`,
//! `once.rs`, `throttles.rs`, `avatars.rs`, `ceremonies.rs`); `errors.rs` maps
//! driver errors.

mod anonymous;
mod avatars;
mod credentials;
mod email;
mod errors;
// Federated sign-in.
mod identities;
// Passkeys.
mod ceremonies;
mod oauth;
mod once;
mod security;
mod sessions;
mod throttles;
mod users;

#[cfg(test)]
mod tests;

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{self, DateTime, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::errors::{NOT_IMPLEMENTED, command_code, is_duplicate_key, map_err, scrub};
use crate::domain::UserId;

use super::{OnceKey, Store, StoreError, StoreResult, TicketKind, UserRecord, UserStore};

const USERS: &str = "users";
const SESSIONS: &str = "sessions";
/// One document per user with an avatar, `_id` the user id.
const AVATARS: &str = "avatars";
/// Short-lived records keyed by [`RevocationId`], all expiring on
/// `expires_at`.
const REVOCATIONS: &str = "revocations";
/// The outgoing-mail queue (see `email.rs`).
const MAIL_QUEUE: &str = "mail_queue";
/// Linked identities of upstream providers (see `identities.rs`).
const IDENTITIES: &str = "identities";

/// Date copy of `expires_at` for the TTL monitor (see the module docs).
const EXPIRES_AT_DATE: &str = "expires_at_date";

/// The TTL fallback is logged once per process, not once per collection.
static TTL_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The `_id` of a document in `revocations`: the one place that names the
/// kinds the collection holds, each under its own prefix so they cannot
/// collide.
#[derive(Debug, Clone, Copy)]
enum RevocationId<'a> {
    /// `rt:<jti>`: a retired refresh token (see `sessions.rs`).
    RetiredToken(&'a str),
    /// `fail:<account>`: the failed sign-ins of an account.
    LoginFailures(&'a str),
    /// `once:<stored key>`: a claimed single-use key.
    Once(&'a OnceKey),
    /// `rc:<user id>:<code hash>`: a recovery code being used up (see
    /// `credentials.rs`).
    RecoveryCode(&'a str, &'a str),
    /// `ticket:<kind>:<user id>`: a user's reset or verification ticket.
    Ticket(TicketKind, &'a str),
    /// `wa:<challenge id>`: a WebAuthn ceremony in progress (passkeys).
    Ceremony(&'a str),
    /// `try:<slot>:<account>`: one reserved sign-in attempt (see
    /// `throttles.rs`).
    Attempt(&'a str, u32),
    /// `failed:<nonce>:<account>`: one failure recorded without a
    /// reservation (see `throttles.rs`).
    Failure(&'a str, &'a str),
    /// `pkadd:<user id>`: a passkey being added to the account (see
    /// `credentials.rs`).
    PasskeyAdd(&'a str),
    /// `dpopbind:<sid>`: the DPoP key a bearer session was bound to at a
    /// refresh (see `sessions.rs`).
    DpopBind(&'a str),
}

impl RevocationId<'_> {
    /// The `_id` string.
    fn id(self) -> String {
        match self {
            Self::RetiredToken(jti) => format!("rt:{jti}"),
            Self::LoginFailures(account) => format!("fail:{account}"),
            Self::Once(key) => format!("once:{}", key.stored_key()),
            Self::RecoveryCode(user_id, hash) => format!("rc:{user_id}:{hash}"),
            Self::Ticket(kind, user_id) => format!("ticket:{}:{user_id}", kind.as_str()),
            Self::Ceremony(id) => format!("wa:{id}"),
            Self::Attempt(account, slot) => format!("try:{slot}:{account}"),
            Self::Failure(account, nonce) => format!("failed:{nonce}:{account}"),
            Self::PasskeyAdd(user_id) => format!("pkadd:{user_id}"),
            Self::DpopBind(sid) => format!("dpopbind:{sid}"),
        }
    }
}

/// The MongoDB-backed store.
#[derive(Clone)]
pub struct MongoStore {
    /// Holds the client (and its connection pool); clones share it.
    db: Database,
    users: Collection<Document>,
    sessions: Collection<Document>,
    revocations: Collection<Document>,
    avatars: Collection<Document>,
    mail_queue: Collection<Document>,
    identities: Collection<Document>,
    /// Bound on every operation, so a server that stops answering (without
    /// closing its sockets) is reported as unavailable instead of hanging.
    op_timeout: Duration,
    server_version: String,
    ferretdb_version: Option<String>,
    /// Whether the server took the TTL indexes (FerretDB v1 does not).
    ttl_indexes: bool,
}

/// Record → document: `id` becomes `_id` (first), and `expires_at` gets its
/// date copy when the record has one.
/// A user id goes into a filter or an update as the bare string it is
/// stored as (the records' `#[serde(transparent)]`).
impl From<UserId> for bson::Bson {
    fn from(id: UserId) -> Self {
        Self::String(id.into_string())
    }
}

fn to_doc<T: Serialize>(record: &T) -> StoreResult<Document> {
    let mut fields = bson::to_document(record)
        .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a record")))?;
    let mut out = Document::new();
    if let Some(id) = fields.remove("id") {
        out.insert("_id", id);
    }
    let expires = fields.get_i64("expires_at").ok();
    out.extend(fields);
    if let Some(secs) = expires {
        out.insert(EXPIRES_AT_DATE, date_of(secs));
    }
    Ok(out)
}

/// Document → record: the inverse of [`to_doc`]. Fields the record does not
/// know are ignored.
fn from_doc<T: DeserializeOwned>(mut d: Document) -> StoreResult<T> {
    if let Some(id) = d.remove("_id") {
        d.insert("id", id);
    }
    d.remove(EXPIRES_AT_DATE);
    bson::from_document(d)
        .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("corrupt record")))
}

/// Unix seconds as a BSON date (saturating; dates are only for TTL).
fn date_of(secs: i64) -> DateTime {
    DateTime::from_millis(secs.saturating_mul(1000))
}

/// Index on `keys` named `name`.
fn index(keys: Document, name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_string()).build())
        .build()
}

/// TTL index: documents go once their `expires_at_date` has passed.
fn ttl_index(name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(doc! { EXPIRES_AT_DATE: 1 })
        .options(
            IndexOptions::builder()
                .name(name.to_string())
                .expire_after(Duration::ZERO)
                .build(),
        )
        .build()
}

impl MongoStore {
    /// Connects, reads the server version and creates the indexes.
    ///
    /// `timeout` bounds server selection and connecting (3 s by default in
    /// the settings). An unreachable server is `StoreError::Unavailable`,
    /// reported after about `timeout`.
    pub async fn connect(uri: &str, db_name: &str, timeout: Duration) -> StoreResult<Self> {
        let mut opts = ClientOptions::parse(uri).await.map_err(|e| {
            StoreError::Other(anyhow::anyhow!(
                "invalid MongoDB connection string: {}",
                scrub(&e.kind.to_string(), uri)
            ))
        })?;
        opts.app_name = Some("portcullis".to_string());
        opts.server_selection_timeout = Some(timeout);
        opts.connect_timeout = Some(timeout);
        let hosts = opts
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let client = Client::with_options(opts).map_err(map_err)?;
        let db = client.database(db_name);
        // Selection, then connecting, then the command itself.
        let op_timeout = timeout.saturating_mul(2) + Duration::from_secs(10);

        let info = run_bounded(op_timeout, db.run_command(doc! { "buildInfo": 1 }))
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(why) => StoreError::Unavailable(format!(
                    "cannot reach MongoDB at {hosts} within {timeout:?}: {why}"
                )),
                other => other,
            })?;
        let server_version = info.get_str("version").unwrap_or("unknown").to_string();
        let ferretdb_version = info.get_str("ferretdbVersion").ok().map(str::to_string);

        let mut store = Self {
            users: db.collection(USERS),
            sessions: db.collection(SESSIONS),
            revocations: db.collection(REVOCATIONS),
            avatars: db.collection(AVATARS),
            mail_queue: db.collection(MAIL_QUEUE),
            identities: db.collection(IDENTITIES),
            db,
            op_timeout,
            server_version,
            ferretdb_version,
            ttl_indexes: false,
        };
        store.ttl_indexes = store.ensure_indexes().await?;
        // Security activity: audit_events, webhook_queue.
        store.ttl_indexes &= store.ensure_security_indexes().await?;
        tracing::info!(
            database = db_name,
            server = %store.describe(),
            "connected to MongoDB"
        );
        Ok(store)
    }

    /// `version` of the server's `buildInfo`.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// `ferretdbVersion` of `buildInfo`, when the server is FerretDB.
    pub fn ferretdb_version(&self) -> Option<&str> {
        self.ferretdb_version.as_deref()
    }

    /// Whether the server deletes expired documents itself (TTL indexes).
    /// Either way reads check `expires_at` and the purge deletes them.
    pub fn ttl_indexes(&self) -> bool {
        self.ttl_indexes
    }

    /// Runs one driver operation within the operation bound.
    async fn run<T>(
        &self,
        fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> StoreResult<T> {
        run_bounded(self.op_timeout, fut).await
    }

    /// Every document a `find` yields, in its order; the query and each
    /// batch the cursor fetches run under the operation timeout.
    async fn all_docs(
        &self,
        find: impl IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<Document>>>,
    ) -> StoreResult<Vec<Document>> {
        let mut cursor = self.run(find).await?;
        let mut out = Vec::new();
        while self.run(cursor.advance()).await? {
            out.push(cursor.deserialize_current().map_err(map_err)?);
        }
        Ok(out)
    }

    /// [`MongoStore::all_docs`], each document read as a `T`.
    async fn all_of<T: DeserializeOwned>(
        &self,
        find: impl IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<Document>>>,
    ) -> StoreResult<Vec<T>> {
        self.all_docs(find)
            .await?
            .into_iter()
            .map(from_doc)
            .collect()
    }

    /// Creates every index; safe to repeat (same names, same options).
    /// Returns whether the TTL indexes were accepted.
    async fn ensure_indexes(&self) -> StoreResult<bool> {
        let unique_email = IndexModel::builder()
            .keys(doc! { "email": 1 })
            .options(
                IndexOptions::builder()
                    .name("email_unique".to_string())
                    .unique(true)
                    .build(),
            )
            .build();
        self.create_index(&self.users, unique_email).await?;
        // The purge of unused anonymous users (`anonymous.rs`).
        self.create_index(
            &self.users,
            index(doc! { "anonymous": 1, "last_active_at": 1 }, "anonymous"),
        )
        .await?;

        // A user's live sessions (`sessions_of`, read by the session cap on
        // every sign-in) are an index range: the signed-out and revoked
        // ones kept until they expire are not read. Its prefix serves the
        // deletion of all of a user's sessions. (Deployments created
        // before it also keep the single-field `user_id` index; it is
        // redundant now and may be dropped.)
        self.create_index(
            &self.sessions,
            index(
                doc! { "user_id": 1, "revoked_at": 1, "expires_at": 1 },
                "user_id_live",
            ),
        )
        .await?;
        self.create_index(
            &self.sessions,
            index(doc! { "expires_at": 1 }, "expires_at"),
        )
        .await?;
        let ttl = self.create_ttl_index(&self.sessions).await?;

        self.create_index(
            &self.revocations,
            index(doc! { "expires_at": 1 }, "expires_at"),
        )
        .await?;
        // Throttle counts read an account's documents (`throttles.rs`).
        self.create_index(&self.revocations, index(doc! { "account": 1 }, "account"))
            .await?;
        self.create_index(
            &self.mail_queue,
            index(doc! { "sent_at": 1, "next_attempt_at": 1 }, "due"),
        )
        .await?;
        self.create_index(
            &self.mail_queue,
            index(doc! { "expires_at": 1 }, "expires_at"),
        )
        .await?;
        let mail_ttl = self.create_ttl_index(&self.mail_queue).await?;
        // Federated sign-in: one account per `(provider, iss, sub)`.
        let unique_identity = IndexModel::builder()
            .keys(doc! { "key": 1 })
            .options(
                IndexOptions::builder()
                    .name("identity_unique".to_string())
                    .unique(true)
                    .build(),
            )
            .build();
        self.create_index(&self.identities, unique_identity).await?;
        self.create_index(&self.identities, index(doc! { "user_id": 1 }, "user_id"))
            .await?;
        Ok(self.create_ttl_index(&self.revocations).await? && ttl && mail_ttl)
    }

    async fn create_index(
        &self,
        coll: &Collection<Document>,
        model: IndexModel,
    ) -> StoreResult<()> {
        self.run(coll.create_index(model)).await?;
        Ok(())
    }

    /// TTL index, tolerating exactly "not implemented" (FerretDB): without
    /// it expired documents stay until [`Store::purge_expired`], and
    /// every read checks `expires_at`, so results do not change.
    async fn create_ttl_index(&self, coll: &Collection<Document>) -> StoreResult<bool> {
        let result = run_bounded_raw(
            self.op_timeout,
            coll.create_index(ttl_index("ttl_expires_at")),
        )
        .await;
        match result {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if command_code(&e) == Some(NOT_IMPLEMENTED) => {
                if !TTL_FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        collection = coll.name(),
                        "server does not implement TTL indexes; expired records are ignored on read and deleted by the periodic purge"
                    );
                }
                Ok(false)
            }
            Ok(Err(e)) => Err(map_err(e)),
            Err(elapsed) => Err(elapsed),
        }
    }

    /// Inserts one document; `Conflict` on a duplicate key.
    async fn insert(&self, coll: &Collection<Document>, d: Document) -> StoreResult<()> {
        match run_bounded_raw(self.op_timeout, coll.insert_one(d)).await? {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict),
            Err(e) => Err(map_err(e)),
        }
    }

    /// One record by filter, decoded.
    async fn find_record<T: DeserializeOwned>(
        &self,
        coll: &Collection<Document>,
        filter: Document,
    ) -> StoreResult<Option<T>> {
        self.run(coll.find_one(filter))
            .await?
            .map(from_doc)
            .transpose()
    }

    /// Drops the whole database (tests).
    #[cfg(test)]
    async fn drop_database(&self) -> StoreResult<()> {
        self.run(self.db.drop()).await
    }
}

/// Runs a driver future with a deadline; the inner result is left as is.
async fn run_bounded_raw<T>(
    limit: Duration,
    fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
) -> StoreResult<mongodb::error::Result<T>> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| StoreError::Unavailable(format!("MongoDB did not answer within {limit:?}")))
}

/// Runs a driver future with a deadline, mapping its error.
async fn run_bounded<T>(
    limit: Duration,
    fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
) -> StoreResult<T> {
    run_bounded_raw(limit, fut).await?.map_err(map_err)
}

#[async_trait]
impl Store for MongoStore {
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        // Sessions; then retired refresh tokens, failure records and
        // single-use claims, which all live in `revocations`.
        let expired = doc! { "expires_at": { "$lte": now } };
        let sessions = self.run(self.sessions.delete_many(expired.clone())).await?;
        let revocations = self.run(self.revocations.delete_many(expired)).await?;
        if revocations.deleted_count > 0 {
            tracing::debug!(
                purged = revocations.deleted_count,
                "expired revocations purged"
            );
        }
        Ok(sessions.deleted_count)
    }

    /// The session and the account are in two collections, so two
    /// `find`s; both are sent at once (the account by the token's `sub`,
    /// discarded unless the session is live for that user), so a request
    /// waits one round trip, not two. A `$lookup` would make it one
    /// command on MongoDB, but FerretDB v1 (the CI server) has no
    /// `$lookup`, and the account read needs its projection (no secrets).
    /// No cache here: another replica may revoke a session at any time and
    /// FerretDB has no change streams to learn of it, so every request reads.
    async fn live_session_user(
        &self,
        sid: &str,
        user_id: &UserId,
        now: i64,
    ) -> StoreResult<(bool, Option<UserRecord>)> {
        let (session, user) = tokio::try_join!(self.find_session(sid), self.user_by_id(user_id))?;
        if session.is_some_and(|s| s.user_id == *user_id && s.is_active(now)) {
            Ok((true, user))
        } else {
            Ok((false, None))
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(self.db.run_command(doc! { "ping": 1 })).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.ferretdb_version {
            Some(f) => format!("mongodb {} (ferretdb {f})", self.server_version),
            None => format!("mongodb {}", self.server_version),
        }
    }
}
