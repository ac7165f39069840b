# shellcheck shell=sh
# machine: one-gpu
# Detach twice, reattach twice: the second of each exits 0 and changes nothing.
pc_ok detach 00:03.0
expect_driver "$GPU" vfio-pci "after the first detach"
expect_driver "$AUDIO" vfio-pci "after the first detach"
before=$(snapshot)
pc_ok detach 00:03.0
[ "$(snapshot)" = "$before" ] || fail "the second detach changed the system"
expect_driver "$GPU" vfio-pci "after the second detach"

pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after the first reattach"
expect_driver "$AUDIO" snd_hda_intel "after the first reattach"
wait_until 5000 card_node_ok "$GPU" || fail "no card node after the first reattach"
before=$(snapshot)
pc_ok reattach 00:03.0
[ "$(snapshot)" = "$before" ] || fail "the second reattach changed the system"
expect_baseline "after reattaching twice"
pass "second detach and second reattach exited 0 and changed nothing"
