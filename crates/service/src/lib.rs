//! The integration service: wires the PMS connector, the marketplace client and the store.
//!
//! - [`publisher`]: configuration and availability to the marketplace, sending only what changed.
//! - [`subscriptions`]: the link's one marketplace subscription, and whether its webhooks are trusted.
//! - [`ctx`]: the shared context of a node (store, marketplace client, settings, clock).
//! - [`failure`]: what can go wrong in a link's work, and its kind.
//! - [`fence`]: a worker's lease and the checks before its calls and writes.
//! - [`supervisor`]: fenced leases on links and one supervised worker per held link.
//! - [`worker`]: a link's worker: PMS changes in, requests answered, backoff and breaker.
//! - [`http`]: health, metrics, webhook receivers, the admin API (`/api`, `/openapi.json`).
//! - [`admin`]: the admin operations under both the admin API and the console.
//! - [`audit`]: the audit log of operators' actions, and bulk actions with their progress.
//! - [`console`]: the operator console (`/console`), server-rendered with htmx.
//! - [`node`]: the composition root of one node (`slotbridge run`, `slotbridge demo`).
//! - [`metrics`]: the node's Prometheus metrics.
//! - [`bookings`]: the booking outbox: every booking into the diary exactly once, or rejected.
//! - [`lookup`]: booking look-up (booking id, PMS appointment id, surname) and a booking's history.

pub mod admin;
pub mod audit;
pub mod bookings;
pub mod callback;
pub mod console;
pub mod ctx;
pub mod failure;
pub mod fence;
pub mod fleet;
pub mod http;
pub mod lookup;
pub mod metrics;
pub mod node;
pub mod publisher;
pub mod subscriptions;
pub mod supervisor;
pub mod worker;
