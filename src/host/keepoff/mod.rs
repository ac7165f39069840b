//! The udev rules `pitcrew keep-off` owns, and whether they hold for each card now.

pub mod rules;
mod state;

pub use rules::{Entries, Entry, RULES};
pub use state::{drm_cards, load, read, Effect, LoadError, State};
