//! How the kernel can reset each function of a card between guest runs (`reset_method`, Linux
//! 5.15+), and whether vendor-reset covers the cards that need it.

use super::Check;
use crate::config::CONFIG_PATH;
use crate::host::pci::PciDevice;
use crate::snapshot::Snapshot;
use crate::tuning::{ResetMethod, Tuning};
use crate::vendor;

/// The AMD families vendor-reset can reset, with their device ids (its `src/device-db.h`).
const VENDOR_RESET: &[(&str, &[u16])] = &[
    (
        "Polaris 10",
        &[
            0x67c0, 0x67c1, 0x67c2, 0x67c4, 0x67c7, 0x67c8, 0x67c9, 0x67ca, 0x67cc, 0x67cf, 0x67d0,
            0x67df, 0x6fdf,
        ],
    ),
    (
        "Polaris 11",
        &[
            0x67e0, 0x67e1, 0x67e3, 0x67e7, 0x67e8, 0x67e9, 0x67eb, 0x67ef, 0x67ff,
        ],
    ),
    (
        "Polaris 12",
        &[
            0x6980, 0x6981, 0x6985, 0x6986, 0x6987, 0x6995, 0x6997, 0x699f,
        ],
    ),
    (
        "Vega 10",
        &[
            0x6860, 0x6861, 0x6862, 0x6863, 0x6864, 0x6867, 0x6868, 0x6869, 0x686a, 0x686b, 0x686c,
            0x686d, 0x686e, 0x686f, 0x687f,
        ],
    ),
    (
        "Vega 20",
        &[0x66a0, 0x66a1, 0x66a2, 0x66a3, 0x66a4, 0x66a7, 0x66af],
    ),
    ("MI100", &[0x738c]),
    (
        "Navi 10",
        &[
            0x1681, 0x7310, 0x7312, 0x7318, 0x7319, 0x731a, 0x731b, 0x731e, 0x731f,
        ],
    ),
    ("Navi 12", &[0x7360, 0x7362]),
    ("Navi 14", &[0x7340, 0x7341, 0x7347, 0x734f]),
];

/// The module vendor-reset loads as.
const VENDOR_RESET_MODULE: &str = "vendor_reset";

/// The family vendor-reset knows the function as, if it does.
fn vendor_reset_family(d: &PciDevice) -> Option<&'static str> {
    (d.vendor == vendor::AMD.vendor && d.is_gpu())
        .then(|| {
            VENDOR_RESET
                .iter()
                .find(|(_, ids)| ids.contains(&d.device))
                .map(|(family, _)| *family)
        })
        .flatten()
}

const SHUT_DOWN: &str = "shut the guest down instead of rebooting it, and expect a host reboot to \
                         recover the card after a guest crash";

/// One function's reset methods: the guest resets its devices at every boot, and a function the
/// kernel cannot reset keeps the last guest's state (or hangs the next one).
pub(super) fn check(s: &Snapshot, d: &PciDevice, tuning: &Tuning, name: String) -> Check {
    let bdf = d.bdf;
    let family = vendor_reset_family(d);
    let loaded = s.modules.contains_key(VENDOR_RESET_MODULE);
    let set_for_vm = format!(
        "set reset_method = \"device_specific\" for the VM (or in a [vm.\"<name>\".device.\"{bdf}\"] \
         table) in {CONFIG_PATH}"
    );
    if let Some(family) = family {
        if !loaded {
            return Check::warn(
                name,
                format!(
                    "a {family} card, which often does not come back from the kernel's own resets; \
                     vendor-reset knows how to reset it but is not loaded"
                ),
                format!(
                    "install vendor-reset (its DKMS package), load it at boot, and {set_for_vm}"
                ),
            );
        }
        let lent_first = matches!(&tuning.reset_method,
            ResetMethod::Set(methods) if methods.starts_with("device_specific"));
        let first = d
            .reset_method
            .as_deref()
            .is_some_and(|m| m.starts_with("device_specific"));
        if !first && !lent_first {
            return Check::warn(
                name,
                format!(
                    "vendor-reset is loaded, but reset_method lists \"{}\": the kernel uses \
                     vendor-reset only when device_specific comes first",
                    d.reset_method.as_deref().unwrap_or_default()
                ),
                set_for_vm,
            );
        }
        return Check::ok(
            name,
            format!("a {family} card: vendor-reset is loaded and device_specific comes first"),
        );
    }
    let multi_function = s.slot_companions(bdf).next().is_some();
    let lent = match &tuning.reset_method {
        ResetMethod::Set(methods) => format!(" (a lend sets \"{methods}\")"),
        ResetMethod::Keep => String::new(),
    };
    match d.reset_method.as_deref() {
        None => Check::warn(
            name,
            format!(
                "no reset_method: the kernel found no way to reset {bdf}, so the guest cannot \
                 reset this function between runs"
            ),
            SHUT_DOWN,
        ),
        Some("") => Check::warn(
            name,
            format!(
                "reset_method of {bdf} is empty: every method was disabled, so the guest cannot \
                 reset this function"
            ),
            format!(
                "find what empties it (`grep -rn reset_method /etc/udev/rules.d /etc/tmpfiles.d`), \
                 or set reset_method for the VM in {CONFIG_PATH}"
            ),
        ),
        Some("bus") if multi_function => Check::warn(
            name,
            format!(
                "the guest cannot reset this function: its only method is a bus reset, which \
                 resets every function of the slot, so the kernel refuses it for {bdf} alone{lent}"
            ),
            SHUT_DOWN,
        ),
        Some(methods) => Check::ok(name, format!("reset_method: {methods}{lent}")),
    }
}
