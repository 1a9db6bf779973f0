//! The two backends behind [`Store`] and the macro that runs one body of code against either.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::error::StoreError;
use crate::secrets::Keyring;

/// The durable store. Cheap to clone (pools and keys are shared); `Send + Sync`, so it can be
/// used from any tokio task.
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// A small pool of its own for lease bookkeeping (heartbeats, renewals, acquisitions,
    /// releases): a node whose workers keep every connection of `backend` busy still renews its
    /// leases on time. Measured: 10,000 links on one node queued the renewal behind thousands
    /// of workers' queries for longer than the lease's time-to-live, and every fence lapsed.
    pub(crate) leases: Backend,
    pub(crate) keys: Keyring,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .field("keys", &self.keys)
            .finish()
    }
}

/// A connection pool of one of the supported databases.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run `$body` with `$pool` bound to the backend's pool. The body is compiled once per backend,
/// so it must be valid SQL and Rust for both.
macro_rules! on_backend {
    ($store:expr, |$pool:ident| $body:expr) => {
        $crate::backend::on_pool!(&$store.backend, |$pool| $body)
    };
}
pub(crate) use on_backend;

/// Run `$body` with `$pool` bound to the pool of `$backend` (a `&Backend`): [`on_backend!`]
/// for a pool other than the store's main one, such as its lease pool.
macro_rules! on_pool {
    ($backend:expr, |$pool:ident| $body:expr) => {
        match $backend {
            $crate::backend::Backend::Sqlite($pool) => $body,
            $crate::backend::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Backend {
    /// How many leases one statement of [`Store::renew_leases`] renews. PostgreSQL locks each
    /// row it updates until the statement's transaction ends: 500 at a time bound what a
    /// renewal holds. SQLite locks the whole database for any write, and each statement waits
    /// its turn for that lock: fewer, larger statements (a few milliseconds each).
    pub(crate) fn renew_chunk(&self) -> usize {
        match self {
            Backend::Sqlite(_) => RENEW_CHUNK_SQLITE,
            Backend::Postgres(_) => RENEW_CHUNK_POSTGRES,
        }
    }
}

/// See [`Backend::renew_chunk`].
pub const RENEW_CHUNK_SQLITE: usize = 5_000;
/// See [`Backend::renew_chunk`].
pub const RENEW_CHUNK_POSTGRES: usize = 500;

/// What differs between the backends, reachable from inside [`on_backend!`] bodies.
pub(crate) trait Pool {
    /// The sqlx database type.
    type Db: sqlx::Database;
    /// Begin a transaction that will write. On SQLite this takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so transactions queue instead of failing with "database is locked"
    /// when they upgrade from reading to writing.
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, sqlx::Error>;
    /// Pick the statement text for this backend.
    fn pick(&self, sqlite: &'static str, postgres: &'static str) -> &'static str;
}

impl Pool for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
    fn pick(&self, sqlite: &'static str, _postgres: &'static str) -> &'static str {
        sqlite
    }
}

impl Pool for PgPool {
    type Db = Postgres;
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }
    fn pick(&self, _sqlite: &'static str, postgres: &'static str) -> &'static str {
        postgres
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The options of a SQLite pool of `max` connections. An in-memory database lives in its
/// connection: it keeps exactly one, forever.
fn sqlite_pool(max: u32, in_memory: bool) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
        .max_lifetime((!in_memory).then_some(Duration::from_secs(3600)))
        // A transaction whose COMMIT failed (the disk full) is still open on its connection:
        // that connection is closed (rolling it back), not handed out again, where every later
        // BEGIN would fail and the node never recover.
        .after_release(|conn, _| {
            let open = sqlx::Connection::is_in_transaction(conn);
            Box::pin(async move { Ok(!open) })
        })
}

impl Store {
    /// Open the store at `url`, creating (SQLite) and migrating the schema as needed, check
    /// that `keys` can decrypt every secret already stored, and index the surnames of bookings
    /// stored before the look-up (once).
    ///
    /// Accepted URLs: `sqlite://path?mode=rwc`, `sqlite:path`, `sqlite::memory:`,
    /// `postgres://…` and `postgresql://…`.
    pub async fn open(url: &str, keys: Keyring) -> Result<Store, StoreError> {
        let (backend, leases) = if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::InvalidUrl {
                    reason: e.to_string(),
                })?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30));
            let pool = sqlite_pool(if in_memory { 1 } else { 4 }, in_memory)
                .connect_with(options.clone())
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            // An in-memory database lives in its one connection: its leases share it.
            let leases = if in_memory {
                pool.clone()
            } else {
                sqlite_pool(1, false).connect_with(options).await?
            };
            (Backend::Sqlite(pool), Backend::Sqlite(leases))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
                reason: e.to_string(),
            })?;
            // No transaction waits on anything but SQL: one idle for 5 s belongs to a stopped
            // node, whose locks (the lease row's FOR KEY SHARE) would keep others from taking over.
            let options = options.options([("idle_in_transaction_session_timeout", "5s")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.clone())
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            let leases = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            (Backend::Postgres(pool), Backend::Postgres(leases))
        } else {
            let scheme = url.split(':').next().unwrap_or_default().to_owned();
            return Err(StoreError::UnsupportedScheme { scheme });
        };
        let store = Store {
            backend,
            leases,
            keys,
        };
        store.check_keys().await?;
        store.index_booking_surnames().await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Ask the database the cheapest question there is (`SELECT 1`): `/readyz` answers with it.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: i32 = on_backend!(self, |pool| {
            sqlx::query_scalar("SELECT 1").fetch_one(pool).await?
        });
        Ok(())
    }

    /// Close every connection; later calls fail. Waits for checked-out connections to return.
    pub async fn close(&self) {
        for backend in [&self.leases, &self.backend] {
            match backend {
                Backend::Sqlite(pool) => pool.close().await,
                Backend::Postgres(pool) => pool.close().await,
            }
        }
    }
}
