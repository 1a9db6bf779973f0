//! Runs one behaviour test against a fresh database of either backend.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a new database
//! `slotbridge_test_<random>` on the server at `SLOTBRIDGE_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards, so tests run in
//! parallel without colliding. If no PostgreSQL answers: with `CI` set the test fails; without
//! it the test is skipped, saying so on stderr.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;
use slotbridge_store::{Keyring, Store};
use sqlx::Connection;

/// Which backend a test instance runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test gets: an open store, and how to reach its database again.
pub struct Ctx {
    pub store: Store,
    pub url: String,
    pub backend: Backend,
    /// The keyring text the store was opened with (one key, id `k1`).
    pub keyring_text: String,
    sqlite_dir: Option<PathBuf>,
}

impl Ctx {
    /// Every byte of the database as stored: the SQLite files (main, WAL, journal), or the
    /// text and raw bytes of every row of every table on PostgreSQL.
    pub async fn raw_dump(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let dir = self.sqlite_dir.as_ref().expect("sqlite dir");
                let mut all = Vec::new();
                for entry in std::fs::read_dir(dir).expect("read temp dir") {
                    let path = entry.expect("dir entry").path();
                    all.extend(std::fs::read(&path).expect("read db file"));
                }
                all
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .expect("list tables");
                let mut all = Vec::new();
                for t in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text FROM \"{t}\" t"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .expect("dump table");
                    for r in rows {
                        all.extend(r.into_bytes());
                    }
                }
                let sealed: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
                    "SELECT pms_api_key_ciphertext, market_practice_key_ciphertext FROM links",
                )
                .fetch_all(&mut conn)
                .await
                .expect("dump ciphertexts");
                for (a, b) in sealed {
                    all.extend(a);
                    all.extend(b);
                }
                all
            }
        }
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("SLOTBRIDGE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty())
}

/// A keyring with one fresh key `k1`, as text.
pub fn one_key() -> String {
    format!("k1:{}", Keyring::generate_key().expose_secret())
}

impl Ctx {
    /// A new master key `k2` for a rotation: `(the keyring with k1 then k2, k2 alone)`, as text.
    pub fn rotation_keyrings(&self) -> (String, String) {
        let k2 = format!("k2:{}", Keyring::generate_key().expose_secret());
        (format!("{}\n{k2}", self.keyring_text), k2)
    }
}

/// Assert that `err` says the keyring lacks the master key `key_id`, naming it.
pub fn assert_missing_key(err: &slotbridge_store::StoreError, key_id: &str) {
    use slotbridge_store::{KeyError, StoreError};
    assert!(
        matches!(err, StoreError::Key(KeyError::UnknownKeyId { key_id: k, .. }) if k == key_id),
        "expected the keyring to lack {key_id:?}: {err}"
    );
}

/// Run `test` against a fresh database of `backend`, then remove the database (even if the
/// test panicked; the panic is then re-raised).
pub async fn run<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let keyring_text = one_key();
    let keys = Keyring::parse(&keyring_text).expect("keyring");
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("store.db").display()
            );
            let store = Store::open(&url, keys).await.expect("open sqlite store");
            let ctx = Ctx {
                store,
                url,
                backend,
                keyring_text,
                sqlite_dir: Some(dir.path().to_owned()),
            };
            let outcome = tokio::spawn(test(ctx)).await;
            drop(dir);
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Backend::Postgres => {
            let admin_url = pg_admin_url();
            let admin = tokio::time::timeout(
                Duration::from_secs(10),
                sqlx::PgConnection::connect(&admin_url),
            )
            .await;
            let mut admin = match admin {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) if !in_ci() => {
                    skipped(&format!("no server at SLOTBRIDGE_TEST_PG_URL ({e})"), name);
                    return;
                }
                Err(_) if !in_ci() => {
                    skipped("the server did not answer within 10 s", name);
                    return;
                }
                Ok(Err(e)) => panic!("CI is set and PostgreSQL at {admin_url} failed: {e}"),
                Err(_) => panic!("CI is set and PostgreSQL at {admin_url} did not answer"),
            };
            let db = format!("slotbridge_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&admin_url).expect("SLOTBRIDGE_TEST_PG_URL is a URL");
            url.set_path(&db);
            let url = url.to_string();
            let outcome = match Store::open(&url, keys).await {
                Ok(store) => {
                    let ctx = Ctx {
                        store: store.clone(),
                        url: url.clone(),
                        backend,
                        keyring_text,
                        sqlite_dir: None,
                    };
                    let outcome = tokio::spawn(test(ctx)).await;
                    store.close().await;
                    outcome.map_err(|e| e.into_panic())
                }
                Err(e) => Err(Box::new(format!("open postgres store: {e}")) as _),
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .expect("drop test database");
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Say on the real stderr (not the test harness's captured one, so it shows even for a
/// passing test) that a PostgreSQL test was skipped.
fn skipped(why: &str, name: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED postgres::{name}: {why}; set CI to make this a failure"
    );
}

/// Instantiate each named `async fn(Ctx)` once per backend, as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run(
                        $crate::support::Backend::Sqlite,
                        stringify!($name),
                        super::$name,
                    )
                    .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run(
                        $crate::support::Backend::Postgres,
                        stringify!($name),
                        super::$name,
                    )
                    .await;
                }
            )*
        }
    };
}
