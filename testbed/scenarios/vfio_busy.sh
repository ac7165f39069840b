# shellcheck shell=sh
# machine: one-gpu
# A process holding /dev/vfio/<group> (a VM still running, named like QEMU) makes reattach refuse
# with exit 1, naming it, and nothing moves: no write to the functions, both stay on vfio-pci.
short_steps 5
pc_ok detach 00:03.0
group=$(group_of "$GPU")
[ -c "/dev/vfio/$group" ] || fail "precondition: no /dev/vfio/$group after detach"

# A script's comm is its file name (cut to 15 characters): qemu-system-x86.
mkdir -p /tmp/bin
# shellcheck disable=SC2016 # the script expands $1 when it runs
printf '#!/bin/sh\nexec 3<"$1"\nsleep 100000 3<&- &\nwait\n' >/tmp/bin/qemu-system-x86_64
chmod +x /tmp/bin/qemu-system-x86_64
/tmp/bin/qemu-system-x86_64 "/dev/vfio/$group" &
vm=$!
trap 'kill -9 $vm 2>/dev/null' EXIT
holds() { [ "$(readlink "/proc/$vm/fd/3")" = "/dev/vfio/$group" ]; }
wait_until 5000 holds || fail "precondition: the stand-in VM does not hold /dev/vfio/$group"
snapshot >/tmp/before.txt

pc_start reattach 00:03.0
if ! pc_wait 60000; then
	kill -9 $vm
	pc_wait 30000
	fail "pitcrew reattach was still running 60 s later, waiting for the VM; exit $PC_RC once it was killed"
fi
[ "$PC_RC" = 1 ] || fail "reattach exited $PC_RC, expected 1: $(echo "$PC_OUT" | tail -n 1)"
# Refused at planning, before any write (a check right before the unbind would catch it too,
# but only after driver_override had been cleared and put back).
echo "$PC_OUT" | grep -q "a VM still uses IOMMU group $group: pid $vm (qemu-system-x86) holding /dev/vfio/$group" ||
	fail "reattach was not refused before it started, naming the VM (pid $vm): $(echo "$PC_OUT" | tail -n 1)"
snapshot >/tmp/after.txt
cmp -s /tmp/before.txt /tmp/after.txt ||
	fail "reattach changed the host: $(diff /tmp/before.txt /tmp/after.txt | grep '^[-+][^-+]' | tr '\n' ' ')"
[ "$(cat "$PCI/$GPU/driver_override")" = vfio-pci ] || fail "driver_override of $GPU changed to '$(cat "$PCI/$GPU/driver_override")'"
expect_driver "$GPU" vfio-pci "after the refused reattach"
expect_driver "$AUDIO" vfio-pci "after the refused reattach"
alive $vm || fail "the VM was ended"

kill -9 $vm
wait $vm 2>/dev/null
pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after the VM stopped"
pass "reattach refused (exit 1 in $PC_MS ms) naming pid $vm (qemu-system-x86) on /dev/vfio/$group; nothing moved; reattach after the VM stopped"
