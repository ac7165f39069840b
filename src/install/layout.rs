//! Where `pitcrew install` puts things, and what it writes there.

/// A hand install goes to /usr/local (the .deb uses /usr/bin).
pub const BINARY: &str = "/usr/local/bin/pitcrew";
pub const UNIT: &str = "/etc/systemd/system/pitcrew@.service";
/// OpenRC's multiplexed service, in place of the unit.
pub const INIT_SCRIPT: &str = crate::host::init::openrc::SCRIPT;
pub const HOOK: &str = "/etc/libvirt/hooks/qemu.d/pitcrew";
pub const MANIFEST: &str = "/var/lib/pitcrew/install.json";

/// The unit as shipped in the .deb, which runs /usr/bin/pitcrew.
pub const UNIT_TEXT: &str = include_str!("../../dist/pitcrew@.service");
/// The OpenRC script as shipped, which runs /usr/bin/pitcrew.
pub const INIT_SCRIPT_TEXT: &str = include_str!("../../dist/openrc/pitcrew");
/// The documented example config.
pub const EXAMPLE_CONFIG: &str = include_str!("../../dist/pitcrew.toml");

/// The unit with ExecStart/ExecStop pointing at `binary`.
pub fn unit_text(binary: &str) -> String {
    UNIT_TEXT.replace("=/usr/bin/pitcrew ", &format!("={binary} "))
}

/// The OpenRC script running `binary`.
pub fn init_script_text(binary: &str) -> String {
    INIT_SCRIPT_TEXT.replace(
        "\npitcrew=/usr/bin/pitcrew\n",
        &format!("\npitcrew={binary}\n"),
    )
}

/// A `[vm."name"]` table appended for `pitcrew install --vm NAME`.
pub fn vm_table(name: &str) -> String {
    format!(
        "\n{}\n# Added by `pitcrew install`. Without `devices`, the GPUs in the VM's XML are used.\n\
         # devices = [\"0000:01:00.0\"]\n# reattach = true\n",
        crate::config::vm_table_header(name)
    )
}
