//! The pure core of slotbridge.
//!
//! Everything in this crate is a plain function of its inputs: no I/O, no async, no HTTP types.
//! The time is an argument; [`clock`] is the one place that reads it, for the service to be
//! given a clock (the system's in production, one a test moves by hand). Adapters (the PMS connector, the marketplace client, the store) turn the outside
//! world into these types and back.
//!
//! - [`snapshot`]: the diary snapshot, the engine's input (documented in `docs/snapshot.md`).
//! - [`availability`]: the availability engine: which slots may be published online.
//! - [`practice`]: the PMS's setup and diary as the connector reads them; the snapshot is one
//!   projection of it.
//! - [`diagnostics`]: findings about a practice's setup, links and health, with fixes.
//! - [`publish`]: the PMS setup and the engine's slots as the marketplace's resources, appointment
//!   types and availability snapshots, with content hashes.
//! - [`explain`]: why a slot is not published: the rule that removed it.
//! - [`matching`]: patient matching: find the booking patient's PMS file, or decide it is new.
//! - [`booking_rules`]: the booking pipeline's decisions (retry, reject, give up, keep
//!   confirming) from the booking's stage, times and failure, and the round's grouping.
//! - [`backoff`]: exponential backoff with jitter, and the per-link breaker (transient failures
//!   back off, lasting ones park the link).
//! - [`horizon`]: the publishing horizon ([`horizon::HorizonDays`]) and the dates it covers.
//! - [`clock`]: the time as something given: the system clock, a manual clock for tests.

pub mod availability;
pub mod backoff;
pub mod booking_rules;
pub mod clock;
pub mod diagnostics;
pub mod explain;
pub mod horizon;
pub mod matching;
pub mod practice;
pub mod publish;
pub mod snapshot;
