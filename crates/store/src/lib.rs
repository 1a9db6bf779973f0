//! Durable state for slotbridge: links, publish state, sync state, the request log, the booking
//! outbox and the multi-node leases.
//!
//! [`Store`] is one type with two backends, chosen by the URL given to [`Store::open`]:
//!
//! - `sqlite://path/to/slotbridge.db?mode=rwc` (the default; the file is created and migrated on
//!   first start), or `sqlite::memory:` for tests;
//! - `postgres://user@host/db` for several nodes sharing one database.
//!
//! Dispatch is static: the store holds an enum of the two connection pools and every operation
//! is written once, then compiled once per backend by a small macro (`on_backend!`), so both
//! backends run the same SQL text except where a statement names its backend difference
//! explicitly (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite).
//! Migrations are embedded per backend (`migrations/sqlite`, `migrations/postgres`) and run at
//! open.
//!
//! Secrets (PMS API keys, marketplace practice keys) are sealed with AES-256-GCM under a
//! [`Keyring`] of master keys and only ever leave the store as [`secrecy::SecretString`].
//!
//! Instants are [`jiff::Timestamp`] in the API and epoch microseconds in the database.
//! Operations whose outcome depends on the clock (claims, leases) take `now` as an argument, so
//! callers and tests control time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), slotbridge_store::StoreError> {
//! use slotbridge_store::{Keyring, Store};
//! let keys = Keyring::from_env()?;
//! let store = Store::open("sqlite://slotbridge.db?mode=rwc", keys).await?;
//! for link in store.list_links().await? {
//!     println!("{} -> {}", link.site_slug, link.market_practice_id);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod audit;
mod backend;
mod bookings;
mod error;
mod fleet;
mod leases;
mod links;
mod list;
mod publish;
mod requests;
mod secrets;
mod sync;
mod types;

pub use audit::{
    AuditEntry, BULK_FAILURES_KEPT, BulkAction, BulkId, NewAuditEntry, PracticeResync,
    RESYNC_DISABLED, ResyncEnd,
};
pub use backend::{RENEW_CHUNK_POSTGRES, RENEW_CHUNK_SQLITE};
pub use bookings::{
    AppointmentChange, Booking, BookingEvent, BookingSearch, BookingState, BookingTransition,
    NewBooking, surname_key,
};
pub use error::StoreError;
pub use fleet::{
    FLEET_SLOT, FailingLink, FleetCount, HealthCounts, HealthRules, LinkGauges, fleet_slot,
};
pub use leases::{HeldLease, Lease, NodeHeartbeat};
pub use links::{Link, LinkChanges, LinkPms, NewLink, Resealed};
pub use list::{ListFilter, ListPage, ListQuery};
pub use publish::{ConfigHashKind, ConfigHashes, PublishItem};
pub use requests::{MarketRequest, NewMarketRequest, RequestState};
pub use secrets::{KeyError, Keyring, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};
pub use sync::{ConsentStatus, SetupFindings, SyncChanges, SyncError, SyncState};
pub use types::{ContentHash, HorizonDays, LinkId};

pub use backend::Store;
