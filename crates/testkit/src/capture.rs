//! What a node leaves behind, for tests that look for data that must not be there: every log
//! line at every level ([`logs`]) and every value stored in the database ([`stored_values`]).

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use sqlx::Row;

/// Every log line of the test binary since [`logs`] was first called.
pub struct LogCapture {
    lines: Mutex<Vec<String>>,
}

impl LogCapture {
    /// The lines captured so far (one per event, or per span opened or closed), in order.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many lines have been captured.
    pub fn len(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether nothing has been captured yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Capture every log line of this test binary, at TRACE for every target (the integration's
/// crates and every library: `tracing` events and spans with their fields, and `log` records),
/// formatted as a service would write them, without colours. Installed as the global
/// subscriber on the first call (so tasks on every runtime thread are captured), shared by the
/// whole test binary afterwards.
///
/// # Panics
/// Another global subscriber was installed first.
pub fn logs() -> &'static LogCapture {
    static CAPTURE: OnceLock<&'static LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static LogCapture = Box::leak(Box::new(LogCapture {
            lines: Mutex::new(Vec::new()),
        }));
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_target(true)
            .with_thread_names(true)
            .with_span_events(
                tracing_subscriber::fmt::format::FmtSpan::NEW
                    | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
            )
            .with_writer(move || Line {
                buf: Vec::new(),
                to: capture,
            })
            .try_init()
            .expect("no other global tracing subscriber in this test binary");
        capture
    })
}

/// One formatted event; appended to the capture when dropped (the formatter writes an event
/// whole, then drops its writer).
struct Line {
    buf: Vec<u8>,
    to: &'static LogCapture,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buf).trim_end().to_owned();
        self.to
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }
}

/// One value stored in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The value as text (a blob or `bytea` decoded as UTF-8, lossily).
    pub text: String,
}

/// Every non-null value of every column of every table of the database at `url` (SQLite or
/// PostgreSQL, as a node opens it), read with SQL directly rather than through the store, so
/// nothing the store's API leaves out is missed.
///
/// # Errors
/// The database cannot be opened or read.
pub async fn stored_values(url: &str) -> anyhow::Result<Vec<StoredValue>> {
    if url.starts_with("postgres") {
        postgres_values(url).await
    } else {
        sqlite_values(url).await
    }
}

fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

async fn sqlite_values(url: &str) -> anyhow::Result<Vec<StoredValue>> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&pool)
    .await?;
    let mut out = Vec::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(&table)
                .fetch_all(&pool)
                .await?;
        for column in columns {
            let (t, c) = (quoted(&table), quoted(&column));
            // Identifiers from the catalogue, quoted: no outside input reaches the SQL.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT typeof({c}) AS kind, CAST({c} AS TEXT) AS text, \
                 CASE WHEN typeof({c}) = 'blob' THEN {c} END AS bytes \
                 FROM {t} WHERE {c} IS NOT NULL"
            )))
            .fetch_all(&pool)
            .await?;
            for row in rows {
                let kind: String = row.try_get("kind")?;
                let text = if kind == "blob" {
                    let bytes: Vec<u8> = row.try_get("bytes")?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    row.try_get::<String, _>("text")?
                };
                out.push(StoredValue {
                    table: table.clone(),
                    column: column.clone(),
                    text,
                });
            }
        }
    }
    pool.close().await;
    Ok(out)
}

async fn postgres_values(url: &str) -> anyhow::Result<Vec<StoredValue>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&pool)
    .await?;
    let mut out = Vec::new();
    for (table, column, data_type) in columns {
        // Identifiers from the catalogue, quoted: no outside input reaches the SQL.
        let (t, c) = (quoted(&table), quoted(&column));
        let texts: Vec<String> = if data_type == "bytea" {
            let blobs: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {c} FROM {t} WHERE {c} IS NOT NULL"
            )))
            .fetch_all(&pool)
            .await?;
            blobs
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL"
            )))
            .fetch_all(&pool)
            .await?
        };
        out.extend(texts.into_iter().map(|text| StoredValue {
            table: table.clone(),
            column: column.clone(),
            text,
        }));
    }
    pool.close().await;
    Ok(out)
}
