//! The store's error type.

use crate::bookings::BookingState;
use crate::secrets::KeyError;
use crate::types::LinkId;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL's scheme is not one we support.
    #[error("database URL scheme {scheme:?} is not supported: expected sqlite: or postgres:")]
    UnsupportedScheme {
        /// The scheme found (text before the first `:`).
        scheme: String,
    },
    /// The database URL could not be parsed.
    #[error("database URL is invalid: {reason}")]
    InvalidUrl {
        /// What the driver said.
        reason: String,
    },
    /// A value given to the store is out of range or malformed.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field at fault.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// No link has this id.
    #[error("link {0} not found")]
    LinkNotFound(LinkId),
    /// Another enabled link already publishes to this marketplace practice.
    #[error("marketplace practice {market_practice_id:?} is already linked by an enabled link")]
    PracticeAlreadyLinked {
        /// The contested practice id.
        market_practice_id: String,
    },
    /// The caller no longer holds the lease it writes under: another node took the link over
    /// (a newer epoch), or the lease expired by the database's clock. The caller must stop
    /// working the link; nothing was written.
    #[error("link {link_id}: the lease at epoch {epoch} held by {node_id:?} is no longer held")]
    Fenced {
        /// The link.
        link_id: LinkId,
        /// The node that wrote.
        node_id: String,
        /// The epoch it wrote under.
        epoch: i64,
    },
    /// The booking is not claimed by the caller's (node, epoch): another worker claimed it.
    #[error("booking {booking_id} is not claimed by this worker")]
    ClaimLost {
        /// The booking.
        booking_id: String,
    },
    /// The link's generation changed (its marketplace practice was changed) since the caller
    /// read it; the caller's work belongs to the old practice and was discarded.
    #[error("link {link_id} is at generation {current}, not {expected}: its practice changed")]
    StaleGeneration {
        /// The link.
        link_id: LinkId,
        /// The generation the caller worked for.
        expected: i64,
        /// The link's generation now.
        current: i64,
    },
    /// No booking has this id.
    #[error("booking {0:?} not found")]
    BookingNotFound(String),
    /// The booking is not in the state the caller expected (another worker moved it).
    #[error("booking {booking_id:?} is {found}, not {expected}")]
    BookingStateConflict {
        /// The booking.
        booking_id: String,
        /// The state the caller expected.
        expected: BookingState,
        /// The state it is in.
        found: BookingState,
    },
    /// The state machine has no such edge.
    #[error("a booking cannot go from {from} to {to}")]
    InvalidTransition {
        /// The current state.
        from: BookingState,
        /// The requested state.
        to: BookingState,
    },
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A stored value could not be read back (a bug or a hand-edited database).
    #[error("corrupt value in {column}: {message}")]
    Corrupt {
        /// The table and column.
        column: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database refused a write because the disk under it is full: SQLite's
    /// `SQLITE_FULL` ("database or disk is full"), PostgreSQL's `disk_full` (SQLSTATE 53100).
    /// Nothing was written; the same write succeeds once space is back.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some(SQLITE_FULL | PG_DISK_FULL))
            }
            _ => false,
        }
    }

    pub(crate) fn corrupt(column: &'static str, message: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            column,
            message: message.to_string(),
        }
    }
}

/// SQLite's result code for a full disk (it has no extended codes).
const SQLITE_FULL: &str = "13";
/// PostgreSQL's SQLSTATE for a full disk.
const PG_DISK_FULL: &str = "53100";

/// True if `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
