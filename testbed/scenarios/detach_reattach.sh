# shellcheck shell=sh
# machine: one-gpu
# detach moves the GPU (03.0, bochs-drm) and its audio function (03.1, snd_hda_intel) to vfio-pci
# and the group's /dev/vfio node appears; reattach brings both home and the DRM card node back.
card=$(card_of "$GPU")
grp=$(group_of "$GPU")
{ [ -n "$card" ] && [ -n "$grp" ]; } || fail "precondition: $GPU has card '$card', group '$grp'"

pc_ok detach 00:03.0
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
[ -c "/dev/vfio/$grp" ] || fail "/dev/vfio/$grp missing after detach"
[ -z "$(card_of "$GPU")" ] || fail "$GPU still has DRM card $(card_of "$GPU") after detach"

pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after reattach"
expect_driver "$AUDIO" snd_hda_intel "after reattach"
wait_until 5000 card_node_ok "$GPU" || fail "no /dev/dri card node for $GPU after reattach"
pass "03.0+03.1 on vfio-pci with /dev/vfio/$grp, then back on bochs-drm+snd_hda_intel with /dev/dri/$(card_of "$GPU")"
