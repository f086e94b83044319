//! Explicit schema changes: `keel-reference migrate` and `keel-reference rollback`, the only
//! way an existing database changes version (serving never migrates one, see
//! [`Store::open`](crate::store::Store::open)), and the two migration fault modes.
//!
//! Both commands refuse (a [`Refusal`]) while an issuer answers `/health` at the address
//! recorded in `instance.json`, for an unknown target or current version, and for a rollback
//! below [`MIN_ROLLBACK_TARGET`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::faults::Fault;
use crate::instance::{INSTANCE_FILE, Instance};
use crate::store::{self, History, MIGRATOR, StoreError};

/// Versions below this have no API-key tables: rolling back to them would lose the API keys.
pub const MIN_ROLLBACK_TARGET: i64 = 2;

/// Migration 0003 (`subjects` rebuilt with a surrogate key), the one the fault modes act on.
pub const SUBJECTS_ROWID_VERSION: i64 = 3;

/// How long the running-issuer probe waits for `/health` to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why `migrate` or `rollback` would not run. The binary exits with status 2 on these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// An issuer is serving this data directory.
    #[error(
        "the issuer is running on {} ({issuer} answers /health); stop it before changing the \
         schema", data_dir.display()
    )]
    Running {
        /// The data directory.
        data_dir: PathBuf,
        /// The recorded base URL that answered.
        issuer: String,
    },
    /// The requested target is not an embedded migration version.
    #[error("unknown target schema version {target}; this binary knows versions {known}")]
    UnknownTarget {
        /// `--to`.
        target: i64,
        /// The embedded versions, e.g. `1, 2, 3`.
        known: String,
    },
    /// The database is at a version this binary has no migration for.
    #[error(
        "{} is at schema version {found}, which this binary does not know (its latest is \
         {latest}); use the binary that migrated it", db.display()
    )]
    UnknownCurrent {
        /// The database file.
        db: PathBuf,
        /// Its version.
        found: i64,
        /// The latest embedded version.
        latest: i64,
    },
    /// A rollback below [`MIN_ROLLBACK_TARGET`].
    #[error(
        "refusing to roll back from schema version {from} to {target}: versions below \
         {MIN_ROLLBACK_TARGET} have no API-key tables, so every API key would be lost"
    )]
    BelowMinimum {
        /// The current version.
        from: i64,
        /// The requested (or default) target.
        target: i64,
    },
    /// `migrate --to` names a version below the current one.
    #[error(
        "cannot migrate down from schema version {from} to {target}; run \
         `keel-reference rollback --data-dir {} --to {target}`", data_dir.display()
    )]
    MigrateDown {
        /// The data directory.
        data_dir: PathBuf,
        /// The current version.
        from: i64,
        /// `--to`.
        target: i64,
    },
    /// `rollback --to` names a version above the current one.
    #[error(
        "cannot roll back up from schema version {from} to {target}; run \
         `keel-reference migrate --data-dir {} --to {target}`", data_dir.display()
    )]
    RollbackUp {
        /// The data directory.
        data_dir: PathBuf,
        /// The current version.
        from: i64,
        /// `--to`.
        target: i64,
    },
    /// `rollback` on a data directory without a database.
    #[error("there is no database at {}; nothing to roll back", db.display())]
    NoDatabase {
        /// The missing file.
        db: PathBuf,
    },
    /// The file is not a keel-reference database.
    #[error("{} is not a keel-reference database (it has tables but no migration history)", db.display())]
    Foreign {
        /// The database file.
        db: PathBuf,
    },
    /// A migration failed half-way and is marked unsuccessful.
    #[error("{} has a failed (dirty) migration {version}; repair it by hand", db.display())]
    Dirty {
        /// The database file.
        db: PathBuf,
        /// The dirty version.
        version: i64,
    },
}

/// Migrates the database in `data_dir` up to `to` (default: the latest version), creating it
/// if missing. Returns `(from, to)`. `migration-renumbers-ids` acts here.
pub async fn migrate(
    data_dir: &Path,
    to: Option<i64>,
    fault: Option<Fault>,
) -> anyhow::Result<(i64, i64)> {
    refuse_if_running(data_dir).await?;
    let latest = store::latest_version();
    let target = to.unwrap_or(latest);
    check_known(target)?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))?;
    let db = data_dir.join(crate::DATABASE_FILE);
    let pool = store::connect(&db, true).await.map_err(StoreError::from)?;
    let result = async {
        let from = current_version(&pool, &db).await?;
        if target < from && target < MIN_ROLLBACK_TARGET {
            return Err(Refusal::BelowMinimum { from, target }.into());
        }
        if target < from {
            return Err(Refusal::MigrateDown {
                data_dir: data_dir.to_owned(),
                from,
                target,
            }
            .into());
        }
        MIGRATOR
            .run_to(target, &pool)
            .await
            .map_err(StoreError::from)?;
        if fault == Some(Fault::MigrationRenumbersIds)
            && from < SUBJECTS_ROWID_VERSION
            && target >= SUBJECTS_ROWID_VERSION
        {
            rederive_subs(&pool).await?;
        }
        Ok((from, store::schema_version(&pool).await?))
    }
    .await;
    pool.close().await;
    result
}

/// Rolls the database in `data_dir` back to `to` (default: one version down), never below
/// [`MIN_ROLLBACK_TARGET`]. Returns `(from, to)`. `rollback-loses-tokens` acts here.
pub async fn rollback(
    data_dir: &Path,
    to: Option<i64>,
    fault: Option<Fault>,
) -> anyhow::Result<(i64, i64)> {
    refuse_if_running(data_dir).await?;
    if let Some(target) = to {
        check_known(target)?;
    }
    let db = data_dir.join(crate::DATABASE_FILE);
    if !db.exists() {
        return Err(Refusal::NoDatabase { db }.into());
    }
    let pool = store::connect(&db, false).await.map_err(StoreError::from)?;
    let result = async {
        let from = current_version(&pool, &db).await?;
        let target = to.unwrap_or(from - 1);
        if target < MIN_ROLLBACK_TARGET {
            return Err(Refusal::BelowMinimum { from, target }.into());
        }
        if target > from {
            return Err(Refusal::RollbackUp {
                data_dir: data_dir.to_owned(),
                from,
                target,
            }
            .into());
        }
        if fault == Some(Fault::RollbackLosesTokens)
            && from >= SUBJECTS_ROWID_VERSION
            && target < SUBJECTS_ROWID_VERSION
        {
            delete_tokens_since_0003(&pool).await?;
        }
        MIGRATOR
            .undo(&pool, target)
            .await
            .map_err(StoreError::from)?;
        Ok((from, store::schema_version(&pool).await?))
    }
    .await;
    pool.close().await;
    result
}

fn check_known(target: i64) -> Result<(), Refusal> {
    if MIGRATOR.version_exists(target) {
        return Ok(());
    }
    let known = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Refusal::UnknownTarget { target, known })
}

/// The current version, refusing foreign, dirty and unknown-version databases.
async fn current_version(pool: &SqlitePool, db: &Path) -> anyhow::Result<i64> {
    match store::history(pool, db).await {
        Ok(History::Fresh) => return Ok(0),
        Ok(History::Versioned) => {}
        Err(StoreError::Foreign { .. }) => {
            return Err(Refusal::Foreign { db: db.to_owned() }.into());
        }
        Err(e) => return Err(e.into()),
    }
    let dirty: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE NOT success ORDER BY version LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some(version) = dirty {
        return Err(Refusal::Dirty {
            db: db.to_owned(),
            version,
        }
        .into());
    }
    let unknown: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE version > ?")
            .bind(store::latest_version())
            .fetch_one(pool)
            .await?;
    if let Some(found) = unknown {
        return Err(Refusal::UnknownCurrent {
            db: db.to_owned(),
            found,
            latest: store::latest_version(),
        }
        .into());
    }
    Ok(store::schema_version(pool).await?)
}

/// `migration-renumbers-ids`: the careless migration that gives every principal a new `sub`.
async fn rederive_subs(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let principals: Vec<String> = sqlx::query_scalar("SELECT principal FROM subjects")
        .fetch_all(&mut *tx)
        .await?;
    for principal in principals {
        sqlx::query("UPDATE subjects SET sub = ? WHERE principal = ?")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&principal)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `rollback-loses-tokens`: deletes every access and refresh token issued while at version 3
/// (`issued_at` at or after 0003's `installed_on`), with the idempotency records that name
/// the deleted access tokens (a foreign key would refuse the deletion otherwise).
async fn delete_tokens_since_0003(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let since: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(strftime('%s', installed_on) AS INTEGER) FROM _sqlx_migrations \
         WHERE version = ?",
    )
    .bind(SUBJECTS_ROWID_VERSION)
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    if let Some(since) = since {
        for sql in [
            "DELETE FROM idempotency_keys WHERE jti IN \
             (SELECT jti FROM access_tokens WHERE issued_at >= ?)",
            "DELETE FROM access_tokens WHERE issued_at >= ?",
            "DELETE FROM refresh_tokens WHERE issued_at >= ?",
        ] {
            sqlx::query(sql).bind(since).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Refuses when something answers `/health` at the address in `instance.json`. A missing or
/// unreadable instance file means no issuer was ever started on the directory.
async fn refuse_if_running(data_dir: &Path) -> Result<(), Refusal> {
    let Ok(bytes) = std::fs::read(data_dir.join(INSTANCE_FILE)) else {
        return Ok(());
    };
    let Ok(instance) = serde_json::from_slice::<Instance>(&bytes) else {
        return Ok(());
    };
    if answers_health(instance.listen).await {
        return Err(Refusal::Running {
            data_dir: data_dir.to_owned(),
            issuer: instance.issuer,
        });
    }
    Ok(())
}

/// Whether an HTTP server at `addr` answers `GET /health` with 200. A bare HTTP/1.1 request
/// over TCP: the crate has no HTTP client, and this one question does not need one.
async fn answers_health(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(32);
        let mut buf = [0u8; 256];
        while head.len() < 12 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<bool, std::io::Error>(
            head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
        )
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use base64::Engine as _;
    use http_body_util::BodyExt as _;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;
    use crate::config::Config;
    use crate::http::{App, router};

    const ISSUER: &str = "http://127.0.0.1:9";

    /// A router-level issuer on `dir` (which must already be at a served version).
    struct Served {
        app: Arc<App>,
        secret: String,
    }

    impl Served {
        async fn open(dir: &Path) -> anyhow::Result<Served> {
            let config = Config::load_or_init(&dir.join(crate::CONFIG_FILE))?;
            let secret = config.clients[0].secret.clone();
            let app = crate::open_app(dir, config, ISSUER.to_owned(), None).await?;
            Ok(Served { app, secret })
        }

        async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            let cred = base64::engine::general_purpose::STANDARD
                .encode(format!("keel-ci:{}", self.secret));
            let req = Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Basic {cred}"))
                .body(Body::from(body))
                .unwrap();
            let resp = router(Arc::clone(&self.app)).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, body)
        }

        async fn cc_token(&self) -> String {
            let (status, body) = self
                .post("/token", &[("grant_type", "client_credentials")])
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        }

        async fn introspect(&self, token: &str) -> Value {
            self.post("/introspect", &[("token", token)]).await.1
        }

        async fn close(self) {
            self.app.store.close().await.unwrap();
        }
    }

    async fn pool(dir: &Path) -> SqlitePool {
        store::connect(&dir.join(crate::DATABASE_FILE), false)
            .await
            .unwrap()
    }

    async fn exec(dir: &Path, sql: &str) {
        let pool = pool(dir).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    /// Every identity the migrations must keep, one JSON array per row, table by table.
    async fn dump(dir: &Path) -> Vec<String> {
        let pool = pool(dir).await;
        let mut rows = Vec::new();
        for sql in [
            "SELECT json_array('subject', principal, sub, created_at) FROM subjects",
            "SELECT json_array('grant', id, principal, revoked_at) FROM grants",
            "SELECT json_array('access', jti, grant_id, principal, issued_at, revoked_at) \
             FROM access_tokens",
            "SELECT json_array('refresh', public_id, secret_hash, grant_id, issued_at, \
             rotated_at, revoked_at) FROM refresh_tokens",
            "SELECT json_array('api_key', public_id, client_id, secret_hash, revoked_at) \
             FROM api_keys",
            "SELECT json_array('idem', client_id, idem_key, jti) FROM idempotency_keys",
            "SELECT json_array('key', kid, state) FROM signing_keys",
        ] {
            let mut part: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap();
            part.sort();
            rows.extend(part);
        }
        pool.close().await;
        rows
    }

    async fn subs(dir: &Path) -> Vec<(String, String)> {
        let pool = pool(dir).await;
        let rows = sqlx::query_as("SELECT principal, sub FROM subjects ORDER BY principal")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    }

    async fn count(dir: &Path, table: &str) -> i64 {
        let pool = pool(dir).await;
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    /// A version-2 data directory with tokens issued through the router (one revoked), a user
    /// subject, a refresh token, a revoked refresh token, an API key and an idempotency record.
    /// Every token is back-dated an hour, so it predates a later migration to 3. Returns the
    /// live and the revoked access token.
    async fn populated_v2() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(migrate(dir.path(), Some(2), None).await.unwrap(), (0, 2));
        let iss = Served::open(dir.path()).await.unwrap();
        assert_eq!(iss.app.schema_version, 2);
        let live = iss.cc_token().await;
        let revoked = iss.cc_token().await;
        assert_eq!(
            iss.post("/revoke", &[("token", &revoked)]).await.0,
            StatusCode::OK
        );
        assert_eq!(
            iss.introspect(&revoked).await,
            serde_json::json!({"active": false})
        );
        iss.app.store.subject("user:alice").await.unwrap();
        iss.close().await;
        let now = crate::now();
        exec(
            dir.path(),
            &format!(
                "INSERT INTO grants (id, kind, client_id, principal, username, scope, created_at) \
                 VALUES ('g-user', 'authorization_code', 'keel-ci', 'user:alice', 'alice', \
                 'read', {now});
                 INSERT INTO refresh_tokens (public_id, secret_hash, grant_id, client_id, \
                 principal, username, scope, issued_at, expires_at, rotated_at, replaced_by, \
                 revoked_at) VALUES \
                 ('AAAAAAAAAAAAAAA1', 'h1', 'g-user', 'keel-ci', 'user:alice', 'alice', 'read', \
                 {now}, {now} + 86400, {now}, 'AAAAAAAAAAAAAAA2', NULL), \
                 ('AAAAAAAAAAAAAAA2', 'h2', 'g-user', 'keel-ci', 'user:alice', 'alice', 'read', \
                 {now}, {now} + 86400, NULL, NULL, {now});
                 INSERT INTO api_keys (public_id, client_id, name, secret_hash, created_at) \
                 VALUES ('KKKKKKKKKKKKKKK1', 'keel-ci', 'ci', 'k1', {now});
                 INSERT INTO idempotency_keys (client_id, idem_key, request_hash, jti, created_at) \
                 SELECT 'keel-ci', 'idem-1', 'r1', jti, {now} FROM access_tokens LIMIT 1;
                 UPDATE access_tokens SET issued_at = issued_at - 3600, \
                 expires_at = expires_at + 3600;
                 UPDATE refresh_tokens SET issued_at = issued_at - 3600;"
            ),
        )
        .await;
        (dir, live, revoked)
    }

    #[tokio::test]
    async fn up_down_up_keeps_every_identity() {
        let (dir, live, revoked) = populated_v2().await;
        let before = dump(dir.path()).await;
        assert_eq!(before.iter().filter(|r| r.contains("subject")).count(), 2);
        assert_eq!(migrate(dir.path(), None, None).await.unwrap(), (2, 3));
        assert_eq!(dump(dir.path()).await, before);
        // The version-3 shape: a surrogate `id`, the principal no longer the primary key.
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM subjects ORDER BY id")
            .fetch_all(&pool(dir.path()).await)
            .await
            .unwrap();
        assert_eq!(ids, [1, 2]);
        assert_eq!(rollback(dir.path(), None, None).await.unwrap(), (3, 2));
        assert_eq!(dump(dir.path()).await, before);
        assert_eq!(
            rollback(dir.path(), Some(2), None).await.unwrap(),
            (2, 2),
            "rolling back to the current version is a no-op"
        );
        assert_eq!(migrate(dir.path(), Some(3), None).await.unwrap(), (2, 3));
        assert_eq!(dump(dir.path()).await, before);

        // The issuer at version 3 still knows every token and its subject.
        let iss = Served::open(dir.path()).await.unwrap();
        assert_eq!(iss.app.schema_version, 3);
        let active = iss.introspect(&live).await;
        assert_eq!(active["active"], true);
        let client_sub: String = subs(dir.path())
            .await
            .into_iter()
            .find(|(p, _)| p == "client:keel-ci")
            .unwrap()
            .1;
        assert_eq!(active["sub"], client_sub.as_str());
        assert_eq!(
            iss.introspect(&revoked).await,
            serde_json::json!({"active": false})
        );
        // New subjects work on the new shape too.
        let bob = iss.app.store.subject("user:bob").await.unwrap();
        assert_eq!(iss.app.store.subject("user:bob").await.unwrap(), bob);
        let fresh = iss.cc_token().await;
        assert_eq!(iss.introspect(&fresh).await["sub"], client_sub.as_str());
        iss.close().await;
    }

    #[tokio::test]
    async fn migration_renumbers_ids_fault_changes_every_sub() {
        let (dir, live, _) = populated_v2().await;
        let before = subs(dir.path()).await;
        let tokens = count(dir.path(), "access_tokens").await;
        let fault = Some(Fault::MigrationRenumbersIds);
        assert_eq!(migrate(dir.path(), None, fault).await.unwrap(), (2, 3));
        let after = subs(dir.path()).await;
        assert_eq!(after.len(), before.len());
        for ((p0, s0), (p1, s1)) in before.iter().zip(&after) {
            assert_eq!(p0, p1);
            assert_ne!(s0, s1, "{p0} kept its sub");
        }
        assert_eq!(count(dir.path(), "access_tokens").await, tokens);
        let iss = Served::open(dir.path()).await.unwrap();
        let active = iss.introspect(&live).await;
        assert_eq!(active["active"], true);
        assert_ne!(active["sub"], before[0].1.as_str());
        iss.close().await;
    }

    /// A version-3 directory holding tokens from version 2 (back-dated) and from version 3.
    async fn tokens_from_both_versions() -> (tempfile::TempDir, String, String) {
        let (dir, old, _) = populated_v2().await;
        assert_eq!(migrate(dir.path(), None, None).await.unwrap(), (2, 3));
        let iss = Served::open(dir.path()).await.unwrap();
        let new = iss.cc_token().await;
        iss.close().await;
        let now = crate::now();
        exec(
            dir.path(),
            &format!(
                "INSERT INTO refresh_tokens (public_id, secret_hash, grant_id, client_id, \
                 principal, username, scope, issued_at, expires_at) VALUES \
                 ('AAAAAAAAAAAAAAA3', 'h3', 'g-user', 'keel-ci', 'user:alice', 'alice', 'read', \
                 {now}, {now} + 86400)"
            ),
        )
        .await;
        (dir, old, new)
    }

    #[tokio::test]
    async fn rollback_keeps_tokens_issued_at_3() {
        let (dir, old, new) = tokens_from_both_versions().await;
        let before = dump(dir.path()).await;
        assert_eq!(rollback(dir.path(), None, None).await.unwrap(), (3, 2));
        assert_eq!(dump(dir.path()).await, before);
        let iss = Served::open(dir.path()).await.unwrap();
        assert_eq!(iss.introspect(&old).await["active"], true);
        assert_eq!(iss.introspect(&new).await["active"], true);
        iss.close().await;
    }

    #[tokio::test]
    async fn rollback_loses_tokens_fault_deletes_tokens_issued_at_3() {
        let (dir, old, new) = tokens_from_both_versions().await;
        assert_eq!(count(dir.path(), "access_tokens").await, 3);
        assert_eq!(count(dir.path(), "refresh_tokens").await, 3);
        let fault = Some(Fault::RollbackLosesTokens);
        assert_eq!(rollback(dir.path(), None, fault).await.unwrap(), (3, 2));
        assert_eq!(count(dir.path(), "access_tokens").await, 2);
        assert_eq!(count(dir.path(), "refresh_tokens").await, 2);
        assert_eq!(count(dir.path(), "idempotency_keys").await, 1);
        let iss = Served::open(dir.path()).await.unwrap();
        assert_eq!(iss.introspect(&old).await["active"], true);
        assert_eq!(
            iss.introspect(&new).await,
            serde_json::json!({"active": false})
        );
        iss.close().await;
    }

    #[tokio::test]
    async fn serving_keeps_version_2_and_refuses_1_and_4() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(migrate(dir.path(), Some(2), None).await.unwrap(), (0, 2));
        let iss = Served::open(dir.path()).await.unwrap();
        assert_eq!(iss.app.schema_version, 2);
        iss.close().await;
        let iss = Served::open(dir.path()).await.unwrap();
        assert_eq!(iss.app.schema_version, 2, "serving must not migrate");
        iss.close().await;

        let v1 = tempfile::tempdir().unwrap();
        assert_eq!(migrate(v1.path(), Some(1), None).await.unwrap(), (0, 1));
        let msg = format!("{:#}", Served::open(v1.path()).await.err().unwrap());
        assert!(msg.contains("schema version 1"), "{msg}");
        assert!(msg.contains("versions 2 and 3"), "{msg}");
        assert!(msg.contains("keel-reference migrate --data-dir"), "{msg}");

        let v4 = tempfile::tempdir().unwrap();
        assert_eq!(migrate(v4.path(), None, None).await.unwrap(), (0, 3));
        exec(
            v4.path(),
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (4, 'from the future', TRUE, x'00', 0)",
        )
        .await;
        let msg = format!("{:#}", Served::open(v4.path()).await.err().unwrap());
        assert!(msg.contains("schema version 4"), "{msg}");
        assert!(
            msg.contains("latest version this binary knows (3)"),
            "{msg}"
        );
        assert!(msg.contains("keel-reference rollback --data-dir"), "{msg}");
        for result in [
            migrate(v4.path(), None, None).await,
            rollback(v4.path(), None, None).await,
        ] {
            assert!(matches!(
                result.unwrap_err().downcast_ref(),
                Some(Refusal::UnknownCurrent { found: 4, .. })
            ));
        }
    }

    fn refusal(result: anyhow::Result<(i64, i64)>) -> Refusal {
        result.unwrap_err().downcast().unwrap()
    }

    #[tokio::test]
    async fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(
            refusal(rollback(d, None, None).await),
            Refusal::NoDatabase { .. }
        ));
        assert!(matches!(
            refusal(migrate(d, Some(9), None).await),
            Refusal::UnknownTarget { target: 9, .. }
        ));
        assert!(!d.join(crate::DATABASE_FILE).exists());
        assert_eq!(migrate(d, None, None).await.unwrap(), (0, 3));
        assert_eq!(migrate(d, None, None).await.unwrap(), (3, 3));
        assert!(matches!(
            refusal(migrate(d, Some(2), None).await),
            Refusal::MigrateDown {
                from: 3,
                target: 2,
                ..
            }
        ));
        assert!(matches!(
            refusal(rollback(d, Some(0), None).await),
            Refusal::UnknownTarget { target: 0, .. }
        ));
        assert!(matches!(
            refusal(rollback(d, Some(1), None).await),
            Refusal::BelowMinimum { from: 3, target: 1 }
        ));
        assert_eq!(rollback(d, None, None).await.unwrap(), (3, 2));
        assert!(matches!(
            refusal(rollback(d, None, None).await),
            Refusal::BelowMinimum { from: 2, target: 1 }
        ));
        assert!(matches!(
            refusal(rollback(d, Some(3), None).await),
            Refusal::RollbackUp {
                from: 2,
                target: 3,
                ..
            }
        ));

        // Something answering /health at the recorded address: refused; once it is gone, fine.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let health = axum::Router::new().route("/health", axum::routing::get(|| async { "{}" }));
        let server = tokio::spawn(async move { axum::serve(listener, health).await });
        let instance = Instance {
            listen,
            issuer: format!("http://{listen}"),
        };
        std::fs::write(
            d.join(INSTANCE_FILE),
            serde_json::to_vec(&instance).unwrap(),
        )
        .unwrap();
        for result in [
            migrate(d, None, None).await,
            rollback(d, Some(2), None).await,
        ] {
            let r = refusal(result);
            assert!(matches!(r, Refusal::Running { .. }), "{r}");
            assert!(r.to_string().contains(&instance.issuer));
        }
        server.abort();
        let _aborted = server.await;
        assert_eq!(migrate(d, None, None).await.unwrap(), (2, 3));
    }
}
