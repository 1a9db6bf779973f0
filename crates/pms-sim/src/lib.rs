//! A simulator of an Exact-style PMS API (see `docs/pms-api.md`).
