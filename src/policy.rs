//! How a handover treats what stands in its way; set per VM by the config file.

use crate::tuning::LendTuning;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// When the display manager is stopped during a detach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayManagerPolicy {
    /// Only when one of its processes holds the card.
    #[default]
    Auto,
    /// Always, even when nothing of the desktop holds the card.
    Always,
    /// Never; a desktop holding the card makes the detach fail instead.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// How a handover treats the display manager and holders, and its deadlines.
pub struct Policy {
    /// When the display manager is stopped.
    pub display_manager: DisplayManagerPolicy,
    /// How long a holder has to exit after SIGTERM before it gets SIGKILL.
    pub term_timeout: Duration,
    /// How long one step (a sysfs write, a modprobe, a unit stop) may take.
    pub step_timeout: Duration,
    /// Hold a logind sleep inhibitor while a card is lent.
    pub inhibit_sleep: bool,
    /// What a lend changes on the functions themselves: BAR sizes, reset methods.
    pub tuning: LendTuning,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            display_manager: DisplayManagerPolicy::Auto,
            term_timeout: Duration::from_secs(5),
            step_timeout: Duration::from_secs(30),
            inhibit_sleep: true,
            tuning: LendTuning::default(),
        }
    }
}
