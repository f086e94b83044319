//! keel's reference OAuth 2.0 token issuer.
//!
//! It implements every keel requirement and has [fault modes](Fault) that each break named
//! requirements, so that keel can show every one of its checks failing. keel uses it as a
//! library ([`serve`]) and as a child process (`keel-reference serve ...`).
//!
//! State lives in a data directory: `config.toml` ([`config::Config`]), `instance.json` (the
//! address fixed on first start) and `issuer.db` (SQLite: keys, subjects, grants, tokens).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod faults;
mod http;
pub mod instance;
pub mod keys;
pub mod schema;
pub mod store;
pub mod tokens;

use std::future::{Future, IntoFuture as _};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

pub use faults::{Fault, UnknownFault};
pub use schema::Refusal;

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";
/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "issuer.db";
/// Prefix of every refresh token.
pub const REFRESH_PREFIX: &str = "krt_";
/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = tokens::API_KEY_PREFIX;

/// How the `lazy-commit` fault's buffer is flushed.
const LAZY_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// After a shutdown signal, connections get this long to finish before the server stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What [`serve`] needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to bind on the first start (port 0 for any); later starts reuse the recorded one.
    pub listen: SocketAddr,
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The fault mode, if any.
    pub fault: Option<Fault>,
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Installs a tracing subscriber writing to stderr (filter from `RUST_LOG`, default `info`).
/// Does nothing if a global subscriber is already set.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

/// Opens the store and keys for `data_dir` and assembles the shared state.
pub(crate) async fn open_app(
    data_dir: &Path,
    config: config::Config,
    issuer: String,
    fault: Option<Fault>,
) -> anyhow::Result<Arc<http::App>> {
    let mode = store::StoreMode {
        memory_revocations: fault == Some(Fault::MemoryRevocations),
        lazy_commit: fault == Some(Fault::LazyCommit),
    };
    let db = data_dir.join(DATABASE_FILE);
    let store = store::Store::open(&db, mode)
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    let keys = keys::KeyRing::load(&store, fault, config.key_overlap())
        .await
        .context("cannot load signing keys")?;
    let schema_version = store.schema_version().await?;
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("cannot format the start time")?;
    Ok(Arc::new(http::App {
        issuer,
        config,
        store,
        keys,
        fault,
        boot_id: uuid::Uuid::new_v4().to_string(),
        started_at,
        schema_version,
        refresh_format: tokens::OpaqueFormat::refresh(fault),
        jwt_policy: tokens::JwtPolicy::for_fault(fault),
        idempotency_memory: Default::default(),
    }))
}

/// Migrates the database in `data_dir` (created if missing) up to schema version `to`
/// (default: the latest) and returns `(from, to)`. Refuses with a [`Refusal`] when an issuer
/// answers `/health` at the address in `instance.json`, when `to` is not a known version or is
/// below the current one, or when the database is at a version this binary does not know.
/// With `Some(Fault::MigrationRenumbersIds)`, crossing version 3 gives every principal a new
/// `sub`; other faults have no effect here.
pub async fn migrate(
    data_dir: &Path,
    to: Option<i64>,
    fault: Option<Fault>,
) -> anyhow::Result<(i64, i64)> {
    schema::migrate(data_dir, to, fault).await
}

/// Rolls the database in `data_dir` back to schema version `to` (default: one version down)
/// and returns `(from, to)`. Refuses with a [`Refusal`] like [`migrate`], and also for a target
/// below [`schema::MIN_ROLLBACK_TARGET`] (2: older versions have no API-key tables) or above
/// the current version. With `Some(Fault::RollbackLosesTokens)`, rolling back from 3 deletes
/// every token issued since migration 0003 was applied; other faults have no effect here.
pub async fn rollback(
    data_dir: &Path,
    to: Option<i64>,
    fault: Option<Fault>,
) -> anyhow::Result<(i64, i64)> {
    schema::rollback(data_dir, to, fault).await
}

/// Installs SIGTERM and SIGINT handlers now (so a signal that arrives right after the URL is
/// printed is not fatal) and returns a future that resolves on the first of them.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Binds, migrates a fresh data dir, prints the base URL (e.g. `http://127.0.0.1:43121`) as the
/// FIRST line of stdout and flushes it, then serves until SIGTERM or SIGINT (graceful: flush
/// anything pending, then return `Ok`).
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    serve_until(opts, shutdown_signal()?).await
}

/// [`serve`], stopping when `shutdown` resolves instead of on a signal.
pub async fn serve_until(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
    let config = config::Config::load_or_init(&opts.data_dir.join(CONFIG_FILE))?;
    let (listener, instance) = instance::bind(&opts.data_dir, opts.listen).await?;
    let app = open_app(&opts.data_dir, config, instance.issuer.clone(), opts.fault).await?;

    // The flusher is stopped between flushes, never aborted inside one: an abort during the
    // commit could leave written records in the buffer for the final flush to write again.
    let (stop_flusher, mut flusher_stopped) = tokio::sync::watch::channel(false);
    let flusher = (opts.fault == Some(Fault::LazyCommit)).then(|| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LAZY_FLUSH_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = flusher_stopped.changed() => break,
                }
                if let Err(e) = app.store.flush().await {
                    tracing::error!(error = %e, "lazy-commit flush failed");
                }
            }
        })
    });

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", instance.issuer).context("cannot write the base URL to stdout")?;
        out.flush().context("cannot flush stdout")?;
    }
    tracing::info!(
        issuer = %instance.issuer,
        fault = opts.fault.map(|f| f.name()).unwrap_or("none"),
        boot_id = %app.boot_id,
        "serving"
    );

    let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, http::router(Arc::clone(&app)))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _receiver_gone_is_fine = signalled_tx.send(true);
        })
        .into_future();
    let grace = async {
        if signalled_rx.wait_for(|s| *s).await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = server => r.context("server failed")?,
        () = grace => tracing::warn!("connections still open after the grace period; stopping"),
    }

    let _flusher_gone_is_fine = stop_flusher.send(true);
    if let Some(f) = flusher
        && let Err(e) = f.await
    {
        tracing::error!(error = %e, "lazy-commit flusher panicked");
    }
    app.store.close().await.context("cannot flush the store")?;
    tracing::info!("stopped");
    Ok(())
}
