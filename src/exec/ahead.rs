//! A step started ahead of its turn: vfio-pci's load, beside the module unloads before it.

use super::StepError;
use crate::host::pci;
use crate::plan::Step;
use std::time::Duration;

/// A step running on its own thread, started ahead of its turn.
pub(super) type Ahead<'scope> = std::thread::ScopedJoinHandle<'scope, Result<Duration, StepError>>;

pub(super) fn join(handle: Ahead<'_>) -> Result<Duration, StepError> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// When `index` starts a run of module unloads that vfio-pci's load directly follows, the
/// load's index: it can run beside them, and saves its own time (tens to hundreds of ms) on
/// every detach that unloads a driver. Loading vfio-pci binds only functions whose
/// driver_override already names it (the steps before the unloads set them) or that the
/// user's own `ids=` claims (as the load would a step later); the unloads leave their functions
/// unbound whatever vfio-pci does, and the probe steps after the load bind what it did not. An
/// unload that removes vfio-pci again (a pre-softdep) is caught by those steps.
pub(super) fn loads_beside(steps: &[Step], index: usize) -> Option<usize> {
    let unload = |step: &Step| matches!(step, Step::UnloadModule { .. });
    if !unload(&steps[index]) || index.checked_sub(1).is_some_and(|i| unload(&steps[i])) {
        return None;
    }
    let load = index + steps[index..].iter().position(|step| !unload(step))?;
    matches!(&steps[load], Step::LoadModule { module } if module == pci::VFIO_MODULE)
        .then_some(load)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bdf::Bdf;
    use std::collections::BTreeSet;

    fn unload(module: &str) -> Step {
        Step::UnloadModule {
            module: module.into(),
            nodes: BTreeSet::new(),
        }
    }

    fn load(module: &str) -> Step {
        Step::LoadModule {
            module: module.into(),
        }
    }

    #[test]
    fn only_vfio_pci_s_load_starts_and_only_at_the_first_of_the_unloads_right_before_it() {
        let bdf: Bdf = "0000:01:00.0".parse().unwrap();
        let steps = [
            Step::BindVfio { bdf },
            unload("nvidia_drm"),
            unload("nvidia"),
            load(pci::VFIO_MODULE),
            Step::BindVfio { bdf },
        ];
        let starts: Vec<Option<usize>> =
            (0..steps.len()).map(|i| loads_beside(&steps, i)).collect();
        assert_eq!(starts, [None, Some(3), None, None, None]);
        // A host driver's load (a reattach) waits for its turn, as does vfio-pci's after a step
        // that is not an unload.
        assert_eq!(
            loads_beside(&[unload("vfio_pci"), load("nouveau")], 0),
            None
        );
        assert_eq!(
            loads_beside(
                &[unload("nouveau"), Step::BindVfio { bdf }, load("vfio_pci")],
                0
            ),
            None
        );
    }
}
