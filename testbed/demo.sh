# shellcheck shell=sh
# The demo: pitcrew status, detach (each step once, as it runs), status, reattach, on the real kernel.
# Everything goes to the results port; the host prints it as it comes.
show() { say ""; say "\$ $*"; }
kernel_view() {
	# shellcheck disable=SC2012 # node names only, for the eye
	say "  kernel (sysfs): 03.0 -> $(driver_of "$GPU"), 03.1 -> $(driver_of "$AUDIO"), /dev/dri: $(ls /dev/dri 2>/dev/null | tr '\n' ' ')/dev/vfio: $(ls /dev/vfio 2>/dev/null | tr '\n' ' ')modules: $(cut -d' ' -f1 /proc/modules | grep -E '^(bochs|vfio_pci|snd_hda_intel)$' | tr '\n' ' ')"
}
run() {
	show "pitcrew $*"
	t0=$(now_us)
	timeout "$PC_TIMEOUT" pitcrew "$@" >/tmp/demo.out 2>&1
	rc=$?
	ms=$(us_to_ms $(($(now_us) - t0)))
	while IFS= read -r l; do say "$l"; done </tmp/demo.out
	say "  (exit $rc, $ms ms)"
}
say "GPU Pit Crew demo: Linux $(uname -r) under QEMU q35 + intel-iommu (TCG)"
say "GPU 0000:00:03.0 (bochs-display, group $(group_of "$GPU")) with its audio function 0000:00:03.1"
kernel_view
run status
card=$(card_of "$GPU")
sleep 100000 3<"/dev/dri/$card" &
holder=$!
show "sleep 100000 3</dev/dri/$card &   # a process holding the GPU (pid $holder)"
run detach --term-timeout 2 00:03.0
if alive $holder; then say "  holder $holder is still running"; else say "  holder $holder is gone"; fi
kernel_view
[ "$(driver_of "$GPU")" = vfio-pci ] && [ "$(driver_of "$AUDIO")" = vfio-pci ] && detached=yes
run status
run reattach 00:03.0
kernel_view
[ "$(driver_of "$GPU")" = bochs-drm ] && [ "$(driver_of "$AUDIO")" = snd_hda_intel ] && card_node_ok "$GPU" && home=yes
run status
kill -9 $holder 2>/dev/null
say ""
if [ -n "$detached" ] && [ -n "$home" ]; then
	say "RESULT demo PASS the kernel saw 03.0+03.1 on vfio-pci after detach and back home after reattach"
else
	say "RESULT demo FAIL the kernel saw detach: ${detached:-no}, back home after reattach: ${home:-no}"
fi
