//! Small value types shared by the store's tables.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::StoreError;

/// The id of a link (one PMS site joined to one marketplace practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkId(pub Uuid);

impl LinkId {
    /// A new, time-ordered id (UUID v7).
    pub fn new() -> Self {
        LinkId(Uuid::now_v7())
    }
}

impl Default for LinkId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for LinkId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(LinkId)
            .map_err(|e| StoreError::InvalidInput {
                field: "link id",
                message: format!("expected a UUID, found {s:?} ({e})"),
            })
    }
}

/// How many days ahead a link publishes availability: the domain's type, in one place.
pub use slotbridge_domain::horizon::HorizonDays;

impl From<slotbridge_domain::horizon::HorizonError> for StoreError {
    fn from(e: slotbridge_domain::horizon::HorizonError) -> Self {
        StoreError::InvalidInput {
            field: e.field(),
            message: e.detail(),
        }
    }
}

/// A 64-bit content hash of something published (a day's availability for one resource, or a
/// configuration snapshot). Compare hashes to decide whether to re-send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentHash(pub u64);

impl ContentHash {
    /// The first 64 bits of the SHA-256 of `bytes`: stable across versions, platforms and runs.
    ///
    /// ```
    /// use slotbridge_store::ContentHash;
    /// assert_eq!(ContentHash::of(b"a"), ContentHash::of(b"a"));
    /// assert_ne!(ContentHash::of(b"a"), ContentHash::of(b"b"));
    /// ```
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        ContentHash(u64::from_be_bytes(first))
    }

    /// The bit pattern as a signed integer, for BIGINT/INTEGER columns.
    pub(crate) fn to_db(self) -> i64 {
        self.0 as i64
    }

    pub(crate) fn from_db(v: i64) -> Self {
        ContentHash(v as u64)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// An instant as stored: microseconds since the Unix epoch.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// Read back an instant stored by [`micros`].
pub(crate) fn instant(column: &'static str, v: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(v).map_err(|e| StoreError::corrupt(column, e))
}

/// Read back an optional instant.
pub(crate) fn opt_instant(
    column: &'static str,
    v: Option<i64>,
) -> Result<Option<Timestamp>, StoreError> {
    v.map(|v| instant(column, v)).transpose()
}

/// A civil date as stored: `YYYY-MM-DD`.
pub(crate) fn day_text(d: Date) -> String {
    d.to_string()
}

/// Read back a date stored by [`day_text`].
pub(crate) fn day(column: &'static str, v: &str) -> Result<Date, StoreError> {
    v.parse::<Date>()
        .map_err(|e| StoreError::corrupt(column, e))
}

/// `now + ttl`, saturating at the largest instant.
pub(crate) fn after(now: Timestamp, ttl: std::time::Duration) -> i64 {
    let ttl_micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    micros(now).saturating_add(ttl_micros)
}
