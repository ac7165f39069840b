# shellcheck shell=sh
# machine: uefi-one-gpu
# The host's only GPU on a UEFI machine: the firmware drew on it (efifb), bochs replaced efifb
# at boot, and the text console (fbcon) draws on bochs-drm's frame buffer. Detach moves both
# functions to vfio-pci with no console left on a frame buffer, records that, and leaves nothing
# but vfio claiming the card's memory; reattach brings bochs-drm back with fbcon on its new
# frame buffer. (Linux 6.1 itself takes fbcon off a DRM driver's frame buffer when the driver
# goes and puts it on the next one, so a build without the console steps fails here on the
# state record, which must say what was done; single_gpu_firmware_fb is where the kernel leaves
# the console and efifb in place.)
efifb=$(dmesg | grep -o 'efifb: framebuffer at 0x[0-9a-f]*' | head -n 1)
[ -n "$efifb" ] || fail "precondition: the kernel never had efifb (not booted through UEFI?)"
fb=$(fbs_on "$GPU")
con=$(basename "$(fbcon_dir)")
{ fbcon_bound && [ -n "$fb" ]; } ||
	fail "precondition: fbcon bound ($(cat "$(fbcon_dir)/bind" 2>/dev/null)), frame buffer on $GPU '$fb'"

pc_ok detach 00:03.0
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
fbcon_bound && fail "a vtconsole is still bound to a frame buffer after detach"
[ -z "$(fbs_on "$GPU")" ] || fail "frame buffer $(fbs_on "$GPU") still on $GPU after detach"
claims=$(iomem_claims "$GPU" | grep -v '^vfio' | tr '\n' ' ')
[ -z "$claims" ] || fail "after detach, /proc/iomem shows $GPU's memory claimed by: $claims"
grep -q "\"vtcon\": \"$con\"" /run/pitcrew/state.json ||
	fail "the state record does not say $con was unbound: $(tr -d ' \n' </run/pitcrew/state.json)"

pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after reattach"
expect_driver "$AUDIO" snd_hda_intel "after reattach"
wait_until 5000 fbcon_bound || fail "fbcon not bound again after reattach"
fb=$(fbs_on "$GPU")
[ -n "$fb" ] || fail "no frame buffer on $GPU after reattach"
grep -q vtcon /run/pitcrew/state.json && fail "the state record still names a console after reattach"
expect_baseline "after reattach"
pass "booted with ${efifb#efifb: }; fbcon left $GPU's frame buffer, only vfio-pci on the card ($con recorded); back on bochs-drm with fbcon on $fb"
