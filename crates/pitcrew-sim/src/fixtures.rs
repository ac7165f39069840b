//! Ready-made machines.
