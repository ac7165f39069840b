# shellcheck shell=sh
# machine: one-gpu
# pitcrew killed with SIGKILL right after step N of its plan (PITCREW_CRASH_AFTER_STEP=N), for
# every N of the plan: a new detach converges to detached, a new reattach to the original state,
# and a reattach after a crashed detach also restores the original state.
detached() {
	[ "$(driver_of "$GPU")" = vfio-pci ] && [ "$(driver_of "$AUDIO")" = vfio-pci ] &&
		[ -c "/dev/vfio/$(group_of "$GPU")" ]
}
home() {
	[ "$(driver_of "$GPU")" = bochs-drm ] && [ "$(driver_of "$AUDIO")" = snd_hda_intel ] &&
		card_node_ok "$GPU"
}
# crash OP N: run OP with the crash after step N; sets CRASHED=1 when it was killed, 0 when the
# plan had fewer than N steps and the run completed.
crash() {
	export PITCREW_CRASH_AFTER_STEP="$2"
	pc "$1" 00:03.0
	unset PITCREW_CRASH_AFTER_STEP
	case $PC_RC in
	137) CRASHED=1 ;;
	0) CRASHED=0 ;;
	*) fail "$1 with a crash after step $2 exited $PC_RC (expected 137 killed, or 0)" ;;
	esac
}
d_steps='' r_steps='' n=1
while [ -z "$d_steps" ] || [ -z "$r_steps" ]; do
	[ $n -gt 30 ] && fail "plans longer than 30 steps? crash injection never stopped firing"
	if [ -z "$d_steps" ]; then
		crash detach $n
		[ "$CRASHED" = 0 ] && d_steps=$((n - 1))
		pc_ok detach 00:03.0
		detached || fail "detach after a crash after step $n did not converge"
		pc_ok reattach 00:03.0
		home || fail "reattach after a crashed-then-converged detach (step $n) did not restore"
		# Crashed detach, then reattach: back home.
		if [ "$CRASHED" = 1 ]; then
			crash detach $n
			pc_ok reattach 00:03.0
			home || fail "reattach after a detach killed after step $n did not restore"
		fi
	fi
	if [ -z "$r_steps" ]; then
		pc_ok detach 00:03.0
		crash reattach $n
		[ "$CRASHED" = 0 ] && r_steps=$((n - 1))
		pc_ok reattach 00:03.0
		home || fail "reattach after a crash after step $n did not converge"
	fi
	n=$((n + 1))
done
[ "$d_steps" -gt 0 ] || fail "PITCREW_CRASH_AFTER_STEP=1 did not kill detach: no crash injection"
[ "$r_steps" -gt 0 ] || fail "PITCREW_CRASH_AFTER_STEP=1 did not kill reattach: no crash injection"
has_module bochs || fail "bochs not loaded at the end"
pass "killed after each of detach steps 1..$d_steps and reattach steps 1..$r_steps; every rerun converged"
