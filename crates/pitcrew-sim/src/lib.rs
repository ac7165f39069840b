//! Simulated host.
