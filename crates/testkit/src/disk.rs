//! Database faults a test injects from outside the node: its SQLite file write-locked by
//! another connection ([`SqliteLock`]), and the disk under it full ([`SmallDisk`], a size-limited
//! tmpfs the test fills and empties again).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::Connection as _;

/// A connection of the test to the SQLite file at `path`, and its URL (for messages).
async fn connect(path: &Path) -> (sqlx::SqliteConnection, String) {
    let url = format!("sqlite://{}", path.display());
    let conn = sqlx::SqliteConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    (conn, url)
}

/// Another connection to a SQLite file holding its write lock (`BEGIN EXCLUSIVE`): the node's
/// writes wait (its busy timeout) until [`SqliteLock::release`]; readers go on (WAL).
pub struct SqliteLock {
    conn: sqlx::SqliteConnection,
}

impl SqliteLock {
    /// Open the database file at `path` and take its write lock, retrying while a writer of
    /// the node holds it (for up to 10 s).
    ///
    /// # Panics
    /// The file cannot be opened, or the lock is not had within 10 s.
    pub async fn take(path: &Path) -> SqliteLock {
        let (mut conn, url) = connect(path).await;
        let started = std::time::Instant::now();
        loop {
            match sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await {
                Ok(_) => return SqliteLock { conn },
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    tracing::debug!(error = %e, "the write lock is busy; trying again");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("BEGIN EXCLUSIVE on {url}: {e}"),
            }
        }
    }

    /// Give the lock up (nothing was written).
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .expect("ROLLBACK");
        let _ = self.conn.close().await;
    }
}

/// Move everything in the SQLite file's write-ahead log into the database and truncate the log
/// to nothing: the next write must grow the log (so a full disk refuses it at once).
///
/// # Panics
/// The file cannot be opened, or the checkpoint stays busy for 10 s.
pub async fn sqlite_truncate_wal(path: &Path) {
    let (mut conn, url) = connect(path).await;
    let started = std::time::Instant::now();
    loop {
        // (busy, log frames, frames checkpointed); busy = 1 when it could not finish.
        let row: (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("checkpoint of {url}: {e}"));
        if row.0 == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the checkpoint of {url} stayed busy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = conn.close().await;
}

/// The result of `PRAGMA integrity_check` on the SQLite file at `path` (`["ok"]` when sound).
///
/// # Panics
/// The file cannot be opened or read.
pub async fn sqlite_integrity(path: &Path) -> Vec<String> {
    let (mut conn, url) = connect(path).await;
    let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("integrity_check of {url}: {e}"));
    let _ = conn.close().await;
    rows.into_iter().map(|(r,)| r).collect()
}

/// A small filesystem of its own (a tmpfs of a given size, mounted on a temporary directory and
/// unmounted on drop) that a test fills to the last byte ([`SmallDisk::fill`]) and empties again
/// ([`SmallDisk::free`]). Mounting needs root (or `CAP_SYS_ADMIN`).
pub struct SmallDisk {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl SmallDisk {
    /// A tmpfs of `megabytes` MiB; `None` when it cannot be mounted and `CI` is unset (said on
    /// stderr as `SKIPPED`). Under CI a refused mount fails the test.
    pub fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        let refused = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refused {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot mount a small tmpfs (the disk-full test needs root): {why}"
            );
            eprintln!("SKIPPED: cannot mount a small tmpfs for the disk-full test: {why}");
            return None;
        }
        let filler = dir.path().join("filler");
        Some(SmallDisk { dir, filler })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill the filesystem until not one more byte fits; how many bytes were written.
    ///
    /// # Panics
    /// A write fails with anything but "no space left".
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("the filler file");
        let mut written = 0u64;
        for size in [1 << 20, 4096, 1] {
            let chunk = vec![0u8; size];
            loop {
                match f.write(&chunk) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", self.filler.display()),
                }
            }
        }
        let _ = f.sync_all();
        written
    }

    /// Remove what [`SmallDisk::fill`] wrote: the space is back.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("removing the filler file");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}
