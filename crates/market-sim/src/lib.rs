//! A simulator of the Healthengine marketplace's PMS API v1.9.0 (see `docs/market-sim.md`).
