# shellcheck shell=sh
# Timing, in the same boot: the raw floor (a shell doing the bare kernel operations that move
# 03.0 and 03.1 to vfio-pci and back) against pitcrew detach / reattach. A benchmark, not a test: it reports
# BENCH <key> <ms> lines (or BENCH <key> FAIL <why>) and never a verdict.
# shellcheck disable=SC2034 # read by lib.sh's log
SCENARIO=bench
ROUNDS=${BENCH:-3}
[ "$ROUNDS" -gt 0 ] 2>/dev/null || ROUNDS=3
# The floor is a shell doing the kernel operations pitcrew plans here (the console leaves the
# frame buffers; the GPU is bochs' only device, so bochs is unloaded; the audio function moves
# alone; and back, the console bound again unless the kernel did it), vfio-pci load included:
# the ratio is what pitcrew itself adds to what the kernel needs.
vtcon=$(fbcon_dir)
# In the plan's order: the audio function leaves snd_hda_intel before bochs is unloaded. Later,
# the codec may have gone to runtime suspend meanwhile, and its unbind then wakes it first
# (~600 ms), which pitcrew never pays.
raw_detach() {
	if [ -n "$vtcon" ]; then echo 0 >"$vtcon/bind"; fi
	echo vfio-pci >"$PCI/$GPU/driver_override"
	echo vfio-pci >"$PCI/$AUDIO/driver_override"
	echo "$AUDIO" >"$PCI/$AUDIO/driver/unbind"
	modprobe -r bochs
	modprobe vfio-pci
	echo "$GPU" >/sys/bus/pci/drivers_probe
	echo "$AUDIO" >/sys/bus/pci/drivers_probe
}
raw_reattach() {
	for f in $GPU $AUDIO; do
		echo >"$PCI/$f/driver_override"
		echo "$f" >"$PCI/$f/driver/unbind"
	done
	modprobe bochs
	echo "$AUDIO" >/sys/bus/pci/drivers_probe
	if [ -n "$vtcon" ]; then
		read -r bound <"$vtcon/bind"
		[ "$bound" = 1 ] || echo 1 >"$vtcon/bind"
	fi
}
raw_ok() { [ "$(driver_of "$GPU")" = "$1" ] && [ "$(driver_of "$AUDIO")" = "$2" ]; }
# snd_hda_intel probes its codecs in a work item after the bind returns, and registers the
# card's control device only when that is done: until then the codec's probe runs beside
# whatever is timed next and slows the run that happens to follow a reattach (the floor's or
# pitcrew's, hundreds of ms either way). Every timed detach starts from a settled card.
audio_settled() {
	for c in "$PCI/$AUDIO"/sound/card*/controlC*; do
		[ -e "$c" ] && return 0
	done
	return 1
}
settle() {
	restore_baseline >/dev/null 2>&1
	wait_until 10000 audio_settled || log "the sound card of $AUDIO did not register within 10 s"
}
# pitcrew as the floor's shell would run it: lib.sh's pc puts a `timeout` process in front,
# whose own start (as long as busybox true's) is no part of pitcrew's time. A hang is still
# cut off, by the boot's timeout. Sets PC_RC / PC_OUT / PC_MS like pc.
pc_bare() {
	log "\$ $*"
	pc_timed "$@"
}
# One detach and reattach by binary $1, reported under key $2; false when one failed.
pc_round() {
	settle
	if pc_bare "$1" detach 00:03.0 && raw_ok vfio-pci vfio-pci; then
		say "BENCH $2_detach $PC_MS"
	else
		say "BENCH $2_detach FAIL exit $PC_RC, $GPU on $(driver_of "$GPU"): $(echo "$PC_OUT" | tail -n 1)"
		return 1
	fi
	if pc_bare "$1" reattach 00:03.0 && raw_ok bochs-drm snd_hda_intel; then
		say "BENCH $2_reattach $PC_MS"
	else
		say "BENCH $2_reattach FAIL exit $PC_RC, $GPU on $(driver_of "$GPU"): $(echo "$PC_OUT" | tail -n 1)"
		return 1
	fi
}

# Rounds interleave the floor and pitcrew (and `xtask bench --against`'s other build, installed
# as pitcrew-b), so a load that comes and goes on the machine running QEMU weighs on each alike;
# a failed round ends that binary's series, not the others'.
#
# QEMU without KVM keeps the code it translated by the virtual address it ran at. With address
# space randomization every start of a position-independent binary (pitcrew, modprobe and its
# libraries) lands elsewhere and is translated anew: ~30 ms of pitcrew's argument parsing alone
# here, a cost no CPU has. The rounds run with randomization off, floor and pitcrew alike, so
# the ratio is what the code costs; pitcrew's start with it on is timed apart below.
against=
if command -v pitcrew-b >/dev/null; then against=1; fi
aslr=$(cat /proc/sys/kernel/randomize_va_space)
echo 0 >/proc/sys/kernel/randomize_va_space
pc_failed=
b_failed=
i=1
while [ $i -le "$ROUNDS" ]; do
	settle
	t0=$(now_us)
	raw_detach
	t1=$(now_us)
	if raw_ok vfio-pci vfio-pci; then
		say "BENCH raw_detach $(us_to_ms $((t1 - t0)))"
	else
		say "BENCH raw_detach FAIL $GPU on $(driver_of "$GPU"), $AUDIO on $(driver_of "$AUDIO")"
	fi
	t0=$(now_us)
	raw_reattach
	t1=$(now_us)
	if raw_ok bochs-drm snd_hda_intel; then
		say "BENCH raw_reattach $(us_to_ms $((t1 - t0)))"
	else
		say "BENCH raw_reattach FAIL $GPU on $(driver_of "$GPU"), $AUDIO on $(driver_of "$AUDIO")"
	fi
	# The two builds take turns at coming first: the run right after the floor's reattach
	# shares the guest with the codec's probe, which the kernel finishes in the background.
	if [ $((i % 2)) = 0 ] && [ -n "$against" ] && [ -z "$b_failed" ]; then
		pc_round pitcrew-b against || b_failed=1
	fi
	if [ -z "$pc_failed" ]; then pc_round pitcrew pitcrew || pc_failed=1; fi
	if [ $((i % 2)) = 1 ] && [ -n "$against" ] && [ -z "$b_failed" ]; then
		pc_round pitcrew-b against || b_failed=1
	fi
	i=$((i + 1))
done

# What pitcrew's own share is made of: starting any process (busybox true), starting pitcrew,
# starting its write helper (no parser, no logging; it exits on the closed pipe) and reading
# the host (status); and starting pitcrew with randomization on again (version_aslr).
for what in true version helper status version_aslr; do
	[ "$what" = version_aslr ] && echo "$aslr" >/proc/sys/kernel/randomize_va_space
	i=1
	while [ $i -le "$ROUNDS" ]; do
		case $what in
		true) cmd="busybox true" ;;
		version | version_aslr) cmd="pitcrew --version" ;;
		helper) cmd="pitcrew __write" ;;
		*) cmd="pitcrew status" ;;
		esac
		t0=$(now_us)
		$cmd >/dev/null 2>&1 </dev/null
		t1=$(now_us)
		say "BENCH pitcrew_$what $(us_to_ms $((t1 - t0)))"
		i=$((i + 1))
	done
done
restore_baseline >/dev/null 2>&1
true
