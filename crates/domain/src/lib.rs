//! The pure core of slotbridge.
//!
//! Everything in this crate is a plain function of its inputs: no I/O, no async, no clock, no
//! HTTP types. Adapters (the PMS connector, the marketplace client, the store) turn the outside
//! world into these types and back.
//!
//! - [`snapshot`]: the diary snapshot, the engine's input (documented in `docs/snapshot.md`).

pub mod snapshot;
