# shellcheck shell=sh
# machine: two-gpus
# Two GPUs of the same driver: detaching 03.0 leaves 04.0 bound to bochs-drm and working, and
# the bochs module stays loaded.
card2=$(card_of "$GPU2")
[ -n "$card2" ] || fail "precondition: $GPU2 has no DRM card"
[ "$(group_of "$GPU2")" != "$(group_of "$GPU")" ] || fail "precondition: $GPU2 shares the GPU's group"
# "Working": the driver answers a connector probe through sysfs and the node opens.
gpu2_works() {
	st=$(cat "/sys/class/drm/$card2"-*/status 2>/dev/null | head -n 1)
	[ "$st" = connected ] && (exec 3<"/dev/dri/$card2") 2>/dev/null
}
gpu2_works || fail "precondition: $GPU2 ($card2) does not work"

pc_ok detach 00:03.0
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
expect_driver "$GPU2" bochs-drm "the other GPU, after detach"
has_module bochs || fail "bochs was unloaded although $GPU2 uses it"
[ "$(card_of "$GPU2")" = "$card2" ] || fail "$GPU2 lost or changed its card ($card2 -> $(card_of "$GPU2"))"
gpu2_works || fail "$GPU2 ($card2) stopped working after detaching $GPU"

pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after reattach"
expect_driver "$AUDIO" snd_hda_intel "after reattach"
expect_driver "$GPU2" bochs-drm "the other GPU, after reattach"
wait_until 5000 card_node_ok "$GPU" || fail "no /dev/dri card node for $GPU after reattach"
gpu2_works || fail "$GPU2 ($card2) stopped working after reattach"
pass "03.0 moved and came back; 04.0 stayed on bochs-drm ($card2 connected), bochs stayed loaded"
