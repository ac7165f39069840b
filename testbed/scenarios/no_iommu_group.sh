# shellcheck shell=sh
# machine: no-iommu
# Without an IOMMU no device is in a group: detach must refuse (exit 2) and change nothing.
[ -e "$PCI/$GPU/iommu_group" ] && fail "precondition: $GPU has an IOMMU group on this machine"
before=$(snapshot)
pc detach 00:03.0
[ "$PC_RC" = 2 ] || fail "detach of a device without IOMMU group exited $PC_RC, expected 2"
[ -n "$PC_OUT" ] || fail "no error message"
case "$PC_OUT" in *panicked*) fail "pitcrew panicked" ;; esac
[ "$(snapshot)" = "$before" ] || fail "detach changed the system"
expect_driver "$GPU" bochs-drm
pass "exit 2 with a message, nothing changed"
