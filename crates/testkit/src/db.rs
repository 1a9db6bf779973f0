//! The database of one test: SQLite in a temporary directory, or a fresh PostgreSQL database.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the PostgreSQL tests use unless `SLOTBRIDGE_TEST_PG_URL` names another.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where a test's database lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database created for the test on `SLOTBRIDGE_TEST_PG_URL`, dropped afterwards.
    Postgres,
}

/// `sqlite://PATH?mode=rwc`: a SQLite database file, created when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A test's database; a PostgreSQL one is dropped (with its connections) with it.
pub struct TestDb {
    url: String,
    kind: Db,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    /// `slotbridge.db` in a new temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        TestDb {
            url: sqlite_url(&dir.path().join("slotbridge.db")),
            kind: Db::Sqlite,
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// A SQLite file at `path` (its directory outlives the database; nothing is removed).
    pub fn sqlite_at(path: &Path) -> TestDb {
        TestDb {
            url: sqlite_url(path),
            kind: Db::Sqlite,
            _dir: None,
            _pg: None,
        }
    }

    /// A fresh database of `kind`; `None` for PostgreSQL when no server answers and `CI` is
    /// unset (said on stderr). Under CI a missing server fails the test.
    pub fn fresh(kind: Db) -> Option<TestDb> {
        match kind {
            Db::Sqlite => Some(TestDb::sqlite()),
            Db::Postgres => {
                let pg = PgDatabase::fresh()?;
                Some(TestDb {
                    url: pg.url.clone(),
                    kind,
                    _dir: None,
                    _pg: Some(pg),
                })
            }
        }
    }

    /// The database URL a node or a store opens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend.
    pub fn kind(&self) -> Db {
        self.kind
    }
}

/// A PostgreSQL database created for one test and dropped (with its connections) afterwards.
pub struct PgDatabase {
    /// The database's URL.
    pub url: String,
    server: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database on `SLOTBRIDGE_TEST_PG_URL` (default [`DEFAULT_PG_URL`]), or `None`,
    /// visibly skipped, when no server answers and `CI` is unset. Under CI a missing server
    /// fails the test. Created and dropped with `psql`.
    pub fn fresh() -> Option<PgDatabase> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let server =
            std::env::var("SLOTBRIDGE_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let name = format!(
            "slotbridge_test_{}_{}_{}",
            std::process::id(),
            jiff::Timestamp::now().as_microsecond(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let created = Command::new("psql")
            .arg(&server)
            .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
            .output();
        match created {
            Ok(out) if out.status.success() => {
                let (root, _) = server.rsplit_once('/').expect("database URL has a path");
                Some(PgDatabase {
                    url: format!("{root}/{name}"),
                    server,
                    name,
                })
            }
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but PostgreSQL at {server} cannot be used: {why}"
                );
                // libtest names the test's thread after the test.
                let test = std::thread::current().name().unwrap_or("test").to_owned();
                eprintln!("SKIPPED {test} on PostgreSQL ({server} unavailable, CI unset): {why}");
                None
            }
        }
    }

    /// Run one query with psql and return its rows, `|`-separated.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-q", "-At", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.server)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}
