//! The integration service: wires the PMS connector, the marketplace client and the store.
//!
//! - [`publisher`]: configuration and availability to the marketplace, sending only what changed.
//! - [`worker`]: leases on links and one worker per held link: PMS changes in, requests answered.
//! - [`http`]: health, metrics, webhook receivers and the admin API for links.
//! - [`node`]: the composition root of one node (`slotbridge run`, `slotbridge demo`).
//! - [`metrics`]: the node's Prometheus metrics.
//! - [`bookings`]: the booking outbox: every booking into the diary exactly once, or rejected.

pub mod bookings;
pub mod http;
pub mod metrics;
pub mod node;
pub mod publisher;
pub mod worker;
