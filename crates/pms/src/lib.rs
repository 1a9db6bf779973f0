//! The practice side: the `PmsConnector` trait and the Exact-style API client.
