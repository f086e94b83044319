//! Persistent state in SQLite (`issuer.db`): keys, subjects, grants, codes and token records.
//!
//! All writes that belong together go through a [`WriteTx`], a `BEGIN IMMEDIATE` transaction:
//! SQLite then serializes writers up front, so a read-check-update sequence (code redemption,
//! refresh rotation) cannot interleave with another one. Two fault modes live here because they
//! are about where state is kept: `memory-revocations` keeps revocations in a map instead of the
//! database, and `lazy-commit` buffers token records in memory and writes them later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

/// The embedded, reversible migrations from `reference-impl/migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A database error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
    /// The file has tables but no migration history: not a keel-reference database.
    #[error("{path} is not a keel-reference database (it has tables but no migration history)")]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The database schema is not one this binary serves; it is never migrated implicitly.
    #[error("{}", schema_mismatch_message(path, *found, *expected))]
    SchemaMismatch {
        /// The database file.
        path: PathBuf,
        /// The highest applied migration.
        found: i64,
        /// The latest embedded migration (the previous one is served too).
        expected: i64,
    },
}

/// The refusal for a database at `found` names both versions and the command that fixes it.
fn schema_mismatch_message(path: &Path, found: i64, latest: i64) -> String {
    let dir = path.parent().unwrap_or(Path::new(".")).display();
    let oldest = oldest_served_version();
    if found > latest {
        format!(
            "{} is at schema version {found}, newer than the latest version this binary knows \
             ({latest}); serving never migrates an existing database: roll it back with the \
             binary that migrated it (`keel-reference rollback --data-dir {dir} --to {latest}`)",
            path.display()
        )
    } else {
        format!(
            "{} is at schema version {found}, this binary serves versions {oldest} and {latest}; \
             serving never migrates an existing database: run \
             `keel-reference migrate --data-dir {dir}` (to version {latest}) first",
            path.display()
        )
    }
}

/// Where state is kept; the two fields are the storage fault modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMode {
    /// `memory-revocations`: revocations go to an in-memory map, not the database.
    pub memory_revocations: bool,
    /// `lazy-commit`: token records go to a write-behind buffer.
    pub lazy_commit: bool,
}

/// A row of `signing_keys`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// JWS algorithm (`EdDSA`).
    pub alg: String,
    /// PKCS#8 v1 DER.
    #[sqlx(rename = "private_key_der")]
    pub pkcs8: Vec<u8>,
    /// Public JWK JSON.
    pub public_jwk: String,
    /// `staged`, `active` or `retired`.
    pub state: String,
    /// Creation time.
    pub created_at: i64,
}

/// Grant kind for client-credentials grants (no refresh family).
pub const KIND_CLIENT_CREDENTIALS: &str = "client_credentials";
/// Grant kind for authorization-code grants (a refresh family).
pub const KIND_AUTHORIZATION_CODE: &str = "authorization_code";

/// A row of `grants`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct GrantRecord {
    /// Grant id = refresh family id.
    pub id: String,
    /// [`KIND_CLIENT_CREDENTIALS`] or [`KIND_AUTHORIZATION_CODE`].
    pub kind: String,
    /// The client.
    pub client_id: String,
    /// `user:NAME` or `client:ID`.
    pub principal: String,
    /// The user, for user grants.
    pub username: Option<String>,
    /// Scope granted.
    pub scope: String,
    /// Creation time.
    pub created_at: i64,
    /// Revocation time (database or memory).
    pub revoked_at: Option<i64>,
}

impl GrantRecord {
    /// Whether tokens of this grant belong to a refresh family.
    pub fn is_family(&self) -> bool {
        self.kind == KIND_AUTHORIZATION_CODE
    }
}

/// A row of `authorization_codes`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CodeRecord {
    /// SHA-256 hex of the code.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// The S256 challenge.
    pub code_challenge: String,
    /// Scope requested.
    pub scope: String,
    /// The consenting user.
    pub username: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Redemption time.
    pub used_at: Option<i64>,
    /// The grant the redemption produced.
    pub grant_id: Option<String>,
}

/// A row of `access_tokens`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AccessRecord {
    /// The JWT's `jti`.
    pub jti: String,
    /// Owning grant.
    pub grant_id: String,
    /// The client.
    pub client_id: String,
    /// `user:NAME` or `client:ID`.
    pub principal: String,
    /// The user, for user tokens.
    pub username: Option<String>,
    /// Scope.
    pub scope: String,
    /// `iat`.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// Revocation time (database or memory).
    pub revoked_at: Option<i64>,
}

/// A row of `refresh_tokens`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshRecord {
    /// The token's public id.
    pub public_id: String,
    /// SHA-256 hex of the secret.
    pub secret_hash: String,
    /// Owning grant = family.
    pub grant_id: String,
    /// The client.
    pub client_id: String,
    /// `user:NAME` or `client:ID`.
    pub principal: String,
    /// The user.
    pub username: Option<String>,
    /// Scope.
    pub scope: String,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When it was rotated out.
    pub rotated_at: Option<i64>,
    /// Public id of its successor.
    pub replaced_by: Option<String>,
    /// Revocation time (database or memory).
    pub revoked_at: Option<i64>,
}

/// A token record waiting to be written (always immediately, except under `lazy-commit`).
#[derive(Clone, Debug)]
pub enum TokenRecord {
    /// An access token.
    Access(AccessRecord),
    /// A refresh token.
    Refresh(RefreshRecord),
}

/// The issuer's database plus the in-memory state of the storage fault modes.
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// `memory-revocations`: `"grant:ID"`, `"access:JTI"`, `"refresh:ID"` → revocation time.
    memory: Option<StdMutex<HashMap<String, i64>>>,
    /// `lazy-commit`: records not yet written. An async mutex because a flush holds it across
    /// the write, so a record is always visible either here or in the database.
    pending: Option<tokio::sync::Mutex<Vec<TokenRecord>>>,
}

async fn insert_token(
    conn: &mut SqliteConnection,
    record: &TokenRecord,
) -> Result<(), sqlx::Error> {
    match record {
        TokenRecord::Access(r) => {
            sqlx::query(
                "INSERT INTO access_tokens (jti, grant_id, client_id, principal, username, scope, \
                 issued_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.jti)
            .bind(&r.grant_id)
            .bind(&r.client_id)
            .bind(&r.principal)
            .bind(&r.username)
            .bind(&r.scope)
            .bind(r.issued_at)
            .bind(r.expires_at)
            .bind(r.revoked_at)
            .execute(conn)
            .await?;
        }
        TokenRecord::Refresh(r) => {
            sqlx::query(
                "INSERT INTO refresh_tokens (public_id, secret_hash, grant_id, client_id, principal, \
                 username, scope, issued_at, expires_at, rotated_at, replaced_by, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.public_id)
            .bind(&r.secret_hash)
            .bind(&r.grant_id)
            .bind(&r.client_id)
            .bind(&r.principal)
            .bind(&r.username)
            .bind(&r.scope)
            .bind(r.issued_at)
            .bind(r.expires_at)
            .bind(r.rotated_at)
            .bind(&r.replaced_by)
            .bind(r.revoked_at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if missing) the database at `path` for serving. A fresh database is
    /// migrated to the latest schema; an existing one is served as it is if it is at the latest
    /// version or the one before ([`oldest_served_version`]), and refused otherwise. Serving
    /// never migrates an existing database: that is what `migrate`/`rollback` are for.
    pub async fn open(path: &Path, mode: StoreMode) -> Result<Store, StoreError> {
        let pool = connect(path, true).await?;
        match history(&pool, path).await? {
            History::Fresh => MIGRATOR.run(&pool).await?,
            History::Versioned => {}
        }
        let store = Store {
            pool,
            path: path.to_owned(),
            memory: mode.memory_revocations.then(Default::default),
            pending: mode.lazy_commit.then(Default::default),
        };
        let found = store.schema_version().await?;
        let expected = latest_version();
        if !(oldest_served_version()..=expected).contains(&found) {
            store.pool.close().await;
            return Err(StoreError::SchemaMismatch {
                path: path.to_owned(),
                found,
                expected,
            });
        }
        Ok(store)
    }

    /// The highest successfully applied migration version.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        schema_version(&self.pool).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All signing keys, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT kid, alg, private_key_der, public_jwk, state, created_at FROM signing_keys \
             ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores a signing key.
    pub async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_der, public_jwk, state, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.pkcs8)
        .bind(&key.public_jwk)
        .bind(&key.state)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The stable subject of `principal`, created (uuid v4) the first time it is seen.
    pub async fn subject(&self, principal: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT OR IGNORE INTO subjects (principal, sub, created_at) VALUES (?, ?, ?)")
            .bind(principal)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(crate::now())
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT sub FROM subjects WHERE principal = ?")
                .bind(principal)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Stores a new authorization code.
    pub async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, code_challenge, \
             scope, username, created_at, expires_at, used_at, grant_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        )
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.scope)
        .bind(&code.username)
        .bind(code.created_at)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn memory_revoked(&self, key: &str) -> Option<i64> {
        let memory = self.memory.as_ref()?;
        // A poisoned lock only means another request panicked mid-insert; the map is intact.
        let map = memory.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).copied()
    }

    fn merge_access(&self, mut r: AccessRecord) -> AccessRecord {
        if r.revoked_at.is_none() {
            r.revoked_at = self.memory_revoked(&format!("access:{}", r.jti));
        }
        r
    }

    fn merge_refresh(&self, mut r: RefreshRecord) -> RefreshRecord {
        if r.revoked_at.is_none() {
            r.revoked_at = self.memory_revoked(&format!("refresh:{}", r.public_id));
        }
        r
    }

    fn merge_grant(&self, mut g: GrantRecord) -> GrantRecord {
        if g.revoked_at.is_none() {
            g.revoked_at = self.memory_revoked(&format!("grant:{}", g.id));
        }
        g
    }

    async fn pending_find<T>(&self, f: impl Fn(&TokenRecord) -> Option<T>) -> Option<T> {
        let pending = self.pending.as_ref()?;
        let buf = pending.lock().await;
        buf.iter().find_map(f)
    }

    /// The access-token record with this `jti`.
    pub async fn access(&self, jti: &str) -> Result<Option<AccessRecord>, StoreError> {
        let buffered = self
            .pending_find(|t| match t {
                TokenRecord::Access(a) if a.jti == jti => Some(a.clone()),
                _ => None,
            })
            .await;
        let found = match buffered {
            Some(a) => Some(a),
            None => {
                sqlx::query_as("SELECT * FROM access_tokens WHERE jti = ?")
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        Ok(found.map(|r| self.merge_access(r)))
    }

    /// The refresh-token record with this public id.
    pub async fn refresh(&self, public_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let buffered = self
            .pending_find(|t| match t {
                TokenRecord::Refresh(r) if r.public_id == public_id => Some(r.clone()),
                _ => None,
            })
            .await;
        let found = match buffered {
            Some(r) => Some(r),
            None => {
                sqlx::query_as("SELECT * FROM refresh_tokens WHERE public_id = ?")
                    .bind(public_id)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        Ok(found.map(|r| self.merge_refresh(r)))
    }

    /// The grant with this id.
    pub async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let g: Option<GrantRecord> = sqlx::query_as("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(g.map(|g| self.merge_grant(g)))
    }

    /// Writes the `lazy-commit` buffer to the database; returns how many records were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let Some(pending) = &self.pending else {
            return Ok(0);
        };
        let mut buf = pending.lock().await;
        if buf.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for record in buf.iter() {
            insert_token(&mut tx, record).await?;
        }
        tx.commit().await?;
        let n = buf.len();
        buf.clear();
        Ok(n)
    }

    /// Starts a write transaction (flushing the `lazy-commit` buffer first, so that everything
    /// the transaction reads is in the database).
    pub async fn begin(&self) -> Result<WriteTx<'_>, StoreError> {
        self.flush().await?;
        Ok(WriteTx {
            store: self,
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            deferred_tokens: Vec::new(),
            deferred_revocations: Vec::new(),
        })
    }

    /// Flushes pending records and closes the pool.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.flush().await?;
        self.pool.close().await;
        Ok(())
    }

    /// Creates `key_retirements(kid, retired_at)` if missing. It is outside the migrations on
    /// purpose: rotation state must survive any schema version the issuer serves.
    pub async fn ensure_key_retirements(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS key_retirements \
             (kid TEXT PRIMARY KEY NOT NULL, retired_at INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When each retired signing key was retired, by kid.
    pub async fn key_retirements(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT kid, retired_at FROM key_retirements")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// In one transaction: the staged key `new_kid` becomes active and `old_kid` (if any)
    /// becomes retired at `now`.
    pub async fn activate_signing_key(
        &self,
        new_kid: &str,
        old_kid: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(old) = old_kid {
            sqlx::query("UPDATE signing_keys SET state = 'retired' WHERE kid = ?")
                .bind(old)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT OR REPLACE INTO key_retirements (kid, retired_at) VALUES (?, ?)")
                .bind(old)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE signing_keys SET state = 'active' WHERE kid = ? AND state = 'staged'")
            .bind(new_kid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new API key.
    pub async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (public_id, client_id, name, secret_hash, previous_secret_hash, \
             previous_valid_until, created_at, rolled_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.public_id)
        .bind(&k.client_id)
        .bind(&k.name)
        .bind(&k.secret_hash)
        .bind(&k.previous_secret_hash)
        .bind(k.previous_valid_until)
        .bind(k.created_at)
        .bind(k.rolled_at)
        .bind(k.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The API key with this public id.
    pub async fn api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM api_keys WHERE public_id = ?")
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Rolls `client_id`'s unrevoked key `public_id` to `new_hash`, keeping the current secret
    /// as the previous one until `previous_valid_until`; returns whether such a key existed.
    pub async fn roll_api_key(
        &self,
        public_id: &str,
        client_id: &str,
        new_hash: &str,
        previous_valid_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE api_keys SET previous_secret_hash = secret_hash, secret_hash = ?, \
             previous_valid_until = ?, rolled_at = ? \
             WHERE public_id = ? AND client_id = ? AND revoked_at IS NULL",
        )
        .bind(new_hash)
        .bind(previous_valid_until)
        .bind(now)
        .bind(public_id)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Revokes `client_id`'s key `public_id` as of `at` (which may lie in the future); returns
    /// whether an unrevoked key of that client was found.
    pub async fn revoke_api_key(
        &self,
        public_id: &str,
        client_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? \
             WHERE public_id = ? AND client_id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(public_id)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// The latest embedded migration version.
pub fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The oldest schema version [`Store::open`] serves: the one before the latest.
pub fn oldest_served_version() -> i64 {
    latest_version() - 1
}

/// Opens a pool on the database file with the issuer's connection settings (WAL, synchronous
/// FULL, 5 s busy timeout, foreign keys on).
pub(crate) async fn connect(path: &Path, create: bool) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

/// Whether a database has a migration history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum History {
    /// No tables at all: a new database.
    Fresh,
    /// It has `_sqlx_migrations`.
    Versioned,
}

/// Classifies the database; one with tables but no migration history is [`StoreError::Foreign`].
pub(crate) async fn history(pool: &SqlitePool, path: &Path) -> Result<History, StoreError> {
    let has_history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if has_history > 0 {
        return Ok(History::Versioned);
    }
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(pool)
        .await?;
    if tables > 0 {
        return Err(StoreError::Foreign {
            path: path.to_owned(),
        });
    }
    Ok(History::Fresh)
}

/// The highest successfully applied migration version (0 without a migration history).
pub(crate) async fn schema_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    let has_history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if has_history == 0 {
        return Ok(0);
    }
    let v: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(v.unwrap_or(0))
}

/// A `BEGIN IMMEDIATE` transaction. Token records and (under `memory-revocations`) revocations
/// are handed to the in-memory structures only after the commit succeeds.
pub struct WriteTx<'s> {
    store: &'s Store,
    tx: Transaction<'static, Sqlite>,
    deferred_tokens: Vec<TokenRecord>,
    deferred_revocations: Vec<(String, i64)>,
}

impl WriteTx<'_> {
    /// Like [`Store::subject`], inside this transaction.
    pub async fn subject(&mut self, principal: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT OR IGNORE INTO subjects (principal, sub, created_at) VALUES (?, ?, ?)")
            .bind(principal)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(crate::now())
            .execute(&mut *self.tx)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT sub FROM subjects WHERE principal = ?")
                .bind(principal)
                .fetch_one(&mut *self.tx)
                .await?,
        )
    }

    /// The code with this hash.
    pub async fn code(&mut self, code_hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM authorization_codes WHERE code_hash = ?")
                .bind(code_hash)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    /// Marks a code used by `grant_id`, only if it was unused; returns whether it was.
    pub async fn mark_code_used(
        &mut self,
        code_hash: &str,
        now: i64,
        grant_id: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE authorization_codes SET used_at = ?, grant_id = ? \
             WHERE code_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(grant_id)
        .bind(code_hash)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The refresh token with this public id.
    pub async fn refresh(&mut self, public_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let r: Option<RefreshRecord> =
            sqlx::query_as("SELECT * FROM refresh_tokens WHERE public_id = ?")
                .bind(public_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(r.map(|r| self.store.merge_refresh(r)))
    }

    /// The access token with this jti.
    pub async fn access(&mut self, jti: &str) -> Result<Option<AccessRecord>, StoreError> {
        let r: Option<AccessRecord> = sqlx::query_as("SELECT * FROM access_tokens WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(r.map(|r| self.store.merge_access(r)))
    }

    /// The grant with this id.
    pub async fn grant(&mut self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let g: Option<GrantRecord> = sqlx::query_as("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(g.map(|g| self.store.merge_grant(g)))
    }

    /// The ids of every refresh family (authorization-code grant) of `client_id`, revoked or
    /// not. Only the `revoke-all-families` fault needs this.
    pub async fn family_ids_of_client(
        &mut self,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar(
                "SELECT id FROM grants WHERE client_id = ? AND kind = ? ORDER BY id",
            )
            .bind(client_id)
            .bind(KIND_AUTHORIZATION_CODE)
            .fetch_all(&mut *self.tx)
            .await?,
        )
    }

    /// Marks a refresh token rotated out, only if it was not already; returns whether it was
    /// this call that rotated it.
    pub async fn mark_rotated(
        &mut self,
        public_id: &str,
        now: i64,
        replaced_by: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ?, replaced_by = ? \
             WHERE public_id = ? AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(replaced_by)
        .bind(public_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Inserts a grant.
    pub async fn insert_grant(&mut self, g: &GrantRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (id, kind, client_id, principal, username, scope, created_at, \
             revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&g.id)
        .bind(&g.kind)
        .bind(&g.client_id)
        .bind(&g.principal)
        .bind(&g.username)
        .bind(&g.scope)
        .bind(g.created_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Inserts a token record (under `lazy-commit`: buffers it after the commit).
    pub async fn insert_token(&mut self, record: TokenRecord) -> Result<(), StoreError> {
        if self.store.pending.is_some() {
            self.deferred_tokens.push(record);
        } else {
            insert_token(&mut self.tx, &record).await?;
        }
        Ok(())
    }

    /// Revokes a grant: the family, its refresh tokens and its access tokens.
    pub async fn revoke_grant(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        if self.store.memory.is_some() {
            self.deferred_revocations.push((format!("grant:{id}"), now));
            return Ok(());
        }
        for sql in [
            "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            "UPDATE refresh_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
            "UPDATE access_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
        ] {
            sqlx::query(sql)
                .bind(now)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Revokes one access token.
    pub async fn revoke_access(&mut self, jti: &str, now: i64) -> Result<(), StoreError> {
        if self.store.memory.is_some() {
            self.deferred_revocations
                .push((format!("access:{jti}"), now));
            return Ok(());
        }
        sqlx::query("UPDATE access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(jti)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Revokes one refresh token (not its family).
    pub async fn revoke_refresh(&mut self, public_id: &str, now: i64) -> Result<(), StoreError> {
        if self.store.memory.is_some() {
            self.deferred_revocations
                .push((format!("refresh:{public_id}"), now));
            return Ok(());
        }
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE public_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(public_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Commits, then hands deferred records and revocations to memory.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        if let Some(pending) = &self.store.pending
            && !self.deferred_tokens.is_empty()
        {
            pending.lock().await.extend(self.deferred_tokens);
        }
        if let Some(memory) = &self.store.memory
            && !self.deferred_revocations.is_empty()
        {
            let mut map = memory.lock().unwrap_or_else(|p| p.into_inner());
            for (k, t) in self.deferred_revocations {
                map.entry(k).or_insert(t);
            }
        }
        Ok(())
    }

    /// The `(request_hash, jti)` recorded for `client_id`'s Idempotency-Key `key`.
    pub async fn idempotency(
        &mut self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT request_hash, jti FROM idempotency_keys WHERE client_id = ? AND idem_key = ?",
        )
        .bind(client_id)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// Records an Idempotency-Key use (the access token `jti` must be in the database).
    pub async fn insert_idempotency(
        &mut self,
        client_id: &str,
        key: &str,
        request_hash: &str,
        jti: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO idempotency_keys (client_id, idem_key, request_hash, jti, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(client_id)
        .bind(key)
        .bind(request_hash)
        .bind(jti)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes a token record in this transaction even under `lazy-commit` (an idempotency
    /// record refers to it, so it cannot wait in the buffer).
    pub async fn insert_token_now(&mut self, record: &TokenRecord) -> Result<(), StoreError> {
        insert_token(&mut self.tx, record).await?;
        Ok(())
    }

    /// `short-jti`: inserts an access-token record, overwriting any record with the same `jti`
    /// (the collision the fault is about) instead of failing.
    pub async fn upsert_access(&mut self, r: &AccessRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_tokens (jti, grant_id, client_id, principal, username, scope, \
             issued_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (jti) DO UPDATE SET grant_id = excluded.grant_id, \
             client_id = excluded.client_id, principal = excluded.principal, \
             username = excluded.username, scope = excluded.scope, \
             issued_at = excluded.issued_at, expires_at = excluded.expires_at, \
             revoked_at = excluded.revoked_at",
        )
        .bind(&r.jti)
        .bind(&r.grant_id)
        .bind(&r.client_id)
        .bind(&r.principal)
        .bind(&r.username)
        .bind(&r.scope)
        .bind(r.issued_at)
        .bind(r.expires_at)
        .bind(r.revoked_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// A row of `api_keys`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRecord {
    /// The key's public id (stable across rolls).
    pub public_id: String,
    /// The owning client.
    pub client_id: String,
    /// The name given at creation.
    pub name: String,
    /// SHA-256 hex of the current secret.
    pub secret_hash: String,
    /// SHA-256 hex of the secret before the last roll.
    pub previous_secret_hash: Option<String>,
    /// End of the previous secret's grace period.
    pub previous_valid_until: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Time of the last roll.
    pub rolled_at: Option<i64>,
    /// Revocation time (it may lie in the future: the key works until then).
    pub revoked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fresh_db_is_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer.db");
        let s = Store::open(&path, StoreMode::default()).await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), latest_version());
        let a = s.subject("user:alice").await.unwrap();
        assert_eq!(s.subject("user:alice").await.unwrap(), a);
        assert_ne!(s.subject("client:keel-ci").await.unwrap(), a);
        s.close().await.unwrap();
        let s = Store::open(&path, StoreMode::default()).await.unwrap();
        assert_eq!(s.subject("user:alice").await.unwrap(), a);
    }

    #[tokio::test]
    async fn migrations_are_reversible() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("issuer.db"), StoreMode::default())
            .await
            .unwrap();
        MIGRATOR.undo(&s.pool, 0).await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), 0);
        MIGRATOR.run(&s.pool).await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), latest_version());
    }
}
