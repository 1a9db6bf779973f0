//! The integration service: wires the PMS connector, the marketplace client and the store.
