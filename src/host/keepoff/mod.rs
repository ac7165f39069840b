//! The udev rules `pitcrew keep-off` owns, and whether they hold for each card now.

mod nodes;
pub mod rules;
mod state;

pub use nodes::{is_powerdevil, powerdevil_fix, KeptNode, Kind as NodeKind};
pub use rules::{Entries, Entry, RULES, SEAT};
pub use state::{drm_cards, load, read, Effect, LoadError, State};
