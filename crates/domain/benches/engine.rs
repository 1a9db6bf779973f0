//! Availability engine benchmarks (see docs/performance.md).
fn main() {}
