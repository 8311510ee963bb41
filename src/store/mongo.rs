//! The MongoDB store, on the official driver. Works with MongoDB and with
//! FerretDB v1 (the CI server), whose gaps it works around:
//!
//! - No TTL deletion (`expireAfterSeconds` answers 238 NotImplemented): the
//!   TTL indexes are optional, every read checks `expires_at`, and
//!   [`SessionStore::purge_expired`] deletes what a TTL monitor would have.
//! - No transactions: every operation that must not race is one
//!   single-document atomic command.
//! - Conditional updates are not atomic: FerretDB v1 runs `findAndModify`
//!   and `update` as a query, then a replace by `_id` (its
//!   `internal/handler/msg_findandmodify.go` and `common/update.go`), so
//!   two racers can both "match". Only an insert under a unique index is atomic
//!   on both servers. Refresh rotation therefore decides the race with an
//!   insert: the attempt that inserts the retired token's record
//!   (`revocations`, `_id` `rt:<jti>`) is the one that rotates; its swap of
//!   the session is a conditional `findAndModify` that any later attempt
//!   may finish for it (idempotent), so a crash between the two steps does
//!   not wedge the family. On MongoDB the conditional update is atomic too.
//!   What stays weaker on FerretDB: two different updates of one document
//!   racing (say a revocation and a rotation of the same session within
//!   milliseconds) can lose one of them.
//! - No projection on `findAndModify`: none is used.
//!
//! Documents are the store records as BSON with `id` renamed to `_id`;
//! timestamps stay i64 unix seconds. MongoDB's TTL monitor only deletes on
//! BSON dates, so a document that expires also carries `expires_at_date`, a
//! date copy of `expires_at` that the TTL index is built on; `expires_at`
//! stays the value every query checks.
//!
//! The connection string may hold a password: it never appears in errors or
//! logs.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{self, Bson, DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    LoginFailures, ProfileUpdate, RotateOutcome, Rotation, SessionRecord, SessionStore, Store,
    StoreError, StoreResult, UserRecord, UserStore, classify_rotation,
};

const USERS: &str = "users";
const SESSIONS: &str = "sessions";
const REVOCATIONS: &str = "revocations";
const AUDIT_EVENTS: &str = "audit_events";
const AVATARS: &str = "avatars";

/// Date copy of `expires_at` for the TTL monitor (see the module docs).
const EXPIRES_AT_DATE: &str = "expires_at_date";

/// Server error codes.
const DUPLICATE_KEY: i32 = 11000;
const NOT_IMPLEMENTED: i32 = 238;
const NAMESPACE_EXISTS: i32 = 48;
/// Codes that mean "this server cannot serve now" (network, shutdown,
/// failover): the request may succeed later.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The TTL fallback is logged once per process, not once per collection.
static TTL_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The MongoDB-backed store.
#[derive(Clone)]
pub struct MongoStore {
    /// Holds the client (and its connection pool); clones share it.
    db: Database,
    users: Collection<Document>,
    sessions: Collection<Document>,
    revocations: Collection<Document>,
    /// Bound on every operation, so a server that stops answering (without
    /// closing its sockets) is reported as unavailable instead of hanging.
    op_timeout: Duration,
    server_version: String,
    ferretdb_version: Option<String>,
    /// Whether the server took the TTL indexes (FerretDB v1 does not).
    ttl_indexes: bool,
}

/// Maps a driver error: cannot reach / talk to the server → `Unavailable`
/// (HTTP 503), anything else → `Other`. The texts are ours and short; none
/// holds the connection string.
fn map_err(e: mongodb::error::Error) -> StoreError {
    let transient = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => Some("no MongoDB server available".to_string()),
        ErrorKind::Io(io) => Some(format!("I/O error talking to MongoDB: {}", io.kind())),
        ErrorKind::ConnectionPoolCleared { .. } => {
            Some("MongoDB connection pool cleared".to_string())
        }
        ErrorKind::DnsResolve { .. } => Some("DNS resolution of the MongoDB host failed".into()),
        ErrorKind::Shutdown => Some("MongoDB client shut down".to_string()),
        ErrorKind::Command(c) if TRANSIENT_CODES.contains(&c.code) => Some(format!(
            "MongoDB server not ready ({} {})",
            c.code, c.code_name
        )),
        ErrorKind::Write(WriteFailure::WriteConcernError(w))
            if TRANSIENT_CODES.contains(&w.code) =>
        {
            Some(format!(
                "MongoDB server not ready ({} {})",
                w.code, w.code_name
            ))
        }
        _ => None,
    };
    match transient {
        Some(text) => StoreError::Unavailable(text),
        None => StoreError::Other(anyhow::Error::new(e).context("MongoDB operation failed")),
    }
}

/// True when the error is a unique-index violation (code 11000), in any of
/// the forms the driver reports it.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}

fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// Record → document: `id` becomes `_id` (first), and `expires_at` gets its
/// date copy when the record has one.
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

/// Document → record: the inverse of [`to_doc`].
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

/// The active-session condition of [`SessionRecord::is_active`] as a filter.
fn active(now: i64) -> Document {
    doc! { "revoked_at": Bson::Null, "expires_at": { "$gt": now } }
}

/// A retired refresh token, in `revocations` under `_id` `rt:<jti>`: the
/// record of the one rotation that retired it, and what that rotation
/// changes in the family. Inserting it is the rotation's compare-and-swap
/// (see [`SessionStore::rotate`] below); it expires with the family.
#[derive(Debug, Clone, PartialEq)]
struct RetiredToken {
    sid: String,
    next_jti: String,
    /// The family's generation after the rotation.
    generation: i64,
    rotated_at: i64,
    expires_at: i64,
}

impl RetiredToken {
    fn new(r: &Rotation<'_>, next: &SessionRecord) -> Self {
        Self {
            sid: r.sid.to_string(),
            next_jti: next.current_jti.clone(),
            generation: i64::try_from(next.generation).unwrap_or(i64::MAX),
            rotated_at: next.rotated_at,
            expires_at: next.expires_at,
        }
    }

    fn key(jti: &str) -> String {
        format!("rt:{jti}")
    }

    fn to_doc(&self, jti: &str) -> Document {
        doc! {
            "_id": Self::key(jti),
            "kind": "refresh_rotated",
            "sid": &self.sid,
            "next_jti": &self.next_jti,
            "generation": self.generation,
            "rotated_at": self.rotated_at,
            "expires_at": self.expires_at,
            EXPIRES_AT_DATE: date_of(self.expires_at),
        }
    }

    fn from_doc(d: Document) -> Option<Self> {
        Some(Self {
            sid: d.get_str("sid").ok()?.to_string(),
            next_jti: d.get_str("next_jti").ok()?.to_string(),
            generation: d.get_i64("generation").ok()?,
            rotated_at: d.get_i64("rotated_at").ok()?,
            expires_at: d.get_i64("expires_at").ok()?,
        })
    }
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

/// Removes the userinfo (`user:password@`) of `uri` from a message, in case
/// a driver message quoted it.
fn scrub(message: &str, uri: &str) -> String {
    let Some((_, rest)) = uri.split_once("://") else {
        return message.to_string();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return message.to_string();
    };
    let mut out = message.replace(userinfo, "***");
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        out = out.replace(password, "***");
    }
    out
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
            db,
            op_timeout,
            server_version,
            ferretdb_version,
            ttl_indexes: false,
        };
        store.ttl_indexes = store.ensure_indexes().await?;
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

        self.create_index(&self.sessions, index(doc! { "user_id": 1 }, "user_id"))
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
        let ttl = self.create_ttl_index(&self.revocations).await? && ttl;

        let audit: Collection<Document> = self.db.collection(AUDIT_EVENTS);
        self.create_index(&audit, index(doc! { "at": -1 }, "at"))
            .await?;
        self.create_index(&audit, index(doc! { "user_id": 1, "at": -1 }, "user_id_at"))
            .await?;

        // Avatars are keyed by user id (`_id`): no secondary index, but the
        // collection is created up front like the others.
        match run_bounded_raw(self.op_timeout, self.db.create_collection(AVATARS)).await? {
            Ok(()) => Ok(ttl),
            Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => Ok(ttl),
            Err(e) => Err(map_err(e)),
        }
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
    /// it expired documents stay until [`SessionStore::purge_expired`], and
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
                        "server does not implement TTL indexes; expired records are ignored on read and deleted by the hourly purge"
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

    async fn failure_record(&self, id: &str) -> StoreResult<Option<LoginFailures>> {
        let Some(d) = self
            .run(self.revocations.find_one(doc! { "_id": id }))
            .await?
        else {
            return Ok(None);
        };
        let times = d
            .get_array("times")
            .map(|a| a.iter().filter_map(Bson::as_i64).collect())
            .unwrap_or_default();
        let expires_at = d.get_i64("expires_at").unwrap_or(0);
        Ok(Some(LoginFailures { times, expires_at }))
    }

    async fn find_session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        self.find_record(&self.sessions, doc! { "_id": sid }).await
    }

    /// Applies a retirement to the family: the conditional swap of the
    /// current token. Idempotent: it matches only while `presented` is still
    /// current at the generation before the retirement's.
    async fn apply_retirement(
        &self,
        presented: &str,
        t: &RetiredToken,
        now: i64,
    ) -> StoreResult<Option<SessionRecord>> {
        let mut filter = doc! {
            "_id": &t.sid,
            "current_jti": presented,
            "generation": t.generation - 1,
        };
        filter.extend(active(now));
        let update = doc! {
            "$set": {
                "previous_jti": presented,
                "current_jti": &t.next_jti,
                "rotated_at": t.rotated_at,
                "generation": t.generation,
                "last_used_at": t.rotated_at,
                "expires_at": t.expires_at,
                EXPIRES_AT_DATE: date_of(t.expires_at),
            },
        };
        self.run(
            self.sessions
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    /// A rotation whose token another attempt retired a moment ago.
    async fn rotate_retired(&self, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let mut current = self.find_session(r.sid).await?;
        if current
            .as_ref()
            .is_some_and(|s| s.current_jti == r.presented_jti)
        {
            // The retiring attempt has not swapped the token yet (or never
            // will: it may have died). Its swap is idempotent; finish it.
            let Some(t) = self
                .run(
                    self.revocations
                        .find_one(doc! { "_id": RetiredToken::key(r.presented_jti) }),
                )
                .await?
                .and_then(RetiredToken::from_doc)
            else {
                return Ok(RotateOutcome::Invalid);
            };
            if t.sid != r.sid {
                return Ok(RotateOutcome::Invalid);
            }
            self.apply_retirement(r.presented_jti, &t, r.now).await?;
            current = self.find_session(r.sid).await?;
        }
        let Some(current) = current else {
            return Ok(RotateOutcome::Invalid);
        };
        match classify_rotation(&current, r) {
            RotateOutcome::Reused(_) => self.revoke_reused(r).await,
            // Still current although retired: the swap could not apply
            // (family no longer active is `Invalid`, not this).
            RotateOutcome::Rotated(_) => Err(StoreError::Other(anyhow::anyhow!(
                "refresh rotation of a session did not converge"
            ))),
            outcome @ (RotateOutcome::Grace(_) | RotateOutcome::Invalid) => Ok(outcome),
        }
    }

    /// Revokes a family whose retired token came back. If another request
    /// revoked it first, the family was already dead: `Invalid`.
    async fn revoke_reused(&self, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let revoked = self
            .run(
                self.sessions
                    .find_one_and_update(
                        doc! { "_id": r.sid, "revoked_at": Bson::Null },
                        doc! { "$set": { "revoked_at": r.now } },
                    )
                    .return_document(ReturnDocument::After),
            )
            .await?;
        match revoked {
            Some(d) => Ok(RotateOutcome::Reused(from_doc(d)?)),
            None => Ok(RotateOutcome::Invalid),
        }
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
impl UserStore for MongoStore {
    /// Inserts users in bulk (benchmark seeding). Unordered: on a duplicate
    /// email the others are still inserted, and the result is `Conflict`.
    async fn bulk_insert_users(&self, users: &[UserRecord]) -> StoreResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let docs = users.iter().map(to_doc).collect::<StoreResult<Vec<_>>>()?;
        match run_bounded_raw(self.op_timeout, self.users.insert_many(docs).ordered(false)).await? {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.insert(&self.users, to_doc(user)?).await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        self.find_record(&self.users, doc! { "_id": id }).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.find_record(&self.users, doc! { "email": email }).await
    }

    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let mut set = doc! { "updated_at": now };
        if let Some(name) = &update.display_name {
            set.insert("display_name", name.clone());
        }
        self.run(
            self.users
                .find_one_and_update(doc! { "_id": id }, doc! { "$set": set })
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    async fn set_password_hash(&self, id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let r = self
            .run(self.users.update_one(
                doc! { "_id": id },
                doc! { "$set": { "password_hash": hash, "updated_at": now } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.insert(&self.sessions, to_doc(session)?).await
    }

    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        self.find_session(sid).await
    }

    async fn rotate(&self, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let Some(current) = self.find_session(r.sid).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        match classify_rotation(&current, r) {
            RotateOutcome::Rotated(next) => {
                let mine = RetiredToken::new(r, &next);
                match self
                    .insert(&self.revocations, mine.to_doc(r.presented_jti))
                    .await
                {
                    // This attempt retired the token: it alone rotates.
                    Ok(()) => {
                        if let Some(after) =
                            self.apply_retirement(r.presented_jti, &mine, r.now).await?
                        {
                            return Ok(RotateOutcome::Rotated(after));
                        }
                        // Nothing matched: another attempt applied our
                        // retirement for us (FerretDB), or the family died.
                        Ok(match self.find_session(r.sid).await? {
                            Some(s) if s.current_jti == mine.next_jti && s.is_active(r.now) => {
                                RotateOutcome::Rotated(s)
                            }
                            _ => RotateOutcome::Invalid,
                        })
                    }
                    // Another attempt retired it first: this one is late.
                    Err(StoreError::Conflict) => self.rotate_retired(r).await,
                    Err(e) => Err(e),
                }
            }
            RotateOutcome::Reused(_) => self.revoke_reused(r).await,
            outcome @ (RotateOutcome::Grace(_) | RotateOutcome::Invalid) => Ok(outcome),
        }
    }
    async fn sessions_of(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
        let mut filter = doc! { "user_id": user_id };
        filter.extend(active(now));
        let mut cursor = self
            .run(
                self.sessions
                    .find(filter)
                    .sort(doc! { "created_at": -1, "_id": -1 }),
            )
            .await?;
        let mut out = Vec::new();
        while self.run(cursor.advance()).await? {
            let d: Document = cursor.deserialize_current().map_err(map_err)?;
            out.push(from_doc(d)?);
        }
        Ok(out)
    }

    async fn revoke_session(&self, user_id: &str, sid: &str, now: i64) -> StoreResult<bool> {
        let mut filter = doc! { "_id": sid, "user_id": user_id };
        filter.extend(active(now));
        let r = self
            .run(
                self.sessions
                    .update_one(filter, doc! { "$set": { "revoked_at": now } }),
            )
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let mut filter = doc! { "user_id": user_id };
        filter.extend(active(now));
        if let Some(keep) = keep {
            filter.insert("_id", doc! { "$ne": keep });
        }
        let r = self
            .run(
                self.sessions
                    .update_many(filter, doc! { "$set": { "revoked_at": now } }),
            )
            .await?;
        Ok(r.modified_count)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
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
}

#[async_trait]
impl Store for MongoStore {
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()> {
        // Read, add, write back: the list is short and trimmed here, and a
        // lost increment under a race only undercounts by one.
        let id = format!("fail:{account}");
        let mut record = self.failure_record(&id).await?.unwrap_or_default();
        record.push(now, window);
        let d = doc! {
            "_id": &id,
            "times": &record.times,
            "expires_at": record.expires_at,
            EXPIRES_AT_DATE: date_of(record.expires_at),
        };
        let upsert = self
            .revocations
            .replace_one(doc! { "_id": &id }, d)
            .upsert(true);
        match run_bounded_raw(self.op_timeout, upsert).await? {
            Ok(_) => Ok(()),
            // Two first failures raced on the upsert: one of them is stored.
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>> {
        let record = self.failure_record(&format!("fail:{account}")).await?;
        Ok(record.map(|r| r.within(now, window)).unwrap_or_default())
    }

    async fn clear_login_failures(&self, account: &str) -> StoreResult<()> {
        self.run(
            self.revocations
                .delete_one(doc! { "_id": format!("fail:{account}") }),
        )
        .await
        .map(|_| ())
    }

    async fn claim_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        let id = format!("once:{key}");
        let record = doc! {
            "_id": &id,
            "expires_at": expires_at,
            EXPIRES_AT_DATE: date_of(expires_at),
        };
        match self.insert(&self.revocations, record.clone()).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => {
                // Taken: free it only if it has expired (no TTL deletion on
                // FerretDB), then race for it again with one more insert.
                let freed = self
                    .run(
                        self.revocations
                            .delete_one(doc! { "_id": &id, "expires_at": { "$lte": now } }),
                    )
                    .await?;
                if freed.deleted_count == 0 {
                    return Ok(false);
                }
                match self.insert(&self.revocations, record).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::Conflict) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    use super::*;

    const URI_VAR: &str = "PORTCULLIS_TEST_MONGODB_URI";

    /// The test server's URI; `None` (after saying so) when there is none.
    /// In CI a missing server fails the test instead of skipping it.
    fn test_uri(what: &str) -> Option<String> {
        match std::env::var(URI_VAR) {
            Ok(uri) if !uri.is_empty() => Some(uri),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{URI_VAR} must be set in CI ({what})"
                );
                println!("SKIPPED: {what} (no {URI_VAR})");
                None
            }
        }
    }

    fn test_db_name() -> String {
        format!("portcullis_test_{}", uuid::Uuid::new_v4().simple())
    }

    /// Runs `checks` against a store on a fresh database, and drops the
    /// database afterwards even when a check fails. `None` when skipped.
    async fn on_fresh_db<F, Fut>(what: &str, checks: F) -> Option<MongoStore>
    where
        F: FnOnce(MongoStore) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let uri = test_uri(what)?;
        let store = MongoStore::connect(&uri, &test_db_name(), Duration::from_secs(5))
            .await
            .unwrap();
        let result = tokio::spawn(checks(store.clone())).await;
        store.drop_database().await.unwrap();
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
        Some(store)
    }

    #[test]
    fn scrub_removes_credentials() {
        let uri = "mongodb://app:s3cr%40t@db.example:27017/?authSource=admin";
        let msg = scrub("bad thing near app:s3cr%40t@db.example and s3cr%40t", uri);
        assert!(!msg.contains("s3cr"), "{msg}");
        assert_eq!(scrub("no secrets", "mongodb://h:1/"), "no secrets");
    }

    #[test]
    fn documents_round_trip() {
        let u = super::super::conformance::user("doc@example.com");
        let d = to_doc(&u).unwrap();
        assert_eq!(d.keys().next().map(String::as_str), Some("_id"));
        assert!(!d.contains_key("id"));
        assert_eq!(from_doc::<UserRecord>(d).unwrap(), u);

        let s = super::super::conformance::session("u", 1_900_000_000);
        let d = to_doc(&s).unwrap();
        assert_eq!(d.get_i64("expires_at").unwrap(), s.expires_at);
        assert_eq!(
            d.get_datetime(EXPIRES_AT_DATE).unwrap().timestamp_millis(),
            s.expires_at * 1000
        );
        assert_eq!(d.get("revoked_at"), Some(&Bson::Null));
        assert_eq!(from_doc::<SessionRecord>(d).unwrap(), s);
    }

    #[tokio::test]
    async fn conformance() {
        let Some(store) = on_fresh_db("mongo conformance", |store| {
            super::super::conformance::run_all(Arc::new(store))
        })
        .await
        else {
            return;
        };
        println!(
            "mongo conformance passed on server: buildInfo version {}, ferretdbVersion {}, TTL indexes {}",
            store.server_version(),
            store.ferretdb_version().unwrap_or("(none: not FerretDB)"),
            if store.ttl_indexes() {
                "supported"
            } else {
                "not supported (read-time checks + purge)"
            }
        );
    }

    #[tokio::test]
    async fn bulk_insert_users() {
        on_fresh_db("mongo bulk insert test", |store| async move {
            {
                use super::super::conformance::user;
                store.bulk_insert_users(&[]).await.unwrap();
                let batch: Vec<_> = (0..50)
                    .map(|i| user(&format!("bulk{i}@example.com")))
                    .collect();
                store.bulk_insert_users(&batch).await.unwrap();
                assert_eq!(
                    store.user_by_email("bulk49@example.com").await.unwrap(),
                    Some(batch[49].clone())
                );
                // A taken email: Conflict; unordered, so the new one is in.
                let again = [user("bulk0@example.com"), user("bulk-new@example.com")];
                assert!(matches!(
                    store.bulk_insert_users(&again).await,
                    Err(StoreError::Conflict)
                ));
                assert!(
                    store
                        .user_by_email("bulk-new@example.com")
                        .await
                        .unwrap()
                        .is_some()
                );
            }
        })
        .await;
    }

    /// A rotation that inserted its retired-token record and died before
    /// swapping the session: the next attempt with that token finishes the
    /// swap and is answered like any late attempt.
    #[tokio::test]
    async fn rotation_finishes_a_retirement_left_halfway() {
        on_fresh_db("mongo half-done rotation test", |store| async move {
            {
                let now = 1_900_000_000;
                let s = super::super::conformance::session("halfway-user", now);
                store.create_session(&s).await.unwrap();
                let crashed = Rotation {
                    sid: &s.id,
                    presented_jti: &s.current_jti,
                    new_jti: "lost-gen1",
                    now: now + 5,
                    new_expires_at: now + 5000,
                    grace_secs: 10,
                };
                let RotateOutcome::Rotated(next) = classify_rotation(&s, &crashed) else {
                    panic!("current token must classify as a rotation")
                };
                let t = RetiredToken::new(&crashed, &next);
                store
                    .insert(&store.revocations, t.to_doc(&s.current_jti))
                    .await
                    .unwrap();
                assert_eq!(store.session(&s.id).await.unwrap().unwrap(), s);

                // The client retries with the same token within the grace
                // window: it gets the generation the dead attempt made.
                let retry = Rotation {
                    new_jti: "retry-gen1",
                    now: now + 8,
                    ..crashed.clone()
                };
                let RotateOutcome::Grace(g) = store.rotate(&retry).await.unwrap() else {
                    panic!("grace expected")
                };
                assert_eq!(g, next);
                assert_eq!(store.session(&s.id).await.unwrap().unwrap(), next);

                // Too late for grace: reuse, and the family is revoked.
                let late = Rotation {
                    now: now + 60,
                    ..retry.clone()
                };
                assert!(matches!(
                    store.rotate(&late).await.unwrap(),
                    RotateOutcome::Reused(_)
                ));
            }
        })
        .await;
    }

    #[tokio::test]
    async fn connect_to_closed_port_is_unavailable() {
        // Bind then close: nothing listens on this port now.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let uri = format!("mongodb://127.0.0.1:{port}/");
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            MongoStore::connect(&uri, "portcullis_unreachable", Duration::from_secs(1)),
        )
        .await
        .expect("connect must give up within its timeout, not hang");
        match result {
            Err(StoreError::Unavailable(why)) => {
                assert!(why.contains(&port.to_string()), "{why}");
            }
            Err(e) => panic!("expected Unavailable, got {e:?}"),
            Ok(_) => panic!("connect to a closed port succeeded"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn credentials_stay_out_of_errors() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let uri = format!("mongodb://app:hunter2secret@127.0.0.1:{port}/");
        let err = MongoStore::connect(&uri, "x", Duration::from_millis(500))
            .await
            .err()
            .unwrap();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        let err = MongoStore::connect(
            "mongodb://app:hunter2secret@h:notaport/",
            "x",
            Duration::from_millis(500),
        )
        .await
        .err()
        .unwrap();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }

    /// What the proxy does with its connections.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Mode {
        Forward,
        /// Close the listener and every connection.
        Close,
        /// Keep everything open but forward nothing (a hung server).
        Blackhole,
    }

    /// A TCP proxy to `upstream` on a free local port.
    async fn proxy(upstream: std::net::SocketAddr) -> (u16, watch::Sender<Mode>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = watch::channel(Mode::Forward);
        let mut accept_rx = rx.clone();
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { return };
                        let mut rx = rx.clone();
                        conns.spawn(async move {
                            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = rx.wait_for(|m| *m != Mode::Forward) => {}
                            }
                            if *rx.borrow() == Mode::Blackhole {
                                // Hold both sockets open and silent.
                                std::future::pending::<()>().await;
                            }
                            let _ = client.shutdown().await;
                        });
                    }
                    _ = accept_rx.wait_for(|m| *m == Mode::Close) => {
                        // Dropping the set aborts every connection task.
                        drop(conns);
                        return;
                    }
                }
            }
        });
        (port, tx)
    }

    /// Connects directly (to create and later drop the database) and
    /// through a proxy; checks the proxied store works.
    async fn proxied_store(uri: &str) -> (MongoStore, MongoStore, watch::Sender<Mode>) {
        let db = test_db_name();
        let direct = MongoStore::connect(uri, &db, Duration::from_secs(5))
            .await
            .unwrap();
        let opts = ClientOptions::parse(uri).await.unwrap();
        let upstream = tokio::net::lookup_host(opts.hosts[0].to_string())
            .await
            .unwrap()
            .next()
            .unwrap();
        let (port, mode) = proxy(upstream).await;
        let via = MongoStore::connect(
            &format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            &db,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        via.ping().await.unwrap();
        assert!(via.user_by_id("nobody").await.unwrap().is_none());
        (direct, via, mode)
    }

    async fn assert_unavailable_soon(store: &MongoStore) {
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(30), store.user_by_id("nobody"))
            .await
            .expect("an operation on a lost server must not hang");
        match result {
            Err(StoreError::Unavailable(why)) => println!("unavailable as expected: {why}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let elapsed = started.elapsed();
        println!("reported after {elapsed:?}");
        assert!(elapsed <= store.op_timeout + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn server_gone_is_unavailable() {
        let Some(uri) = test_uri("mongo server-gone test") else {
            return;
        };
        let (direct, via, mode) = proxied_store(&uri).await;
        mode.send_replace(Mode::Close);
        assert_unavailable_soon(&via).await;
        direct.drop_database().await.unwrap();
    }

    #[tokio::test]
    async fn server_hung_is_unavailable() {
        let Some(uri) = test_uri("mongo server-hung test") else {
            return;
        };
        let (direct, via, mode) = proxied_store(&uri).await;
        mode.send_replace(Mode::Blackhole);
        assert_unavailable_soon(&via).await;
        direct.drop_database().await.unwrap();
    }
}
