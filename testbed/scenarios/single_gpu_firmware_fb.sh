# shellcheck shell=sh
# machine: uefi-firmware-fb
# The host's only GPU with no driver of its own (bochs is not loaded): the firmware's frame
# buffer (efifb) and fbcon stay on it, as beside NVIDIA's driver without fbdev. Detach must
# release efifb's claim on the card's memory (and the console) before vfio-pci takes the card;
# reattach binds efifb again and the console comes back on it.
fw=$(firmware_fbs | awk '$2 != "none" { print $1; exit }')
{ [ "$(driver_of "$GPU")" = none ] && [ -n "$fw" ] && fbcon_bound; } ||
	fail "precondition: $GPU on $(driver_of "$GPU"), firmware frame buffers '$(firmware_fbs | tr '\n' ' ')', fbcon bound $(cat "$(fbcon_dir)/bind" 2>/dev/null)"
before=$(iomem_claims "$GPU" | tr '\n' ' ')
[ -n "$before" ] || fail "precondition: nothing in /proc/iomem claims $GPU's memory (efifb should)"

pc_ok detach 00:03.0
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
fbcon_bound && fail "a vtconsole is still bound to a frame buffer after detach"
firmware_fbs | grep -q "^$fw none$" || fail "$fw still bound after detach: $(firmware_fbs | tr '\n' ' ')"
claims=$(iomem_claims "$GPU" | grep -v '^vfio' | tr '\n' ' ')
[ -z "$claims" ] || fail "after detach, /proc/iomem shows $GPU's memory claimed by: $claims"
grep -q "\"device\": \"$fw\"" /run/pitcrew/state.json ||
	fail "the state record does not name $fw: $(tr -d ' \n' </run/pitcrew/state.json)"

pc_ok reattach 00:03.0
expect_driver "$AUDIO" snd_hda_intel "after reattach"
firmware_fbs | grep -q "^$fw none$" && fail "$fw not bound again after reattach"
wait_until 5000 fbcon_bound || fail "fbcon not bound again after reattach"
expect_baseline "after reattach"
pass "efifb's claim ($before) and fbcon left $GPU before vfio-pci took it; both back after reattach"
