//! The simulated host's own tests, one binary: each module covers one part of the simulation.

mod common;

mod commands;
mod faults;
mod kernel;
mod layout;
mod processes;
