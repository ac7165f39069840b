# shellcheck shell=sh
# machine: one-gpu
# With the GPU the only device bound to bochs-drm, the module strategy unloads bochs on detach
# and loads it again on reattach.
has_module bochs || fail "precondition: bochs not loaded"
pc_ok detach 00:03.0
has_module bochs && fail "bochs still loaded after detaching its only device"
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"

pc_ok reattach 00:03.0
has_module bochs || fail "bochs not loaded again after reattach"
expect_driver "$GPU" bochs-drm "after reattach"
expect_driver "$AUDIO" snd_hda_intel "after reattach"
wait_until 5000 card_node_ok "$GPU" || fail "no /dev/dri card node for $GPU after reattach"
pass "bochs unloaded by detach, loaded again by reattach"
