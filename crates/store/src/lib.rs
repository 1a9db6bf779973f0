//! Durable state: links, sync state, the booking outbox and leases.
